//! The console's static files, compiled into the binary: htmx (vendored,
//! one versioned file, `server/assets/README.md`), our stylesheet and our
//! small script. Each is served at `/assets/<name>.<hash>.<ext>`, the hash
//! being the start of its SHA-256, with a year-long immutable cache: a new
//! build that changes a file changes its URL.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One compiled-in file.
struct Asset {
    /// Its name without the hash, as pages ask for it.
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    bytes: &'static [u8],
}

const FILES: &[Asset] = &[
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console.js"),
    },
];

/// Every file's URL, by position in [`FILES`].
static URLS: LazyLock<Vec<String>> = LazyLock::new(|| FILES.iter().map(hashed_url).collect());

fn hashed_url(asset: &Asset) -> String {
    let digest = Sha256::digest(asset.bytes);
    let hash: String = digest[..5]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (stem, ext) = asset.name.rsplit_once('.').unwrap_or((asset.name, ""));
    format!("/assets/{stem}.{hash}.{ext}")
}

/// The URL of the file `name` (`console.css`); a name that is no file is a
/// mistake of a template, and gets a URL that answers 404.
pub fn url(name: &str) -> &'static str {
    FILES
        .iter()
        .position(|asset| asset.name == name)
        .map_or("/assets/missing", |index| URLS[index].as_str())
}

/// `GET /assets/{file}`: the file whose hashed URL this is.
pub async fn serve(Path(file): Path<String>) -> Response {
    let wanted = format!("/assets/{file}");
    match URLS.iter().position(|url| *url == wanted) {
        Some(index) => (
            [
                (header::CONTENT_TYPE, FILES[index].content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            FILES[index].bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_url() {
        let css = url("console.css");
        assert!(
            css.starts_with("/assets/console.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets/console..css".len() + 10);
        assert!(url("htmx-2.0.11.min.js").starts_with("/assets/htmx-2.0.11.min."));
        assert_eq!(url("nothing.js"), "/assets/missing");
        // The vendored file keeps its licence header.
        let htmx = std::str::from_utf8(FILES[0].bytes).unwrap();
        assert!(htmx.starts_with("/*! htmx 2.0.11") && htmx.contains("Zero-Clause BSD"));
    }
}
