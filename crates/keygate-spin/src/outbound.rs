//! Outbound `GET` to the identity provider (discovery and JWKS), straight on
//! `wasi:http/outgoing-handler`, for the time limits spin-sdk's `send` has no
//! way to set: a provider that does not answer must cost a management call
//! seconds, not hang it. The host allows only `allowed_outbound_hosts`.

use std::future::{Future, ready};
use std::time::Duration;

use http::StatusCode;
use http::header::ACCEPT;
use keygate::oidc::HttpGet;
use keygate::oidc::jwks::MAX_DOCUMENT_BYTES;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, Method, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// Per phase: connecting, the first response byte, and between two bytes.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET` through the host. Each request blocks this (single-threaded)
/// component until answered; the future it returns is ready.
pub struct SpinHttpGet;

impl HttpGet for SpinHttpGet {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>> {
        ready(get(url))
    }
}

fn get(url: &str) -> Result<Vec<u8>, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("{url}: not an http(s) URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    headers
        .append(ACCEPT.as_str(), b"application/json".as_ref())
        .map_err(|e| format!("{url}: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let set = request
        .set_method(&Method::Get)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(path)));
    set.map_err(|()| format!("{url}: not a valid request target"))?;
    let nanos = TIMEOUT.as_nanos() as u64;
    let options = RequestOptions::new();
    // A host that does not support a limit refuses to set it; it then has its own.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let pending =
        outgoing_handler::handle(request, Some(options)).map_err(|e| describe(url, &e))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| format!("{url}: no response"))?
        .map_err(|()| format!("{url}: response already taken"))?
        .map_err(|e| describe(url, &e))?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(format!("{url} answered {status}"));
    }
    let body = response.consume().map_err(|()| format!("{url}: no body"))?;
    let stream = body
        .stream()
        .map_err(|()| format!("{url}: no body stream"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                    return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => {
                return Err(format!("{url}: the response body was cut off"));
            }
        }
    }
    Ok(bytes)
}

/// The host's error, in words for the log and the `503` detail.
fn describe(url: &str, error: &ErrorCode) -> String {
    match error {
        ErrorCode::HttpRequestDenied => format!(
            "{url}: not allowed by the component's allowed_outbound_hosts (set oidc_origin \
             and oidc_jwks_origin for sign-in, ssf_origin for Shared Signals)"
        ),
        ErrorCode::ConnectionRefused => format!("{url}: connection refused"),
        ErrorCode::ConnectionTimeout | ErrorCode::HttpResponseTimeout => {
            format!("{url}: timed out")
        }
        ErrorCode::DnsError(_) => format!("{url}: host name not found"),
        other => format!("{url}: {other:?}"),
    }
}
