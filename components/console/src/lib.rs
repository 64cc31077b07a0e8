//! The web console: `GET /` (the keys overview), `GET /audit` (the audit
//! trail) and its assets under `/console/`. Every file is embedded in the
//! `.wasm`; the page itself talks to the management API from the browser.
//!
//! Only `GET` and `HEAD`; anything else is `405` with `Allow`. An unknown
//! `/console/...` path is `404 not_found` like the API's. Every answer carries
//! the same strict security headers (the pages have no inline script or style).

use std::borrow::Cow;

use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;

/// One embedded file, with its ETag computed at compile time.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The file `static/<name>` as an [`Asset`].
macro_rules! asset {
    ($name:literal, $content_type:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../static/", $name));
        Asset {
            content_type: $content_type,
            body: BODY,
            etag: fnv1a(BODY),
        }
    }};
}

const INDEX: Asset = asset!("index.html", HTML);

/// `/console/<name>` → the file `static/<name>`.
const ASSETS: &[(&str, Asset)] = &[
    ("app.css", asset!("app.css", CSS)),
    ("app.js", asset!("app.js", JS)),
    ("api.js", asset!("api.js", JS)),
    ("format.js", asset!("format.js", JS)),
    ("ui.js", asset!("ui.js", JS)),
    ("list.js", asset!("list.js", JS)),
    ("keys.js", asset!("keys.js", JS)),
    ("audit.js", asset!("audit.js", JS)),
    ("favicon.svg", asset!("favicon.svg", "image/svg+xml")),
];

/// Everything comes from this origin; nothing inline, no frames, no plugins.
const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Takes the `IncomingRequest` and never reads its body (no route has one):
/// spin-sdk's `Request` would read any body whole into memory first.
#[http_component]
fn handle(req: IncomingRequest) -> Response {
    let if_none_match = req
        .headers()
        .get("if-none-match")
        .last()
        .and_then(|v| String::from_utf8(v.clone()).ok());
    let method = req.method();
    let path_with_query = req.path_with_query().unwrap_or_default();
    let path = path_with_query.split('?').next().unwrap_or_default();
    let answer = respond(&method, path, if_none_match.as_deref());
    let mut response = Response::builder();
    response.status(answer.status);
    for (name, value) in SECURITY_HEADERS {
        response.header(*name, *value);
    }
    for (name, value) in answer.headers {
        response.header(name, value);
    }
    let body = if method == Method::Head {
        Vec::new()
    } else {
        answer.body.into_owned()
    };
    response.body(body).build()
}

/// What to answer, apart from the security headers every answer has.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Cow<'static, [u8]>,
}

fn respond(method: &Method, path: &str, if_none_match: Option<&str>) -> Answer {
    let asset = match path {
        // The page: one HTML shell for both views, which the script tells apart.
        // A trailing slash is ignored for these exact routes, as Spin does.
        "/" | "/audit" | "/audit/" => Some(&INDEX),
        other => other
            .strip_prefix("/console/")
            .and_then(|name| ASSETS.iter().find(|(n, _)| *n == name))
            .map(|(_, asset)| asset),
    };
    let Some(asset) = asset else {
        return problem(404, "Not Found", "not_found", "no such route", None);
    };
    if !matches!(method, Method::Get | Method::Head) {
        return problem(
            405,
            "Method Not Allowed",
            "method_not_allowed",
            "allowed methods: GET, HEAD",
            Some("GET, HEAD"),
        );
    }
    let etag = format!("\"{:016x}\"", asset.etag);
    // The files are not versioned by name, so the browser revalidates each
    // time (`no-cache`) and gets a body-less 304 while the ETag matches.
    let headers = vec![
        ("content-type", asset.content_type.to_owned()),
        ("cache-control", "no-cache".to_owned()),
        ("etag", etag.clone()),
    ];
    if if_none_match.is_some_and(|v| etag_matches(v, &etag)) {
        return Answer {
            status: 304,
            headers,
            body: Cow::Borrowed(b""),
        };
    }
    Answer {
        status: 200,
        headers,
        body: Cow::Borrowed(asset.body),
    }
}

/// `If-None-Match`: `*` or a comma-separated list of (possibly weak) tags.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// FNV-1a, 64 bits: a content fingerprint for the ETag, not a security measure.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// An RFC 9457 problem, shaped like the management API's errors.
fn problem(
    status: u16,
    title: &'static str,
    code: &'static str,
    detail: &'static str,
    allow: Option<&'static str>,
) -> Answer {
    let body = format!(
        r#"{{"type":"about:blank","title":"{title}","status":{status},"detail":"{detail}","code":"{code}"}}"#
    );
    let mut headers = vec![
        ("content-type", "application/problem+json".to_owned()),
        ("cache-control", "no-store".to_owned()),
    ];
    if let Some(allow) = allow {
        headers.push(("allow", allow.to_owned()));
    }
    Answer {
        status,
        headers,
        body: Cow::Owned(body.into_bytes()),
    }
}
