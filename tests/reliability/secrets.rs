//! Hostile callers learn nothing the contract does not say, and no secret
//! ever leaves keygate except in the one create response:
//!
//! - management calls without or with wrong credentials answer the same for
//!   a key id that exists, one that was deleted, one that never existed and
//!   one that is not an id at all; with credentials, gone and never-existed
//!   ids are the same `404 key_not_found`;
//! - verify with keys of other formats (JWTs, other vendors' prefixes, a bad
//!   checksum, a well-formed unknown key, the admin token, …) gives only the
//!   documented codes, and the answer never repeats what was presented;
//! - after a full scenario, the runner's complete log, every audit entry and
//!   every response body but the create responses are grepped for every
//!   secret (key secrets, admin token, webhook secret and its base64 part).

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

/// What a caller can compare between two answers: status, the headers that
/// are not per-response, and the body.
fn observable(reply: &Reply) -> (u16, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(k, _)| !matches!(k.to_ascii_lowercase().as_str(), "date"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.sort();
    (reply.status, headers, reply.text())
}

#[test]
fn without_or_with_wrong_credentials_existing_and_missing_key_ids_look_the_same() {
    let app = App::start();
    let (existing, secret) = app.create_key("existing");
    let existing = existing["id"].as_str().unwrap().to_owned();
    let (deleted, _) = app.create_key("deleted");
    let deleted = deleted["id"].as_str().unwrap().to_owned();
    assert_eq!(app.delete_key(&deleted).status, 204);
    let never = "key_0123456789abcdefABCDEF".to_owned();
    let junk = "not-a-key-id".to_owned();
    let ids = [&existing, &deleted, &never, &junk];

    // (Authorization, X-Acting-User, the answer every id must get)
    let credentials: Vec<(Option<String>, Option<&str>, u16, &str)> = vec![
        (None, None, 401, "unauthenticated"),
        (None, Some(ALICE), 401, "unauthenticated"),
        (
            Some("Bearer wrong-token-0000000000".into()),
            Some(ALICE),
            401,
            "unauthenticated",
        ),
        (
            Some(format!("Bearer {ADMIN_TOKEN}x")),
            Some(ALICE),
            401,
            "unauthenticated",
        ),
        (
            Some(format!("Basic {ADMIN_TOKEN}")),
            Some(ALICE),
            401,
            "unauthenticated",
        ),
        // A valid API key is no management credential.
        (
            Some(format!("Bearer {secret}")),
            Some(ALICE),
            401,
            "unauthenticated",
        ),
        (
            Some(format!("Bearer {ADMIN_TOKEN}")),
            None,
            400,
            "acting_user_required",
        ),
    ];
    for method in ["GET", "DELETE"] {
        for (authorization, acting, status, code) in &credentials {
            let replies: Vec<Reply> = ids
                .iter()
                .map(|id| {
                    let mut call = app.call(method, &format!("/api/keys/{id}"));
                    if let Some(a) = authorization {
                        call = call.header("authorization", a);
                    }
                    if let Some(u) = acting {
                        call = call.acting(u);
                    }
                    call.send()
                })
                .collect();
            assert_problem(&replies[0], *status, code);
            for (id, reply) in ids.iter().zip(&replies).skip(1) {
                assert_eq!(
                    observable(reply),
                    observable(&replies[0]),
                    "{method} /api/keys/{id} with {authorization:?}/{acting:?} differs from an existing id"
                );
            }
        }
    }
    // Nothing was deleted by the refused calls.
    assert_eq!(app.get_key(&existing).status, 200);
    assert_eq!(
        expect_json(&app.verify(&secret), 200)["key_id"],
        existing.as_str()
    );

    // With credentials: a deleted key and one that never existed are one answer.
    for method in ["GET", "DELETE"] {
        let replies: Vec<Reply> = [&deleted, &never, &junk]
            .iter()
            .map(|id| app.mgmt(method, &format!("/api/keys/{id}")).send())
            .collect();
        assert_problem(&replies[0], 404, "key_not_found");
        for reply in &replies[1..] {
            assert_eq!(observable(reply), observable(&replies[0]), "{method}");
        }
    }
}

/// Things an automation might present that are not keygate keys, with the
/// code verify must give.
fn foreign_keys(deleted_secret: &str) -> Vec<(String, &'static str)> {
    let random = "Zq3LwV9x2Hn7Pk4Rm8Tc1Ys6Bd0Fg5Jt";
    let good = well_formed_key(random);
    let mut bad_checksum = good.clone().into_bytes();
    bad_checksum[40] = if bad_checksum[40] == b'A' { b'B' } else { b'A' };
    let bad_checksum = String::from_utf8(bad_checksum).unwrap();
    vec![
        (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
                .into(),
            "malformed_key",
        ),
        (format!("sk_live_{random}"), "malformed_key"),
        (format!("ghp_{random}1234"), "malformed_key"),
        (format!("KG_{}", &good[3..]), "malformed_key"),
        (format!("kg-{}", &good[3..]), "malformed_key"),
        (format!("kg_{random}"), "malformed_key"),
        (format!("{good}0"), "malformed_key"),
        (
            format!("kg_{}-{}", &random[..31], &good[35..]),
            "malformed_key",
        ),
        (
            format!("kg_{}é{}", &random[..30], &good[35..]),
            "malformed_key",
        ),
        (bad_checksum, "malformed_key"),
        (format!("kg_{}", "A".repeat(4000)), "malformed_key"),
        (ADMIN_TOKEN.into(), "malformed_key"),
        (WEBHOOK_SECRET.into(), "malformed_key"),
        ("null".into(), "malformed_key"),
        // Right format and checksum: only storage can tell, and it says unknown.
        (good, "unknown_key"),
        (deleted_secret.into(), "unknown_key"),
    ]
}

#[test]
fn verify_with_keys_of_other_formats_gives_only_the_documented_codes() {
    let app = App::start();
    let (deleted, deleted_secret) = app.create_key("soon-deleted");
    assert_eq!(app.delete_key(deleted["id"].as_str().unwrap()).status, 204);
    let before = app.snapshot();
    for (presented, code) in foreign_keys(&deleted_secret) {
        let mut replies = vec![
            app.call("GET", "/api/verify")
                .header_bytes("x-api-key", presented.as_bytes())
                .send(),
            app.call("POST", "/api/verify")
                .json(&json!({ "key": presented }))
                .send(),
        ];
        // The HTTP client only sends ASCII in Authorization.
        if presented.is_ascii() {
            replies.push(app.call("GET", "/api/verify").bearer(&presented).send());
        }
        for reply in &replies {
            let problem = assert_key_rejected(reply, code);
            assert_no_secret(&problem.to_string(), &[&presented], "verify's answer");
        }
    }
    for (presented, want) in [("", "missing_key"), ("   ", "missing_key")] {
        let reply = app
            .call("GET", "/api/verify")
            .header("x-api-key", presented)
            .send();
        assert_key_rejected(&reply, want);
    }
    // Failed verifications write nothing: no key.used, no last_used_at.
    assert_eq!(app.snapshot(), before);
}

#[test]
fn no_secret_in_any_log_line_audit_entry_or_answer_after_a_full_scenario() {
    let app = App::start();
    // Every answer except the create responses (which show the secret once).
    let mut answers: Vec<(String, Reply)> = Vec::new();
    let mut keep = |what: &str, reply: Reply| {
        answers.push((what.to_owned(), reply));
    };

    let (alice_key, alice) = app.create_key_as(ALICE, "orders-sync");
    let (bob_key, bob) = app.create_key_as(BOB, "billing-export");
    let (_, bob2) = app.create_key_with(
        BOB,
        &json!({"name": "expiring", "description": "short-lived", "expires_at": format_time(now_unix() + DAY)}),
    );
    let (carol_key, carol) = app.create_key_as(CAROL, "to-delete");
    let secrets = [alice.as_str(), bob.as_str(), bob2.as_str(), carol.as_str()];

    // Verify through every channel, with the secret also in the forwarded URI's query.
    for secret in secrets {
        keep("verify bearer", app.verify(secret));
        keep(
            "verify x-api-key behind a gateway",
            app.call("GET", "/api/verify")
                .header("x-api-key", secret)
                .header("x-forwarded-method", "POST")
                .header(
                    "x-forwarded-uri",
                    &format!("/orders?api_key={secret}&token={ADMIN_TOKEN}"),
                )
                .header("x-forwarded-for", "203.0.113.7")
                .send(),
        );
        keep(
            "verify body",
            app.call("POST", "/api/verify")
                .json(&json!({"key": secret, "method": "GET", "path": format!("/x?key={secret}"), "source_ip": "198.51.100.4"}))
                .send(),
        );
        // Mistyped: the last character changed; the answer must not echo it.
        let mut typo = secret.to_owned();
        let last = typo.pop().unwrap();
        typo.push(if last == 'a' { 'b' } else { 'a' });
        keep("verify mistyped", app.verify(&typo));
        keep("verify truncated", app.verify(&secret[..30]));
        // A key where a management credential belongs.
        keep(
            "key as admin token",
            app.call("GET", "/api/keys")
                .bearer(secret)
                .acting(ALICE)
                .send(),
        );
    }
    for (name, value) in [
        ("wrong token", format!("Bearer {ADMIN_TOKEN}0")),
        ("token prefix", format!("Bearer {}", &ADMIN_TOKEN[..20])),
        ("token as basic", format!("Basic {ADMIN_TOKEN}")),
    ] {
        keep(
            name,
            app.call("GET", "/api/keys")
                .header("authorization", &value)
                .acting(ALICE)
                .send(),
        );
    }
    // Management: lists, one key, filters, validation errors, a name clash.
    keep("list", app.mgmt("GET", "/api/keys?per_page=100").send());
    keep(
        "list filtered",
        app.mgmt("GET", "/api/keys?name=orders&status=active")
            .send(),
    );
    keep(
        "list bad query",
        app.mgmt("GET", &format!("/api/keys?{}=1", &alice[..20]))
            .send(),
    );
    keep(
        "list bad value",
        app.mgmt("GET", &format!("/api/keys?created_by=&name={alice}x"))
            .send(),
    );
    keep("get", app.get_key(alice_key["id"].as_str().unwrap()));
    keep(
        "name taken",
        app.create(ALICE, &json!({"name": "orders-sync"})),
    );
    keep(
        "invalid create",
        app.create(
            ALICE,
            &json!({"name": "", "expires_at": alice, "description": 5}),
        ),
    );
    keep(
        "unknown field",
        app.create(ALICE, &json!({"name": "x", alice.as_str(): ADMIN_TOKEN})),
    );
    keep(
        "broken json",
        app.mgmt("POST", "/api/keys")
            .body(
                "application/json",
                format!("{{\"name\": \"{alice}\" {ADMIN_TOKEN}"),
            )
            .send(),
    );
    keep("delete", app.delete_key(carol_key["id"].as_str().unwrap()));
    keep("verify deleted", app.verify(&carol));
    keep("audit", app.mgmt("GET", "/api/audit?per_page=100").send());

    // The identity webhook: a bad signature, a wrong secret, a late one, then Bob for real.
    let body = user_removed_event(BOB).to_string();
    let now = now_unix();
    keep(
        "webhook bad signature",
        app.webhook(
            &webhook_headers("msg_bad", now, &format!("v1,{alice}")),
            body.as_bytes(),
        ),
    );
    keep(
        "webhook other secret",
        app.webhook(
            &sign_webhook(OTHER_WEBHOOK_SECRET, "msg_other", now, body.as_bytes()),
            body.as_bytes(),
        ),
    );
    keep(
        "webhook late",
        app.deliver("msg_late", now - 3600, body.as_bytes()),
    );
    let bad_body = format!(
        "{{\"type\":\"user.removed\",\"data\":{{\"user_id\":\"{bob}\"}},\"{WEBHOOK_SECRET}\":1}}"
    );
    keep(
        "webhook bad body",
        app.deliver("msg_body", now, bad_body.as_bytes()),
    );
    keep("webhook", app.deliver("msg_real", now, body.as_bytes()));
    keep("verify revoked", app.verify(&bob));
    keep("get revoked", app.get_key(bob_key["id"].as_str().unwrap()));
    keep(
        "removed user acts",
        app.create(BOB, &json!({"name": "again"})),
    );

    // The answers were what the scenario expects (so the grep sees real traffic).
    let status_of = |what: &str| answers.iter().find(|(w, _)| w == what).unwrap().1.status;
    assert_eq!(status_of("verify bearer"), 200);
    assert_eq!(status_of("webhook"), 200);
    assert_eq!(status_of("verify revoked"), 401);
    assert_eq!(status_of("removed user acts"), 403);
    assert!(answers.iter().filter(|(_, r)| r.status >= 400).count() > 20);

    let audit: Vec<Json> = app.audit_all("");
    assert!(audit.len() >= 20, "{} audit entries", audit.len());
    let listed = app.list_all("");

    let mut all_secrets: Vec<&str> = secrets.to_vec();
    all_secrets.extend([ADMIN_TOKEN, WEBHOOK_SECRET]);
    for (what, reply) in &answers {
        assert_no_secret(&reply.text(), &all_secrets, what);
        for (name, value) in &reply.headers {
            assert_no_secret(value, &all_secrets, &format!("{what}: header {name}"));
        }
    }
    for entry in &audit {
        assert_no_secret(&entry.to_string(), &all_secrets, "an audit entry");
    }
    for key in &listed {
        assert_no_secret(&key.to_string(), &all_secrets, "the overview");
    }
    let stdout = app.stdout();
    let (_, log) = app.runner.terminate();
    assert!(
        log.contains("/api/verify") && log.contains("/webhooks/user-removed"),
        "{log}"
    );
    for line in log.lines().chain(stdout.lines()) {
        assert_no_secret(line, &all_secrets, "a log line");
    }
}
