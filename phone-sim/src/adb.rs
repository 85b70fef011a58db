//! The ADB transport as adbd speaks it over TCP: 24-byte message headers, the CNXN
//! handshake, OPEN/OKAY/WRTE/CLSE streams, and the `shell`, `exec` and `sync` services.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::phone::{now_secs, Fault};
use crate::shell::{run_script, Chunk};
use crate::Shared;

const A_CNXN: u32 = 0x4e58_4e43;
const A_AUTH: u32 = 0x4854_5541;
const A_OPEN: u32 = 0x4e45_504f;
const A_OKAY: u32 = 0x5941_4b4f;
const A_CLSE: u32 = 0x4553_4c43;
const A_WRTE: u32 = 0x4554_5257;
const A_STLS: u32 = 0x534c_5453;

/// The newest protocol version adbd speaks: peers at this version may send a zero checksum.
const A_VERSION: u32 = 0x0100_0001;
const A_VERSION_MIN: u32 = 0x0100_0000;
/// adbd's MAX_PAYLOAD: the most it offers in CNXN and the most it accepts.
const MAX_PAYLOAD: u32 = 1024 * 1024;
/// How long a stream waits for the OKAY of its previous WRTE before sending anyway; some
/// clients (adb_client's `stat`) never acknowledge a reply they read.
const ACK_WAIT: Duration = Duration::from_millis(500);

/// What the phone announces in its CNXN. The compressed `sendrecv_v2_*` variants and `abb`
/// are left out because the simulator has no decompressor and no `abb` service; clients
/// then fall back to what it has.
pub(crate) const FEATURES: &str = "shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir,apex,fixed_push_symlink_timestamp,remount_shell,sendrecv_v2,sendrecv_v2_dry_run_send";

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message magic for command {0:#010x}")]
    BadMagic(u32),
    #[error("message payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    TooLong(u32),
    #[error("message checksum {got:#x} does not match the payload ({want:#x})")]
    BadChecksum { got: u32, want: u32 },
}

#[derive(Debug, Clone)]
struct Packet {
    cmd: u32,
    arg0: u32,
    arg1: u32,
    data: Vec<u8>,
}

impl Packet {
    fn new(cmd: u32, arg0: u32, arg1: u32, data: Vec<u8>) -> Self {
        Self {
            cmd,
            arg0,
            arg1,
            data,
        }
    }

    /// The header and payload on the wire. The checksum is the byte sum, as adbd computes
    /// it; adb_client checks it even at version 0x01000001, so it is always sent.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.data.len());
        for v in [
            self.cmd,
            self.arg0,
            self.arg1,
            self.data.len() as u32,
            checksum(&self.data),
            self.cmd ^ 0xffff_ffff,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, b| acc.wrapping_add(u32::from(*b)))
}

async fn read_packet<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Packet, TransportError> {
    let mut head = [0u8; 24];
    r.read_exact(&mut head).await?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (cmd, arg0, arg1, len, crc, magic) =
        (word(0), word(4), word(8), word(12), word(16), word(20));
    if magic != cmd ^ 0xffff_ffff {
        return Err(TransportError::BadMagic(cmd));
    }
    if len > MAX_PAYLOAD {
        return Err(TransportError::TooLong(len));
    }
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data).await?;
    // Peers at A_VERSION may leave the checksum at 0; older ones must send it.
    let want = checksum(&data);
    if crc != 0 && crc != want {
        return Err(TransportError::BadChecksum { got: crc, want });
    }
    Ok(Packet::new(cmd, arg0, arg1, data))
}

/// What the reader half tells one stream.
#[derive(Debug)]
enum Ev {
    Okay,
    Data(Vec<u8>),
    Close,
}

/// What streams ask of the writer half.
#[derive(Debug)]
enum Out {
    Packet(Packet),
    /// Close the TCP socket at once (the dropped-connection fault).
    Drop,
}

/// Accepts connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    sim: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let span = tracing::info_span!("adb_conn", %peer);
                    let sim = sim.clone();
                    let shutdown = shutdown.clone();
                    conns.spawn(async move {
                        match connection(socket, sim, shutdown).await {
                            Ok(()) => tracing::debug!("connection closed"),
                            Err(e) => tracing::debug!(error = %e, "connection ended"),
                        }
                    }.instrument(span));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next() => {}
        }
    }
    conns.shutdown().await;
}

async fn connection(
    socket: TcpStream,
    sim: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), TransportError> {
    socket.set_nodelay(true)?;
    // Close with a reset rather than a FIN. adb_client 3.2 spins forever on a clean EOF
    // (its read loop adds up zero-byte reads), so a FIN would turn the dropped-connection
    // fault into a busy thread instead of an error; a phone that reboots or drops off the
    // network also answers with a reset.
    #[allow(deprecated)]
    socket.set_linger(Some(Duration::ZERO))?;
    let (mut rd, mut wr) = socket.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let mut drops = sim.drops.subscribe();
    // The writer ends on a Drop request or when the reader stops; the reader then sees
    // `writer` finish and returns. The write half is forgotten rather than dropped, so no
    // FIN goes out: the socket closes (with a reset, see above) when the read half drops.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                out = out_rx.recv() => match out {
                    Some(Out::Packet(p)) => {
                        if wr.write_all(&p.encode()).await.is_err() {
                            break;
                        }
                    }
                    Some(Out::Drop) | None => break,
                },
                _ = stop_rx.changed() => break,
            }
        }
        wr.forget();
    });
    let mut streams: HashMap<u32, mpsc::UnboundedSender<Ev>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut next_id: u32 = 1;
    let mut max_payload: usize = 4096;
    let mut connected = false;
    let result = loop {
        let packet = tokio::select! {
            p = read_packet(&mut rd) => match p {
                Ok(p) => p,
                Err(TransportError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
                Err(e) => break Err(e),
            },
            _ = &mut writer => break Ok(()),
            _ = shutdown.changed() => break Ok(()),
            _ = drops.recv() => {
                tracing::info!("dropping the connection on request");
                break Ok(());
            }
            Some(_) = tasks.join_next() => continue,
        };
        let send = |p: Packet| {
            let tx = out_tx.clone();
            async move { tx.send(Out::Packet(p)).await.is_ok() }
        };
        match packet.cmd {
            A_CNXN | A_AUTH => {
                if packet.cmd == A_CNXN {
                    let version = packet.arg0.clamp(A_VERSION_MIN, A_VERSION);
                    max_payload = packet.arg1.clamp(4096, MAX_PAYLOAD) as usize;
                    tracing::debug!(version, max_payload, banner = %String::from_utf8_lossy(&packet.data), "cnxn");
                    // A new CNXN on a live connection resets it, as adbd does.
                    streams.clear();
                    tasks.abort_all();
                }
                connected = true;
                let banner = {
                    let phone = sim.phone();
                    format!(
                        "device::ro.product.name=sim;ro.product.model={};ro.product.device=sim;features={FEATURES}",
                        phone.model
                    )
                };
                let version = if packet.cmd == A_CNXN {
                    packet.arg0.clamp(A_VERSION_MIN, A_VERSION)
                } else {
                    A_VERSION
                };
                if !send(Packet::new(
                    A_CNXN,
                    version,
                    max_payload as u32,
                    banner.into_bytes(),
                ))
                .await
                {
                    break Ok(());
                }
            }
            A_STLS => {}
            A_OPEN if connected => {
                let remote = packet.arg0;
                let name = String::from_utf8_lossy(&packet.data)
                    .trim_end_matches('\0')
                    .to_owned();
                let Some(service) = Service::parse(&name) else {
                    tracing::debug!(%name, "unknown service");
                    send(Packet::new(A_CLSE, 0, remote, Vec::new())).await;
                    continue;
                };
                tracing::debug!(%name, remote, "open");
                let local = next_id;
                next_id = next_id.wrapping_add(1).max(1);
                let (tx, rx) = mpsc::unbounded_channel();
                streams.insert(local, tx);
                if !send(Packet::new(A_OKAY, local, remote, Vec::new())).await {
                    break Ok(());
                }
                let stream = Stream {
                    local,
                    remote,
                    out: out_tx.clone(),
                    inbox: rx,
                    max: max_payload,
                    unacked: false,
                    pending: VecDeque::new(),
                    peer_closed: false,
                };
                let sim = sim.clone();
                let span = tracing::info_span!("stream", local, service = %name);
                tasks.spawn(service.run(sim, stream).instrument(span));
            }
            A_OKAY => {
                if let Some(s) = streams.get(&packet.arg1) {
                    let _ = s.send(Ev::Okay);
                }
            }
            A_WRTE => {
                let local = packet.arg1;
                if let Some(s) = streams.get(&local) {
                    // Acknowledge before the stream sees the data, so a reply the stream
                    // writes always follows the OKAY, as clients expect.
                    send(Packet::new(A_OKAY, local, packet.arg0, Vec::new())).await;
                    if s.send(Ev::Data(packet.data)).is_err() {
                        streams.remove(&local);
                    }
                }
            }
            A_CLSE => {
                if let Some(s) = streams.remove(&packet.arg1) {
                    let _ = s.send(Ev::Close);
                }
            }
            other => tracing::debug!(cmd = format_args!("{other:#010x}"), "ignored message"),
        }
    };
    tasks.abort_all();
    let _ = stop_tx.send(true);
    if !writer.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    }
    drop(rd);
    result
}

/// The stream was closed by the peer or the connection went away.
#[derive(Debug)]
struct Closed;

struct Stream {
    local: u32,
    remote: u32,
    out: mpsc::Sender<Out>,
    inbox: mpsc::UnboundedReceiver<Ev>,
    max: usize,
    unacked: bool,
    pending: VecDeque<Vec<u8>>,
    peer_closed: bool,
}

impl Stream {
    /// Sends `data` as WRTE messages no bigger than the negotiated payload, one in flight
    /// at a time as in protocol.txt.
    async fn write(&mut self, data: &[u8]) -> Result<(), Closed> {
        for chunk in data.chunks(self.max) {
            self.wait_ack().await?;
            let p = Packet::new(A_WRTE, self.local, self.remote, chunk.to_vec());
            self.out.send(Out::Packet(p)).await.map_err(|_| Closed)?;
            self.unacked = true;
        }
        Ok(())
    }

    async fn wait_ack(&mut self) -> Result<(), Closed> {
        if !self.unacked || self.peer_closed {
            return if self.peer_closed {
                Err(Closed)
            } else {
                Ok(())
            };
        }
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Err(_) => break,
                Ok(Some(Ev::Okay)) => break,
                Ok(Some(Ev::Data(d))) => self.pending.push_back(d),
                Ok(Some(Ev::Close)) | Ok(None) => {
                    self.peer_closed = true;
                    return Err(Closed);
                }
            }
        }
        self.unacked = false;
        Ok(())
    }

    /// The next data from the peer; `None` once the peer closed the stream.
    async fn read(&mut self) -> Option<Vec<u8>> {
        if let Some(d) = self.pending.pop_front() {
            return Some(d);
        }
        if self.peer_closed {
            return None;
        }
        loop {
            match self.inbox.recv().await {
                Some(Ev::Okay) => self.unacked = false,
                Some(Ev::Data(d)) => return Some(d),
                Some(Ev::Close) | None => {
                    self.peer_closed = true;
                    return None;
                }
            }
        }
    }

    async fn close(self) {
        if !self.peer_closed {
            let _ = self
                .out
                .send(Out::Packet(Packet::new(
                    A_CLSE,
                    self.local,
                    self.remote,
                    Vec::new(),
                )))
                .await;
        }
    }

    async fn drop_connection(&self) {
        let _ = self.out.send(Out::Drop).await;
    }
}

#[derive(Debug)]
enum Service {
    Shell { v2: bool, command: String },
    Sync,
}

impl Service {
    /// Parses a service name as adbd's `daemon_service_to_fd` does for the services the
    /// simulator has: `shell[,args]:CMD`, `exec:CMD` and `sync:`.
    fn parse(name: &str) -> Option<Self> {
        if name == "sync:" {
            return Some(Self::Sync);
        }
        if let Some(cmd) = name.strip_prefix("exec:") {
            return Some(Self::Shell {
                v2: false,
                command: cmd.to_owned(),
            });
        }
        let rest = name.strip_prefix("shell")?;
        let (args, command) = rest.split_once(':')?;
        let args: Vec<&str> = args.split(',').filter(|a| !a.is_empty()).collect();
        if args
            .iter()
            .any(|a| !matches!(*a, "v2" | "raw" | "pty") && !a.starts_with("TERM="))
        {
            return None;
        }
        Some(Self::Shell {
            v2: args.contains(&"v2"),
            command: command.to_owned(),
        })
    }

    async fn run(self, sim: Arc<Shared>, mut stream: Stream) {
        let done = match self {
            Self::Shell { v2, command } if command.trim().is_empty() => {
                interactive(&sim, &mut stream, v2).await
            }
            Self::Shell { v2, command } => shell(&sim, &mut stream, &command, v2).await,
            Self::Sync => sync(&sim, &mut stream).await,
        };
        match done {
            Ok(()) => stream.close().await,
            Err(Closed) => tracing::debug!("stream closed by the peer"),
        }
    }
}

const ID_STDIN: u8 = 0;
const ID_STDOUT: u8 = 1;
const ID_STDERR: u8 = 2;
const ID_EXIT: u8 = 3;
const ID_CLOSE_STDIN: u8 = 4;

fn v2_packet(id: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + data.len());
    p.push(id);
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
    p
}

async fn write_chunk(stream: &mut Stream, chunk: Chunk, v2: bool) -> Result<(), Closed> {
    match (chunk, v2) {
        (Chunk::Stdout(b), true) => {
            // Keep each shell packet within one WRTE, as adbd's shell service does.
            for part in b.chunks(stream.max.saturating_sub(5).max(1)) {
                stream.write(&v2_packet(ID_STDOUT, part)).await?;
            }
            Ok(())
        }
        (Chunk::Stderr(b), true) => {
            for part in b.chunks(stream.max.saturating_sub(5).max(1)) {
                stream.write(&v2_packet(ID_STDERR, part)).await?;
            }
            Ok(())
        }
        // Without shell protocol stderr shares the one channel, like a pty.
        (Chunk::Stdout(b) | Chunk::Stderr(b), false) => stream.write(&b).await,
    }
}

/// Runs one command line on a stream. Returns the exit status once it finishes.
async fn shell(
    sim: &Arc<Shared>,
    stream: &mut Stream,
    command: &str,
    v2: bool,
) -> Result<(), Closed> {
    let fault = sim.phone().take_fault(|f| match f {
        Fault::Hang { pattern, .. } | Fault::DropConnection { pattern } => {
            command.contains(pattern.as_str())
        }
        _ => false,
    });
    match fault {
        Some(Fault::Hang { .. }) => {
            tracing::info!(command, "scripted hang");
            // Say nothing until the client gives up and closes the stream.
            while stream.read().await.is_some() {}
            return Err(Closed);
        }
        Some(Fault::DropConnection { .. }) => {
            tracing::info!(command, "scripted dropped connection");
            let (tx, mut rx) = mpsc::channel(64);
            let script = command.to_owned();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), run_script(sim, &script, &tx)).await;
            drop(tx);
            let mut out = Vec::new();
            while let Some(Chunk::Stdout(b) | Chunk::Stderr(b)) = rx.recv().await {
                out.extend(b);
            }
            // Half the output, then the socket goes away mid-stream.
            let half = out.len() / 2;
            if half > 0 {
                write_chunk(stream, Chunk::Stdout(out[..half].to_vec()), v2).await?;
            }
            stream.drop_connection().await;
            return Err(Closed);
        }
        _ => {}
    }
    let status = run_streaming(sim, stream, command, v2).await?;
    if v2 {
        stream.write(&v2_packet(ID_EXIT, &[status as u8])).await?;
    }
    Ok(())
}

async fn run_streaming(
    sim: &Arc<Shared>,
    stream: &mut Stream,
    command: &str,
    v2: bool,
) -> Result<i32, Closed> {
    let (tx, mut rx) = mpsc::channel(64);
    let run = run_script(sim, command, &tx);
    let mut run = std::pin::pin!(run);
    let status = loop {
        tokio::select! {
            status = &mut run => break status,
            Some(chunk) = rx.recv() => write_chunk(stream, chunk, v2).await?,
            data = stream.read() => {
                // stdin of a non-interactive command is read and discarded, as `sh -c`
                // with a command that does not read stdin would.
                if data.is_none() {
                    return Err(Closed);
                }
            }
        }
    };
    while let Ok(chunk) = rx.try_recv() {
        write_chunk(stream, chunk, v2).await?;
    }
    Ok(status)
}

/// `adb shell` with no command: each line read from stdin runs as a command line.
async fn interactive(sim: &Arc<Shared>, stream: &mut Stream, v2: bool) -> Result<(), Closed> {
    let mut line = Vec::new();
    let mut raw = Vec::new();
    let mut status = 0;
    loop {
        let Some(data) = stream.read().await else {
            return Err(Closed);
        };
        let mut eof = false;
        if v2 {
            raw.extend(data);
            while raw.len() >= 5 {
                let len = u32::from_le_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize;
                if raw.len() < 5 + len {
                    break;
                }
                let id = raw[0];
                let body: Vec<u8> = raw[5..5 + len].to_vec();
                raw.drain(..5 + len);
                match id {
                    ID_STDIN => line.extend(body),
                    ID_CLOSE_STDIN => eof = true,
                    _ => {}
                }
            }
        } else {
            line.extend(data);
        }
        while let Some(nl) = line.iter().position(|b| *b == b'\n') {
            let cmd: Vec<u8> = line.drain(..=nl).collect();
            let cmd = String::from_utf8_lossy(&cmd).trim().to_owned();
            if cmd == "exit" || cmd.starts_with("exit ") {
                status = cmd[4..].trim().parse().unwrap_or(status);
                eof = true;
                break;
            }
            if !cmd.is_empty() {
                status = run_streaming(sim, stream, &cmd, v2).await?;
            }
        }
        if eof {
            if v2 {
                stream.write(&v2_packet(ID_EXIT, &[status as u8])).await?;
            }
            return Ok(());
        }
    }
}

// ----- sync: -----

const fn id(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}
const ID_STAT: u32 = id(b"STAT");
const ID_STA2: u32 = id(b"STA2");
const ID_LST2: u32 = id(b"LST2");
const ID_LIST: u32 = id(b"LIST");
const ID_LIS2: u32 = id(b"LIS2");
const ID_DENT: u32 = id(b"DENT");
const ID_DNT2: u32 = id(b"DNT2");
const ID_SEND: u32 = id(b"SEND");
const ID_SND2: u32 = id(b"SND2");
const ID_RECV: u32 = id(b"RECV");
const ID_RCV2: u32 = id(b"RCV2");
const ID_DATA: u32 = id(b"DATA");
const ID_DONE: u32 = id(b"DONE");
const ID_OKAY: u32 = id(b"OKAY");
const ID_FAIL: u32 = id(b"FAIL");
const ID_QUIT: u32 = id(b"QUIT");
/// SYNC_DATA_MAX in file_sync_protocol.h.
const SYNC_DATA_MAX: usize = 64 * 1024;
const SYNC_PATH_MAX: u32 = 1024;
const SEND_V2_DRY_RUN: u32 = 0x8000_0000;
const ENOENT: u32 = 2;

/// A byte queue over a stream's WRTE payloads: sync requests may be split across or
/// packed into WRTE messages in any way.
struct SyncReader {
    buf: VecDeque<u8>,
}

impl SyncReader {
    async fn take(&mut self, stream: &mut Stream, n: usize) -> Result<Vec<u8>, Closed> {
        while self.buf.len() < n {
            match stream.read().await {
                Some(d) => self.buf.extend(d),
                None => return Err(Closed),
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn u32_pair(&mut self, stream: &mut Stream) -> Result<(u32, u32), Closed> {
        let b = self.take(stream, 8).await?;
        Ok((
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        ))
    }
}

fn le(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

async fn fail(stream: &mut Stream, msg: &str) -> Result<(), Closed> {
    let mut p = le(&[ID_FAIL, msg.len() as u32]);
    p.extend_from_slice(msg.as_bytes());
    stream.write(&p).await
}

/// mode, size, mtime of a path; (0, 0, 0) when it does not exist.
fn lstat(sim: &Shared, path: &str) -> Option<(u32, u64, u32)> {
    let phone = sim.phone();
    if let Some(f) = phone.file(path) {
        Some((f.mode, f.data.len() as u64, f.mtime))
    } else if phone.is_dir(path) {
        Some((0o40771, 4096, now_secs()))
    } else {
        None
    }
}

fn stat_v2(id: u32, st: Option<(u32, u64, u32)>) -> Vec<u8> {
    let mut p = le(&[id]);
    match st {
        Some((mode, size, mtime)) => {
            p.extend(le(&[0]));
            p.extend(0xfd00u64.to_le_bytes()); // dev
            p.extend(u64::from(mode ^ 0x5a5a).to_le_bytes()); // ino
            p.extend(le(&[mode, 1, 2000, 1015])); // mode nlink uid gid
            p.extend(size.to_le_bytes());
            for _ in 0..3 {
                p.extend(i64::from(mtime).to_le_bytes());
            }
        }
        None => {
            p.extend(le(&[ENOENT]));
            p.extend([0u8; 64]);
        }
    }
    p
}

async fn sync(sim: &Arc<Shared>, stream: &mut Stream) -> Result<(), Closed> {
    let mut rd = SyncReader {
        buf: VecDeque::new(),
    };
    loop {
        let (cmd, len) = rd.u32_pair(stream).await?;
        if cmd == ID_QUIT {
            return Ok(());
        }
        if len > SYNC_PATH_MAX {
            fail(stream, "path too long").await?;
            return Ok(());
        }
        let path = String::from_utf8_lossy(&rd.take(stream, len as usize).await?).into_owned();
        tracing::debug!(cmd = %String::from_utf8_lossy(&cmd.to_le_bytes()), %path, "sync request");
        match cmd {
            ID_STAT => {
                let (mode, size, mtime) = lstat(sim, &path).unwrap_or((0, 0, 0));
                stream
                    .write(&le(&[ID_STAT, mode, size as u32, mtime]))
                    .await?;
            }
            ID_STA2 | ID_LST2 => stream.write(&stat_v2(cmd, lstat(sim, &path))).await?,
            ID_LIST | ID_LIS2 => {
                let names = sim.phone().list_dir(&path).unwrap_or_default();
                let dir = path.trim_end_matches('/');
                let entries: Vec<(String, (u32, u64, u32))> = names
                    .into_iter()
                    .filter_map(|n| lstat(sim, &format!("{dir}/{n}")).map(|s| (n, s)))
                    .collect();
                for (name, st) in entries {
                    let mut p = if cmd == ID_LIST {
                        le(&[ID_DENT, st.0, st.1 as u32, st.2])
                    } else {
                        stat_v2(ID_DNT2, Some(st))
                    };
                    p.extend(le(&[name.len() as u32]));
                    p.extend(name.as_bytes());
                    stream.write(&p).await?;
                }
                let done = if cmd == ID_LIST {
                    le(&[ID_DONE, 0, 0, 0, 0])
                } else {
                    let mut d = le(&[ID_DONE]);
                    d.extend([0u8; 72]);
                    d
                };
                stream.write(&done).await?;
            }
            ID_SEND | ID_SND2 => {
                let (path, mode, dry_run) = if cmd == ID_SEND {
                    let (p, m) = path.rsplit_once(',').unwrap_or((path.as_str(), "0644"));
                    let mode = m.parse::<u32>().unwrap_or(0o644);
                    (p.to_owned(), mode, false)
                } else {
                    let setup = rd.take(stream, 12).await?;
                    let word = |i: usize| {
                        u32::from_le_bytes([setup[i], setup[i + 1], setup[i + 2], setup[i + 3]])
                    };
                    let flags = word(8);
                    if flags & !SEND_V2_DRY_RUN != 0 {
                        fail(stream, "compression is not supported by the simulator").await?;
                        return Ok(());
                    }
                    (path.clone(), word(4), flags & SEND_V2_DRY_RUN != 0)
                };
                let mut data = Vec::new();
                loop {
                    let (id, n) = rd.u32_pair(stream).await?;
                    match id {
                        ID_DATA if n as usize <= SYNC_DATA_MAX => {
                            data.extend(rd.take(stream, n as usize).await?)
                        }
                        ID_DATA => {
                            fail(stream, "data chunk over 64 KiB").await?;
                            return Ok(());
                        }
                        ID_DONE => break,
                        _ => {
                            fail(stream, "invalid data message").await?;
                            return Ok(());
                        }
                    }
                }
                let written = if dry_run {
                    Ok(())
                } else {
                    sim.phone().write_file(&path, data, mode)
                };
                match written {
                    Ok(()) => stream.write(&le(&[ID_OKAY, 0])).await?,
                    Err(e) => {
                        fail(stream, &e).await?;
                    }
                }
            }
            ID_RECV | ID_RCV2 => {
                if cmd == ID_RCV2 {
                    let (_, flags) = rd.u32_pair(stream).await?;
                    if flags != 0 {
                        fail(stream, "compression is not supported by the simulator").await?;
                        return Ok(());
                    }
                }
                let data = sim.phone().file(&path).map(|f| f.data.clone());
                let Some(data) = data else {
                    fail(stream, "No such file or directory").await?;
                    continue;
                };
                let chunk = SYNC_DATA_MAX.min(stream.max.saturating_sub(8)).max(1);
                for part in data.chunks(chunk) {
                    let mut p = le(&[ID_DATA, part.len() as u32]);
                    p.extend_from_slice(part);
                    stream.write(&p).await?;
                }
                stream.write(&le(&[ID_DONE, 0])).await?;
            }
            _ => {
                fail(stream, "unknown sync request").await?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trip_and_checksum() {
        let p = Packet::new(A_WRTE, 7, 9, b"abc".to_vec());
        let bytes = p.encode();
        assert_eq!(bytes.len(), 27);
        assert_eq!(&bytes[16..20], &(97u32 + 98 + 99).to_le_bytes());
        let rt = futures_lite_block(read_packet(&mut &bytes[..])).unwrap();
        assert_eq!(
            (rt.cmd, rt.arg0, rt.arg1, rt.data),
            (A_WRTE, 7, 9, b"abc".to_vec())
        );
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(matches!(
            futures_lite_block(read_packet(&mut &bad[..])),
            Err(TransportError::BadMagic(_))
        ));
        let mut bad = bytes;
        bad[16] ^= 1;
        assert!(matches!(
            futures_lite_block(read_packet(&mut &bad[..])),
            Err(TransportError::BadChecksum { .. })
        ));
    }

    fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn parses_service_names() {
        assert!(matches!(
            Service::parse("shell,v2,raw:echo hi"),
            Some(Service::Shell { v2: true, ref command }) if command == "echo hi"
        ));
        assert!(matches!(
            Service::parse("shell:ls"),
            Some(Service::Shell { v2: false, .. })
        ));
        assert!(matches!(
            Service::parse("shell,v2,TERM=xterm-256color,pty:"),
            Some(Service::Shell { v2: true, .. })
        ));
        assert!(matches!(
            Service::parse("exec:screencap -p"),
            Some(Service::Shell { v2: false, .. })
        ));
        assert!(matches!(Service::parse("sync:"), Some(Service::Sync)));
        assert!(Service::parse("reboot:").is_none());
        assert!(Service::parse("shell,bogus:ls").is_none());
    }
}
