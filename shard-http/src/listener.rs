//! The sockets of the API and the web UI, bounded: at most [`MAX_CONNECTIONS`] open at once
//! on each (more wait in the kernel's backlog), and a connection that moves no byte either
//! way for [`IDLE`] is closed (an hour: a web download says nothing while its file is
//! restored). Without this, another local user (or anyone who can reach a public UI) could
//! hold connections open until the node's descriptors ran out, and then neither peers nor
//! the store could open anything. Server-sent events keep their
//! connections alive with their own keep-alive messages.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use shard_node::node::Node;

/// Connections open at once on one listener.
pub const MAX_CONNECTIONS: usize = 128;
/// A connection with no byte read or written for this long is closed.
pub const IDLE: Duration = Duration::from_secs(3600);

/// Serves `router` on `listener`, bounded as the module says, until `node` shuts down;
/// `what` names the server in the log if it stops on an error.
pub(crate) async fn serve(listener: TcpListener, router: axum::Router, node: &Node, what: &str) {
    let mut stop = node.shutdown_signal();
    let listener = Bounded::new(listener, MAX_CONNECTIONS, IDLE);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!("{what} stopped: {e}");
    }
}

/// How long a request (other than an upload) may take to send its body.
pub const BODY_TIME: Duration = Duration::from_secs(30);
/// The largest body read whole after authentication (every request but an upload is a small
/// form or JSON; a put may list many paths).
pub const BODY_LIMIT: usize = 2 << 20;
/// The largest body read whole before authentication (a login, a sign-up).
pub const OPEN_BODY_LIMIT: usize = 64 << 10;

/// Reads a request's body whole, within [`BODY_TIME`] and up to [`BODY_LIMIT`] bytes, before
/// the handler looks at it: a client that drips its body would otherwise hold one of the
/// listener's connections for up to [`IDLE`]. Runs after authentication, so a stranger
/// cannot make the node buffer 2 MiB per connection. Uploads stream on: their pace is the
/// put's.
pub(crate) async fn bodies_in_time(request: Request, next: Next) -> Response {
    read_in_time(request, next, BODY_LIMIT).await
}

/// [`bodies_in_time`] for the routes anyone may call (login, sign-up): at most
/// [`OPEN_BODY_LIMIT`] bytes.
pub(crate) async fn open_bodies_in_time(request: Request, next: Next) -> Response {
    read_in_time(request, next, OPEN_BODY_LIMIT).await
}

async fn read_in_time(request: Request, next: Next, limit: usize) -> Response {
    if request.uri().path() == "/v1/upload" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(BODY_TIME, axum::body::to_bytes(body, limit)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a request body here is at most {limit} bytes (uploads aside)"),
                "send less at once",
            )
            .into_response();
        }
        Err(_) => {
            tracing::warn!(
                "closed a request to {} that took over {} s to send its body",
                parts.uri.path(),
                BODY_TIME.as_secs()
            );
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request's body did not arrive within {} s",
                    BODY_TIME.as_secs()
                ),
                "check the connection and try again",
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// A listener that hands out at most `max` connections at a time.
pub(crate) struct Bounded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl Bounded {
    pub(crate) fn new(inner: TcpListener, max: usize, idle: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            idle,
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        let permit = loop {
            // The semaphore is never closed; should it be, wait rather than spin.
            match self.permits.clone().acquire_owned().await {
                Ok(permit) => break permit,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let guarded = Guarded {
            stream,
            _permit: permit,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
        };
        (guarded, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: holds its place until dropped, and fails with `TimedOut` once it
/// has been idle too long.
pub(crate) struct Guarded {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn moved(&mut self) {
        let next = Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    fn idle_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_out(cx),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(|n| *n > 0) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_out(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if result.as_ref().is_ok_and(|n| *n > 0) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_out(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_beyond_the_bound_wait_and_idle_ones_are_closed() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut bounded = Bounded::new(inner, 2, Duration::from_millis(200));
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let _c3 = TcpStream::connect(addr).await.unwrap();
        let (mut first, _) = bounded.accept().await;
        let (_second, _) = bounded.accept().await;
        // The third waits for a place...
        assert!(
            tokio::time::timeout(Duration::from_millis(100), bounded.accept())
                .await
                .is_err()
        );
        // ...which the first gives back once idle too long.
        let mut buf = [0u8; 1];
        let idle = first.read(&mut buf).await.unwrap_err();
        assert_eq!(idle.kind(), io::ErrorKind::TimedOut);
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_secs(2), bounded.accept())
                .await
                .is_ok()
        );
    }

    /// A body that sends a byte and then nothing (a client that drips its login).
    fn dripping() -> axum::body::Body {
        let first = futures_util::stream::iter([Ok::<_, io::Error>(bytes::Bytes::from("{"))]);
        axum::body::Body::from_stream(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_refused_and_an_upload_is_left_to_stream() {
        use tower::ServiceExt;
        let router = axum::Router::new()
            .route(
                "/ui/login",
                axum::routing::post(|body: String| async move { body }),
            )
            .route("/v1/upload", axum::routing::post(|| async { "streaming" }))
            .layer(axum::middleware::from_fn(bodies_in_time));
        let request = |path: &str, body| {
            Request::builder()
                .method("POST")
                .uri(path)
                .body(body)
                .unwrap()
        };
        let started = tokio::time::Instant::now();
        let slow = router
            .clone()
            .oneshot(request("/ui/login", dripping()))
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() >= BODY_TIME);
        let whole = router
            .clone()
            .oneshot(request("/ui/login", axum::body::Body::from("{\"user\":1}")))
            .await
            .unwrap();
        assert_eq!(whole.status(), StatusCode::OK);
        let big = router
            .clone()
            .oneshot(request(
                "/ui/login",
                axum::body::Body::from(vec![b' '; BODY_LIMIT + 1]),
            ))
            .await
            .unwrap();
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // The upload handler runs at once: its body is the put's to pace.
        let upload = router
            .oneshot(request("/v1/upload", dripping()))
            .await
            .unwrap();
        assert_eq!(upload.status(), StatusCode::OK);
    }
}
