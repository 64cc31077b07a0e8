//! Hrana's JSON both ways, and the protocol against a stand-in server that
//! records what it is sent (the real sqld: `tests/scale_out`).

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};

use super::*;

fn to_json(value: &SqlValue) -> Json {
    serde_json::to_value(Value::from(value)).unwrap()
}

fn from_json(json: Json) -> Result<SqlValue, String> {
    SqlValue::try_from(serde_json::from_value::<Value>(json).map_err(|e| e.to_string())?)
}

#[test]
fn values_are_written_as_hrana_json() {
    let cases = [
        (SqlValue::Null, json!({"type": "null"})),
        (
            SqlValue::Integer(i64::MIN),
            json!({"type": "integer", "value": "-9223372036854775808"}),
        ),
        (SqlValue::Real(2.5), json!({"type": "float", "value": 2.5})),
        (
            SqlValue::Text("héllo ✓".into()),
            json!({"type": "text", "value": "héllo ✓"}),
        ),
        (
            SqlValue::Blob(vec![0, 1, 254, 255]),
            json!({"type": "blob", "base64": "AAH+/w"}),
        ),
        (
            SqlValue::Blob(vec![]),
            json!({"type": "blob", "base64": ""}),
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(to_json(&value), expected);
        assert_eq!(from_json(expected).unwrap(), value, "and read back");
    }
}

#[test]
fn values_are_read_as_servers_write_them() {
    assert_eq!(
        from_json(json!({"type": "integer", "value": "9223372036854775807"})),
        Ok(SqlValue::Integer(i64::MAX))
    );
    assert_eq!(
        from_json(json!({"type": "float", "value": 3})),
        Ok(SqlValue::Real(3.0)),
        "a float without a fraction"
    );
    assert_eq!(
        from_json(json!({"type": "blob", "base64": "AAH+/w=="})),
        Ok(SqlValue::Blob(vec![0, 1, 254, 255])),
        "padding is accepted"
    );
    let e = from_json(json!({"type": "integer", "value": "12x"})).unwrap_err();
    assert!(e.contains("12x"), "{e}");
    let e = from_json(json!({"type": "integer", "value": 12})).unwrap_err();
    assert!(e.contains("string"), "a JSON number is not an integer: {e}");
    let e = from_json(json!({"type": "blob", "base64": "!!"})).unwrap_err();
    assert!(e.starts_with("Hrana: `json error:"), "{e}");
}

#[test]
fn an_execute_is_one_pipeline_request_on_the_handles_stream() {
    let body: Json = serde_json::from_slice(&execute_body(
        None,
        "SELECT ?, ?",
        &[SqlValue::Integer(1), SqlValue::Null],
    ))
    .unwrap();
    assert_eq!(
        body,
        json!({"baton": null, "requests": [{"type": "execute", "stmt": {
            "sql": "SELECT ?, ?",
            "args": [{"type": "integer", "value": "1"}, {"type": "null"}],
            "want_rows": true,
        }}]})
    );
    let body: Json = serde_json::from_slice(&execute_body(Some("b1"), "COMMIT", &[])).unwrap();
    assert_eq!(body["baton"], "b1");
    assert_eq!(body["requests"][0]["stmt"]["args"], json!([]));
    let body: Json = serde_json::from_slice(&close_body("b2")).unwrap();
    assert_eq!(
        body,
        json!({"baton": "b2", "requests": [{"type": "close"}]})
    );
}

fn output(response: Json) -> Result<QueryOutput, String> {
    let response: PipelineResponse = serde_json::from_value(response).unwrap();
    statement_output(response.results)
}

#[test]
fn a_result_becomes_columns_and_rows() {
    let out = output(
        json!({"baton": "b", "base_url": null, "results": [{"type": "ok",
        "response": {"type": "execute", "result": {
            "cols": [{"name": "id", "decltype": "INTEGER"}, {"name": null, "decltype": null}],
            "rows": [[{"type": "integer", "value": "1"}, {"type": "text", "value": "a"}],
                     [{"type": "integer", "value": "2"}, {"type": "null"}]],
            "affected_row_count": 0, "last_insert_rowid": null,
            "rows_read": 2, "rows_written": 0, "query_duration_ms": 0.1}}}]}),
    )
    .unwrap();
    assert_eq!(out.columns, ["id", ""]);
    assert_eq!(
        out.rows,
        [
            vec![SqlValue::Integer(1), SqlValue::Text("a".into())],
            vec![SqlValue::Integer(2), SqlValue::Null]
        ]
    );
}

/// What sqld answers, as libsql 0.5 (so Spin) words it for the guest: the
/// domain looks for "database is locked" and "unsupported statement".
#[test]
fn a_refused_statement_reads_as_on_spin() {
    let e = output(
        json!({"baton": "b", "results": [{"type": "error", "error": {
        "message": "SQLite error: database is locked", "code": "SQLITE_BUSY"}}]}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "Hrana: `cursor error: `error at step 0: (error code: SQLITE_BUSY) \
         `SQLite error: database is locked```"
    );
    let e = output(json!({"baton": "b", "results": [{"type": "error", "error": {
        "message": "SQL string could not be parsed: unsupported statement: PRAGMA journal_mode = WAL",
        "code": "SQL_PARSE_ERROR"}}]}))
    .unwrap_err();
    assert!(
        e.contains("unsupported statement") && e.contains("SQL_PARSE_ERROR"),
        "{e}"
    );
    let e = output(json!({"baton": null, "results": []})).unwrap_err();
    assert!(e.starts_with("Hrana: `unexpected response:"), "{e}");
}

#[test]
fn urls_get_the_pipeline_path() {
    let uri = |base: &str| pipeline_uri(base).map(|u| u.to_string());
    assert_eq!(
        uri("http://127.0.0.1:8080").unwrap(),
        "http://127.0.0.1:8080/v2/pipeline"
    );
    assert_eq!(
        uri("http://db:8080/").unwrap(),
        "http://db:8080/v2/pipeline"
    );
    assert_eq!(
        uri("http://db/ns?x=1").unwrap(),
        "http://db/ns/v2/pipeline?x=1"
    );
    assert!(uri("https://db").is_err());
    assert!(uri("http://").is_err());
}

/// What the stand-in server saw of one request.
#[derive(Debug)]
struct Seen {
    path: String,
    authorization: String,
    body: Json,
}

/// A server on 127.0.0.1 that records each request and answers with
/// `respond(n, body)` for the n-th (from 0).
async fn stand_in(
    respond: impl Fn(usize, &Json) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (seen, respond) = (recorded.clone(), respond.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (seen, respond) = (seen.clone(), respond.clone());
                async move {
                    let path = req.uri().to_string();
                    let authorization = req.headers()[header::AUTHORIZATION]
                        .to_str()
                        .unwrap()
                        .to_string();
                    let bytes = req.into_body().collect().await?.to_bytes();
                    let body: Json = serde_json::from_slice(&bytes).unwrap();
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(Seen {
                            path,
                            authorization,
                            body: body.clone(),
                        });
                        seen.len() - 1
                    };
                    let (status, text) = respond(n, &body);
                    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, hyper::Error>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service),
            );
        }
    });
    (url, seen)
}

fn executed(baton: &str) -> String {
    json!({"baton": baton, "base_url": null, "results": [{"type": "ok", "response": {
        "type": "execute", "result": {"cols": [{"name": "one"}], "rows": [[{"type": "integer", "value": "1"}]],
        "affected_row_count": 1, "last_insert_rowid": "7"}}}]})
    .to_string()
}

#[tokio::test]
async fn a_handle_keeps_its_stream_and_closes_it_when_dropped() {
    let (url, seen) = stand_in(|n, _| (200, executed(&format!("b{}", n + 1)))).await;
    let db = LibSqlDatabase::open(&url, "t0k").unwrap();
    let mut conn = db.connect().unwrap();
    let out = conn.execute("BEGIN", &[]).await.unwrap();
    assert_eq!(out.rows, [vec![SqlValue::Integer(1)]]);
    conn.execute("INSERT INTO t VALUES (?)", &[SqlValue::Text("x".into())])
        .await
        .unwrap();
    assert_eq!(
        (conn.changes(), conn.last_insert_rowid()),
        (0, 0),
        "as Spin's libsql client reports them"
    );
    assert_eq!(conn.synchronous(), None);
    drop(conn);
    for _ in 0..100 {
        if seen.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap();
    let batons: Vec<&Json> = seen.iter().map(|s| &s.body["baton"]).collect();
    assert_eq!(batons, [&Json::Null, &json!("b1"), &json!("b2")]);
    assert_eq!(seen[2].body["requests"], json!([{"type": "close"}]));
    for s in seen.iter() {
        assert_eq!(s.path, "/v2/pipeline");
        assert_eq!(s.authorization, "Bearer t0k");
    }
}

/// The error the guest sees for a `SELECT 1` on a fresh connection to `url`.
async fn select_one_fails(url: &str) -> String {
    let db = LibSqlDatabase::open(url, "").unwrap();
    db.connect()
        .unwrap()
        .execute("SELECT 1", &[])
        .await
        .unwrap_err()
}

#[tokio::test]
async fn http_failures_read_as_on_spin() {
    let (url, _) = stand_in(|_, _| {
        (
            400,
            json!({"message": "The stream has expired due to inactivity", "code": "STREAM_EXPIRED"})
                .to_string(),
        )
    })
    .await;
    let e = select_one_fails(&url).await;
    assert!(
        e.starts_with("Hrana: `api error: `status=400 Bad Request, body={")
            && e.contains("STREAM_EXPIRED"),
        "{e}"
    );

    let (url, _) = stand_in(|_, _| (200, "{not json".into())).await;
    let e = select_one_fails(&url).await;
    assert!(e.starts_with("Hrana: `json error: `"), "{e}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let e = select_one_fails(&url).await;
    assert!(
        e.starts_with("Hrana: `http error: `") && e.contains("onnection refused"),
        "{e}"
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_answer_is_an_http_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"baton\"")
                .await;
        }
    });
    let e = select_one_fails(&url).await;
    assert!(e.starts_with("Hrana: `http error: `"), "{e}");
}

#[test]
fn pragmas_spins_client_refuses_never_reach_the_server() {
    for refused in [
        "PRAGMA synchronous = NORMAL",
        "pragma journal_mode=WAL",
        "PRAGMA main.cache_size(-2000)",
        "PRAGMA wal_checkpoint",
        "PRAGMA some_pragma_nobody_knows",
    ] {
        assert!(refused_by_the_client(refused), "{refused}");
    }
    for sent in [
        "PRAGMA user_version",
        "PRAGMA user_version = 8",
        "PRAGMA synchronous",
        "PRAGMA main.journal_mode",
        "PRAGMA foreign_keys = ON",
        "SELECT * FROM pragma_user_version",
        "INSERT INTO t VALUES (1)",
        "  select 1",
    ] {
        assert!(!refused_by_the_client(sent), "{sent}");
    }
}
