//! SQL of operator accounts.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use youmi_protocol::api::OperatorAccount;
use youmi_protocol::OperatorAccountId;

use crate::db::{flag, int_flag, Db};

/// The constraint that keeps WeCom user ids unique, and the column SQLite
/// names in its message instead.
pub const WECOM_USER_ID_KEY: (&str, &str) = (
    "operator_accounts_wecom_user_id_key",
    "operator_accounts.wecom_user_id",
);

const SELECT: &str = "SELECT a.id, a.name, a.wecom_user_id, a.remark, a.disabled, \
     a.created_at_ms, a.updated_at_ms, d.id AS device_id \
     FROM operator_accounts a \
     LEFT JOIN devices d ON d.operator_account_id = a.id AND d.revoked_at_ms IS NULL";

fn account(row: &AnyRow) -> Result<OperatorAccount, sqlx::Error> {
    Ok(OperatorAccount {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        wecom_user_id: row.try_get("wecom_user_id")?,
        remark: row.try_get("remark")?,
        disabled: flag(row, "disabled")?,
        device_id: row.try_get("device_id")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

/// Every account, by id.
#[tracing::instrument(skip_all)]
pub async fn list(db: &Db) -> Result<Vec<OperatorAccount>, sqlx::Error> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY a.id"))
        .fetch_all(&db.read)
        .await?;
    rows.iter().map(account).collect()
}

/// One account.
#[tracing::instrument(skip_all, fields(id = id))]
pub async fn get(db: &Db, id: OperatorAccountId) -> Result<Option<OperatorAccount>, sqlx::Error> {
    sqlx::query(&format!("{SELECT} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .map(|row| account(&row))
        .transpose()
}

async fn get_in(
    tx: &mut Transaction<'static, Any>,
    id: OperatorAccountId,
) -> Result<Option<OperatorAccount>, sqlx::Error> {
    sqlx::query(&format!("{SELECT} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| account(&row))
        .transpose()
}

/// Creates an account.
#[tracing::instrument(skip_all)]
pub async fn insert(
    db: &Db,
    name: &str,
    wecom_user_id: &str,
    remark: &str,
    now_ms: i64,
) -> Result<OperatorAccount, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO operator_accounts \
         (name, wecom_user_id, remark, disabled, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, 0, $4, $4) RETURNING id",
    )
    .bind(name)
    .bind(wecom_user_id)
    .bind(remark)
    .bind(now_ms)
    .fetch_one(&db.write)
    .await?;
    Ok(OperatorAccount {
        id,
        name: name.to_owned(),
        wecom_user_id: wecom_user_id.to_owned(),
        remark: remark.to_owned(),
        disabled: false,
        device_id: None,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    })
}

/// The fields an update changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct Update<'a> {
    /// New display name.
    pub name: Option<&'a str>,
    /// New WeCom user id.
    pub wecom_user_id: Option<&'a str>,
    /// New remark.
    pub remark: Option<&'a str>,
    /// New disabled flag.
    pub disabled: Option<bool>,
}

/// Changes an account; `None` if there is no such account.
#[tracing::instrument(skip_all, fields(id = id))]
pub async fn update(
    db: &Db,
    id: OperatorAccountId,
    update: Update<'_>,
    now_ms: i64,
) -> Result<Option<OperatorAccount>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let changed = sqlx::query(
        "UPDATE operator_accounts SET \
         name = COALESCE($1, name), \
         wecom_user_id = COALESCE($2, wecom_user_id), \
         remark = COALESCE($3, remark), \
         disabled = COALESCE($4, disabled), \
         updated_at_ms = $5 \
         WHERE id = $6",
    )
    .bind(update.name)
    .bind(update.wecom_user_id)
    .bind(update.remark)
    .bind(update.disabled.map(int_flag))
    .bind(now_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Ok(None);
    }
    let account = get_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(account)
}
