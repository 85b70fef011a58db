//! `POST /agent/v1/bind`: a phone presents a bind code and gets a device id
//! and a device token. Failed attempts are rate-limited per client address.

pub mod store;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::routing::post;
use axum::Router;
use youmi_protocol::{BindRequest, BindResponse, DeviceInfo};

use crate::db::now_ms;
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{token_hash, Json};
use crate::{secrets, AppState};

use self::store::{BindOutcome, NewDevice};

/// Longest field of the device description, in characters.
pub const MAX_DEVICE_FIELD_CHARS: usize = 128;
/// Longest string taken as a bind code; longer ones are wrong without a lookup.
const MAX_CODE_CHARS: usize = 64;

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new().route("/agent/v1/bind", post(bind))
}

/// Checks what the agent says about its phone: storable text (422
/// `invalid_text`) of at most [`MAX_DEVICE_FIELD_CHARS`] characters.
pub fn check_device_info(info: &DeviceInfo, prefix: &str) -> Result<(), ApiError> {
    for (name, value) in [
        ("serial", &info.serial),
        ("model", &info.model),
        ("android_version", &info.android_version),
        ("agent_version", &info.agent_version),
    ] {
        check::text(&format!("{prefix}{name}"), value)?;
        if value.chars().count() > MAX_DEVICE_FIELD_CHARS {
            let field = format!("{prefix}{name}");
            return Err(ApiError::bad_request(
                "bad_device_info",
                Some(&field),
                format!("{field} must be at most {MAX_DEVICE_FIELD_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

fn invalid_code() -> ApiError {
    ApiError::not_found(
        "bind_code_invalid",
        Some("code"),
        "unknown, used or expired bind code",
    )
}

#[tracing::instrument(skip_all, fields(client = %client.ip()))]
async fn bind(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Json(request): Json<BindRequest>,
) -> Result<Json<BindResponse>, ApiError> {
    // A code no stored one can be is refused before it counts as a guess.
    check::text("code", &request.code)?;
    // The slot is taken before the lookup, so that parallel guesses cannot
    // all pass the check before any of them has failed.
    let attempt = state.bind_limiter.begin(client.ip())?;
    check_device_info(&request.device, "device.")?;
    // Codes are shown in upper case; a phone keyboard may not be.
    let code = request.code.trim().to_ascii_uppercase();
    if code.is_empty() || code.chars().count() > MAX_CODE_CHARS {
        attempt.failed();
        return Err(invalid_code());
    }
    let device_id = secrets::device_id();
    let token = secrets::token();
    let device = NewDevice {
        device_id: &device_id,
        token_hash: &token_hash(&token),
        info: &request.device,
    };
    match store::bind(&state.db, &code, device, now_ms()).await? {
        BindOutcome::InvalidCode => {
            attempt.failed();
            tracing::info!("bind refused: invalid code");
            Err(invalid_code())
        }
        BindOutcome::AccountDisabled(id) => Err(ApiError::unprocessable(
            "operator_account_disabled",
            None,
            format!("operator account {id} is disabled"),
        )),
        BindOutcome::Bound { record, replaced } => {
            let operator_account_id = record.operator_account_id;
            tracing::info!(
                %device_id,
                operator_account_id,
                replaced = replaced.as_deref().unwrap_or(""),
                "phone bound"
            );
            state.controller.device_bound(record, replaced).await?;
            Ok(Json(BindResponse {
                device_id,
                token,
                operator_account_id,
            }))
        }
    }
}
