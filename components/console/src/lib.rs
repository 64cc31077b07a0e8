//! The web console: `GET /` (the keys overview), `GET /service-accounts`,
//! `GET /audit` (the audit trail) and its assets under `/console/`. Every file is embedded in the
//! `.wasm`; the page itself talks to the management API from the browser.
//!
//! Only `GET` and `HEAD`; anything else is `405` with `Allow`. An unknown
//! `/console/...` path is `404 not_found` like the API's. Every answer carries
//! the same strict security headers (the pages have no inline script or style).
//!
//! The one variable, `oidc_issuer`, widens the CSP's `connect-src` by exactly
//! the identity provider's origin: the page fetches its discovery document and
//! its token endpoint (the Authorization Code flow with PKCE runs in the
//! browser). Navigations to the provider need no CSP allowance.

use std::borrow::Cow;

use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderName, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Method, StatusCode};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::{http_component, variables};

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
    ("removals.js", asset!("removals.js", JS)),
    ("keys.js", asset!("keys.js", JS)),
    ("audit.js", asset!("audit.js", JS)),
    ("accounts.js", asset!("accounts.js", JS)),
    ("lifecycle.js", asset!("lifecycle.js", JS)),
    ("handover.js", asset!("handover.js", JS)),
    ("favicon.svg", asset!("favicon.svg", "image/svg+xml")),
];

/// Everything comes from this origin; nothing inline, no frames, no plugins.
const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// [`CSP`], plus `connect-src` for the identity provider's origin when there
/// is one: the page fetches the discovery document and the token endpoint.
fn content_security_policy(issuer_origin: Option<&str>) -> Cow<'static, str> {
    match issuer_origin {
        None => Cow::Borrowed(CSP),
        Some(origin) => Cow::Owned(format!(
            "default-src 'self'; connect-src 'self' {origin}; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )),
    }
}

/// `scheme://host[:port]` of the `oidc_issuer` variable, when it is one the
/// console may talk to: `https://`, or `http://` only on 127.0.0.1 or
/// localhost (local testing), as the keys component requires too. Anything
/// else (empty, another scheme, user info, characters a host cannot have,
/// which could otherwise smuggle directives into the header) gets nothing.
fn issuer_origin(issuer: &str) -> Option<String> {
    let (scheme, rest) = issuer.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority.as_str(), None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    let scheme_ok = match scheme.as_str() {
        "https" => true,
        "http" => host == "127.0.0.1" || host == "localhost",
        _ => false,
    };
    (host_ok && port_ok && scheme_ok).then(|| format!("{scheme}://{authority}"))
}

/// The headers every answer has; the CSP depends on `oidc_issuer`. A
/// `static`, as a `HeaderName` cannot be borrowed from a `const`.
static OTHER_SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "no-referrer"),
    (X_FRAME_OPTIONS, "DENY"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// spin-sdk's method as `http`'s, as `keygate_spin::http_method` converts it
/// (the console depends on spin-sdk and `http` only): an extension method
/// that is not an HTTP token, which the host never passes, becomes `INVALID`
/// (a `405`) where spin-sdk's own `From` would panic.
fn http_method(method: spin_sdk::http::Method) -> Method {
    match method {
        spin_sdk::http::Method::Other(m) => Method::from_bytes(m.as_bytes())
            .unwrap_or_else(|_| Method::from_bytes(b"INVALID").expect("a token")),
        m => m.into(),
    }
}

/// Takes the `IncomingRequest` and never reads its body (no route has one):
/// spin-sdk's `Request` would read any body whole into memory first.
#[http_component]
fn handle(req: IncomingRequest) -> Response {
    let if_none_match = req
        .headers()
        .get(IF_NONE_MATCH.as_str())
        .last()
        .and_then(|v| String::from_utf8(v.clone()).ok());
    let method = http_method(req.method());
    let path_with_query = req.path_with_query().unwrap_or_default();
    let path = path_with_query.split('?').next().unwrap_or_default();
    let answer = respond(&method, path, if_none_match.as_deref());
    let origin = variables::get("oidc_issuer")
        .ok()
        .and_then(|issuer| issuer_origin(&issuer));
    let mut response = Response::builder();
    response.status(answer.status);
    response.header(
        CONTENT_SECURITY_POLICY.as_str(),
        content_security_policy(origin.as_deref()),
    );
    for (name, value) in &OTHER_SECURITY_HEADERS {
        response.header(name.as_str(), *value);
    }
    for (name, value) in answer.headers {
        response.header(name.as_str(), value);
    }
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        answer.body.into_owned()
    };
    response.body(body).build()
}

/// What to answer, apart from the security headers every answer has.
struct Answer {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Cow<'static, [u8]>,
}

fn respond(method: &Method, path: &str, if_none_match: Option<&str>) -> Answer {
    let asset = match path {
        // The page: one HTML shell for both views, which the script tells apart.
        // A trailing slash is ignored for these exact routes, as Spin does.
        "/" | "/audit" | "/audit/" | "/service-accounts" | "/service-accounts/" => Some(&INDEX),
        other => other
            .strip_prefix("/console/")
            .and_then(|name| ASSETS.iter().find(|(n, _)| *n == name))
            .map(|(_, asset)| asset),
    };
    let Some(asset) = asset else {
        return problem(StatusCode::NOT_FOUND, "not_found", "no such route", None);
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "allowed methods: GET, HEAD",
            Some("GET, HEAD"),
        );
    }
    let etag = format!("\"{:016x}\"", asset.etag);
    // The files are not versioned by name, so the browser revalidates each
    // time (`no-cache`) and gets a body-less 304 while the ETag matches.
    let headers = vec![
        (CONTENT_TYPE, asset.content_type.to_owned()),
        (CACHE_CONTROL, "no-cache".to_owned()),
        (ETAG, etag.clone()),
    ];
    if if_none_match.is_some_and(|v| etag_matches(v, &etag)) {
        return Answer {
            status: StatusCode::NOT_MODIFIED,
            headers,
            body: Cow::Borrowed(b""),
        };
    }
    Answer {
        status: StatusCode::OK,
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

/// An RFC 9457 problem, shaped like the management API's errors; the title
/// is the status's reason phrase.
fn problem(
    status: StatusCode,
    code: &'static str,
    detail: &'static str,
    allow: Option<&'static str>,
) -> Answer {
    let title = status.canonical_reason().unwrap_or_default();
    let status_code = status.as_u16();
    let body = format!(
        r#"{{"type":"about:blank","title":"{title}","status":{status_code},"detail":"{detail}","code":"{code}"}}"#
    );
    let mut headers = vec![
        (CONTENT_TYPE, "application/problem+json".to_owned()),
        (CACHE_CONTROL, "no-store".to_owned()),
    ];
    if let Some(allow) = allow {
        headers.push((ALLOW, allow.to_owned()));
    }
    Answer {
        status,
        headers,
        body: Cow::Owned(body.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_local_http_issuers_get_an_origin() {
        let cases = [
            ("https://idp.example.com", Some("https://idp.example.com")),
            (
                "https://IdP.Example.com/realms/x/",
                Some("https://idp.example.com"),
            ),
            (
                "https://idp.example.com:8443/o?x#y",
                Some("https://idp.example.com:8443"),
            ),
            ("http://127.0.0.1:43211", Some("http://127.0.0.1:43211")),
            ("http://localhost/", Some("http://localhost")),
            ("http://idp.example.com", None),
            ("http://127.0.0.1.example.com", None),
            ("ftp://idp.example.com", None),
            ("", None),
            ("https://", None),
            ("https://user@idp.example.com", None),
            ("https://idp.example.com:0", None),
            ("https://idp.example.com:99999", None),
            ("https://idp.example.com:", None),
            ("https://idp.example.com; script-src *", None),
            ("https://idp example.com", None),
            ("https://[::1]:8443", None),
        ];
        for (issuer, origin) in cases {
            assert_eq!(issuer_origin(issuer).as_deref(), origin, "{issuer:?}");
        }
    }

    #[test]
    fn the_issuer_origin_is_added_to_connect_src_only() {
        assert_eq!(content_security_policy(None), CSP);
        assert_eq!(
            content_security_policy(Some("https://idp.example.com")),
            "default-src 'self'; connect-src 'self' https://idp.example.com; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
    }
}
