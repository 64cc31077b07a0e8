//! The Spin side of keygate. The domain crate knows nothing of Spin; this
//! crate maps its storage traits onto spin-sdk's key-value store and SQLite
//! connection, and its errors and results onto HTTP responses, so each
//! component is parsing, one domain call and a response.

mod outbound;

pub use outbound::SpinHttpGet;

use futures::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use keygate::Error;
use keygate::error::Problem;
use keygate::store::{KeyValue, Rows, Sql, SqlValue, StoreError};
use keygate::validate::MAX_BODY_BYTES;
use spin_sdk::http::conversions::IntoStatusCode;
use spin_sdk::http::{IncomingRequest, Method, Request, Response};
use spin_sdk::{key_value, sqlite3, variables};

/// The `default` key-value store: the verify index (and the OIDC key-set
/// cache). Opened at once, or on first use ([`SpinKeyValue::lazy_default`]).
pub struct SpinKeyValue(std::cell::OnceCell<key_value::Store>);

impl SpinKeyValue {
    pub fn open_default() -> Result<Self, Error> {
        let kv = Self::lazy_default();
        kv.store().map_err(Error::Storage)?;
        Ok(kv)
    }

    /// Opens the store only when a call needs it: a management call that
    /// fails authentication without touching it never opens it.
    pub fn lazy_default() -> Self {
        Self(std::cell::OnceCell::new())
    }

    fn store(&self) -> Result<&key_value::Store, StoreError> {
        if let Some(store) = self.0.get() {
            return Ok(store);
        }
        let store = key_value::Store::open_default()
            .map_err(|e| StoreError::new(format!("key-value open: {e}")))?;
        Ok(self.0.get_or_init(|| store))
    }
}

impl KeyValue for SpinKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store()?
            .get(key)
            .map_err(|e| StoreError::new(format!("key-value get: {e}")))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store()?
            .set(key, value)
            .map_err(|e| StoreError::new(format!("key-value set: {e}")))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store()?
            .delete(key)
            .map_err(|e| StoreError::new(format!("key-value delete: {e}")))
    }
}

/// The `default` SQLite database: the overview and the audit trail.
pub struct SpinSql(sqlite3::Connection);

impl SpinSql {
    pub fn open_default() -> Result<Self, Error> {
        sqlite3::Connection::open_default()
            .map(Self)
            .map_err(|e| Error::Storage(StoreError::new(format!("sqlite open: {e}"))))
    }
}

impl Sql for SpinSql {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let params: Vec<sqlite3::Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Integer(i) => sqlite3::Value::Integer(*i),
                SqlValue::Real(r) => sqlite3::Value::Real(*r),
                SqlValue::Text(t) => sqlite3::Value::Text(t.clone()),
                SqlValue::Blob(b) => sqlite3::Value::Blob(b.clone()),
                SqlValue::Null => sqlite3::Value::Null,
            })
            .collect();
        let result = self
            .0
            .execute(sql, &params)
            .map_err(|e| StoreError::new(format!("sqlite: {e}")))?;
        let rows = result
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v {
                        sqlite3::Value::Integer(i) => SqlValue::Integer(i),
                        sqlite3::Value::Real(r) => SqlValue::Real(r),
                        sqlite3::Value::Text(t) => SqlValue::Text(t),
                        sqlite3::Value::Blob(b) => SqlValue::Blob(b),
                        sqlite3::Value::Null => SqlValue::Null,
                    })
                    .collect()
            })
            .collect();
        Ok(Rows {
            columns: result.columns,
            rows,
        })
    }
}

/// A Spin variable, `None` when unset or empty.
pub fn variable(name: &str) -> Option<String> {
    variables::get(name).ok().filter(|v| !v.is_empty())
}

/// A request header as text (`None` when absent or not UTF-8); `name` an
/// `http::header` constant or a `&str`.
pub fn header(req: &Request, name: impl AsRef<str>) -> Option<&str> {
    req.header(name.as_ref()).and_then(|v| v.as_str())
}

/// spin-sdk's method as `http`'s, which the components match on. spin-sdk's
/// own `From` panics on an extension method that is not an HTTP token; the
/// host parsed the request as HTTP, so one always is, but were it not, the
/// component answers (`405`, as for any method a route does not take)
/// rather than trap: the method becomes the extension `INVALID`.
pub fn http_method(method: Method) -> http::Method {
    match method {
        Method::Other(m) => http::Method::from_bytes(m.as_bytes())
            .unwrap_or_else(|_| http::Method::from_bytes(b"INVALID").expect("a token")),
        m => m.into(),
    }
}

/// A request as the host gives it: method and headers (one call each), the
/// body when asked for. spin-sdk's `Request` also builds a lower-cased header
/// map and the full URI; verify, on every call an automation makes, needs
/// neither.
pub struct LeanRequest {
    method: http::Method,
    headers: Vec<(String, Vec<u8>)>,
    /// Until the body is taken.
    incoming: Option<IncomingRequest>,
}

impl LeanRequest {
    pub fn new(incoming: IncomingRequest) -> Self {
        Self {
            method: http_method(incoming.method()),
            headers: incoming.headers().entries(),
            incoming: Some(incoming),
        }
    }

    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// A header as text (`None` when absent or not UTF-8); of repeated
    /// headers the last, as with `Request`. `name` an `http::header`
    /// constant or a `&str`.
    pub fn header(&self, name: impl AsRef<str>) -> Option<&str> {
        let name = name.as_ref();
        self.headers
            .iter()
            .rfind(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body, read with [`read_body`]'s limit; empty once taken.
    pub async fn take_body(&mut self) -> Result<Vec<u8>, Error> {
        let Some(incoming) = self.incoming.take() else {
            return Ok(Vec::new());
        };
        read_body(incoming).await
    }
}

/// The request as spin-sdk's [`Request`], its body read by [`read_body`].
/// Components take an `IncomingRequest` and call this instead of letting
/// spin-sdk convert it: its conversion reads any body whole into memory.
pub async fn read_request(incoming: IncomingRequest) -> Result<Request, Error> {
    let method = incoming.method();
    let uri = incoming.uri();
    let headers = incoming.headers();
    let body = read_body(incoming).await?;
    Ok(Request::builder()
        .method(method)
        .uri(uri)
        .headers(headers)
        .body(body)
        .build())
}

/// A request body, never more than [`MAX_BODY_BYTES`] of it: a declared
/// `Content-Length` above the limit is refused before a byte is read, and a
/// body without one (chunked) is read as a stream and refused as soon as it
/// passes the limit. Either way `413 payload_too_large`, and the component's
/// memory stays bounded whatever the caller sends; the host closes the
/// connection rather than read the rest.
pub async fn read_body(incoming: IncomingRequest) -> Result<Vec<u8>, Error> {
    let declared = incoming
        .headers()
        .get(CONTENT_LENGTH.as_str())
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Error::PayloadTooLarge);
    }
    let unreadable = || Error::InvalidRequest("the request body could not be read".into());
    let mut stream = std::pin::pin!(incoming.into_body_stream());
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Error::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error as an RFC 9457 problem response — the one place errors become HTTP.
pub fn problem(error: &Error) -> Response {
    if let Error::Storage(e) = error {
        // The detail sent to the caller is generic; the cause goes to the log.
        eprintln!("keygate: storage failure: {}", e.message());
    }
    problem_response(&error.to_problem())
}

/// A problem as a response: its status, `Content-Type`, its headers, its JSON.
/// For problems a component builds itself rather than from an [`Error`].
pub fn problem_response(problem: &Problem) -> Response {
    let mut response = Response::builder();
    response
        .status(problem.status)
        .header(CONTENT_TYPE.as_str(), Problem::CONTENT_TYPE);
    for (name, value) in &problem.headers {
        response.header(*name, value.as_str());
    }
    response.body(problem.to_json()).build()
}

/// A JSON response, serialised straight from `body` (no `Value` in between).
/// `status` an `http::StatusCode` (or a `u16`).
pub fn json(status: impl IntoStatusCode, body: &impl serde::Serialize) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE.as_str(), "application/json")
        .header(CACHE_CONTROL.as_str(), "no-store")
        .body(serde_json::to_vec(body).expect("serialisable"))
        .build()
}
