//! SQL of operator accounts, and the case-folded key that keeps WeCom user
//! ids unique regardless of letter case.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use youmi_protocol::api::OperatorAccount;
use youmi_protocol::OperatorAccountId;

use crate::db::{flag, int_flag, Db};
use crate::http::page::PageRequest;

/// The key under which a WeCom user id is unique: the id with its letter
/// case folded, in Rust so that both databases get the same key. Upper then
/// lower case folds what a plain lower case does not (`ß` and `SS`).
pub fn wecom_key(wecom_user_id: &str) -> String {
    wecom_user_id.to_uppercase().to_lowercase()
}

/// Gives every account stored before migration 0005 its key. Two accounts
/// whose ids differ only in case keep the second without a key, and the log
/// names both so that an admin can rename one.
#[tracing::instrument(skip_all)]
pub async fn fill_wecom_keys(db: &Db) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, wecom_user_id FROM operator_accounts \
         WHERE wecom_user_key IS NULL ORDER BY id",
    )
    .fetch_all(&db.write)
    .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let wecom_user_id: String = row.try_get("wecom_user_id")?;
        let key = wecom_key(&wecom_user_id);
        let result = sqlx::query("UPDATE operator_accounts SET wecom_user_key = $1 WHERE id = $2")
            .bind(&key)
            .bind(id)
            .execute(&db.write)
            .await;
        match result {
            Ok(_) => {}
            Err(error)
                if error
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()) =>
            {
                tracing::warn!(
                    operator_account_id = id,
                    %wecom_user_id,
                    "another operator account has this wecom_user_id in another letter case; \
                     rename one of them"
                );
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

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

/// One page of accounts, newest first: the rows a [`PageRequest`] reads
/// (one more than the page), before its cursor.
#[tracing::instrument(skip_all)]
pub async fn page(db: &Db, request: &PageRequest) -> Result<Vec<OperatorAccount>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE a.id < $1 ORDER BY a.id DESC LIMIT $2"
    ))
    .bind(request.cursor.unwrap_or(i64::MAX))
    .bind(request.rows())
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
         (name, wecom_user_id, wecom_user_key, remark, disabled, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $5, $3, 0, $4, $4) RETURNING id",
    )
    .bind(name)
    .bind(wecom_user_id)
    .bind(remark)
    .bind(now_ms)
    .bind(wecom_key(wecom_user_id))
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
         wecom_user_key = COALESCE($7, wecom_user_key), \
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
    .bind(update.wecom_user_id.map(wecom_key))
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Ok(None);
    }
    let account = get_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(account)
}

/// The names of the accounts `ids` that exist, by id: for pages that show
/// other features' rows with their account's name.
pub async fn names(
    db: &Db,
    ids: &[OperatorAccountId],
) -> Result<Vec<(OperatorAccountId, String)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT id, name FROM operator_accounts WHERE id IN ({placeholders})");
    let mut statement = sqlx::query(&sql);
    for id in ids {
        statement = statement.bind(*id);
    }
    let rows = statement.fetch_all(&db.read).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("name")?)))
        .collect()
}
