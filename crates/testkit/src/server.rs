//! Plumbing shared by every test server: loopback bind, shutdown signal, RAII guard.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Binds a listener on `127.0.0.1:0`.
pub(crate) async fn bind_loopback() -> io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
}

/// Resolves once the owning [`ServerGuard`] is dropped.
#[derive(Clone)]
pub(crate) struct Shutdown(watch::Receiver<()>);

impl Shutdown {
    pub(crate) async fn wait(mut self) {
        // Nothing is ever sent: `changed` only returns (with an error) once
        // the sender inside the guard is dropped.
        while self.0.changed().await.is_ok() {}
    }

    /// Spawns `fut` on the current runtime, cancelled when the server stops.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future + Send + 'static,
    {
        let stop = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                () = stop.wait() => {}
            }
        });
    }
}

/// hyper executor whose tasks (h2 streams) end when the server stops.
#[derive(Clone)]
pub(crate) struct ShutdownExec(pub(crate) Shutdown);

impl<F> hyper::rt::Executor<F> for ShutdownExec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}

/// Owns a running server: dropping it aborts the accept loop and signals
/// every connection task to stop.
pub(crate) struct ServerGuard {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    _stop: watch::Sender<()>,
}

impl ServerGuard {
    /// Spawns the accept loop built by `run` for `listener`.
    pub(crate) fn spawn<F, Fut>(listener: TcpListener, run: F) -> io::Result<Self>
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(());
        let accept = tokio::spawn(run(listener, Shutdown(rx)));
        Ok(Self {
            addr,
            accept,
            _stop: stop,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
