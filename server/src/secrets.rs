//! Random secrets and identifiers, all drawn from the operating system's
//! generator: session and device tokens, bind codes, device ids, the first
//! admin's password.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};

/// The alphabet of bind codes: no 0/O, 1/I/L, so a code read off a screen
/// and typed on a phone cannot be mistaken.
pub const BIND_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters of a bind code: 31^10 (about 8e14) codes, against at most a few
/// guesses per minute per address.
pub const BIND_CODE_LEN: usize = 10;

/// A bearer token: 32 random bytes, base64url without padding.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` characters drawn uniformly from `alphabet`.
pub fn string_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = OsRng;
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// A new bind code.
pub fn bind_code() -> String {
    string_from(BIND_CODE_ALPHABET, BIND_CODE_LEN)
}

/// A new device id: `dev_` and 16 lowercase letters and digits.
pub fn device_id() -> String {
    format!(
        "dev_{}",
        string_from(b"abcdefghijklmnopqrstuvwxyz0123456789", 16)
    )
}

/// A new log request id: `log_` and 20 lowercase letters and digits, so
/// that no agent can guess another's.
pub fn log_request_id() -> String {
    format!(
        "log_{}",
        string_from(b"abcdefghijklmnopqrstuvwxyz0123456789", 20)
    )
}

/// A password for the first admin when none was configured.
pub fn password() -> String {
    string_from(
        b"ABCDEFGHJKMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
        16,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let token = token();
        assert_eq!(token.len(), 43);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let code = bind_code();
        assert_eq!(code.len(), 10);
        assert!(code.bytes().all(|b| BIND_CODE_ALPHABET.contains(&b)));
        let id = device_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("dev_"));
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(password().len(), 16);
        assert_ne!(bind_code(), bind_code());
    }
}
