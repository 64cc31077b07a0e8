//! The conventions every route shares: problem+json errors, 404 for unknown
//! routes, 405 with `Allow`, 413 over 64 KiB, 415 for non-JSON, 400 for bad
//! JSON, UTC timestamps, and no secret anywhere it could leak.

use std::collections::BTreeSet;

use keygate_tests::api::*;
use keygate_tests::{Reply, json};

const LIMIT: usize = 64 * 1024;

/// `body` padded with spaces (still the same JSON) to exactly `len` bytes.
fn padded(body: &str, len: usize) -> Vec<u8> {
    assert!(body.len() <= len && body.ends_with('}'));
    let mut out = body.as_bytes()[..body.len() - 1].to_vec();
    out.resize(len - 1, b' ');
    out.push(b'}');
    out
}

fn allow_set(reply: &Reply) -> BTreeSet<String> {
    reply
        .header("allow")
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

// ---- 404 -------------------------------------------------------------------

#[test]
fn unknown_routes_are_not_found_problems() {
    let app = App::start();
    // `/`, `/audit` and `/console/...` are the web console (tests/app/console.rs).
    for path in [
        "/index.html",
        "/api",
        "/api/nope",
        "/api/key",
        "/api/keys/key_0000000000000000000000/secret",
        "/api/audit/entries",
        "/api/verify/now",
        "/webhooks/user-created",
        "/webhooks/user-removed/again",
        "/nope/deeper/still?x=1",
    ] {
        for method in ["GET", "POST", "DELETE"] {
            let reply = app.mgmt(method, path).send();
            let problem = assert_problem(&reply, 404, "not_found");
            assert_eq!(problem["status"], 404);
        }
    }
}

// ---- 405 -------------------------------------------------------------------

#[test]
fn wrong_methods_on_known_routes_are_405_with_allow() {
    let app = App::start();
    let (key, _) = app.create_key("k");
    let key_path = format!("/api/keys/{}", key["id"].as_str().unwrap());
    let (transfer_path, roll_path) = (format!("{key_path}/transfer"), format!("{key_path}/roll"));
    let cases: Vec<(&str, &str, &[&str])> = vec![
        ("PUT", "/api/keys", &["GET", "POST"]),
        ("PATCH", "/api/keys", &["GET", "POST"]),
        ("DELETE", "/api/keys", &["GET", "POST"]),
        ("PUT", &key_path, &["GET", "PATCH", "DELETE"]),
        ("POST", &key_path, &["GET", "PATCH", "DELETE"]),
        ("GET", &transfer_path, &["POST"]),
        ("DELETE", &roll_path, &["POST"]),
        ("PUT", "/api/service-accounts", &["GET", "POST"]),
        (
            "GET",
            "/api/service-accounts/sa_0123456789abcdefghijkl",
            &["DELETE"],
        ),
        ("DELETE", "/api/users/ops@example.com", &["GET"]),
        ("POST", "/api/audit", &["GET"]),
        ("DELETE", "/api/audit", &["GET"]),
        ("PUT", "/api/verify", &["GET", "POST"]),
        ("DELETE", "/api/verify", &["GET", "POST"]),
        ("GET", "/webhooks/user-removed", &["POST"]),
        ("PUT", "/webhooks/user-removed", &["POST"]),
        ("POST", "/api/openapi.json", &["GET"]),
        ("DELETE", "/api/openapi.json", &["GET"]),
    ];
    for (method, path, allowed) in cases {
        let reply = app.mgmt(method, path).json(&json!({})).send();
        assert_problem(&reply, 405, "method_not_allowed");
        let allow = allow_set(&reply);
        for m in allowed {
            assert!(
                allow.contains(*m),
                "{method} {path}: Allow {allow:?} lacks {m}"
            );
        }
        assert!(!allow.contains(method), "{method} {path}: Allow {allow:?}");
    }
    // Nothing happened to the key.
    assert_eq!(
        expect_json(&app.mgmt("GET", &key_path).send(), 200)["status"],
        "active"
    );
}

// ---- 413 -------------------------------------------------------------------

#[test]
fn bodies_over_64_kib_are_413_and_at_64_kib_are_read() {
    let app = App::start();
    let create = r#"{"name": "big-body"}"#;
    // Exactly 64 KiB is fine…
    let reply = app
        .mgmt("POST", "/api/keys")
        .body("application/json", padded(create, LIMIT))
        .send();
    expect_json(&reply, 201);
    // …one byte more is not, whether or not the length is announced.
    for chunked in [false, true] {
        let mut call = app.mgmt("POST", "/api/keys").body(
            "application/json",
            padded(r#"{"name": "too-big"}"#, LIMIT + 1),
        );
        if chunked {
            call = call.chunked();
        }
        assert_problem(&call.send(), 413, "payload_too_large");
    }
    assert_eq!(app.list("")["total"], 1);

    let (_, secret) = app.create_key("for-verify");
    let verify = format!(r#"{{"key": "{secret}"}}"#);
    let reply = app
        .call("POST", "/api/verify")
        .body("application/json", padded(&verify, LIMIT))
        .send();
    expect_json(&reply, 200);
    let reply = app
        .call("POST", "/api/verify")
        .body("application/json", padded(&verify, LIMIT + 1))
        .send();
    assert_problem(&reply, 413, "payload_too_large");

    let event = user_removed_event(BOB).to_string();
    let at_limit = padded(&event, LIMIT);
    expect_json(&app.deliver(&new_webhook_id(), now_unix(), &at_limit), 200);
    let over = padded(&user_removed_event(CAROL).to_string(), LIMIT + 1);
    assert_problem(
        &app.deliver(&new_webhook_id(), now_unix(), &over),
        413,
        "payload_too_large",
    );
    assert_eq!(app.audit("action=user.removed")["total"], 1);
}

// ---- 415 -------------------------------------------------------------------

#[test]
fn non_json_bodies_are_415() {
    let app = App::start();
    let create = r#"{"name": "not-json"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("text/json-ish"),
        None,
    ] {
        let mut call = app.mgmt("POST", "/api/keys");
        if let Some(content_type) = content_type {
            call = call.header("content-type", content_type);
        }
        let reply = call.raw_body(create).send();
        assert_problem(&reply, 415, "unsupported_media_type");
    }
    assert_eq!(app.list("")["total"], 0);

    let (_, secret) = app.create_key("k");
    let reply = app
        .call("POST", "/api/verify")
        .body("text/plain", format!(r#"{{"key": "{secret}"}}"#))
        .send();
    assert_problem(&reply, 415, "unsupported_media_type");

    let event = user_removed_event(ALICE).to_string();
    let id = new_webhook_id();
    let ts = now_unix();
    let reply = app
        .call("POST", "/webhooks/user-removed")
        .headers(&sign_webhook(WEBHOOK_SECRET, &id, ts, event.as_bytes()))
        .body("text/plain", event)
        .send();
    assert_problem(&reply, 415, "unsupported_media_type");
    expect_json(&app.verify(&secret), 200);
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn json_that_does_not_parse_or_has_unknown_fields_is_400() {
    let app = App::start();
    for body in [
        &b""[..],
        b"{",
        b"{\"name\":",
        b"{\"name\": \"x\",}",
        b"[]",
        b"[{\"name\": \"x\"}]",
        b"\"name\"",
        b"null",
        b"42",
        b"{\"name\": \"x\", \"colour\": \"red\"}",
        b"{\"name\": \"x\", \"secret\": \"kg_chosen\"}",
        b"{\"name\": \"x\", \"created_by\": \"mallory@example.com\"}",
        b"{\"name\": \"\xff\xfe\"}",
    ] {
        let reply = app
            .mgmt("POST", "/api/keys")
            .body("application/json", body)
            .send();
        assert_problem(&reply, 400, "invalid_request");
    }
    assert_eq!(app.list("")["total"], 0);
    assert_eq!(app.audit("")["total"], 0);
}

// ---- shapes ----------------------------------------------------------------

#[test]
fn errors_of_every_kind_are_problem_documents() {
    let app = App::start();
    let (key, secret) = app.create_key("taken");
    let replies = [
        app.call("GET", "/api/keys").send(),
        app.call("GET", "/api/keys").bearer(ADMIN_TOKEN).send(),
        app.mgmt("GET", "/api/keys?sort=bogus").send(),
        app.create(ALICE, &json!({"name": ""})),
        app.create(ALICE, &json!({"name": "taken"})),
        app.get_key("key_0000000000000000000000"),
        app.call("GET", "/api/verify").send(),
        app.call("GET", "/webhooks/user-removed").send(),
        app.mgmt("GET", "/api/nowhere").send(),
        app.call("POST", "/webhooks/user-removed")
            .json(&json!({}))
            .send(),
    ];
    for reply in &replies {
        assert!(reply.status >= 400, "{}", reply.text());
        let problem = assert_problem_shape(reply);
        assert_no_secret(
            &problem.to_string(),
            &[&secret, ADMIN_TOKEN, WEBHOOK_SECRET],
            "an error",
        );
    }
    let problem = assert_validation_failed(&replies[3], &["name"]);
    assert!(problem["errors"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(key["status"], "active");
}

#[test]
fn successful_answers_are_json_with_utc_timestamps() {
    let app = App::start();
    let (key, secret) = app.create_key_with(
        ALICE,
        &json!({"name": "times", "expires_at": "2099-01-01T12:00:00+05:30"}),
    );
    expect_json(&app.verify(&secret), 200);
    app.remove_user(ALICE);
    let got = expect_json(
        &app.mgmt("GET", &format!("/api/keys/{}", key["id"].as_str().unwrap()))
            .acting(BOB)
            .send(),
        200,
    );
    for field in ["created_at", "last_used_at", "expires_at", "revoked_at"] {
        assert_utc_timestamp(&got[field]);
    }
    assert_eq!(got["expires_at"], "2099-01-01T06:30:00Z");
    for entry in app.mgmt("GET", "/api/audit").acting(BOB).send().json()["items"]
        .as_array()
        .unwrap()
    {
        assert_utc_timestamp(&entry["at"]);
    }
}

// ---- secrets ---------------------------------------------------------------

#[test]
fn no_secret_appears_in_logs_lists_or_errors() {
    let app = App::start();
    let (key, secret) = app.create_key("logged");
    let (_, other) = app.create_key_as(BOB, "other");
    expect_json(&app.verify(&secret), 200);
    app.call("POST", "/api/verify")
        .json(&json!({"key": other, "method": "GET", "path": "/p", "source_ip": "192.0.2.1"}))
        .send();
    let mut wrong = secret.clone();
    wrong.replace_range(5..6, if &secret[5..6] == "a" { "b" } else { "a" });
    app.verify(&wrong);
    app.call("GET", "/api/verify")
        .header("x-api-key", &secret)
        .send();
    app.call("GET", "/api/keys")
        .bearer(&secret)
        .acting(ALICE)
        .send();
    app.call("GET", "/api/keys")
        .bearer(&format!("{ADMIN_TOKEN}-almost"))
        .acting(ALICE)
        .send();
    app.deliver("msg_log", now_unix(), b"{\"not\": \"an event\"}");
    app.webhook(
        &sign_webhook(OTHER_WEBHOOK_SECRET, "msg_bad", now_unix(), b"{}"),
        b"{}",
    );
    app.remove_user(BOB);
    let list = app.mgmt("GET", "/api/keys").send().text();
    let one = app.get_key(key["id"].as_str().unwrap()).text();
    let audit = app.mgmt("GET", "/api/audit?per_page=100").send().text();

    let secrets = [secret.as_str(), other.as_str(), ADMIN_TOKEN, WEBHOOK_SECRET];
    assert_no_secret(&list, &secrets, "the overview");
    assert_no_secret(&one, &secrets, "a key");
    assert_no_secret(&audit, &secrets, "the audit trail");
    // Everything up to the last request's log line.
    let log = app.wait_for_log("GET /api/audit keys 200");
    assert_no_secret(&log, &secrets, "the log (stderr)");
    assert_no_secret(&app.stdout(), &secrets, "stdout");
}
