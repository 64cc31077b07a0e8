//! `GET|POST /api/verify`: is this API key good, and whose is it?
//!
//! The hot path: parse (a malformed key is refused before any store is
//! opened), one key-value read, one audit insert. The request is read as
//! [`LeanRequest`], without spin-sdk's header map and URI.

use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use keygate::validate::check_json_body;
use keygate::verify::VerifyRequest;
use keygate::{ApiKey, Error, KeyService, timestamp};
use keygate_spin::{LeanRequest, SpinKeyValue, SpinSql, json, problem};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let mut req = LeanRequest::new(req);
    let result = match *req.method() {
        Method::GET | Method::POST => verify(&mut req).await,
        _ => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
    };
    result.unwrap_or_else(|e| problem(&e))
}

async fn verify(req: &mut LeanRequest) -> Result<Response, Error> {
    // The contract takes a key from the body of a POST only. A GET's body is
    // still read (and ignored): one left unread makes the server close the
    // connection, and a client still sending it sees a broken pipe.
    let body = req.take_body().await?;
    let body = match *req.method() {
        Method::POST => body,
        _ => Vec::new(),
    };
    let body = match body {
        b if b.iter().all(u8::is_ascii_whitespace) => None,
        b => {
            check_json_body(req.header(CONTENT_TYPE), b.len())?;
            Some(b)
        }
    };
    let mut call =
        VerifyRequest::from_http(|name| req.header(name).map(str::to_owned), body.as_deref())?;
    ApiKey::parse(call.key().ok_or(Error::MissingKey)?).map_err(Error::MalformedKey)?;
    if call.context.source_ip.is_none() {
        // No gateway in between: the caller is the automation itself.
        call.context.source_ip = req.header("spin-client-addr").and_then(client_ip);
    }

    let kv = SpinKeyValue::open_default()?;
    let sql = SpinSql::open_default()?;
    let verified =
        KeyService::new(&kv, &sql).verify(call.key(), &call.context, timestamp::now())?;

    let mut response = json(StatusCode::OK, &verified);
    response.set_header("x-key-id", verified.key_id.as_str());
    response.set_header("x-user-id", verified.user_id.as_str());
    Ok(response)
}

/// The IP of `spin-client-addr` (`127.0.0.1:5000`, `[::1]:5000`).
fn client_ip(addr: &str) -> Option<String> {
    addr.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_string())
}
