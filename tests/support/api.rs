//! keygate's HTTP contract (design `api.md`) from the caller's side: the
//! [`App`] fixture, request builders, Standard Webhooks signing, and the
//! key-format, time, problem+json and OpenAPI helpers the `tests/api/*` tests share.
//!
//! Every request sent through [`Call`] (so through every helper here) is
//! checked against `docs/openapi.json`: a status the document does not list
//! for that operation fails the test that saw it.

use std::collections::BTreeSet;
use std::ops::Deref;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use crate::{Json, Reply, Runner, RunnerConfig, json, workspace_root};

/// The management token every [`App`] is started with (strong: 42 characters).
pub const ADMIN_TOKEN: &str = "kgtest-admin-7Hq2Lw9Xz4Pm8Rv3Nc6Tb1Ks5Dy0Fj";
/// `webhook_secret` of every [`App`]: `whsec_` + base64 of 32 bytes.
pub const WEBHOOK_SECRET: &str = "whsec_CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYY=";
/// A well-formed secret the app does not have.
pub const OTHER_WEBHOOK_SECRET: &str = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2A=";

/// Who [`App::mgmt`] and the helpers built on it act as: the console's
/// operator, never removed by any test.
pub const OPERATOR: &str = "operator@example.com";
/// Key owners.
pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";
pub const CAROL: &str = "carol@example.com";

/// `kg_` + 38 base62 characters.
pub const KEY_LEN: usize = 41;
/// The base62 digits, in the order the checksum uses (digits first, so zero-padding is `0`).
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// ---------------------------------------------------------------------------
// The fixture

/// The keygate app (root `spin.toml`) on its own runner and state directory,
/// with [`ADMIN_TOKEN`] and [`WEBHOOK_SECRET`]. Derefs to its [`Runner`].
pub struct App {
    pub runner: Runner,
    // Dropped after the runner.
    _state: tempfile::TempDir,
}

impl Deref for App {
    type Target = Runner;
    fn deref(&self) -> &Runner {
        &self.runner
    }
}

impl App {
    pub fn start() -> App {
        App::start_with(|config| config)
    }

    /// The app with `webhook_secret` unset.
    pub fn without_webhook_secret() -> App {
        App::start_with(|mut config| {
            config
                .env
                .retain(|(name, _)| name != "SPIN_VARIABLE_WEBHOOK_SECRET");
            config
        })
    }

    /// The app with its configuration adjusted first.
    pub fn start_with(adjust: impl FnOnce(RunnerConfig) -> RunnerConfig) -> App {
        let state = tempfile::tempdir().expect("temp dir");
        let runner = adjust(App::config(&state)).start();
        App {
            runner,
            _state: state,
        }
    }

    /// Stops this runner (SIGTERM, waiting for it to exit) and starts a new
    /// one on the same state, with the configuration adjusted (for example
    /// `--fail` flags added): what a restart after a crash looks like.
    pub fn restart_with(self, adjust: impl FnOnce(RunnerConfig) -> RunnerConfig) -> App {
        let App { runner, _state } = self;
        let (status, log) = runner.terminate();
        assert!(
            status.success(),
            "runner did not stop cleanly ({status}):\n{log}"
        );
        let runner = adjust(App::config(&_state)).start();
        App { runner, _state }
    }

    fn config(state: &tempfile::TempDir) -> RunnerConfig {
        RunnerConfig::app(state, ADMIN_TOKEN).env("SPIN_VARIABLE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    }

    /// The runner's state directory (its databases).
    pub fn state_dir(&self) -> std::path::PathBuf {
        self._state.path().join("state")
    }

    /// A request without credentials.
    pub fn call(&self, method: &str, path: &str) -> Call<'_> {
        Call::new(&self.runner, method, path)
    }

    /// A management request: `Authorization: Bearer <ADMIN_TOKEN>` and
    /// `X-Acting-User: <OPERATOR>` (change it with [`Call::acting`]).
    pub fn mgmt(&self, method: &str, path: &str) -> Call<'_> {
        self.call(method, path).bearer(ADMIN_TOKEN).acting(OPERATOR)
    }

    /// `POST /api/keys` with `body`, acting as `user`; the raw reply.
    pub fn create(&self, user: &str, body: &Json) -> Reply {
        self.mgmt("POST", "/api/keys")
            .acting(user)
            .json(body)
            .send()
    }

    /// Creates a key named `name` as [`ALICE`]: (key object with `secret`, secret).
    #[track_caller]
    pub fn create_key(&self, name: &str) -> (Json, String) {
        self.create_key_as(ALICE, name)
    }

    #[track_caller]
    pub fn create_key_as(&self, user: &str, name: &str) -> (Json, String) {
        self.create_key_with(user, &json!({ "name": name }))
    }

    /// Creates a key from a full body; asserts 201 and returns (key, secret).
    #[track_caller]
    pub fn create_key_with(&self, user: &str, body: &Json) -> (Json, String) {
        let reply = self.create(user, body);
        let key = expect_json(&reply, 201);
        let secret = key["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("create answered without a secret: {key}"))
            .to_owned();
        (key, secret)
    }

    /// `GET /api/keys/{id}` as [`OPERATOR`].
    pub fn get_key(&self, id: &str) -> Reply {
        self.mgmt("GET", &format!("/api/keys/{id}")).send()
    }

    /// `DELETE /api/keys/{id}` as [`OPERATOR`].
    pub fn delete_key(&self, id: &str) -> Reply {
        self.mgmt("DELETE", &format!("/api/keys/{id}")).send()
    }

    /// `GET /api/keys?{query}`; asserts 200.
    #[track_caller]
    pub fn list(&self, query: &str) -> Json {
        expect_json(
            &self.mgmt("GET", &with_query("/api/keys", query)).send(),
            200,
        )
    }

    /// Every item of the overview for `query` (walks the pages, 100 at a time).
    #[track_caller]
    pub fn list_all(&self, query: &str) -> Vec<Json> {
        self.all_pages("/api/keys", query)
    }

    /// `GET /api/audit?{query}`; asserts 200.
    #[track_caller]
    pub fn audit(&self, query: &str) -> Json {
        expect_json(
            &self.mgmt("GET", &with_query("/api/audit", query)).send(),
            200,
        )
    }

    /// Every audit entry for `query`, newest first.
    #[track_caller]
    pub fn audit_all(&self, query: &str) -> Vec<Json> {
        self.all_pages("/api/audit", query)
    }

    #[track_caller]
    fn all_pages(&self, route: &str, query: &str) -> Vec<Json> {
        let mut items = Vec::new();
        for page in 1.. {
            let paging = format!("page={page}&per_page=100");
            let query = if query.is_empty() {
                paging
            } else {
                format!("{query}&{paging}")
            };
            let body = expect_json(&self.mgmt("GET", &with_query(route, &query)).send(), 200);
            let got = body["items"].as_array().expect("items").clone();
            items.extend(got);
            if page >= body["total_pages"].as_u64().expect("total_pages") {
                assert_eq!(items.len() as u64, body["total"], "{route}?{query}");
                break;
            }
        }
        items
    }

    /// The overview and the trail in full, to show that something changed nothing.
    pub fn snapshot(&self) -> (Vec<Json>, Vec<Json>) {
        (self.list_all(""), self.audit_all(""))
    }

    /// `GET /api/verify` with `Authorization: Bearer <secret>`.
    pub fn verify(&self, secret: &str) -> Reply {
        self.call("GET", "/api/verify").bearer(secret).send()
    }

    /// A webhook delivery: `headers` (see [`sign_webhook`]) and a JSON body.
    pub fn webhook(&self, headers: &[(String, String)], body: &[u8]) -> Reply {
        self.call("POST", "/webhooks/user-removed")
            .headers(headers)
            .body("application/json", body)
            .send()
    }

    /// A delivery signed with [`WEBHOOK_SECRET`].
    pub fn deliver(&self, id: &str, timestamp: i64, body: &[u8]) -> Reply {
        self.webhook(&sign_webhook(WEBHOOK_SECRET, id, timestamp, body), body)
    }

    /// Removes `user` through a fresh, correctly signed delivery; asserts 200
    /// and returns `{"user_id", "revoked_keys"}`.
    #[track_caller]
    pub fn remove_user(&self, user: &str) -> Json {
        let body = user_removed_event(user).to_string();
        expect_json(
            &self.deliver(&new_webhook_id(), now_unix(), body.as_bytes()),
            200,
        )
    }
}

/// `route?query`, or `route` when `query` is empty.
pub fn with_query(route: &str, query: &str) -> String {
    if query.is_empty() {
        route.to_owned()
    } else {
        format!("{route}?{query}")
    }
}

// ---------------------------------------------------------------------------
// Requests

/// One request, built up and then [`sent`](Call::send).
pub struct Call<'a> {
    runner: &'a Runner,
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    chunked: bool,
}

impl<'a> Call<'a> {
    pub fn new(runner: &'a Runner, method: &str, path: &str) -> Self {
        Call {
            runner,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            chunked: false,
        }
    }

    /// Sets a header (replacing one of the same name).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Sets a header to raw bytes (visible ASCII, space, tab or 0x80–0xFF).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    pub fn headers(self, headers: &[(String, String)]) -> Self {
        headers
            .iter()
            .fold(self, |call, (name, value)| call.header(name, value))
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// `X-Acting-User: <user>`.
    pub fn acting(self, user: &str) -> Self {
        self.header("x-acting-user", user)
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, body: &Json) -> Self {
        self.body("application/json", body.to_string())
    }

    /// A body with the given content type.
    pub fn body(self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", content_type).raw_body(bytes)
    }

    /// A body, with whatever `Content-Type` was set (none by default).
    pub fn raw_body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// Sends the body with chunked transfer encoding (no `Content-Length`).
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Sends the request, reads the whole answer, and checks its status is one
    /// `docs/openapi.json` lists for the operation (when it documents it).
    #[track_caller]
    pub fn send(self) -> Reply {
        let method = self.method.clone();
        let path = self.path.clone();
        let reply = self.send_any_status();
        assert_documented_status(&method, &path, reply.status);
        reply
    }

    /// Sends the request without checking the status against the OpenAPI
    /// document: for a runner told to crash (`--crash-after`), whose `500`
    /// the contract rightly does not list.
    pub fn send_any_status(self) -> Reply {
        let mut builder = ureq::http::Request::builder()
            .method(self.method.as_str())
            .uri(self.runner.url(&self.path));
        for (name, value) in &self.headers {
            let value = ureq::http::HeaderValue::from_bytes(value)
                .unwrap_or_else(|e| panic!("test bug: header {name}: {e}"));
            builder = builder.header(name.as_str(), value);
        }
        let agent = self.runner.agent();
        let result = match self.body {
            None => agent.run(builder.body(()).expect("request")),
            Some(bytes) if self.chunked => agent.run(
                builder
                    .body(ureq::SendBody::from_owned_reader(std::io::Cursor::new(
                        bytes,
                    )))
                    .expect("request"),
            ),
            Some(bytes) => agent.run(builder.body(bytes).expect("request")),
        };
        Reply::from(result)
    }
}

// ---------------------------------------------------------------------------
// Answers

/// Asserts the status and returns the JSON body.
#[track_caller]
pub fn expect_json(reply: &Reply, status: u16) -> Json {
    assert_eq!(
        reply.status,
        status,
        "expected {status}, got {}: {}",
        reply.status,
        reply.text()
    );
    let content_type = reply.header("content-type").unwrap_or_default();
    assert_eq!(
        media_type(content_type),
        "application/json",
        "content-type of a {status}: {content_type:?}"
    );
    reply.json()
}

/// `application/json` of `application/json; charset=utf-8`, lower-cased.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Asserts an RFC 9457 problem with this status and `code`; returns its body.
#[track_caller]
pub fn assert_problem(reply: &Reply, status: u16, code: &str) -> Json {
    assert_eq!(
        (reply.status, problem_code(reply).as_deref()),
        (status, Some(code)),
        "expected {status} {code}, got {}: {}",
        reply.status,
        reply.text()
    );
    assert_problem_shape(reply)
}

/// The `code` of a JSON error body, if any.
pub fn problem_code(reply: &Reply) -> Option<String> {
    serde_json::from_slice::<Json>(&reply.body)
        .ok()
        .and_then(|body| body["code"].as_str().map(str::to_owned))
}

/// Asserts the answer is `application/problem+json` with `type`, `title`,
/// `status` (the HTTP status), `detail` and `code`, and well-formed `errors`
/// when present. Returns the body.
#[track_caller]
pub fn assert_problem_shape(reply: &Reply) -> Json {
    let content_type = reply.header("content-type").unwrap_or_default();
    assert_eq!(
        media_type(content_type),
        "application/problem+json",
        "a {} answered with content-type {content_type:?}: {}",
        reply.status,
        reply.text()
    );
    let body: Json = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("problem body is not JSON ({e}): {}", reply.text()));
    for field in ["type", "title", "detail", "code"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "problem without a `{field}` string: {body}"
        );
    }
    assert_eq!(body["status"], reply.status, "problem `status`: {body}");
    if let Some(errors) = body.get("errors") {
        let errors = errors
            .as_array()
            .unwrap_or_else(|| panic!("`errors` is not an array: {body}"));
        for error in errors {
            assert!(
                error["field"].is_string() && error["message"].is_string(),
                "`errors` entries are {{field, message}}: {body}"
            );
        }
    }
    body
}

/// The `field`s of a problem's `errors`.
pub fn error_fields(problem: &Json) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts a 422 `validation_failed` whose `errors` name (at least) `fields`.
#[track_caller]
pub fn assert_validation_failed(reply: &Reply, fields: &[&str]) -> Json {
    let problem = assert_problem(reply, 422, "validation_failed");
    let named = error_fields(&problem);
    for field in fields {
        assert!(
            named.iter().any(|f| f == field),
            "`errors` should name {field}: {problem}"
        );
    }
    problem
}

/// Asserts a 400 `invalid_query` that names `param` (in `errors[].field`, or
/// as a word of `detail`).
#[track_caller]
pub fn assert_invalid_query(reply: &Reply, param: &str) -> Json {
    let problem = assert_problem(reply, 400, "invalid_query");
    let in_errors = error_fields(&problem).iter().any(|f| f == param);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        in_errors || mentions_word(detail, param),
        "invalid_query should name `{param}`: {problem}"
    );
    problem
}

/// Whether `text` contains `word` not as part of a longer identifier
/// (`page` is not mentioned by `per_page`).
pub fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Asserts verify's 401: the problem, `valid: false` and the bearer challenge.
#[track_caller]
pub fn assert_key_rejected(reply: &Reply, code: &str) -> Json {
    let problem = assert_problem(reply, 401, code);
    assert_eq!(problem["valid"], false, "{problem}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#),
        "{problem}"
    );
    assert!(reply.header("x-key-id").is_none() && reply.header("x-user-id").is_none());
    problem
}

/// Asserts `text` shows none of `secrets` (nor the random part of a key).
#[track_caller]
pub fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
        if let Some(random) = secret.strip_prefix("kg_").and_then(|s| s.get(..32)) {
            assert!(!text.contains(random), "{what} shows part of a key: {text}");
        }
        if let Some(b64) = secret.strip_prefix("whsec_") {
            assert!(
                !text.contains(b64),
                "{what} shows the webhook secret: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Keys

/// A key object (as get and list show it): every field, with the contract's
/// shapes, and no secret.
#[track_caller]
pub fn assert_key_object(key: &Json) {
    let id = key["id"].as_str().unwrap_or_default();
    assert!(
        id.len() == 26
            && id.starts_with("key_")
            && id[4..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "id is key_ + 22 base62: {key}"
    );
    assert!(key["name"].as_str().is_some_and(|n| !n.is_empty()), "{key}");
    assert!(
        key["description"].is_string() || key["description"].is_null(),
        "{key}"
    );
    assert!(key["created_by"].is_string(), "{key}");
    assert!(
        key["owner"].as_str().is_some_and(|o| !o.is_empty()),
        "owner: {key}"
    );
    assert_utc_timestamp(&key["created_at"]);
    for field in ["last_used_at", "expires_at", "revoked_at"] {
        if !key[field].is_null() {
            assert_utc_timestamp(&key[field]);
        }
    }
    let status = key["status"].as_str().unwrap_or_default();
    assert!(
        ["active", "expired", "revoked"].contains(&status),
        "status: {key}"
    );
    if status == "revoked" {
        assert!(
            key["revoked_reason"] == "owner_removed" || key["revoked_reason"] == "owner_deleted",
            "{key}"
        );
        assert!(key["revoked_at"].is_string(), "{key}");
    } else {
        assert!(
            key["revoked_at"].is_null() && key["revoked_reason"].is_null(),
            "{key}"
        );
    }
    let hint = key["hint"].as_str().unwrap_or_default();
    let last4 = hint.strip_prefix("kg_\u{2026}").unwrap_or_default();
    assert!(
        last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_alphanumeric()),
        "hint is kg_… + 4 characters: {key}"
    );
    assert!(
        key.get("secret").is_none(),
        "only create shows the secret: {key}"
    );
}

/// `kg_…` + the last 4 characters.
pub fn hint_of(secret: &str) -> String {
    format!("kg_\u{2026}{}", &secret[secret.len() - 4..])
}

/// CRC-32 (IEEE, as zlib and `crc32fast` compute it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The 6 base62 checksum characters of a key's 32 random characters.
pub fn checksum(random: &str) -> String {
    let mut value = u64::from(crc32(random.as_bytes()));
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// A well-formed key (right prefix, length, alphabet and checksum) for these
/// 32 random characters.
pub fn well_formed_key(random: &str) -> String {
    assert_eq!(random.len(), 32, "test bug");
    format!("kg_{random}{}", checksum(random))
}

/// `kg_` + 38 base62 characters whose last 6 are the checksum of the first 32.
pub fn is_well_formed_key(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with("kg_")
        && key[3..].bytes().all(|b| b.is_ascii_alphanumeric())
        && checksum(&key[3..35]) == key[35..]
}

// ---------------------------------------------------------------------------
// Webhooks

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the
/// base64-decoded part of a `whsec_` secret (Standard Webhooks).
pub fn webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three Standard Webhooks headers of a delivery signed with `secret`.
pub fn sign_webhook(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    webhook_headers(
        id,
        timestamp,
        &webhook_signature(secret, id, timestamp, body),
    )
}

/// The three headers with a given `webhook-signature` value.
pub fn webhook_headers(id: &str, timestamp: i64, signature: &str) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signature.into()),
    ]
}

/// `{"type": "user.removed", "timestamp": <now>, "data": {"user_id": user}}`.
pub fn user_removed_event(user: &str) -> Json {
    json!({
        "type": "user.removed",
        "timestamp": format_time(now_unix()),
        "data": { "user_id": user },
    })
}

/// A `webhook-id` not used before in this process.
pub fn new_webhook_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "msg_test{}x{}",
        now_unix(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------
// Time

pub const DAY: i64 = 86_400;

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Asserts an RFC 3339 UTC timestamp with `Z`.
#[track_caller]
pub fn assert_utc_timestamp(value: &Json) {
    let text = value.as_str().unwrap_or_default();
    assert!(
        text.ends_with('Z') && try_parse_time(text).is_some(),
        "not an RFC 3339 UTC timestamp with Z: {value}"
    );
}

/// Unix seconds of an RFC 3339 timestamp (any offset; fractions dropped).
#[track_caller]
pub fn parse_time(text: &str) -> i64 {
    try_parse_time(text).unwrap_or_else(|| panic!("not an RFC 3339 timestamp: {text:?}"))
}

pub fn try_parse_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !shape {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            if rest.as_bytes()[3] != b':' {
                return None;
            }
            let (h, m) = (
                rest[1..3].parse::<i64>().ok()?,
                rest[4..6].parse::<i64>().ok()?,
            );
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second - offset)
}

/// `2026-11-26T17:00:00Z`.
pub fn format_time(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(DAY));
    let s = secs.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2026-11-26` (UTC).
pub fn format_date(secs: i64) -> String {
    format_time(secs)[..10].to_owned()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------
// Lists

/// `a=b&c=d`, percent-encoding everything but unreserved characters.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Everything but RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The `id`s of items, in order (key ids are strings, audit entry ids integers).
pub fn ids(items: &[Json]) -> Vec<String> {
    items
        .iter()
        .map(|item| match &item["id"] {
            Json::String(id) => id.clone(),
            Json::Number(id) => id.to_string(),
            other => panic!("id is neither a string nor a number: {other}"),
        })
        .collect()
}

/// The `id`s of items, as a set.
pub fn id_set(items: &[Json]) -> BTreeSet<String> {
    ids(items).into_iter().collect()
}

/// The sort key of a key object for an overview `sort` column: times
/// compare as instants with `null` oldest; names case-insensitively.
pub fn sort_key(item: &Json, field: &str) -> (Option<i64>, String) {
    match field {
        "created_at" | "last_used_at" | "at" => {
            (item[field].as_str().map(parse_time), String::new())
        }
        "name" => (None, item[field].as_str().expect(field).to_lowercase()),
        _ => (None, item[field].as_str().expect(field).to_owned()),
    }
}

/// Asserts items are ordered by `field` in `order` (`asc`/`desc`) and that
/// ties are broken by `id`, in one direction throughout.
#[track_caller]
pub fn assert_sorted(items: &[Json], field: &str, order: &str) {
    let mut tie_direction = None;
    for pair in items.windows(2) {
        let (a, b) = (sort_key(&pair[0], field), sort_key(&pair[1], field));
        let in_order = if order == "asc" { a <= b } else { a >= b };
        assert!(
            in_order,
            "sort={field}&order={order}: {} comes before {}",
            pair[0], pair[1]
        );
        if a == b {
            let ascending = pair[0]["id"].as_str() < pair[1]["id"].as_str();
            assert_eq!(
                *tie_direction.get_or_insert(ascending),
                ascending,
                "sort={field}&order={order}: ties are not consistently broken by id: {items:#?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// OpenAPI

/// `docs/openapi.json`, parsed once.
pub fn openapi() -> &'static Json {
    static DOC: OnceLock<Json> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = workspace_root().join("docs/openapi.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// The documented path template a request path falls under (`/api/keys/{id}`
/// for `/api/keys/key_…?x=1`); exact paths beat templates.
pub fn documented_path(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.len() > 1 && path.ends_with('/') {
        return None;
    }
    let segments: Vec<&str> = path.split('/').collect();
    let paths = openapi()["paths"].as_object().expect("paths");
    paths
        .keys()
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                })
        })
        .min_by_key(|template| template.matches('{').count())
        .map(String::as_str)
}

/// The statuses `docs/openapi.json` lists for this request's operation, or
/// `None` when it does not document the operation.
pub fn documented_statuses(method: &str, path: &str) -> Option<Vec<u16>> {
    let template = documented_path(path)?;
    let operation = &openapi()["paths"][template][method.to_ascii_lowercase()];
    let responses = operation.get("responses")?.as_object()?;
    Some(responses.keys().filter_map(|s| s.parse().ok()).collect())
}

#[track_caller]
fn assert_documented_status(method: &str, path: &str, status: u16) {
    if let Some(statuses) = documented_statuses(method, path) {
        assert!(
            statuses.contains(&status),
            "{method} {path} answered {status}, which docs/openapi.json does not list \
             for this operation (it lists {statuses:?})"
        );
    }
}

// ---------------------------------------------------------------------------
// Deterministic randomness for sweeps

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for small n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// `len` characters drawn from `alphabet`.
    pub fn string_from(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| *self.pick(alphabet) as char).collect()
    }

    /// 32 random base62 characters.
    pub fn key_random_part(&mut self) -> String {
        self.string_from(BASE62, 32)
    }
}
