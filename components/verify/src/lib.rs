//! `GET|POST /api/verify`: is this API key good, and whose is it?
//!
//! The hot path: parse (a malformed key is refused before any store is
//! opened), one key-value read, one audit insert.

use keygate::validate::check_json_body;
use keygate::verify::VerifyRequest;
use keygate::{ApiKey, Error, KeyService, timestamp};
use keygate_spin::{SpinKeyValue, SpinSql, header, json, problem};
use serde_json::to_value;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let result = match req.method() {
        Method::Get | Method::Post => verify(&req),
        _ => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
    };
    result.unwrap_or_else(|e| problem(&e))
}

fn verify(req: &Request) -> Result<Response, Error> {
    let body = match req.body() {
        b if b.iter().all(u8::is_ascii_whitespace) => None,
        b => {
            check_json_body(header(req, "content-type"), b.len())?;
            Some(b)
        }
    };
    let mut call = VerifyRequest::from_http(|name| header(req, name).map(str::to_owned), body)?;
    if call.context.source_ip.is_none() {
        // No gateway in between: the caller is the automation itself.
        call.context.source_ip = header(req, "spin-client-addr").and_then(client_ip);
    }
    let presented = call.key().ok_or(Error::MissingKey)?;
    ApiKey::parse(presented).map_err(Error::MalformedKey)?;

    let kv = SpinKeyValue::open_default()?;
    let sql = SpinSql::open_default()?;
    let verified =
        KeyService::new(&kv, &sql).verify(Some(presented), &call.context, timestamp::now())?;

    let mut response = json(200, &to_value(&verified).expect("serialisable"));
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
