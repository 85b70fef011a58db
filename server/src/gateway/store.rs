//! SQL of the WebSocket handshake: which device a token belongs to.

use sqlx::Row;
use youmi_protocol::OperatorAccountId;

use crate::db::Db;

/// A device whose token was presented and is not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDevice {
    /// The device.
    pub device_id: String,
    /// The account it serves.
    pub operator_account_id: OperatorAccountId,
}

/// The bound, unrevoked device with this token hash.
#[tracing::instrument(skip_all)]
pub async fn device_for_token(
    db: &Db,
    token_hash: &str,
) -> Result<Option<TokenDevice>, sqlx::Error> {
    sqlx::query(
        "SELECT id, operator_account_id FROM devices \
         WHERE token_hash = $1 AND revoked_at_ms IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(&db.read)
    .await?
    .map(|row| {
        Ok(TokenDevice {
            device_id: row.try_get("id")?,
            operator_account_id: row.try_get("operator_account_id")?,
        })
    })
    .transpose()
}
