//! TCP-level peers for connect and timeout tests: an address that refuses,
//! a server that never answers, and one that closes every connection at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socket2::SockRef;

use crate::server::{ServerGuard, bind_loopback};

/// A loopback address where nothing listens, so connecting is refused.
///
/// Made by binding `127.0.0.1:0` and closing the listener again. The kernel
/// could in principle hand the same port to a later bind (another test's
/// server), which would make the address accept; in practice ephemeral ports
/// are not reused that quickly.
#[derive(Debug, Clone, Copy)]
pub struct RefusingAddr {
    addr: SocketAddr,
}

impl RefusingAddr {
    /// Picks a free loopback port and leaves it closed.
    pub fn new() -> Self {
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        drop(listener);
        Self { addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Default for RefusingAddr {
    fn default() -> Self {
        Self::new()
    }
}

/// Accepts TCP connections and never reads from or writes to them, holding
/// them open until dropped: "connected, but no answer".
pub struct BlackholeServer {
    guard: ServerGuard,
    hits: Arc<AtomicUsize>,
}

impl BlackholeServer {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub async fn start() -> Self {
        let listener = bind_loopback().await.expect("bind 127.0.0.1:0");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let guard = ServerGuard::spawn(listener, move |listener, _stop| async move {
            // Connections live in this task; aborting it closes them all.
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        })
        .expect("local_addr of a bound listener");
        Self { guard, hits }
    }

    pub fn addr(&self) -> SocketAddr {
        self.guard.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.guard.url()
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Accepts each TCP connection and closes it at once: with a reset (RST, via
/// `SO_LINGER` 0) from [`AcceptThenCloseServer::start`], or with an orderly
/// FIN from [`AcceptThenCloseServer::start_fin`].
pub struct AcceptThenCloseServer {
    guard: ServerGuard,
    hits: Arc<AtomicUsize>,
}

impl AcceptThenCloseServer {
    /// Closes every accepted connection with a reset (RST).
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// Closes every accepted connection with an orderly shutdown (FIN).
    pub async fn start_fin() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(reset: bool) -> Self {
        let listener = bind_loopback().await.expect("bind 127.0.0.1:0");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let guard = ServerGuard::spawn(listener, move |listener, _stop| async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                if reset && let Err(error) = SockRef::from(&stream).set_linger(Some(Duration::ZERO))
                {
                    tracing::warn!(%error, "SO_LINGER 0 failed; closing with FIN");
                }
                drop(stream);
            }
        })
        .expect("local_addr of a bound listener");
        Self { guard, hits }
    }

    pub fn addr(&self) -> SocketAddr {
        self.guard.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.guard.url()
    }

    /// Connections accepted (and closed) so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
