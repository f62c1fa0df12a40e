//! A TCP proxy on 127.0.0.1 in front of another server, that a test can take down: while down
//! it refuses new connections (accepts and closes them at once) and has cut every connection
//! that was open, as a network outage or a restarting server would. It can also hold every
//! chunk sent to the server back for a while, as a slow network does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

/// A running proxy; stops (and cuts its connections) when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: AbortHandle,
}

struct Shared {
    target: String,
    down: AtomicBool,
    /// Open relays, aborted when the proxy goes down.
    relays: Mutex<JoinSet<()>>,
    /// Connections refused while down.
    refused: AtomicU64,
    /// Milliseconds each chunk towards the server is held back.
    delay_ms: AtomicU64,
}

impl TcpProxy {
    /// Starts a proxy to `target` (`host:port`) on a free port.
    pub async fn start(target: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            target: target.to_string(),
            down: AtomicBool::new(false),
            relays: Mutex::new(JoinSet::new()),
            refused: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if accepting.down.load(Ordering::SeqCst) {
                    accepting.refused.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let mut relays = accepting.relays.lock().unwrap();
                while relays.try_join_next().is_some() {}
                relays.spawn(relay(client, Arc::clone(&accepting)));
            }
        })
        .abort_handle();
        TcpProxy {
            addr,
            shared,
            acceptor,
        }
    }

    /// Starts a proxy in front of the server of an `http://host:port` URL.
    pub async fn for_url(url: &str) -> TcpProxy {
        let target = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("a URL with a host")
            .to_string();
        TcpProxy::start(&target).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every open connection and refuses new ones until [`TcpProxy::up`].
    pub fn down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.relays.lock().unwrap().abort_all();
    }

    /// Relays new connections again.
    pub fn up(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Holds every chunk sent towards the server back by `delay` (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(azi3_status_jobs::numeric::millis(delay), Ordering::SeqCst);
    }

    /// How many connections were refused while down.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.shared.relays.lock().unwrap().abort_all();
    }
}

async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(&shared.target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = shared.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
