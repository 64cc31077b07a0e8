//! A database on a libSQL server (`type = "libsql"`, e.g. sqld), spoken to
//! with Hrana over HTTP: each statement is one `POST {url}/v2/pipeline`
//! with a JSON body.
//!
//! Handwritten on hyper and serde_json instead of the `libsql` crate real
//! Spin uses: that crate brings its own hyper 0.14, a TLS stack, a SQL
//! parser and SQLite itself, for the one request type needed here.
//!
//! What a component sees follows Spin's client (`libsql` 0.5 remote):
//! - One Hrana stream (one connection on the server) per guest connection:
//!   the baton the server returns is sent with the handle's next statement,
//!   so a `BEGIN` … `COMMIT` and any per-connection state stay on it, and
//!   the stream is closed (in the background) when the guest drops the
//!   handle. libsql 0.5 runs every statement through a v3 cursor and never
//!   closes the stream in between either.
//! - `changes()` and `last_insert_rowid()` are 0: libsql 0.5 records both
//!   only for `execute`, and Spin runs every statement as a query.
//! - Errors are `io` with libsql's wording, so a component's checks for
//!   "database is locked" or "unsupported statement" (sqld's word for a
//!   `PRAGMA` it keeps to itself) see the same text on both. A statement the
//!   server refused, a failed request, an HTTP error status:
//!
//! ```text
//! Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) `SQLite error: database is locked```
//! Hrana: `http error: `client error (Connect): tcp connect error: Connection refused (os error 111)``
//! Hrana: `api error: `status=400 Bad Request, body={"message":"…","code":"STREAM_EXPIRED"}``
//! ```
//!
//! - Like libsql 0.5, a `PRAGMA` its parser does not allow (a setting given a
//!   value, such as `synchronous = NORMAL`, or one it does not know) is
//!   refused here with `unsupported statement`, without a round trip
//!   ([`refused_by_the_client`]). Other statements go to the server, which
//!   refuses what it does not run in its own words.
//!
//! One runner optimisation: a single HTTP client per database keeps its
//! connections to the server alive between requests, where Spin builds a new
//! client (with TLS roots) for every `Connection::open`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use super::{BoxFuture, Database, DbConnection, QueryOutput, SqlValue};

/// A libSQL server: where its pipeline endpoint is and how to reach it.
pub struct LibSqlDatabase {
    server: Arc<Server>,
}

struct Server {
    /// Keeps connections to the server open between requests (HTTP/1.1).
    client: Client<HttpConnector, Full<Bytes>>,
    /// `{url}/v2/pipeline`.
    pipeline: Uri,
    /// `Bearer <token>`, marked sensitive.
    authorization: HeaderValue,
}

impl LibSqlDatabase {
    /// Checks the URL and token; connects only when a statement runs, as
    /// Spin's client does.
    pub fn open(url: &str, token: &str) -> Result<Self> {
        let pipeline = pipeline_uri(url)?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token cannot be sent in an HTTP header")?;
        authorization.set_sensitive(true);
        let mut connector = HttpConnector::new();
        // One small request per statement: no Nagle delay.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            server: Arc::new(Server {
                client,
                pipeline,
                authorization,
            }),
        })
    }
}

/// `{base}/v2/pipeline`, any query string kept at the end (as libsql does).
fn pipeline_uri(base: &str) -> Result<Uri> {
    let (base, query) = base.split_at(base.find('?').unwrap_or(base.len()));
    let uri: Uri = format!("{}/v2/pipeline{query}", base.trim_end_matches('/'))
        .parse()
        .with_context(|| format!("invalid libSQL URL {base:?}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        bail!("libSQL URL {base:?}: keygate-host needs http://host[:port]");
    }
    Ok(uri)
}

impl Database for LibSqlDatabase {
    fn connect(&self) -> Result<Box<dyn DbConnection>, String> {
        Ok(Box::new(HranaConnection {
            server: self.server.clone(),
            baton: None,
            stream_url: None,
        }))
    }
}

/// A guest's connection: the Hrana stream its statements run on.
struct HranaConnection {
    server: Arc<Server>,
    /// The stream's baton from the last response; `None` before the first
    /// statement (the server then opens a stream) or once the server closed it.
    baton: Option<String>,
    /// Where the server asked this stream's further requests to go (`base_url`).
    stream_url: Option<Uri>,
}

impl DbConnection for HranaConnection {
    fn execute<'a>(
        &'a mut self,
        statement: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<QueryOutput, String>> {
        Box::pin(async move {
            if refused_by_the_client(statement) {
                return Err("unsupported statement".to_string());
            }
            let body = execute_body(self.baton.as_deref(), statement, params);
            let url = self.url();
            let response = self.server.send(url, body).await?;
            // Like libsql, a failed request leaves the baton as it was: the
            // server says whether the stream can go on.
            self.baton = response.baton;
            if let Some(base) = response.base_url {
                self.stream_url = Some(pipeline_uri(&base).map_err(|e| {
                    hrana("unexpected response", &format!("base_url {base:?}: {e}"))
                })?);
            }
            statement_output(response.results)
        })
    }

    fn last_insert_rowid(&self) -> i64 {
        0
    }

    fn changes(&self) -> u64 {
        0
    }

    fn synchronous(&self) -> Option<u8> {
        None
    }
}

impl HranaConnection {
    fn url(&self) -> Uri {
        self.stream_url
            .clone()
            .unwrap_or_else(|| self.server.pipeline.clone())
    }
}

/// The guest dropped the handle: the stream is closed without waiting (a
/// stream left open would hold a connection on the server until it expires).
impl Drop for HranaConnection {
    fn drop(&mut self) {
        let Some(baton) = self.baton.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let server = self.server.clone();
        let url = self.url();
        runtime.spawn(async move {
            let _ = server.send(url, close_body(&baton)).await;
        });
    }
}

impl Server {
    /// POSTs one pipeline request and reads its response.
    async fn send(&self, url: Uri, body: Vec<u8>) -> Result<PipelineResponse, String> {
        let request = Request::post(url)
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| hrana("http error", &e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| hrana("http error", &with_causes(&e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| hrana("http error", &with_causes(&e)))?
            .to_bytes();
        if status != StatusCode::OK {
            let body = String::from_utf8_lossy(&body);
            return Err(hrana("api error", &format!("status={status}, body={body}")));
        }
        serde_json::from_slice(&body).map_err(|e| hrana("json error", &e.to_string()))
    }
}

/// libsql's `Display` of its errors, as Spin hands them to the guest.
fn hrana(kind: &str, detail: &str) -> String {
    format!("Hrana: `{kind}: `{detail}``")
}

/// An error and its sources: hyper-util's own text ("client error
/// (Connect)") says little without the cause ("Connection refused").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------
// Hrana's JSON (HRANA_3_SPEC.md "Hrana over HTTP", the same for v2)

#[derive(Serialize)]
struct PipelineRequest<'a> {
    baton: Option<&'a str>,
    requests: Vec<StreamRequest<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamRequest<'a> {
    Execute { stmt: Stmt<'a> },
    Close,
}

#[derive(Serialize)]
struct Stmt<'a> {
    sql: &'a str,
    args: Vec<Value>,
    want_rows: bool,
}

#[derive(Deserialize)]
struct PipelineResponse {
    baton: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    results: Vec<StreamResult>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamResult {
    Ok { response: StreamResponse },
    Error { error: ServerError },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamResponse {
    Execute {
        result: StmtResult,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StmtResult {
    cols: Vec<Col>,
    rows: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct Col {
    name: Option<String>,
}

#[derive(Deserialize)]
struct ServerError {
    message: String,
    #[serde(default)]
    code: Option<String>,
}

/// A value: integers as decimal strings (JSON numbers lose precision past
/// 2^53), blobs as base64.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Value {
    Null,
    Integer {
        #[serde(with = "integer_text")]
        value: i64,
    },
    Float {
        value: f64,
    },
    Text {
        value: String,
    },
    Blob {
        base64: String,
    },
}

mod integer_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("integer {text:?} is not a 64-bit integer")))
    }
}

impl From<&SqlValue> for Value {
    fn from(value: &SqlValue) -> Self {
        match value {
            SqlValue::Integer(i) => Value::Integer { value: *i },
            SqlValue::Real(r) => Value::Float { value: *r },
            SqlValue::Text(t) => Value::Text { value: t.clone() },
            SqlValue::Blob(b) => Value::Blob {
                base64: STANDARD_NO_PAD.encode(b),
            },
            SqlValue::Null => Value::Null,
        }
    }
}

impl TryFrom<Value> for SqlValue {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        Ok(match value {
            Value::Null => SqlValue::Null,
            Value::Integer { value } => SqlValue::Integer(value),
            Value::Float { value } => SqlValue::Real(value),
            Value::Text { value } => SqlValue::Text(value),
            // sqld writes no padding; accept it anyway.
            Value::Blob { base64 } => SqlValue::Blob(
                STANDARD_NO_PAD
                    .decode(base64.trim_end_matches('='))
                    .map_err(|e| hrana("json error", &format!("blob is not base64: {e}")))?,
            ),
        })
    }
}

/// The body that runs `statement` on the stream `baton` (a new stream
/// when `None`) and keeps the stream open.
/// Pragmas libsql 0.5's classifier (`libsql/src/parser.rs`, `pragma_kind`)
/// lets through with or without a value.
const PRAGMAS_ALLOWED: &[&str] = &[
    "table_list",
    "index_list",
    "table_info",
    "table_xinfo",
    "index_info",
    "index_xinfo",
    "pragma_list",
    "compile_options",
    "database_list",
    "function_list",
    "module_list",
    "encoding",
    "defer_foreign_keys",
    "foreign_keys",
    "foreign_key_list",
    "foreign_key_check",
    "collation_list",
    "data_version",
    "freelist_count",
    "integrity_check",
    "legacy_file_format",
    "page_count",
    "quick_check",
    "stats",
    "user_version",
];

/// Pragmas it lets through only without a value (reading the setting).
const PRAGMAS_READ_ONLY: &[&str] = &[
    "analysis_limit",
    "application_id",
    "auto_vacuum",
    "automatic_index",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "cell_size_check",
    "checkpoint_fullfsync",
    "fullfsync",
    "hard_heap_limit",
    "journal_mode",
    "journal_size_limit",
    "legacy_alter_table",
    "locking_mode",
    "max_page_count",
    "mmap_size",
    "page_size",
    "query_only",
    "read_uncommitted",
    "recursive_triggers",
    "reverse_unordered_selects",
    "schema_version",
    "secure_delete",
    "soft_heap_limit",
    "synchronous",
    "temp_store",
    "threads",
    "trusted_schema",
    "wal_autocheckpoint",
];

/// Whether Spin's libSQL client refuses `statement` before sending it: a
/// `PRAGMA` not on its lists, or one of [`PRAGMAS_READ_ONLY`] given a value.
/// (Its names are compared as written, as libsql does.)
fn refused_by_the_client(statement: &str) -> bool {
    let s = statement.trim_start();
    if !s.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("pragma")) {
        return false;
    }
    let rest = s[6..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let name = rest[..end].rsplit('.').next().unwrap_or_default();
    let has_value = rest[end..].trim_start().starts_with(['=', '(']);
    !(PRAGMAS_ALLOWED.contains(&name) || (!has_value && PRAGMAS_READ_ONLY.contains(&name)))
}

fn execute_body(baton: Option<&str>, statement: &str, params: &[SqlValue]) -> Vec<u8> {
    let stmt = Stmt {
        sql: statement,
        args: params.iter().map(Value::from).collect(),
        want_rows: true,
    };
    serialize(&PipelineRequest {
        baton,
        requests: vec![StreamRequest::Execute { stmt }],
    })
}

fn close_body(baton: &str) -> Vec<u8> {
    serialize(&PipelineRequest {
        baton: Some(baton),
        requests: vec![StreamRequest::Close],
    })
}

fn serialize(request: &PipelineRequest<'_>) -> Vec<u8> {
    // Only strings, numbers and a non-finite float (written as null) here:
    // serialising cannot fail.
    serde_json::to_vec(request).unwrap_or_default()
}

/// The one result of an execute pipeline, as the guest gets it.
fn statement_output(mut results: Vec<StreamResult>) -> Result<QueryOutput, String> {
    if results.len() != 1 {
        return Err(hrana(
            "unexpected response",
            &format!("{} results for one request", results.len()),
        ));
    }
    match results.pop() {
        Some(StreamResult::Ok {
            response: StreamResponse::Execute { result },
        }) => {
            let columns = result
                .cols
                .into_iter()
                .map(|c| c.name.unwrap_or_default())
                .collect();
            let rows = result
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(SqlValue::try_from).collect())
                .collect::<Result<_, _>>()?;
            Ok(QueryOutput { columns, rows })
        }
        Some(StreamResult::Error { error }) => Err(statement_error(&error)),
        _ => Err(hrana("unexpected response", "not an execute result")),
    }
}

/// A statement the server refused, worded as libsql 0.5's cursor reports it.
fn statement_error(error: &ServerError) -> String {
    let code = error.code.as_deref().unwrap_or_default();
    hrana(
        "cursor error",
        &format!("error at step 0: (error code: {code}) `{}`", error.message),
    )
}

#[cfg(test)]
mod tests;
