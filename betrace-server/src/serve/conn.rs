//! Connection limits of every listener (docs/server.md "Connection limits").
//!
//! In: TCP connections accepted on the REST, OTLP/HTTP and OTLP/gRPC listeners. Out: the same
//! streams, each holding one of `server.max_connections` permits shared by all listeners, and
//! served by hyper (HTTP/1.1, with `server.header_read_timeout`) or tonic (HTTP/2).
//!
//! - **Cap.** At most `max_connections` connections are open at once, so the process never
//!   runs out of file descriptors (the default is the open-files limit minus 64). A connection
//!   accepted at the cap takes the place of the connection that has been idle longest (no
//!   request in progress); when every connection is busy it waits for one to end, and further
//!   connections wait in the kernel's accept queue.
//! - **Slow bodies.** Once the headers are read, each chunk of the request body must arrive
//!   within `header_read_timeout` of the previous one (tower-http's `TimeoutBody`).
//! - **Idle.** A connection with no byte read or written and no request in progress for
//!   `server.idle_timeout` is closed. For HTTP/1.1, hyper's header-read timeout runs from
//!   the accept and from the end of each response, so it also bounds keep-alive idleness.
//!
//! Closing a connection from outside its task: [`Tracked`] reads end of stream and writes fail
//! once it is marked closing, and its task is woken, so hyper and tonic close it themselves.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use super::config::ConnLimits;
use super::metrics::Metrics;

/// Time given to open connections to finish their requests at shutdown.
const DRAIN: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Entry {
    /// Milliseconds since [`Connections::origin`] of the last read or write.
    last_io_ms: AtomicU64,
    /// Requests in progress.
    busy: AtomicUsize,
    closing: AtomicBool,
    waker: AtomicWaker,
}

impl Entry {
    fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The open connections of all listeners.
#[derive(Debug)]
pub struct Connections {
    limits: ConnLimits,
    permits: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
    next_id: AtomicU64,
    origin: Instant,
    metrics: Arc<Metrics>,
}

impl Connections {
    pub fn new(limits: ConnLimits, metrics: Arc<Metrics>) -> Arc<Connections> {
        Arc::new(Connections {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            origin: Instant::now(),
            metrics,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Closes the connection idle longest; false when every connection is busy.
    fn make_room(&self) -> bool {
        let open = self.open.lock();
        let victim = open
            .values()
            .filter(|e| e.busy.load(Ordering::Acquire) == 0 && !e.closing.load(Ordering::Acquire))
            .min_by_key(|e| e.last_io_ms.load(Ordering::Relaxed));
        match victim {
            Some(e) => {
                e.close();
                self.metrics.connection_closed("evicted");
                true
            }
            None => false,
        }
    }

    /// Closes connections idle for `idle_timeout`; returns how many.
    fn sweep(&self) -> usize {
        let limit = u64::try_from(self.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        let mut n = 0;
        for e in self.open.lock().values() {
            if e.busy.load(Ordering::Acquire) == 0
                && !e.closing.load(Ordering::Acquire)
                && now.saturating_sub(e.last_io_ms.load(Ordering::Relaxed)) >= limit
            {
                e.close();
                n += 1;
            }
        }
        for _ in 0..n {
            self.metrics.connection_closed("idle");
        }
        n
    }

    /// Closes connections idle for `idle_timeout`, checked a few times per timeout, until
    /// `stop`.
    pub async fn sweep_until(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every =
            (self.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => { self.sweep(); }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// The next connection of `listener`, once a permit is free.
    pub async fn accept(self: &Arc<Self>, listener: &TcpListener) -> Tracked {
        loop {
            let (io, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: let connections end, then try again.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => self.wait_for_permit().await,
            };
            let _ = io.set_nodelay(true);
            let entry = Arc::new(Entry::default());
            entry.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.open.lock().insert(id, Arc::clone(&entry));
            self.metrics.connections_open.inc();
            return Tracked {
                io,
                peer,
                id,
                entry,
                conns: Arc::clone(self),
                _permit: permit,
            };
        }
    }

    async fn wait_for_permit(&self) -> OwnedSemaphorePermit {
        loop {
            self.make_room();
            let wait = Arc::clone(&self.permits).acquire_owned();
            if let Ok(Ok(p)) = tokio::time::timeout(Duration::from_millis(100), wait).await {
                return p;
            }
        }
    }
}

/// An accepted TCP stream counted against the cap; removed from the table when dropped.
#[derive(Debug)]
pub struct Tracked {
    io: TcpStream,
    peer: SocketAddr,
    id: u64,
    entry: Arc<Entry>,
    conns: Arc<Connections>,
    _permit: OwnedSemaphorePermit,
}

impl Tracked {
    fn touch(&self) {
        self.entry
            .last_io_ms
            .store(self.conns.now_ms(), Ordering::Relaxed);
    }

    fn closing(&self, cx: &Context<'_>) -> bool {
        self.entry.waker.register(cx.waker());
        self.entry.closing.load(Ordering::Acquire)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conns.open.lock().remove(&self.id);
        self.conns.metrics.connections_open.dec();
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the server",
    )
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closing(cx) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if r.is_ready() && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closing(cx) {
            return Poll::Ready(Err(closed()));
        }
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.closing(cx) {
            return Poll::Ready(Err(closed()));
        }
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Tracked {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Counts a request in progress on a connection while alive.
struct Busy(Arc<Entry>);

impl Busy {
    fn new(e: &Arc<Entry>) -> Busy {
        e.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(e))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` over HTTP/1.1 on `listener` until `stop`, then lets open connections
/// finish (at most 30 s). `what` names the listener in errors.
pub async fn serve_http(
    listener: TcpListener,
    conns: Arc<Connections>,
    router: Router,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
) -> Result<(), String> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(conns.limits.header_read_timeout)
        .keep_alive(true);
    loop {
        let tracked = tokio::select! {
            t = conns.accept(&listener) => t,
            _ = stop.wait_for(|s| *s) => break,
        };
        let peer = tracked.peer;
        let entry = Arc::clone(&tracked.entry);
        let router = router.clone();
        let body_timeout = conns.limits.header_read_timeout;
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|b| TimeoutBody::new(body_timeout, b));
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::new(&entry);
            let call = router.clone().oneshot(req);
            async move {
                let r = call.await;
                drop(busy);
                r
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(tracked), svc));
        let metrics = Arc::clone(&conns.metrics);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    metrics.connection_closed("header_timeout");
                }
                tracing::debug!(error = %e, listener = what, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = what,
            "connections still open after 30 s at shutdown"
        );
    }
    Ok(())
}

/// The accepted connections of `listener` as a stream, for tonic.
pub fn incoming(
    listener: TcpListener,
    conns: Arc<Connections>,
) -> impl futures_util::Stream<Item = Result<Tracked, io::Error>> {
    futures_util::stream::unfold((listener, conns), |(l, c)| async move {
        let t = c.accept(&l).await;
        Some((Ok(t), (l, c)))
    })
}
