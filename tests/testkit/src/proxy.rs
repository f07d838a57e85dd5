//! A TCP proxy a test controls, to cut the network between one client and
//! a server (a worker and Redis) and restore it.
//!
//! [`TcpProxy::cut`] drops every connection through the proxy and refuses
//! new ones (each is accepted and closed at once), as a broken link or a
//! restarted router does; [`TcpProxy::restore`] lets new connections
//! through again. Bytes are copied as they come, in both directions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A loopback TCP proxy to one upstream address.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    cut: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
    refused: AtomicU64,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            cut: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        });
        let acceptor = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            addr,
            shared,
            acceptor,
        }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops every open connection and refuses new ones until
    /// [`restore`](Self::restore).
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let links = std::mem::take(&mut *self.shared.links.lock().expect("proxy links"));
        for link in links {
            link.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections open through the proxy now.
    pub fn open_links(&self) -> usize {
        let mut links = self.shared.links.lock().expect("proxy links");
        links.retain(|l| !l.is_finished());
        links.len()
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if shared.cut.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let upstream = shared.upstream;
        let link = tokio::spawn(forward(client, upstream));
        let mut links = shared.links.lock().expect("proxy links");
        links.retain(|l| !l.is_finished());
        links.push(link.abort_handle());
        drop(links);
        // A cut that came while this link was being set up missed it.
        if shared.cut.load(Ordering::SeqCst) {
            link.abort();
        }
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
