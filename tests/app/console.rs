//! The web console's HTTP side on the real manifest: `/`, `/service-accounts`
//! and `/audit` serve the page, `/console/...` its files, with content types,
//! revalidation and strict security headers; odd paths and methods get
//! problem+json, never a 500.
//! (What the page does is tested in a browser: `tests/browser`.)

use keygate_tests::{Reply, Runner, RunnerConfig};

const ADMIN_TOKEN: &str = "console-test-admin-token-0123456789";

fn start() -> (Runner, tempfile::TempDir) {
    keygate_tests::wasm("console");
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::app(&state, ADMIN_TOKEN).start();
    (runner, state)
}

/// The embedded files and the content type each is served with.
const ASSETS: &[(&str, &str)] = &[
    ("/console/app.js", "text/javascript; charset=utf-8"),
    ("/console/api.js", "text/javascript; charset=utf-8"),
    ("/console/format.js", "text/javascript; charset=utf-8"),
    ("/console/ui.js", "text/javascript; charset=utf-8"),
    ("/console/list.js", "text/javascript; charset=utf-8"),
    ("/console/removals.js", "text/javascript; charset=utf-8"),
    ("/console/keys.js", "text/javascript; charset=utf-8"),
    ("/console/audit.js", "text/javascript; charset=utf-8"),
    ("/console/accounts.js", "text/javascript; charset=utf-8"),
    ("/console/lifecycle.js", "text/javascript; charset=utf-8"),
    ("/console/handover.js", "text/javascript; charset=utf-8"),
    ("/console/app.css", "text/css; charset=utf-8"),
    ("/console/favicon.svg", "image/svg+xml"),
];

#[track_caller]
fn assert_security_headers(reply: &Reply, path: &str) {
    let csp = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{path}: no CSP"));
    assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(!csp.contains("unsafe"), "{path}: {csp}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{path}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
}

fn call(runner: &Runner, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let url = runner.url(path);
    let mut request = ureq::http::Request::builder().method(method).uri(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).expect("request");
    Reply::from(runner.agent().run(request))
}

#[test]
fn the_page_is_served_at_every_view_with_strict_headers() {
    let (runner, _state) = start();
    for path in [
        "/",
        "/audit",
        "/audit/",
        "/service-accounts",
        "/service-accounts/",
    ] {
        let reply = runner.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        assert_security_headers(&reply, path);
        let html = reply.text();
        assert!(
            html.contains(r#"<script type="module" src="/console/app.js"></script>"#),
            "{path}"
        );
    }
    assert_eq!(runner.get("/").body, runner.get("/audit").body);
}

#[test]
fn the_page_has_no_inline_script_or_style_and_builds_no_html_from_strings() {
    let (runner, _state) = start();
    let html = runner.get("/").text();
    for needle in ["<style", "style=", "javascript:"] {
        assert!(!html.contains(needle), "inline `{needle}` in index.html");
    }
    assert_eq!(inline_handler(&html), None);
    for script in html.match_indices("<script").map(|(i, _)| &html[i..]) {
        assert!(
            script.starts_with("<script type=\"module\" src=\"/console/"),
            "{script:.80}"
        );
    }
    for (path, _) in ASSETS.iter().filter(|(p, _)| p.ends_with(".js")) {
        let js = runner.get(path).text();
        for needle in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(needle), "{path} uses {needle}");
        }
    }
}

/// An `on…=` attribute (`onclick="…"`), if the HTML has one.
fn inline_handler(html: &str) -> Option<&str> {
    html.match_indices(" on")
        .map(|(i, _)| &html[i + 1..])
        .find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            name.len() > 2 && rest[name.len()..].starts_with('=')
        })
}

#[test]
fn every_file_the_page_refers_to_is_served_with_its_content_type() {
    let (runner, _state) = start();
    for (path, content_type) in ASSETS {
        let reply = runner.get(path);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(*content_type), "{path}");
        assert!(!reply.body.is_empty(), "{path}");
        assert_security_headers(&reply, path);
    }
    // Every /console/ reference in the HTML, and every module import, is one of them.
    let mut referenced: Vec<String> = Vec::new();
    let html = runner.get("/").text();
    for (i, _) in html.match_indices("\"/console/") {
        let end = html[i + 1..].find('"').unwrap();
        referenced.push(html[i + 1..i + 1 + end].to_owned());
    }
    for (path, _) in ASSETS.iter().filter(|(p, _)| p.ends_with(".js")) {
        let js = runner.get(path).text();
        for (i, _) in js.match_indices("from './") {
            let end = js[i + 8..].find('\'').unwrap();
            referenced.push(format!("/console/{}", &js[i + 8..i + 8 + end]));
        }
    }
    assert!(referenced.len() > 10, "{referenced:?}");
    for path in &referenced {
        assert!(
            ASSETS.iter().any(|(p, _)| p == path),
            "{path} is referenced but not in the list"
        );
        assert_eq!(runner.get(path).status, 200, "{path}");
    }
}

#[test]
fn an_unchanged_file_is_revalidated_with_its_etag() {
    let (runner, _state) = start();
    for path in ["/", "/console/app.js"] {
        let first = runner.get(path);
        let etag = first.header("etag").expect("etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        for sent in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".into(),
        ] {
            let again = call(&runner, "GET", path, &[("if-none-match", &sent)]);
            assert_eq!(again.status, 304, "{path} with {sent}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(etag.as_str()));
            assert_security_headers(&again, path);
        }
        let changed = call(&runner, "GET", path, &[("if-none-match", "\"0000\"")]);
        assert_eq!(changed.status, 200);
        assert_eq!(changed.body, first.body);
    }
    assert_ne!(
        runner.get("/console/app.js").header("etag"),
        runner.get("/console/api.js").header("etag")
    );
}

#[test]
fn head_answers_like_get_without_a_body() {
    let (runner, _state) = start();
    for path in ["/", "/audit", "/console/app.css"] {
        let get = runner.get(path);
        let head = call(&runner, "HEAD", path, &[]);
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}");
        assert_eq!(head.header("content-type"), get.header("content-type"));
        assert_eq!(head.header("etag"), get.header("etag"));
        assert_security_headers(&head, path);
    }
}

#[test]
fn unknown_console_paths_are_404_not_found() {
    let (runner, _state) = start();
    for path in [
        "/console",
        "/console/",
        "/console/nope.js",
        "/console/APP.JS",
        "/console/app.js/",
        "/console/app.js/x",
        "/console/index.html",
        "/console/%2e%2e/spin.toml",
        "/console/static/app.js",
        "/console/app.js%00",
    ] {
        let reply = runner.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        assert_eq!(reply.json()["code"], "not_found", "{path}");
        assert_security_headers(&reply, path);
    }
}

#[test]
fn other_methods_are_405_with_allow() {
    let (runner, _state) = start();
    for path in ["/", "/audit", "/console/app.js"] {
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let reply = call(&runner, method, path, &[]);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
            assert_eq!(reply.json()["code"], "method_not_allowed");
            assert_security_headers(&reply, path);
        }
    }
    // Unknown path and wrong method: the path is what is wrong.
    assert_eq!(call(&runner, "POST", "/console/nope", &[]).status, 404);
}

#[test]
fn the_api_keeps_its_routes_beside_the_console() {
    let (runner, _state) = start();
    assert_eq!(runner.get("/api/keys").status, 401);
    assert_eq!(runner.get("/api/health").status, 200);
    let elsewhere = runner.get("/consoles");
    assert_eq!(elsewhere.status, 404);
    assert_eq!(elsewhere.json()["code"], "not_found");
    assert!(
        elsewhere.header("content-security-policy").is_none(),
        "the API answered"
    );
    assert_eq!(runner.get("/audit/x").status, 404);
    assert_eq!(runner.get("/service-accounts/x").status, 404);
}
