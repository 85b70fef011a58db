//! The device's credentials: which server, which device, and the device token
//! that the server showed once at bind time.
//!
//! They live in `<state dir>/credentials.json`, mode 0600 in a 0700 directory,
//! written atomically so that a crash during a re-bind never leaves a half file.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use youmi_protocol::OperatorAccountId;

use crate::error::AgentError;
use crate::fsutil;

/// The name of the credentials file inside the state directory.
pub const FILE_NAME: &str = "credentials.json";

/// What the agent needs to connect: the answer of `POST /agent/v1/bind` plus
/// the server it came from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The server's base address (`http://` or `https://`); the WebSocket
    /// address is derived from it.
    pub server_url: String,
    /// The device id the server gave this phone.
    pub device_id: String,
    /// The device token, sent as `Authorization: Bearer` on the WebSocket. A
    /// secret: never logged or printed.
    pub token: String,
    /// The operator account this phone serves.
    pub operator_account_id: OperatorAccountId,
}

// Debug by hand, so that logging the credentials cannot leak the token.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server_url", &self.server_url)
            .field("device_id", &self.device_id)
            .field("token", &"<redacted>")
            .field("operator_account_id", &self.operator_account_id)
            .finish()
    }
}

impl Credentials {
    /// Where the credentials of the state directory `dir` live.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads the credentials from `dir`. A missing file is
    /// [`AgentError::NotBound`], so the caller can tell the user to bind first.
    pub fn load(dir: &Path) -> Result<Self, AgentError> {
        let path = Self::path(dir);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(AgentError::NotBound { path })
            }
            Err(source) => return Err(AgentError::ReadCredentials { path, source }),
        };
        let credentials: Credentials =
            serde_json::from_slice(&bytes).map_err(|error| AgentError::InvalidCredentials {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        for (field, value) in [
            ("server_url", &credentials.server_url),
            ("device_id", &credentials.device_id),
            ("token", &credentials.token),
        ] {
            if value.trim().is_empty() {
                return Err(AgentError::InvalidCredentials {
                    path,
                    reason: format!("`{field}` is empty"),
                });
            }
        }
        warn_if_readable_by_others(&path);
        Ok(credentials)
    }

    /// Writes the credentials to `dir/credentials.json` with mode 0600,
    /// creating `dir` with mode 0700 if needed. The file is replaced
    /// atomically (temporary file, fsync, rename, directory fsync).
    pub fn save(&self, dir: &Path) -> Result<(), AgentError> {
        fsutil::create_private_dir(dir).map_err(|source| AgentError::WriteCredentials {
            path: dir.to_owned(),
            source,
        })?;
        let path = Self::path(dir);
        let mut json =
            serde_json::to_vec_pretty(self).map_err(|error| AgentError::WriteCredentials {
                path: path.clone(),
                source: io::Error::other(error),
            })?;
        json.push(b'\n');
        fsutil::replace_file(&path, &json)
            .map(drop)
            .map_err(|source| AgentError::WriteCredentials { path, source })
    }
}

/// The token is as good as a password for the phone's account: say so when
/// someone loosened the file's mode, but do not refuse to run.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the credentials file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            server_url: "http://127.0.0.1:8080".to_owned(),
            device_id: "dev-1".to_owned(),
            token: "s3cret-token".to_owned(),
            operator_account_id: 7,
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        sample().save(&state).unwrap();
        assert_eq!(Credentials::load(&state).unwrap(), sample());
        // Saving again replaces the file rather than failing on it.
        let mut other = sample();
        other.device_id = "dev-2".to_owned();
        other.save(&state).unwrap();
        assert_eq!(Credentials::load(&state).unwrap(), other);
    }

    #[cfg(unix)]
    #[test]
    fn file_is_0600_and_new_directory_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a").join("state");
        sample().save(&state).unwrap();
        let file_mode = fs::metadata(Credentials::path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file_mode & 0o777, 0o600);
        let dir_mode = fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn missing_file_means_not_bound() {
        let dir = tempfile::tempdir().unwrap();
        let error = Credentials::load(dir.path()).unwrap_err();
        assert!(matches!(error, AgentError::NotBound { .. }), "{error:?}");
        assert!(error.to_string().contains("youmi-agent bind"));
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(Credentials::path(dir.path()), b"{not json").unwrap();
        let error = Credentials::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not valid"), "{error}");

        let mut empty_token = sample();
        empty_token.token = String::new();
        fs::write(
            Credentials::path(dir.path()),
            serde_json::to_vec(&empty_token).unwrap(),
        )
        .unwrap();
        let error = Credentials::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("`token` is empty"), "{error}");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("dev-1"));
    }
}
