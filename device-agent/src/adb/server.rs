//! Asking the adb server which phones it knows, for fleet mode.
//!
//! This speaks the server's `host:devices` request itself rather than through
//! adb_client's `ADBServer::devices`, because that first runs `adb start-server`
//! for any loopback address, always on the default port: with a server on another
//! port it would start a second server, and it blocks on a child process.

use std::net::SocketAddrV4;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::phone::{PhoneError, PhoneResult};

/// The adb server's usual address.
pub const DEFAULT_SERVER: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 5037);

/// The longest device list accepted (the protocol's length field allows 64 KiB).
const MAX_LIST: usize = 0xffff;

/// A phone the adb server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPhone {
    /// Its serial, as [`AdbPhone::through_server`](super::AdbPhone::through_server) takes it
    /// (`HOST:PORT` for a phone connected with `adb connect`).
    pub serial: String,
    /// Its state as adb prints it: `device` when usable, else e.g. `offline`,
    /// `unauthorized` (the phone has not accepted the key yet) or `no permissions`.
    pub state: String,
}

impl ListedPhone {
    /// Whether the phone can take commands now.
    pub fn is_ready(&self) -> bool {
        self.state == "device"
    }
}

/// Lists the phones the adb server at `server` knows, within `deadline`.
pub async fn list_phones(
    server: SocketAddrV4,
    deadline: Duration,
) -> PhoneResult<Vec<ListedPhone>> {
    let name = format!("adb server {server}");
    let what = "host:devices";
    match tokio::time::timeout(deadline, request(server, what)).await {
        Ok(Ok(body)) => Ok(parse_devices(&body)),
        Ok(Err(reason)) => Err(PhoneError::Unreachable {
            serial: name,
            reason,
        }),
        Err(_) => Err(PhoneError::Timeout {
            command: what.to_owned(),
            after: deadline,
        }),
    }
}

/// Sends one host request and returns the answer's body.
async fn request(server: SocketAddrV4, what: &str) -> Result<String, String> {
    let mut socket = TcpStream::connect(server)
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let io = |error: std::io::Error| error.to_string();
    socket
        .write_all(format!("{:04x}{what}", what.len()).as_bytes())
        .await
        .map_err(io)?;
    let mut status = [0u8; 4];
    socket.read_exact(&mut status).await.map_err(io)?;
    let body = read_hex_block(&mut socket).await?;
    match &status {
        b"OKAY" => Ok(body),
        b"FAIL" => Err(format!("the adb server refused `{what}`: {body}")),
        other => Err(format!(
            "the adb server answered {:?}",
            String::from_utf8_lossy(other)
        )),
    }
}

/// Reads a block prefixed with its length in four hex digits.
async fn read_hex_block(socket: &mut TcpStream) -> Result<String, String> {
    let mut len = [0u8; 4];
    socket
        .read_exact(&mut len)
        .await
        .map_err(|error| error.to_string())?;
    let len = std::str::from_utf8(&len)
        .ok()
        .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        .filter(|len| *len <= MAX_LIST)
        .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(&len)))?;
    let mut body = vec![0u8; len];
    socket
        .read_exact(&mut body)
        .await
        .map_err(|error| error.to_string())?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Parses `host:devices`: one `SERIAL<TAB>STATE` line per phone.
fn parse_devices(body: &str) -> Vec<ListedPhone> {
    body.lines()
        .filter_map(|line| {
            let (serial, state) = line.split_once('\t')?;
            let serial = serial.trim();
            (!serial.is_empty()).then(|| ListedPhone {
                serial: serial.to_owned(),
                state: state.trim().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lines() {
        let body = "127.0.0.1:5555\tdevice\nR58M123\tunauthorized\nXYZ\tno permissions (user in plugdev group; see [http://developer.android.com/tools/device.html])\n\n";
        let phones = parse_devices(body);
        assert_eq!(phones.len(), 3);
        assert_eq!(phones[0].serial, "127.0.0.1:5555");
        assert!(phones[0].is_ready());
        assert_eq!(phones[1].state, "unauthorized");
        assert!(!phones[1].is_ready());
        assert!(phones[2].state.starts_with("no permissions"));
        assert!(parse_devices("").is_empty());
    }
}
