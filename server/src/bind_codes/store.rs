//! SQL of bind codes.

use youmi_protocol::OperatorAccountId;

use crate::db::{flag, Db};

/// Whether the account exists (`None` if not) and is disabled.
#[tracing::instrument(skip_all, fields(operator_account_id = id))]
pub async fn account_disabled(db: &Db, id: OperatorAccountId) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query("SELECT disabled FROM operator_accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .map(|row| flag(&row, "disabled"))
        .transpose()
}

/// Stores a new code.
#[tracing::instrument(skip_all, fields(operator_account_id = operator_account_id))]
pub async fn insert(
    db: &Db,
    code: &str,
    operator_account_id: OperatorAccountId,
    created_by: i64,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bind_codes \
         (code, operator_account_id, created_by, created_at_ms, expires_at_ms, used_at_ms) \
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(code)
    .bind(operator_account_id)
    .bind(created_by)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Whether `code` belongs to the account and is neither used nor expired.
#[tracing::instrument(skip_all, fields(operator_account_id = operator_account_id))]
pub async fn is_live(
    db: &Db,
    operator_account_id: OperatorAccountId,
    code: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let found = sqlx::query(
        "SELECT code FROM bind_codes \
         WHERE code = $1 AND operator_account_id = $2 AND used_at_ms IS NULL \
         AND expires_at_ms > $3",
    )
    .bind(code)
    .bind(operator_account_id)
    .bind(now_ms)
    .fetch_optional(&db.read)
    .await?;
    Ok(found.is_some())
}
