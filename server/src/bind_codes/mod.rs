//! Bind codes (设备绑定码): one-time codes an admin creates for an operator
//! account, shown as text and as a QR code that the phone scans.

pub mod store;

use std::io::Cursor;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use image::{DynamicImage, ImageFormat, Luma};
use qrcode::QrCode;
use serde::Serialize;
use youmi_protocol::api::BindCode;
use youmi_protocol::OperatorAccountId;

use crate::db::now_ms;
use crate::http::check;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, Json, Path};
use crate::http::unique;
use crate::{operator_accounts, secrets, AppState};

/// Side of the QR image in pixels, at least: large enough to scan off a screen.
const QR_MIN_PIXELS: u32 = 320;

/// Routes of this feature.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/operator-accounts/{id}/bind-codes", post(create))
        .route(
            "/api/v1/operator-accounts/{id}/bind-codes/{code}/qr.png",
            get(qr_png),
        )
}

/// What the QR code says: the version of this format, where the server is and
/// the code, so that a phone can bind from one scan.
#[derive(Debug, Serialize)]
struct QrContent<'a> {
    v: u32,
    server: &'a str,
    code: &'a str,
}

/// Makes a bind code for account `id`, created by `employee_id`: 404 for an
/// unknown account, 422 `operator_account_disabled` for a disabled one. The
/// one rule of the API's route and the console's button.
#[tracing::instrument(skip_all, fields(employee_id = employee_id, operator_account_id = id))]
pub async fn create_code(
    state: &AppState,
    id: OperatorAccountId,
    employee_id: i64,
) -> Result<BindCode, ApiError> {
    match store::account_disabled(&state.db, id).await? {
        None => return Err(operator_accounts::not_found(id)),
        Some(true) => {
            return Err(ApiError::unprocessable(
                "operator_account_disabled",
                None,
                format!("operator account {id} is disabled"),
            ))
        }
        Some(false) => {}
    }
    let now = now_ms();
    let expires_at = now + state.settings.bind_code_ttl_ms;
    // A clash of two random 10-character codes is next to impossible; a retry
    // makes it harmless all the same.
    let mut attempts = 0;
    loop {
        let code = secrets::bind_code();
        match store::insert(&state.db, &code, id, employee_id, now, expires_at).await {
            Ok(()) => {
                tracing::info!("bind code created");
                return Ok(BindCode { code, expires_at });
            }
            Err(error) if attempts < 3 && unique::violates(&error, "bind_codes_pkey") => {
                attempts += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<OperatorAccountId>,
) -> Result<(StatusCode, Json<BindCode>), ApiError> {
    let code = create_code(&state, id, user.employee.id).await?;
    Ok((StatusCode::CREATED, Json(code)))
}

/// The PNG of a live bind code's QR (404 `bind_code_not_found` for an
/// unknown, used or expired one). The console mounts this same handler
/// beside its page: its session guard hands it the caller as well.
#[tracing::instrument(skip_all, fields(employee_id = user.employee.id, operator_account_id = id))]
pub async fn qr_png(
    State(state): State<AppState>,
    user: AuthUser,
    Path((id, code)): Path<(OperatorAccountId, String)>,
) -> Result<Response, ApiError> {
    check::text("code", &code)?;
    if !store::is_live(&state.db, id, &code, now_ms()).await? {
        return Err(ApiError::not_found(
            "bind_code_not_found",
            None,
            "unknown, used or expired bind code",
        ));
    }
    let png = render_qr(&state.settings.public_url, &code)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}

/// The PNG of the QR code for `code` on the server at `public_url`.
pub fn render_qr(public_url: &str, code: &str) -> Result<Vec<u8>, ApiError> {
    let text = serde_json::to_string(&QrContent {
        v: 1,
        server: public_url,
        code,
    })
    .map_err(|error| ApiError::Internal(format!("qr content: {error}")))?;
    let qr = QrCode::new(text.as_bytes())
        .map_err(|error| ApiError::Internal(format!("qr encoding: {error}")))?;
    let image = qr
        .render::<Luma<u8>>()
        .min_dimensions(QR_MIN_PIXELS, QR_MIN_PIXELS)
        .build();
    let mut png = Vec::new();
    DynamicImage::ImageLuma8(image)
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|error| ApiError::Internal(format!("png encoding: {error}")))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_is_a_png_of_at_least_the_minimum_size() {
        let png = render_qr("http://127.0.0.1:8080", "ABCDEFGHJK").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let image = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
        assert!(image.width() >= QR_MIN_PIXELS);
        assert_eq!(image.width(), image.height());
    }
}
