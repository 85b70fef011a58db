//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::time::Duration;

/// Finds the node whose `attr` equals `value` in a uiautomator dump and returns the centre
/// of its bounds, as the executor will.
pub fn center_of(xml: &str, attr: &str, value: &str) -> Option<(i32, i32)> {
    let needle = format!(" {attr}=\"{value}\"");
    let at = xml.find(&needle)?;
    let start = xml[..at].rfind("<node ")?;
    let end = start + xml[start..].find('>')?;
    let element = &xml[start..end];
    let b = element.find("bounds=\"[")? + "bounds=\"[".len();
    let rest = &element[b..];
    let nums: Vec<i32> = rest
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .filter(|s| !s.is_empty())
        .take(4)
        .map(|s| s.parse().unwrap())
        .collect();
    Some(((nums[0] + nums[2]) / 2, (nums[1] + nums[3]) / 2))
}

/// Runs a blocking closure on a blocking thread with a deadline, as the executor must.
pub async fn blocking<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::time::timeout(deadline, tokio::task::spawn_blocking(f))
        .await
        .ok()
        .map(|r| r.expect("blocking task panicked"))
}

/// The ADBKeyBoard broadcast for `text`.
pub fn ime_broadcast(text: &str) -> String {
    use base64::Engine as _;
    format!(
        "am broadcast -a ADB_INPUT_B64 --es msg {}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// A minimal ADB client over TCP, for the fault tests: adb_client 3.2 spins forever in a
/// read loop once a connection closes (zero-byte reads never end its loop), so a test that
/// drops connections cannot use it without leaving a busy thread behind.
pub struct RawAdb {
    stream: tokio::net::TcpStream,
    next_id: u32,
}

/// One transport message.
#[derive(Debug)]
pub struct Msg {
    pub cmd: [u8; 4],
    pub arg0: u32,
    pub arg1: u32,
    pub data: Vec<u8>,
}

impl RawAdb {
    /// Connects and does the CNXN handshake; returns the client and the device banner.
    pub async fn connect(addr: std::net::SocketAddr) -> std::io::Result<(Self, String)> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let mut c = Self {
            stream,
            next_id: 100,
        };
        c.send(
            b"CNXN",
            0x0100_0001,
            256 * 1024,
            b"host::features=shell_v2\0",
        )
        .await?;
        let m = c.recv().await?.expect("cnxn reply");
        assert_eq!(&m.cmd, b"CNXN");
        Ok((c, String::from_utf8_lossy(&m.data).into_owned()))
    }

    /// Sends one message; the checksum is left at 0 as version 0x01000001 allows.
    pub async fn send(
        &mut self,
        cmd: &[u8; 4],
        a0: u32,
        a1: u32,
        data: &[u8],
    ) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let c = u32::from_le_bytes(*cmd);
        let mut b = Vec::new();
        for v in [c, a0, a1, data.len() as u32, 0, c ^ 0xffff_ffff] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(data);
        self.stream.write_all(&b).await
    }

    /// The next message, or `None` when the connection closed (cleanly or by reset).
    pub async fn recv(&mut self) -> std::io::Result<Option<Msg>> {
        use tokio::io::AsyncReadExt;
        let mut h = [0u8; 24];
        match self.stream.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let w = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut data = vec![0u8; w(12) as usize];
        self.stream.read_exact(&mut data).await?;
        Ok(Some(Msg {
            cmd: [h[0], h[1], h[2], h[3]],
            arg0: w(4),
            arg1: w(8),
            data,
        }))
    }

    /// Opens `service` and returns (our id, the device's id), or `None` if refused.
    pub async fn open(&mut self, service: &str) -> std::io::Result<Option<(u32, u32)>> {
        self.next_id += 1;
        let local = self.next_id;
        let mut name = service.as_bytes().to_vec();
        name.push(0);
        self.send(b"OPEN", local, 0, &name).await?;
        let m = self.recv().await?.expect("open reply");
        Ok((&m.cmd == b"OKAY" && m.arg1 == local).then_some((local, m.arg0)))
    }

    /// Reads a stream's WRTE payloads (acknowledging each) until CLSE or the connection
    /// ends; returns the bytes and whether the stream closed cleanly.
    pub async fn read_stream(
        &mut self,
        local: u32,
        remote: u32,
    ) -> std::io::Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        loop {
            let Some(m) = self.recv().await? else {
                return Ok((out, false));
            };
            match &m.cmd {
                b"WRTE" => {
                    out.extend(m.data);
                    // A reset socket fails the acknowledgement; that is the end too.
                    if self.send(b"OKAY", local, remote, &[]).await.is_err() {
                        return Ok((out, false));
                    }
                }
                b"CLSE" => return Ok((out, true)),
                _ => {}
            }
        }
    }
}

/// Splits shell-protocol v2 output into (stdout, stderr, exit code).
pub fn decode_v2(mut raw: &[u8]) -> (Vec<u8>, Vec<u8>, Option<u8>) {
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    while raw.len() >= 5 {
        let len = u32::from_le_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize;
        let body = &raw[5..5 + len];
        match raw[0] {
            1 => out.extend_from_slice(body),
            2 => err.extend_from_slice(body),
            3 => code = body.first().copied(),
            other => panic!("unexpected shell packet id {other}"),
        }
        raw = &raw[5 + len..];
    }
    (out, err, code)
}

/// A shell on the simulator over a raw ADB connection, with the few gestures the
/// flow tests make.
pub struct Shell {
    pub c: RawAdb,
}

impl Shell {
    pub async fn new(sim: &youmi_phone_sim::SimHandle) -> Self {
        Self {
            c: RawAdb::connect(sim.addr()).await.unwrap().0,
        }
    }

    /// Runs `cmd` and returns its output; it must answer within 5 s and end cleanly.
    pub async fn sh(&mut self, cmd: &str) -> String {
        let (l, r) = self.c.open(&format!("shell:{cmd}")).await.unwrap().unwrap();
        let (out, clean) = tokio::time::timeout(Duration::from_secs(5), self.c.read_stream(l, r))
            .await
            .expect("answers in time")
            .unwrap();
        assert!(clean);
        String::from_utf8(out).unwrap()
    }

    pub async fn dump(&mut self) -> String {
        self.sh("uiautomator dump /dev/tty").await
    }

    /// Taps the centre of the node whose `attr` is `value`.
    pub async fn tap(&mut self, attr: &str, value: &str) {
        let xml = self.dump().await;
        let (x, y) = center_of(&xml, attr, value)
            .unwrap_or_else(|| panic!("no {attr}={value} on screen: {xml}"));
        self.sh(&format!("input tap {x} {y}")).await;
    }
}
