//! What bounds one request's cost in the runner, beside the components' own
//! limits: `--request-timeout` (a guest still running is ended; a client
//! still sending its body is too slow) and `--max-request-body` (a larger
//! declared body is refused before any component runs). Real Spin has
//! neither for WASIp2 components (README, "Known differences on Spin").

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A request still running at `--request-timeout`: its guest is ended, and
/// it is answered with a problem body — `408` when the client had not yet
/// sent its whole body (a slow client), else `500` (a guest that ran too
/// long; a trap keeps Spin's plain `500`).
#[derive(Debug)]
pub struct RequestTimedOut {
    pub limit: Duration,
    pub body_done: bool,
}

impl std::fmt::Display for RequestTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = if self.body_done {
            ""
        } else {
            ", its body still arriving"
        };
        write!(
            f,
            "the request ran past --request-timeout ({} s){waiting}",
            self.limit.as_secs_f64()
        )
    }
}

impl std::error::Error for RequestTimedOut {}

impl RequestTimedOut {
    pub fn problem(&self) -> Response<HyperOutgoingBody> {
        let secs = self.limit.as_secs_f64();
        if self.body_done {
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                &format!("the request took longer than {secs} s"),
                false,
            )
        } else {
            // The rest of the body is not wanted: end the connection.
            problem(
                StatusCode::REQUEST_TIMEOUT,
                None,
                &format!("the request body did not arrive within {secs} s"),
                true,
            )
        }
    }
}

/// `413` from the runner itself (`--max-request-body`), in the contract's
/// words, the connection closed rather than the body read.
pub fn body_too_large(limit: u64) -> Response<HyperOutgoingBody> {
    problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("payload_too_large"),
        &format!("the body is larger than the runner's --max-request-body ({limit} bytes)"),
        true,
    )
}

/// An RFC 9457 problem answer from the runner.
fn problem(
    status: StatusCode,
    code: Option<&str>,
    detail: &str,
    close: bool,
) -> Response<HyperOutgoingBody> {
    let mut body = serde_json::json!({
        "detail": detail,
        "status": status.as_u16(),
        "title": status.canonical_reason().unwrap_or_default(),
        "type": "about:blank",
    });
    if let Some(code) = code {
        body["code"] = code.into();
    }
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been received in full.
pub struct WatchedBody<B> {
    inner: B,
    done: Arc<AtomicBool>,
}

impl<B: Body + Unpin> WatchedBody<B> {
    pub fn new(inner: B, done: Arc<AtomicBool>) -> Self {
        if inner.is_end_stream() {
            done.store(true, Ordering::SeqCst);
        }
        Self { inner, done }
    }
}

impl<B: Body + Unpin> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
