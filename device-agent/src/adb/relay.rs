//! A local TCP relay between adb_client and its real peer (a phone, or the adb
//! server), so that the agent, not adb_client, owns the sockets adb_client reads.
//!
//! adb_client 3.2.3 reads the ADB transport (`TcpTransport::read_message_with_timeout`)
//! with `total_read += stream.read(..)?` until the buffer is full: a read that returns
//! 0 at end of stream never ends that loop, so a peer that closes the connection
//! (or a socket that was shut down, or one that saw a reset, whose later reads also
//! return 0) leaves the thread spinning at full speed, forever; `ADBSession`'s `Drop`
//! reads the same way. Nothing outside the library can interrupt a blocked read on a
//! socket it owns either. The relay fixes both by standing in between:
//!
//! - adb_client connects to the relay's loopback listener instead of the peer; the
//!   relay connects to the peer and copies bytes both ways, one thread per direction.
//! - [`Ending::Poison`] (a phone over TCP, the ADB transport): when the peer goes away,
//!   or the agent gives up on a call ([`Relay::poison`]), the relay completes the
//!   message under way with zero bytes and sends an invalid message header. adb_client
//!   fails on it with an error instead of reading end-of-stream, and its session's
//!   drain in `Drop` then times out on the silent socket. The relay never closes the
//!   client's socket itself: it waits until adb_client closes it.
//! - [`Ending::Close`] (the adb server's protocol, where adb_client handles end of
//!   stream): the relay simply shuts the sockets down, which also ends a read that
//!   would otherwise wait forever on a command that hangs.
//!
//! After a TLS upgrade (`STLS`, Android 11+ wireless debugging) the stream is TLS
//! records; the relay follows the record framing instead and ends with an invalid
//! record, which rustls rejects. A `close_notify` alert from the phone is encrypted
//! and cannot be told apart, so such a phone is better reached through the adb server.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::Duration;

/// Size of the copy buffers: one adb payload is at most 1 MiB, and 64 KiB keeps
/// the number of system calls low without holding much memory per connection.
const BUFFER: usize = 64 * 1024;

/// How the relay ends a connection that must not be used any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Complete the current message, send an invalid header, keep the socket open
    /// until the client closes it: for the ADB transport, whose reader spins on EOF.
    Poison,
    /// Shut the sockets down: for the adb server's protocol, whose reader stops on EOF.
    Close,
}

/// A running relay; dropping it stops accepting clients and ends every connection
/// it serves (in the way its [`Ending`] says).
#[derive(Debug)]
pub(crate) struct Relay {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The real peer.
    target: SocketAddr,
    /// How connections end.
    ending: Ending,
    /// How long connecting to the peer may take.
    connect_timeout: Duration,
    /// Where adb_client connects.
    local: SocketAddrV4,
    /// Set once the connection must not be used any more (the peer went away, a
    /// call was abandoned, the relay was dropped).
    poisoned: AtomicBool,
    /// Set when the relay is dropped: no more clients are served.
    closed: AtomicBool,
    /// Whether the accept thread still waits for clients (so closing must wake it).
    accepting: AtomicBool,
    /// Why the relay was poisoned, first reason only: it explains the error that
    /// adb_client reports, which is about the relay's invalid header, not the cause.
    reason: Mutex<Option<String>>,
    /// The connections being served, so that poisoning can wake their blocked reads.
    pipes: Mutex<Vec<Weak<Pipe>>>,
}

/// One client connection and its peer connection.
#[derive(Debug)]
struct Pipe {
    /// adb_client's end.
    client: TcpStream,
    /// The peer, once connected.
    peer: Mutex<Option<TcpStream>>,
    /// Set when the client closed its end: the peer's end of stream that follows is
    /// the relay's own doing, not the phone going away.
    client_done: AtomicBool,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every
/// critical section here is a single assignment or a list push).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Relay {
    /// Starts a relay to `target` on a free loopback port. With [`Ending::Poison`]
    /// it serves one client (adb_client opens one connection per device); with
    /// [`Ending::Close`] any number (adb_client opens new ones for every request).
    pub(crate) fn start(
        target: SocketAddr,
        ending: Ending,
        connect_timeout: Duration,
    ) -> io::Result<Relay> {
        let listener = TcpListener::bind(SocketAddrV4::new([127, 0, 0, 1].into(), 0))?;
        let local = match listener.local_addr()? {
            SocketAddr::V4(addr) => addr,
            SocketAddr::V6(addr) => {
                return Err(io::Error::other(format!(
                    "the relay listener got an IPv6 address {addr}"
                )))
            }
        };
        let shared = Arc::new(Shared {
            target,
            ending,
            connect_timeout,
            local,
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            accepting: AtomicBool::new(true),
            reason: Mutex::new(None),
            pipes: Mutex::new(Vec::new()),
        });
        let accept = shared.clone();
        thread::Builder::new()
            .name("adb-relay".to_owned())
            .spawn(move || accept_loop(accept, listener))?;
        Ok(Relay { shared })
    }

    /// Where adb_client must connect.
    pub(crate) fn addr(&self) -> SocketAddrV4 {
        self.shared.local
    }

    /// Ends every connection now (see [`Ending`]); `reason` is kept for the error
    /// report unless an earlier reason was recorded.
    pub(crate) fn poison(&self, reason: &str) {
        self.shared.poison(reason);
    }

    /// Whether the connection must be replaced.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::SeqCst)
    }

    /// Why the connection was poisoned, if it was.
    pub(crate) fn reason(&self) -> Option<String> {
        lock(&self.shared.reason).clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.poison("the connection was closed by the agent");
        if self.shared.accepting.load(Ordering::SeqCst) {
            // Wake the accept thread; it sees `closed` and stops.
            let _ = TcpStream::connect_timeout(
                &SocketAddr::V4(self.shared.local),
                Duration::from_secs(1),
            );
        }
    }
}

impl Shared {
    fn poison(&self, reason: &str) {
        {
            let mut recorded = lock(&self.reason);
            if recorded.is_none() {
                *recorded = Some(reason.to_owned());
            }
        }
        self.poisoned.store(true, Ordering::SeqCst);
        let pipes: Vec<Arc<Pipe>> = lock(&self.pipes).iter().filter_map(Weak::upgrade).collect();
        for pipe in pipes {
            pipe.wake(self.ending);
        }
    }
}

impl Pipe {
    /// Makes both copying threads return from their blocking reads.
    fn wake(&self, ending: Ending) {
        if let Some(peer) = lock(&self.peer).as_ref() {
            let _ = peer.shutdown(Shutdown::Both);
        }
        if ending == Ending::Close {
            let _ = self.client.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(error) => {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                tracing::debug!(%error, "relay accept failed");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        match shared.ending {
            Ending::Poison => {
                // One client: this thread serves it, and no one else can connect.
                shared.accepting.store(false, Ordering::SeqCst);
                drop(listener);
                serve(shared, client);
                return;
            }
            Ending::Close => {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                let serving = shared.clone();
                let spawned = thread::Builder::new()
                    .name("adb-relay".to_owned())
                    .spawn(move || serve(serving, client));
                if let Err(error) = spawned {
                    // The client sees end of stream, which adb_client's server
                    // protocol handles.
                    tracing::warn!(%error, "cannot start a relay thread");
                }
            }
        }
    }
    shared.accepting.store(false, Ordering::SeqCst);
}

/// Serves one client: connects to the peer, copies client → peer on a second
/// thread and peer → client on this one.
fn serve(shared: Arc<Shared>, client: TcpStream) {
    let (reader, writer) = match (client.try_clone(), client.try_clone()) {
        (Ok(reader), Ok(writer)) => (reader, writer),
        (Err(error), _) | (_, Err(error)) => {
            shared.poison(&format!("cannot use the relay socket: {error}"));
            finish_without_peer(&shared, client);
            return;
        }
    };
    let pipe = Arc::new(Pipe {
        client,
        peer: Mutex::new(None),
        client_done: AtomicBool::new(false),
    });
    {
        let mut pipes = lock(&shared.pipes);
        pipes.retain(|p| p.strong_count() > 0);
        pipes.push(Arc::downgrade(&pipe));
    }
    let peer = if shared.poisoned.load(Ordering::SeqCst) {
        None
    } else {
        match TcpStream::connect_timeout(&shared.target, shared.connect_timeout) {
            Ok(peer) => Some(peer),
            Err(error) => {
                shared.poison(&format!("cannot connect to {}: {error}", shared.target));
                None
            }
        }
    };
    let peer_reader = match peer.as_ref().map(TcpStream::try_clone) {
        Some(Ok(reader)) => Some(reader),
        Some(Err(error)) => {
            shared.poison(&format!(
                "cannot use the socket to {}: {error}",
                shared.target
            ));
            None
        }
        None => None,
    };
    if let Some(peer) = &peer {
        let _ = peer.set_nodelay(true);
        *lock(&pipe.peer) = peer.try_clone().ok();
        // A poison that came before the peer was stored could not shut it down.
        if shared.poisoned.load(Ordering::SeqCst) {
            pipe.wake(shared.ending);
        }
    }
    let up = {
        let shared = shared.clone();
        let pipe = pipe.clone();
        thread::Builder::new()
            .name("adb-relay".to_owned())
            .spawn(move || client_to_peer(&shared, &pipe, reader, peer))
    };
    if let Err(error) = up {
        shared.poison(&format!("cannot start a relay thread: {error}"));
    }
    peer_to_client(&shared, &pipe, peer_reader, writer);
}

/// The client's socket could not be served at all: end it the way it must end.
fn finish_without_peer(shared: &Shared, mut client: TcpStream) {
    match shared.ending {
        Ending::Close => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Ending::Poison => {
            let _ = client.write_all(&Framer::default().ending());
            // Closing would hand adb_client the end of stream it spins on; the
            // socket is left open for the life of the process instead.
            std::mem::forget(client);
        }
    }
}

/// Copies what adb_client writes to the peer until adb_client closes its end; after
/// a poison the bytes are read and dropped, so adb_client's writes never block.
fn client_to_peer(shared: &Shared, pipe: &Pipe, mut client: TcpStream, peer: Option<TcpStream>) {
    let mut peer = peer;
    let mut buf = vec![0u8; BUFFER];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if shared.poisoned.load(Ordering::SeqCst) {
                    continue;
                }
                if let Some(out) = peer.as_mut() {
                    if let Err(error) = out.write_all(&buf[..n]) {
                        if shared.ending == Ending::Poison {
                            shared.poison(&format!("the connection to the phone failed: {error}"));
                        } else {
                            break;
                        }
                    }
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    pipe.client_done.store(true, Ordering::SeqCst);
    if let Some(peer) = peer {
        let _ = peer.shutdown(Shutdown::Both);
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies what the peer sends to adb_client, keeping track of the message framing,
/// then ends the client's stream as [`Ending`] says.
fn peer_to_client(shared: &Shared, pipe: &Pipe, peer: Option<TcpStream>, mut client: TcpStream) {
    let mut framer = Framer::default();
    if let Some(mut peer) = peer {
        let mut buf = vec![0u8; BUFFER];
        loop {
            if shared.poisoned.load(Ordering::SeqCst) && shared.ending == Ending::Poison {
                break;
            }
            match peer.read(&mut buf) {
                Ok(0) => {
                    if shared.ending == Ending::Poison && !pipe.client_done.load(Ordering::SeqCst) {
                        shared.poison("the phone closed the connection");
                    }
                    break;
                }
                Ok(n) => {
                    framer.feed(&buf[..n]);
                    if client.write_all(&buf[..n]).is_err() {
                        // adb_client closed its end; nothing reads any more.
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    if shared.ending == Ending::Poison && !pipe.client_done.load(Ordering::SeqCst) {
                        shared.poison(&format!("the connection to the phone failed: {error}"));
                    }
                    break;
                }
            }
        }
    }
    match shared.ending {
        Ending::Poison => {
            if !pipe.client_done.load(Ordering::SeqCst) {
                let _ = client.write_all(&framer.ending());
            }
        }
        Ending::Close => {
            let _ = client.shutdown(Shutdown::Write);
        }
    }
}

/// `STLS`, the ADB command after which the transport is TLS.
const STLS: &[u8; 4] = b"STLS";
/// An ADB message header: command, arg0, arg1, length, checksum, magic.
const ADB_HEADER: usize = 24;
/// A TLS record header: content type, version, length.
const TLS_HEADER: usize = 5;

/// Follows the framing of the bytes a phone sends (ADB messages, then TLS records
/// after `STLS`), so that the relay can end the stream on a message boundary.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// Whether the stream is TLS records now.
    tls: bool,
    /// The header of the message under way.
    head: [u8; ADB_HEADER],
    /// How much of the header has passed.
    head_len: usize,
    /// How much of the message's payload is still to come.
    body_left: usize,
}

impl Framer {
    fn header_size(&self) -> usize {
        if self.tls {
            TLS_HEADER
        } else {
            ADB_HEADER
        }
    }

    fn body_len(&self, head: &[u8]) -> usize {
        if self.tls {
            usize::from(u16::from_be_bytes([head[3], head[4]]))
        } else {
            u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize
        }
    }

    /// Takes note of bytes on their way to the client.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                if self.body_left == 0 {
                    self.message_done();
                }
                continue;
            }
            let size = self.header_size();
            let n = (size - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
            self.head_len += n;
            data = &data[n..];
            if self.head_len == size {
                self.body_left = self.body_len(&self.head[..size]);
                if self.body_left == 0 {
                    self.message_done();
                }
            }
        }
    }

    fn message_done(&mut self) {
        if !self.tls && self.head[..4] == *STLS {
            self.tls = true;
        }
        self.head_len = 0;
    }

    /// The bytes that complete the message under way (zeros) followed by a header
    /// the client rejects: an ADB command of 0, or a TLS content type of 0.
    pub(crate) fn ending(&self) -> Vec<u8> {
        let size = self.header_size();
        let mut out = Vec::new();
        if self.body_left > 0 {
            out.resize(self.body_left, 0);
        } else if self.head_len > 0 {
            let mut head = self.head;
            head[self.head_len..size].fill(0);
            let body = self.body_len(&head[..size]);
            out.resize(size - self.head_len + body, 0);
        }
        out.resize(out.len() + size, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adb_message(command: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(command);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(!u32::from_le_bytes(*command)).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn on_a_boundary_the_ending_is_one_invalid_header() {
        let mut framer = Framer::default();
        framer.feed(&adb_message(b"WRTE", b"hello"));
        assert_eq!(framer.ending(), vec![0u8; ADB_HEADER]);
    }

    #[test]
    fn a_payload_under_way_is_completed_first() {
        let message = adb_message(b"WRTE", &[7u8; 100]);
        let mut framer = Framer::default();
        // Split anywhere: the framing is the same.
        framer.feed(&message[..10]);
        framer.feed(&message[10..60]);
        let ending = framer.ending();
        assert_eq!(ending.len(), (message.len() - 60) + ADB_HEADER);
        assert!(ending.iter().all(|b| *b == 0));
    }

    #[test]
    fn a_header_under_way_is_completed_with_its_payload() {
        let message = adb_message(b"WRTE", &[7u8; 300]);
        let mut framer = Framer::default();
        // The length field (bytes 12..16) has partly passed: 300 = 0x012c, and
        // both of its low bytes are in.
        framer.feed(&message[..14]);
        assert_eq!(framer.ending().len(), (ADB_HEADER - 14) + 300 + ADB_HEADER);
        // Before the length field, the zero-filled header says no payload.
        let mut framer = Framer::default();
        framer.feed(&message[..8]);
        assert_eq!(framer.ending().len(), (ADB_HEADER - 8) + ADB_HEADER);
    }

    #[test]
    fn after_stls_the_framing_is_tls_records() {
        let mut framer = Framer::default();
        let mut bytes = adb_message(b"CNXN", b"device::");
        bytes.extend(adb_message(b"STLS", b""));
        // A TLS record of 10 bytes, of which 4 have arrived.
        bytes.extend([22, 3, 3, 0, 10, 1, 2, 3, 4]);
        framer.feed(&bytes);
        let ending = framer.ending();
        assert_eq!(ending, vec![0u8; 6 + TLS_HEADER]);
    }

    #[test]
    fn many_messages_in_one_read() {
        let mut bytes = Vec::new();
        for i in 0..5u8 {
            bytes.extend(adb_message(b"WRTE", &vec![i; usize::from(i) * 3]));
        }
        bytes.extend(&adb_message(b"OKAY", b"")[..3]);
        let mut framer = Framer::default();
        framer.feed(&bytes);
        // The OKAY header under way has no payload once zero-filled.
        assert_eq!(framer.ending().len(), (ADB_HEADER - 3) + ADB_HEADER);
    }

    #[test]
    fn close_relay_forwards_and_ends_with_end_of_stream() {
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = peer.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut socket, _) = peer.accept().unwrap();
            let mut got = [0u8; 4];
            socket.read_exact(&mut got).unwrap();
            socket.write_all(b"pong").unwrap();
            got
        });
        let relay = Relay::start(target, Ending::Close, Duration::from_secs(5)).unwrap();
        let mut client = TcpStream::connect(relay.addr()).unwrap();
        client.write_all(b"ping").unwrap();
        let mut answer = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client.read_to_end(&mut answer).unwrap();
        assert_eq!(answer, b"pong");
        assert_eq!(&server.join().unwrap(), b"ping");
        assert!(!relay.is_poisoned(), "a normal end is not a failure");
    }

    #[test]
    fn poison_relay_ends_with_an_invalid_header_and_stays_open() {
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = peer.local_addr().unwrap();
        let message = adb_message(b"WRTE", &[9u8; 40]);
        let half = message[..30].to_vec();
        let server = thread::spawn(move || {
            let (mut socket, _) = peer.accept().unwrap();
            socket.write_all(&half).unwrap();
            // The phone goes away mid-message.
        });
        let relay = Relay::start(target, Ending::Poison, Duration::from_secs(5)).unwrap();
        let mut client = TcpStream::connect(relay.addr()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        server.join().unwrap();
        let want = message.len() + ADB_HEADER;
        let mut got = vec![0u8; want];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got[..30], &message[..30]);
        assert!(got[30..].iter().all(|b| *b == 0));
        // No end of stream follows: the read times out instead.
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut more = [0u8; 1];
        let error = client.read(&mut more).unwrap_err();
        assert!(matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(relay.is_poisoned());
        assert_eq!(
            relay.reason().as_deref(),
            Some("the phone closed the connection")
        );
    }

    #[test]
    fn an_unreachable_peer_poisons_with_the_reason() {
        // A port that was free a moment ago: connecting is refused.
        let target = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let relay = Relay::start(target, Ending::Poison, Duration::from_secs(5)).unwrap();
        let mut client = TcpStream::connect(relay.addr()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = [1u8; ADB_HEADER];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, [0u8; ADB_HEADER]);
        let reason = relay.reason().unwrap();
        assert!(reason.starts_with("cannot connect to"), "{reason}");
    }
}
