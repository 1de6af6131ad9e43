//! The admin HTTP listener (`admin.listeners`, default `http://127.0.0.1:9644`): `/metrics` in
//! the Prometheus text format, and the `/v1/status/ready` and `/v1/status/live` probes.
//!
//! It runs on a thread of its own with a current-thread tokio runtime (hyper's HTTP/1.1 server),
//! not on a shard: a scrape or a slow probe client then never holds up a shard's requests, and a
//! wedged shard still answers liveness. It reaches the shards only by message (the router's
//! `submit_to`), the way shards reach each other, so the data path has no lock for it to take.

mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};

use crate::broker::shard::Router;

/// Admin connections served at once; more wait in the listen backlog. Probes and scrapers open
/// a handful; this bounds the memory a flood of them can take.
pub const CONNECTIONS_MAX: usize = 32;
/// How long a client may take to send a request's headers before its connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin listener knows about the broker; shared with the broker's lifecycle.
#[derive(Default)]
pub struct AdminState {
    /// The shards, once started (until then only process metrics are shown).
    router: OnceLock<Router>,
    /// Logs recovered, registered with the coordination store, listeners accepting; cleared
    /// when shutdown starts.
    serving: AtomicBool,
}

impl AdminState {
    pub fn attach(&self, router: Router) {
        // Set once per broker run; a second attach would be a lifecycle bug.
        assert!(
            self.router.set(router).is_ok(),
            "the admin listener was attached to the shards twice"
        );
    }

    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    fn router(&self) -> Option<&Router> {
        self.router.get()
    }
}

/// A running admin listener; [`AdminServer::stop`] ends it.
pub struct AdminServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `address` (a taken port is an error here, before the broker starts anything else)
    /// and serves it on a new thread.
    pub fn start(address: SocketAddr, state: Arc<AdminState>) -> std::io::Result<AdminServer> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("admin-http".into())
            .spawn(move || runtime.block_on(serve(listener, state, stop_rx)))?;
        Ok(AdminServer {
            address,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and waits for the thread (connections still open are dropped).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the admin HTTP thread panicked");
            }
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<AdminState>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "admin listener could not start");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: back off instead of spinning.
                tracing::warn!(%error, "admin listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::route(&state, &request).await) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "admin connection ended");
            }
            drop(permit);
        });
    }
}
