//! `GET`/`POST /api/verify`: what an automation or a gateway sees.
//!
//! `expired_key` is not exercised: `expires_at` must be in the future when a
//! key is created and these tests do not wait, so no key can expire here.

use keygate_tests::api::*;
use keygate_tests::{Json, json};

/// Asserts a 200 for `key` with the body and gateway headers the contract names.
#[track_caller]
fn assert_valid(reply: &keygate_tests::Reply, key: &Json) -> Json {
    let body = expect_json(reply, 200);
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["key_id"], key["id"], "{body}");
    assert_eq!(body["key_name"], key["name"], "{body}");
    assert_eq!(body["user_id"], key["created_by"], "{body}");
    assert_eq!(body["expires_at"], key["expires_at"], "{body}");
    assert_eq!(reply.header("x-key-id"), key["id"].as_str());
    assert_eq!(reply.header("x-user-id"), key["created_by"].as_str());
    body
}

/// The same key with the character at `at` replaced by another base62 one.
fn flip(secret: &str, at: usize) -> String {
    let mut bytes = secret.as_bytes().to_vec();
    let position = BASE62.iter().position(|&c| c == bytes[at]).unwrap();
    bytes[at] = BASE62[(position + 1) % 62];
    String::from_utf8(bytes).unwrap()
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn get_with_a_bearer_key() {
    let app = App::start();
    let (key, secret) = app.create_key_as(BOB, "deploy-bot");
    let body = assert_valid(&app.verify(&secret), &key);
    assert_eq!(body["expires_at"], json!(null));
    assert_no_secret(&body.to_string(), &[&secret], "the verify answer");
}

#[test]
fn get_with_x_api_key() {
    let app = App::start();
    let (key, secret) = app.create_key("header-key");
    assert_valid(
        &app.call("GET", "/api/verify")
            .header("x-api-key", &secret)
            .send(),
        &key,
    );
}

#[test]
fn post_with_the_key_in_the_body() {
    let app = App::start();
    let (key, secret) = app.create_key("body-key");
    let reply = app
        .call("POST", "/api/verify")
        .json(&json!({ "key": secret }))
        .send();
    assert_valid(&reply, &key);
}

#[test]
fn post_with_headers_and_no_body_is_like_get() {
    let app = App::start();
    let (key, secret) = app.create_key("forward-auth");
    let reply = app.call("POST", "/api/verify").bearer(&secret).send();
    assert_valid(&reply, &key);
    let reply = app
        .call("POST", "/api/verify")
        .header("x-api-key", &secret)
        .raw_body(Vec::new())
        .send();
    assert_valid(&reply, &key);
    let reply = app.call("POST", "/api/verify").raw_body(Vec::new()).send();
    assert_key_rejected(&reply, "missing_key");
}

/// A POST's body counts whether its length is announced or chunked; a GET's
/// body plays no part (the contract reads the key from a POST body only).
#[test]
fn only_a_post_body_is_read_announced_or_chunked() {
    let app = App::start();
    let (key, secret) = app.create_key("body-key");
    let body = json!({ "key": secret });
    assert_valid(
        &app.call("POST", "/api/verify").json(&body).chunked().send(),
        &key,
    );
    // A GET's body is read and ignored, up to the contract's 64 KiB (a
    // larger one is 413: tests/reliability/hostile_bodies.rs).
    let padded = format!("{body}{}", " ".repeat(60 << 10));
    for chunked in [false, true] {
        let call = app
            .call("GET", "/api/verify")
            .body("application/json", padded.clone());
        let reply = if chunked { call.chunked() } else { call }.send();
        assert_key_rejected(&reply, "missing_key");
        let call = app
            .call("GET", "/api/verify")
            .bearer(&secret)
            .body("text/plain", "not json");
        let reply = if chunked { call.chunked() } else { call }.send();
        assert_valid(&reply, &key);
    }
    assert_eq!(app.audit("action=key.used")["total"], 3);
}

#[test]
fn key_sources_are_bearer_then_x_api_key_then_body() {
    let app = App::start();
    let (first, first_secret) = app.create_key("first");
    let (second, second_secret) = app.create_key("second");
    let (third, third_secret) = app.create_key("third");
    let reply = app
        .call("POST", "/api/verify")
        .bearer(&first_secret)
        .header("x-api-key", &second_secret)
        .json(&json!({ "key": third_secret }))
        .send();
    assert_valid(&reply, &first);
    let reply = app
        .call("POST", "/api/verify")
        .header("x-api-key", &second_secret)
        .json(&json!({ "key": third_secret }))
        .send();
    assert_valid(&reply, &second);
    let reply = app
        .call("POST", "/api/verify")
        .json(&json!({ "key": third_secret }))
        .send();
    assert_valid(&reply, &third);
}

#[test]
fn a_successful_verification_sets_last_used_at() {
    let app = App::start();
    let (key, secret) = app.create_key("used");
    let (unused, _) = app.create_key("unused");
    let id = key["id"].as_str().unwrap();
    assert_eq!(
        expect_json(&app.get_key(id), 200)["last_used_at"],
        json!(null)
    );
    assert_valid(&app.verify(&secret), &key);
    let after = expect_json(&app.get_key(id), 200);
    assert_utc_timestamp(&after["last_used_at"]);
    let used_at = parse_time(after["last_used_at"].as_str().unwrap());
    assert!((used_at - now_unix()).abs() < 120, "{after}");
    assert!(used_at >= parse_time(key["created_at"].as_str().unwrap()));
    let other = expect_json(&app.get_key(unused["id"].as_str().unwrap()), 200);
    assert_eq!(other["last_used_at"], json!(null));
    // Nothing else about the key changes.
    let mut expected = after.clone();
    expected["last_used_at"] = json!(null);
    let mut created = key.clone();
    created.as_object_mut().unwrap().remove("secret");
    assert_eq!(expected, created);
}

#[test]
fn a_key_with_an_expiry_verifies_until_then() {
    let app = App::start();
    let expires_at = format_time(now_unix() + DAY);
    let (key, secret) = app.create_key_with(
        ALICE,
        &json!({"name": "expiring", "expires_at": expires_at}),
    );
    let body = assert_valid(&app.verify(&secret), &key);
    assert_eq!(body["expires_at"], expires_at);
}

// ---- 401 -------------------------------------------------------------------

#[test]
fn no_key_is_missing_key() {
    let app = App::start();
    app.create_key("k");
    assert_key_rejected(&app.call("GET", "/api/verify").send(), "missing_key");
    assert_key_rejected(
        &app.call("POST", "/api/verify").json(&json!({})).send(),
        "missing_key",
    );
    assert_key_rejected(
        &app.call("POST", "/api/verify")
            .json(&json!({"method": "GET", "path": "/x", "source_ip": "192.0.2.1"}))
            .send(),
        "missing_key",
    );
    assert_key_rejected(
        &app.call("GET", "/api/verify")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/x")
            .send(),
        "missing_key",
    );
}

#[test]
fn keys_that_are_not_well_formed_are_malformed_key() {
    let app = App::start();
    let (key, secret) = app.create_key("real");
    let s = secret.as_str();
    let cases = [
        // prefix
        format!("sk_{}", &s[3..]),
        format!("KG_{}", &s[3..]),
        format!("kg-{}", &s[3..]),
        s[3..].to_owned(),
        // length
        s[..40].to_owned(),
        format!("{s}A"),
        "kg_".to_owned(),
        format!("kg_{}", &s[3..20]),
        // alphabet
        format!("{}-{}", &s[..10], &s[11..]),
        format!("{}_{}", &s[..10], &s[11..]),
        format!("{}!{}", &s[..38], &s[39..]),
        // checksum: one character of the random part, or of the checksum
        flip(s, 3),
        flip(s, 20),
        flip(s, 34),
        flip(s, 35),
        flip(s, 40),
        // the admin token is no API key
        ADMIN_TOKEN.to_owned(),
    ];
    for wrong in &cases {
        let reply = app.verify(wrong);
        let problem = assert_key_rejected(&reply, "malformed_key");
        assert_no_secret(&problem.to_string(), &[wrong.as_str(), s], "a verify error");
        assert_key_rejected(
            &app.call("GET", "/api/verify")
                .header("x-api-key", wrong)
                .send(),
            "malformed_key",
        );
        assert_key_rejected(
            &app.call("POST", "/api/verify")
                .json(&json!({ "key": wrong }))
                .send(),
            "malformed_key",
        );
    }
    // Characters no header could carry, in the body.
    for wrong in [
        format!("{}é{}", &s[..10], &s[12..]),
        format!("{}\u{0}{}", &s[..10], &s[11..]),
        format!("{}\n", &s[..40]),
    ] {
        assert_key_rejected(
            &app.call("POST", "/api/verify")
                .json(&json!({ "key": wrong }))
                .send(),
            "malformed_key",
        );
    }
    // None of this counted as a use.
    let after = expect_json(&app.get_key(key["id"].as_str().unwrap()), 200);
    assert_eq!(after["last_used_at"], json!(null));
    assert_eq!(app.audit("action=key.used")["total"], 0);
}

#[test]
fn a_well_formed_key_that_never_existed_is_unknown_key() {
    let app = App::start();
    let (_, secret) = app.create_key("real");
    assert!(
        is_well_formed_key(&secret),
        "the test's checksum (CRC32, base62 0-9A-Za-z) must match the service's: {secret}"
    );
    let mut rng = Rng::new(0x5eed);
    for _ in 0..5 {
        let made_up = well_formed_key(&rng.key_random_part());
        let problem = assert_key_rejected(&app.verify(&made_up), "unknown_key");
        assert_no_secret(&problem.to_string(), &[&made_up], "a verify error");
    }
}

#[test]
fn a_deleted_key_is_unknown_key() {
    let app = App::start();
    let (key, secret) = app.create_key("deleted");
    assert_eq!(app.delete_key(key["id"].as_str().unwrap()).status, 204);
    assert_key_rejected(&app.verify(&secret), "unknown_key");
    assert_key_rejected(
        &app.call("POST", "/api/verify")
            .json(&json!({ "key": secret }))
            .send(),
        "unknown_key",
    );
}

#[test]
fn a_key_of_a_removed_user_is_revoked_key() {
    let app = App::start();
    let (key, secret) = app.create_key_as(ALICE, "alices");
    let (bobs, bob_secret) = app.create_key_as(BOB, "bobs");
    app.remove_user(ALICE);
    assert_key_rejected(&app.verify(&secret), "revoked_key");
    assert_key_rejected(
        &app.call("GET", "/api/verify")
            .header("x-api-key", &secret)
            .send(),
        "revoked_key",
    );
    let after = expect_json(&app.get_key(key["id"].as_str().unwrap()), 200);
    assert_eq!(
        after["last_used_at"],
        json!(null),
        "a refused key was not used"
    );
    assert_valid(&app.verify(&bob_secret), &bobs);
}

// ---- 400 / 415 -------------------------------------------------------------

#[test]
fn post_bodies_must_be_the_documented_json() {
    let app = App::start();
    let (_, secret) = app.create_key("k");
    for body in [
        "{".to_owned(),
        "[]".to_owned(),
        format!(r#"{{"key": "{secret}", "extra": 1}}"#),
        format!(r#"{{"key": "{secret}", "method": "GET""#),
    ] {
        let reply = app
            .call("POST", "/api/verify")
            .body("application/json", body)
            .send();
        assert_problem(&reply, 400, "invalid_request");
    }
    let reply = app
        .call("POST", "/api/verify")
        .body("text/plain", secret.clone())
        .send();
    assert_problem(&reply, 415, "unsupported_media_type");
    assert_eq!(app.audit("action=key.used")["total"], 0);
}

#[test]
fn management_credentials_play_no_part() {
    let app = App::start();
    let (_, secret) = app.create_key("k");
    // The admin token (with an acting user) is no key…
    let reply = app.mgmt("GET", "/api/verify").send();
    assert_eq!(reply.status, 401, "{}", reply.text());
    let code = problem_code(&reply).unwrap_or_default();
    assert!(
        code == "malformed_key" || code == "missing_key",
        "{}",
        reply.text()
    );
    assert_key_rejected(&reply, &code);
    assert_no_secret(&reply.text(), &[ADMIN_TOKEN], "a verify error");
    // …and a valid key needs neither.
    expect_json(&app.verify(&secret), 200);
}
