//! The RSA key the agent authenticates to phones with over TCP.
//!
//! A phone accepts a key once a person ticks "always allow from this computer",
//! so the key must stay the same across connections and restarts: it lives in a
//! file (the agent keeps it in its state directory) and is created only when that
//! file is missing. adb_client would otherwise make up a new key for every
//! connection, which the phone would ask about every time.

use std::path::Path;

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;

use crate::fsutil;
use crate::phone::{PhoneError, PhoneResult};

/// The size adbd expects (its public key encoding has room for 2048 bits only).
const KEY_BITS: usize = 2048;

/// Makes sure `path` holds an RSA private key in PKCS#8 PEM (the format of adb's
/// own `~/.android/adbkey`, so an already trusted key can be reused): checks an
/// existing file, or creates one (0600, atomically). Blocking: generating a key
/// takes a noticeable moment.
pub(crate) fn ensure_key(path: &Path) -> PhoneResult<()> {
    ensure_key_of_size(path, KEY_BITS)
}

fn local_error(path: &Path, reason: impl Into<String>) -> PhoneError {
    PhoneError::LocalFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn ensure_key_of_size(path: &Path, bits: usize) -> PhoneResult<()> {
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            return RsaPrivateKey::from_pkcs8_pem(&pem)
                .map(|_| ())
                .map_err(|error| {
                    local_error(path, format!("not a PKCS#8 PEM RSA private key: {error}"))
                });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(local_error(path, error.to_string())),
    }
    tracing::info!(path = %path.display(), "creating the adb key");
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|error| local_error(path, format!("cannot generate a key: {error}")))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|error| local_error(path, format!("cannot encode the key: {error}")))?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fsutil::create_private_dir(dir).map_err(|error| local_error(dir, error.to_string()))?;
    }
    fsutil::replace_file(path, pem.as_bytes())
        .map_err(|error| local_error(path, error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("adbkey");
        // A small key keeps the test fast; the size is the only difference.
        ensure_key_of_size(&path, 512).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with("-----BEGIN PRIVATE KEY-----"), "{first}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        ensure_key_of_size(&path, 512).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adbkey");
        std::fs::write(&path, "hello").unwrap();
        let error = ensure_key(&path).unwrap_err();
        assert!(
            matches!(&error, PhoneError::LocalFile { reason, .. } if reason.starts_with("not a PKCS#8")),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
    }
}
