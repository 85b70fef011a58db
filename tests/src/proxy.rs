//! A TCP proxy between agents and the server, so a test can cut every agent's
//! connection at once (a network blip) and point agents at a restarted server
//! that listens on another port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A forwarding proxy on `127.0.0.1:<random port>`.
pub struct Proxy {
    /// Where agents connect.
    addr: SocketAddr,
    /// Where connections are forwarded; changed when the server restarts.
    target: Arc<Mutex<SocketAddr>>,
    /// The live connections, so [`Proxy::cut`] can drop them all.
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The accept loop, stopped when the proxy is dropped.
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy that forwards to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test proxy");
        let addr = listener.local_addr().expect("proxy address");
        let target = Arc::new(Mutex::new(target));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = tokio::spawn({
            let target = target.clone();
            let connections = connections.clone();
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let to = *target.lock().expect("proxy target lock");
                    let forward = tokio::spawn(forward(inbound, to));
                    let mut live = connections.lock().expect("proxy connections lock");
                    live.retain(|task| !task.is_finished());
                    live.push(forward);
                }
            }
        });
        Proxy {
            addr,
            target,
            connections,
            acceptor,
        }
    }

    /// The address agents connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forwards new connections to `target` from now on.
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().expect("proxy target lock") = target;
    }

    /// Drops every open connection, both ways, as a network failure would.
    pub fn cut(&self) {
        for task in self
            .connections
            .lock()
            .expect("proxy connections lock")
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        // The server is down: the agent sees a refused connection, as it would
        // without the proxy, and retries.
        return;
    };
    inbound.set_nodelay(true).ok();
    outbound.set_nodelay(true).ok();
    tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
        .await
        .ok();
}
