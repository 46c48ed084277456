//! Accepted gRPC connections, held to limits (issue #18, F2): a cap on
//! connections open at once, a first-frame timeout, and an idle timeout for
//! connections with no open stream. Without them a client that opens
//! connections and sends nothing kept each one forever, and about a
//! thousand of them under the usual 1,024 open-files limit made every RPC
//! fail, with nothing in the log.
//!
//! How: the accept loop takes a permit per connection (none left: the new
//! connection is closed at once, logged and counted) and wraps the socket in
//! [`Guarded`], whose reads fail with `TimedOut` when the deadline of the
//! moment has passed — hyper then drops the connection. Streams are counted
//! per connection by [`CountStreams`], a layer in front of every service
//! that holds a guard in each response body until it is dropped, so a
//! Subscribe that runs for hours keeps its connection open however quiet
//! it is. The server's HTTP/2 pings (every 30 s) wake an idle connection's
//! reads, so the idle deadline is noticed within a ping interval at worst.
//!
//! Time: the deadlines are read from tokio's clock (`tokio::time::Instant`),
//! the clock the timer that enforces them runs on, not from
//! `std::time::Instant`. Outside tests the two are the same clock; under
//! paused tokio time (the tests below) both move together, so a test steps
//! to a millisecond short of a timeout and to it without sleeping. Not
//! `live::Clock`: its `ManualClock` cannot wake a tokio `Sleep`, and the
//! timeouts here are nothing but that sleep.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::telemetry::metrics;
use crate::telemetry::ratelimit::RateLimitedLog;

/// Bytes a connection must send before the first-frame timeout: the HTTP/2
/// client preface (a TLS ClientHello is longer), so a client trickling a
/// byte at a time does not count as having started.
const FIRST_FRAME_BYTES: usize = 24;

/// The connection limits of `[limits]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub first_frame: Duration,
    pub idle: Duration,
}

/// Per connection: its open streams and since when it has had none.
struct ConnState {
    streams: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// The connection's reader, woken when its last stream ends so that
    /// the idle deadline is armed at once rather than at the next ping.
    reader: Mutex<Option<std::task::Waker>>,
}

/// Connections by peer address (unique among open connections), so that
/// the stream-counting layer finds the connection of a request.
#[derive(Default)]
pub struct Conns {
    by_peer: Mutex<HashMap<SocketAddr, Arc<ConnState>>>,
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<ConnState>>> {
        self.by_peer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stream_opened(&self, peer: Option<SocketAddr>) -> Option<StreamGuard> {
        let state = self.lock().get(&peer?)?.clone();
        state.streams.fetch_add(1, Ordering::Relaxed);
        Some(StreamGuard(state))
    }
}

/// An open stream of a connection; dropped with the response body.
struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.streams.fetch_sub(1, Ordering::Relaxed) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            if let Some(reader) = self
                .0
                .reader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                reader.wake();
            }
        }
    }
}

/// An accepted connection under the limits.
pub struct Guarded {
    socket: TcpStream,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    state: Arc<ConnState>,
    conns: Arc<Conns>,
    limits: ConnLimits,
    accepted: Instant,
    /// Bytes read so far, up to [`FIRST_FRAME_BYTES`].
    started: usize,
    timer: Pin<Box<tokio::time::Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    /// The deadline in force: the first frame's, or the idle one when the
    /// connection has no stream open; `None` while a stream is open.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        if self.started < FIRST_FRAME_BYTES {
            return Some((self.accepted + self.limits.first_frame, "first frame"));
        }
        if self.state.streams.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = *self
            .state
            .idle_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Some((since + self.limits.idle, "idle"))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            self.conns.lock().remove(&peer);
        }
        ::metrics::gauge!(metrics::CONNECTIONS).decrement(1.0);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.socket).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.started = (this.started + read).min(FIRST_FRAME_BYTES);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, why)) = this.deadline() else {
                    *this.state.reader.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(cx.waker().clone());
                    return Poll::Pending;
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        ::metrics::counter!(metrics::CONNECTIONS_TIMED_OUT, "reason" => why)
                            .increment(1);
                        tracing::debug!(peer = ?this.peer, why, "connection closed: timed out");
                        Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("{why} timeout"),
                        )))
                    }
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }
}

impl Connected for Guarded {
    /// The plain TCP info, so `Request::remote_addr` works as before.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local,
            remote_addr: self.peer,
        }
    }
}

/// Accepts connections under `limits`, as a stream for tonic.
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
    conns: Arc<Conns>,
) -> impl tokio_stream::Stream<Item = std::io::Result<Guarded>> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = RateLimitedLog::new(Duration::from_secs(10));
    async_stream(listener, move |socket: TcpStream| {
        let peer = socket.peer_addr().ok();
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ::metrics::counter!(metrics::CONNECTIONS_REFUSED).increment(1);
            if let Some(suppressed) = refusals.allow(None) {
                tracing::warn!(
                    ?peer,
                    max_connections = limits.max_connections,
                    suppressed,
                    "connection refused: limits.max_connections reached"
                );
            }
            return None; // dropping the socket closes it
        };
        // Transcript replies are small writes: no Nagle delay (see `no_delay`).
        let _ = socket.set_nodelay(true);
        let now = Instant::now();
        let state = Arc::new(ConnState {
            streams: AtomicUsize::new(0),
            idle_since: Mutex::new(now),
            reader: Mutex::new(None),
        });
        if let Some(peer) = peer {
            conns.lock().insert(peer, state.clone());
        }
        ::metrics::gauge!(metrics::CONNECTIONS).increment(1.0);
        Some(Guarded {
            local: socket.local_addr().ok(),
            socket,
            peer,
            state,
            conns: conns.clone(),
            limits,
            accepted: now,
            started: 0,
            timer: Box::pin(tokio::time::sleep_until(now + limits.first_frame)),
            _permit: permit,
        })
    })
}

/// The accept loop as a stream: `admit` turns a socket into a connection,
/// or refuses it (`None`). Accept errors (out of file descriptors, most
/// often) are logged, rate-limited, and waited out briefly instead of
/// ending the server.
fn async_stream<F>(
    listener: TcpListener,
    mut admit: F,
) -> impl tokio_stream::Stream<Item = std::io::Result<Guarded>>
where
    F: FnMut(TcpStream) -> Option<Guarded> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let errors = RateLimitedLog::new(Duration::from_secs(10));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => {
                        if let Some(conn) = admit(socket) {
                            if tx.send(Ok(conn)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        if let Some(suppressed) = errors.allow(None) {
                            tracing::warn!(%error, suppressed, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A layer in front of every service: counts each request as an open
/// stream of its connection until its response body is dropped.
#[derive(Clone)]
pub struct CountStreamsLayer(pub Arc<Conns>);

impl<S> tower_layer::Layer<S> for CountStreamsLayer {
    type Service = CountStreams<S>;

    fn layer(&self, inner: S) -> CountStreams<S> {
        CountStreams {
            inner,
            conns: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CountStreams<S> {
    inner: S,
    conns: Arc<Conns>,
}

type HttpRequest = tonic::codegen::http::Request<tonic::body::Body>;
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

impl<S, B> tonic::codegen::Service<HttpRequest> for CountStreams<S>
where
    S: tonic::codegen::Service<HttpRequest, Response = tonic::codegen::http::Response<B>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(|info| info.remote_addr)
            .or_else(|| {
                request
                    .extensions()
                    .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(|info| info.get_ref().remote_addr)
            });
        let guard = self.conns.stream_opened(peer);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                tonic::body::Body::new(CountedBody {
                    body: Box::pin(body),
                    _guard: guard,
                })
            }))
        })
    }
}

/// A response body that keeps its stream counted until it is dropped.
struct CountedBody<B> {
    body: Pin<Box<B>>,
    _guard: Option<StreamGuard>,
}

impl<B: http_body::Body> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    //! The timeouts on paused tokio time: a timeout shows as the time the
    //! connection's read fails, which the runtime reaches by jumping to its
    //! next timer (paused time moves only when every task waits), so
    //! "closed at the timeout" is an equality, and no test sleeps.

    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        max_connections: 4,
        first_frame: Duration::from_secs(10),
        idle: Duration::from_secs(300),
    };
    const MS: Duration = Duration::from_millis(1);

    /// A connection accepted under [`LIMITS`], and the client's end of it.
    async fn accept(conns: &Arc<Conns>) -> (Guarded, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut accepted = Box::pin(incoming(listener, LIMITS, conns.clone()));
        let client = TcpStream::connect(address).await.unwrap();
        let conn = accepted.next().await.unwrap().unwrap();
        (conn, client)
    }

    /// The client sends `n` bytes and the connection reads them. Between
    /// polls the runtime yields instead of parking, so paused time stands
    /// still however long the bytes take to arrive.
    async fn send(conn: &mut Guarded, client: &mut TcpStream, n: usize) {
        client.write_all(&vec![0; n]).await.unwrap();
        let mut got = 0;
        let mut bytes = [0u8; 64];
        while got < n {
            let read = poll_fn(|cx| {
                let mut buf = ReadBuf::new(&mut bytes);
                Poll::Ready(match Pin::new(&mut *conn).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => Some(buf.filled().len()),
                    Poll::Ready(Err(e)) => panic!("read failed: {e}"),
                    Poll::Pending => None,
                })
            })
            .await;
            match read {
                Some(0) => panic!("the client closed"),
                Some(read) => got += read,
                None => tokio::task::yield_now().await,
            }
        }
    }

    /// The connection's read still waits after `d` (the read is then
    /// dropped, as a poll hyper makes and repeats later).
    async fn still_open_after(conn: &mut Guarded, d: Duration) -> bool {
        let mut bytes = [0u8; 64];
        tokio::time::timeout(d, conn.read(&mut bytes))
            .await
            .is_err()
    }

    /// Waits for the connection's read to fail; the error and when.
    async fn closed(conn: &mut Guarded) -> (std::io::Error, Instant) {
        let mut bytes = [0u8; 64];
        let error = conn
            .read(&mut bytes)
            .await
            .expect_err("a timeout fails the read");
        (error, Instant::now())
    }

    /// What counts as the first frame: fewer than [`FIRST_FRAME_BYTES`]
    /// (a client trickling bytes) is closed at the first-frame timeout
    /// like one that sends nothing; the preface's 24 bytes pass it.
    #[tokio::test(start_paused = true)]
    async fn a_connection_that_has_not_sent_its_first_frame_is_closed_at_the_first_frame_timeout() {
        for (name, sent) in [
            ("nothing", 0),
            ("one byte", 1),
            ("one byte short", FIRST_FRAME_BYTES - 1),
        ] {
            let conns = Arc::new(Conns::default());
            let (mut conn, mut client) = accept(&conns).await;
            let accepted = Instant::now();
            send(&mut conn, &mut client, sent).await;
            assert!(
                still_open_after(&mut conn, LIMITS.first_frame - MS).await,
                "{name}: open a millisecond before the timeout"
            );
            let (error, at) = closed(&mut conn).await;
            assert_eq!(at - accepted, LIMITS.first_frame, "{name}");
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{name}");
            assert_eq!(error.to_string(), "first frame timeout", "{name}");
            // Dropped, as hyper drops it: the client sees the end, and the
            // connection leaves the table.
            drop(conn);
            let mut rest = Vec::new();
            assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0, "{name}");
            assert!(conns.lock().is_empty(), "{name}");
        }
    }

    /// Started (its first frame sent), with no stream open: closed at the
    /// idle timeout, counted from when it was accepted.
    #[tokio::test(start_paused = true)]
    async fn a_started_connection_without_a_stream_is_closed_at_the_idle_timeout() {
        let conns = Arc::new(Conns::default());
        let (mut conn, mut client) = accept(&conns).await;
        let accepted = Instant::now();
        send(&mut conn, &mut client, FIRST_FRAME_BYTES).await;
        assert!(still_open_after(&mut conn, LIMITS.first_frame).await);
        assert!(still_open_after(&mut conn, LIMITS.idle - LIMITS.first_frame - MS).await);
        let (error, at) = closed(&mut conn).await;
        assert_eq!(at - accepted, LIMITS.idle);
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(error.to_string(), "idle timeout");
    }

    /// A stream open (a quiet Subscribe, say) keeps its connection however
    /// long it lasts; when its last stream ends, the connection is idle
    /// from then and closed at the idle timeout after it.
    #[tokio::test(start_paused = true)]
    async fn a_connection_with_a_stream_open_is_not_closed_until_idle_after_it() {
        let conns = Arc::new(Conns::default());
        let (mut conn, mut client) = accept(&conns).await;
        send(&mut conn, &mut client, FIRST_FRAME_BYTES).await;
        let stream = conns
            .stream_opened(conn.peer)
            .expect("the connection is known");
        assert!(
            still_open_after(&mut conn, LIMITS.idle * 10).await,
            "open through ten idle timeouts"
        );
        // Bytes on the open stream change nothing.
        send(&mut conn, &mut client, 100).await;
        assert!(still_open_after(&mut conn, LIMITS.idle * 10).await);

        drop(stream);
        let ended = Instant::now();
        assert!(still_open_after(&mut conn, LIMITS.idle - MS).await);
        let (error, at) = closed(&mut conn).await;
        assert_eq!(at - ended, LIMITS.idle);
        assert_eq!(error.to_string(), "idle timeout");
    }
}
