//! SQL of the notifications. Rows are inserted by the scheduler's store (in
//! the commit of what caused them); this module reads and marks them.

use sqlx::any::AnyRow;
use sqlx::Row;
use youmi_protocol::api::{Notification, NotificationPage, NotificationQuery};

use crate::db::Db;
use crate::http::page::PageRequest;

const COLUMNS: &str =
    "id, kind, operator_account_id, device_id, task_id, message, created_at_ms, read_at_ms";

fn notification(row: &AnyRow) -> Result<Notification, sqlx::Error> {
    Ok(Notification {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        operator_account_id: row.try_get("operator_account_id")?,
        device_id: row.try_get("device_id")?,
        task_id: row.try_get("task_id")?,
        message: row.try_get("message")?,
        created_at_ms: row.try_get("created_at_ms")?,
        read_at_ms: row.try_get("read_at_ms")?,
    })
}

/// One page of notifications, newest first, and the unread count.
#[tracing::instrument(skip_all, fields(limit = page.limit))]
pub async fn list(
    db: &Db,
    query: &NotificationQuery,
    page: PageRequest,
) -> Result<NotificationPage, sqlx::Error> {
    let mut conditions = Vec::new();
    if query.unread {
        conditions.push("read_at_ms IS NULL".to_owned());
    }
    if page.cursor.is_some() {
        conditions.push("id < $1".to_owned());
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let limit_at = if page.cursor.is_some() { "$2" } else { "$1" };
    let sql =
        format!("SELECT {COLUMNS} FROM notifications {filter} ORDER BY id DESC LIMIT {limit_at}");
    let mut statement = sqlx::query(&sql);
    if let Some(cursor) = page.cursor {
        statement = statement.bind(cursor);
    }
    let rows = statement.bind(page.rows()).fetch_all(&db.read).await?;
    let notifications = rows
        .iter()
        .map(notification)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NotificationPage {
        unread: unread(db).await?,
        page: page.page(notifications, |n| n.id),
    })
}

/// How many notifications are unread.
pub async fn unread(db: &Db) -> Result<u64, sqlx::Error> {
    let unread: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE read_at_ms IS NULL")
            .fetch_one(&db.read)
            .await?;
    Ok(unread.max(0) as u64)
}

/// Marks the given notifications (or, with `None`, every one) read; returns
/// how many were unread.
#[tracing::instrument(skip_all)]
pub async fn mark_read(db: &Db, ids: Option<&[i64]>, now_ms: i64) -> Result<u64, sqlx::Error> {
    let done = match ids {
        None => {
            sqlx::query("UPDATE notifications SET read_at_ms = $1 WHERE read_at_ms IS NULL")
                .bind(now_ms)
                .execute(&db.write)
                .await?
        }
        Some(ids) => {
            let placeholders = (0..ids.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE notifications SET read_at_ms = $1 \
                 WHERE read_at_ms IS NULL AND id IN ({placeholders})"
            );
            let mut statement = sqlx::query(&sql).bind(now_ms);
            for id in ids {
                statement = statement.bind(*id);
            }
            statement.execute(&db.write).await?
        }
    };
    Ok(done.rows_affected())
}

/// One notification.
pub async fn get(db: &Db, id: i64) -> Result<Option<Notification>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&db.read).await?;
    row.as_ref().map(notification).transpose()
}
