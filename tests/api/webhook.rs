//! `POST /webhooks/user-removed`: what the identity system (and the removed
//! user's automations) see.

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

/// Header name and value pairs of one delivery.
type Headers = Vec<(String, String)>;

/// Alice with three keys, Bob with one.
fn app_with_keys() -> (App, Vec<(Json, String)>, (Json, String)) {
    let app = App::start();
    let alices = (1..=3)
        .map(|i| app.create_key_as(ALICE, &format!("alice-{i}")))
        .collect();
    let bobs = app.create_key_as(BOB, "bob-1");
    (app, alices, bobs)
}

fn event(user: &str) -> Vec<u8> {
    user_removed_event(user).to_string().into_bytes()
}

/// Asserts a refused delivery changed nothing: same overview and trail, and
/// Alice's keys still verify.
#[track_caller]
fn assert_unchanged(app: &App, before: &(Vec<Json>, Vec<Json>), alices: &[(Json, String)]) {
    assert_eq!(&app.snapshot(), before, "a refused delivery changed state");
    for (_, secret) in alices {
        // (After the snapshot comparison: a verification adds a key.used entry.)
        expect_json(&app.verify(secret), 200);
    }
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn removal_revokes_every_key_of_the_user_and_only_theirs() {
    let (app, alices, (bobs, bob_secret)) = app_with_keys();
    let reply = app.deliver("msg_1", now_unix(), &event(ALICE));
    assert_eq!(
        expect_json(&reply, 200),
        json!({"user_id": ALICE, "revoked_keys": 3})
    );

    for (key, secret) in &alices {
        assert_key_rejected(&app.verify(secret), "revoked_key");
        let now = expect_json(&app.get_key(key["id"].as_str().unwrap()), 200);
        assert_key_object(&now);
        assert_eq!(now["status"], "revoked");
        assert_eq!(now["revoked_reason"], "owner_removed");
        let revoked_at = parse_time(now["revoked_at"].as_str().unwrap());
        assert!((revoked_at - now_unix()).abs() < 120);
    }
    expect_json(&app.verify(&bob_secret), 200);
    let bob_now = expect_json(
        &app.mgmt(
            "GET",
            &format!("/api/keys/{}", bobs["id"].as_str().unwrap()),
        )
        .acting(BOB)
        .send(),
        200,
    );
    assert_eq!(bob_now["status"], "active");

    let removed = app.audit_all("action=user.removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["user"], ALICE);
    assert_eq!(removed[0]["details"]["channel"], "webhook");
    let revoked = app.audit_all("action=key.revoked");
    assert_eq!(revoked.len(), 3);
    assert!(revoked.iter().all(|e| e["user"] == ALICE));
    let revoked_ids: std::collections::BTreeSet<&str> = revoked
        .iter()
        .map(|e| e["key_id"].as_str().unwrap())
        .collect();
    let alice_ids: std::collections::BTreeSet<&str> = alices
        .iter()
        .map(|(k, _)| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(revoked_ids, alice_ids);
}

#[test]
fn a_removed_user_can_no_longer_act() {
    let (app, alices, (bobs, _)) = app_with_keys();
    app.remove_user(ALICE);
    let before = app.snapshot();
    let bob_key = format!("/api/keys/{}", bobs["id"].as_str().unwrap());
    let alice_key = format!("/api/keys/{}", alices[0].0["id"].as_str().unwrap());
    for reply in [
        app.create(ALICE, &json!({"name": "after-removal"})),
        app.mgmt("GET", "/api/keys").acting(ALICE).send(),
        app.mgmt("GET", &bob_key).acting(ALICE).send(),
        app.mgmt("DELETE", &bob_key).acting(ALICE).send(),
        app.mgmt("DELETE", &alice_key).acting(ALICE).send(),
        app.mgmt("GET", "/api/audit").acting(ALICE).send(),
    ] {
        assert_problem(&reply, 403, "user_removed");
    }
    assert_eq!(app.snapshot(), before, "nothing was created or deleted");
    assert_eq!(app.list(&query(&[("name", "after-removal")]))["total"], 0);
}

#[test]
fn removing_a_user_without_keys_revokes_none_and_still_bars_them() {
    let (app, _, _) = app_with_keys();
    assert_eq!(
        app.remove_user(CAROL),
        json!({"user_id": CAROL, "revoked_keys": 0})
    );
    assert_problem(
        &app.create(CAROL, &json!({"name": "carols"})),
        403,
        "user_removed",
    );
    assert_eq!(app.list("status=revoked")["total"], 0);
}

#[test]
fn the_same_webhook_id_again_answers_the_same_and_changes_nothing() {
    let (app, alices, _) = app_with_keys();
    let body = event(ALICE);
    let timestamp = now_unix();
    let first = expect_json(&app.deliver("msg_same", timestamp, &body), 200);
    assert_eq!(first["revoked_keys"], 3);
    let before = app.snapshot();

    // The identical retry, and a retry signed afresh.
    for timestamp in [timestamp, timestamp + 1] {
        let again = expect_json(&app.deliver("msg_same", timestamp, &body), 200);
        assert_eq!(again, first);
    }
    assert_eq!(
        app.snapshot(),
        before,
        "no second revocation, no duplicate audit entries"
    );
    assert_eq!(app.audit("action=user.removed")["total"], 1);
    assert_eq!(app.audit("action=key.revoked")["total"], alices.len());
}

#[test]
fn the_same_webhook_id_with_another_body_changes_nothing() {
    // The `webhook-id` is the delivery's identity (Standard Webhooks); api.md:
    // "the same webhook-id again returns the same answer and changes nothing".
    let (app, _, (_, bob_secret)) = app_with_keys();
    let first = expect_json(&app.deliver("msg_reused", now_unix(), &event(ALICE)), 200);
    let before = app.snapshot();
    let again = expect_json(&app.deliver("msg_reused", now_unix(), &event(BOB)), 200);
    assert_eq!(again, first);
    assert_eq!(app.snapshot(), before);
    expect_json(&app.verify(&bob_secret), 200);
}

#[test]
fn a_new_delivery_for_a_removed_user_revokes_nothing_more() {
    let (app, alices, _) = app_with_keys();
    assert_eq!(app.remove_user(ALICE)["revoked_keys"], 3);
    let keys_before = app.list_all("");
    assert_eq!(
        app.remove_user(ALICE),
        json!({"user_id": ALICE, "revoked_keys": 0})
    );
    assert_eq!(app.list_all(""), keys_before, "revoked_at is kept");
    assert_eq!(app.audit("action=key.revoked")["total"], 3);
    for (_, secret) in &alices {
        assert_key_rejected(&app.verify(secret), "revoked_key");
    }
}

#[test]
fn the_signature_covers_the_raw_bytes() {
    let (app, _, _) = app_with_keys();
    // Pretty-printed, with a user id that needs escaping: signed as sent.
    let user = "o'brien \"the admin\"@example.com";
    let body = serde_json::to_vec_pretty(&user_removed_event(user)).unwrap();
    let reply = app.deliver(&new_webhook_id(), now_unix(), &body);
    assert_eq!(expect_json(&reply, 200)["user_id"], user);
}

#[test]
fn any_one_matching_signature_is_enough() {
    let (app, _, _) = app_with_keys();
    for (i, user) in [ALICE, BOB, CAROL].into_iter().enumerate() {
        let body = event(user);
        let id = format!("msg_multi_{i}");
        let ts = now_unix();
        let good = webhook_signature(WEBHOOK_SECRET, &id, ts, &body);
        let wrong = webhook_signature(OTHER_WEBHOOK_SECRET, &id, ts, &body);
        let signatures = [
            format!("{wrong} {good}"),
            format!("v1,AAAA {good} v1,bm90LWEtc2lnbmF0dXJl"),
            format!("{good} {wrong}"),
        ];
        let reply = app.webhook(&webhook_headers(&id, ts, &signatures[i]), &body);
        assert_eq!(expect_json(&reply, 200)["user_id"], user);
    }
}

#[test]
fn timestamps_within_five_minutes_either_way_are_accepted() {
    let (app, _, _) = app_with_keys();
    for (offset, user) in [(-240, ALICE), (240, BOB)] {
        let reply = app.deliver(&new_webhook_id(), now_unix() + offset, &event(user));
        assert_eq!(expect_json(&reply, 200)["user_id"], user);
    }
}

// ---- 401 -------------------------------------------------------------------

#[test]
fn wrong_or_missing_signatures_are_invalid_signature() {
    let (app, alices, _) = app_with_keys();
    let before = app.snapshot();
    let body = event(ALICE);
    let ts = now_unix();
    let good = webhook_signature(WEBHOOK_SECRET, "msg_x", ts, &body);
    let tampered = event(BOB);
    let headers = |id: &str, ts: i64, sig: &str| webhook_headers(id, ts, sig);
    let without = |name: &str| {
        headers("msg_x", ts, &good)
            .into_iter()
            .filter(|(k, _)| k != name)
            .collect::<Vec<_>>()
    };
    let body = body.as_slice();
    let cases: Vec<(Headers, &[u8])> = vec![
        (sign_webhook(OTHER_WEBHOOK_SECRET, "msg_x", ts, body), body),
        (headers("msg_x", ts, &good), tampered.as_slice()),
        (headers("msg_x", ts, &good), b" ".as_slice()),
        (headers("msg_y", ts, &good), body),
        (headers("msg_x", ts + 1, &good), body),
        (headers("msg_x", ts, &good.replacen("v1,", "v2,", 1)), body),
        (headers("msg_x", ts, good.trim_start_matches("v1,")), body),
        (headers("msg_x", ts, "v1,not base64!"), body),
        (headers("msg_x", ts, ""), body),
        (without("webhook-signature"), body),
        (without("webhook-id"), body),
        (without("webhook-timestamp"), body),
        (vec![], body),
    ];
    for (headers, body) in cases {
        let reply: Reply = app.webhook(&headers, body);
        let problem = assert_problem(&reply, 401, "invalid_signature");
        assert_no_secret(
            &problem.to_string(),
            &[WEBHOOK_SECRET, &good],
            "a webhook error",
        );
    }
    assert_unchanged(&app, &before, &alices);
}

#[test]
fn timestamps_more_than_five_minutes_off_are_refused() {
    let (app, alices, _) = app_with_keys();
    let before = app.snapshot();
    for offset in [-360, 360, -86_400] {
        let reply = app.deliver(&new_webhook_id(), now_unix() + offset, &event(ALICE));
        assert_problem(&reply, 401, "timestamp_out_of_tolerance");
    }
    assert_unchanged(&app, &before, &alices);
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn signed_bodies_that_are_not_a_user_removed_event_are_invalid_request() {
    let (app, alices, _) = app_with_keys();
    let before = app.snapshot();
    let now = format_time(now_unix());
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        json!({"type": "user.created", "timestamp": now, "data": {"user_id": ALICE}}).to_string().into_bytes(),
        json!({"timestamp": now, "data": {"user_id": ALICE}}).to_string().into_bytes(),
        json!({"type": "user.removed", "data": {"user_id": ALICE}}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": "yesterday", "data": {"user_id": ALICE}}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now, "data": {}}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now, "data": {"user_id": ""}}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now, "data": {"user_id": 42}}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now, "data": {"user_id": "u".repeat(201)}}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now, "data": [ALICE]}).to_string().into_bytes(),
        // Unknown fields (api.md: JSON with unknown fields is invalid_request).
        json!({"type": "user.removed", "timestamp": now, "data": {"user_id": ALICE}, "extra": 1}).to_string().into_bytes(),
        json!({"type": "user.removed", "timestamp": now, "data": {"user_id": ALICE, "email": "a@example.com"}}).to_string().into_bytes(),
        b"\xff\xfe{}".to_vec(),
    ];
    for body in bodies {
        let reply = app.deliver(&new_webhook_id(), now_unix(), &body);
        assert_problem(&reply, 400, "invalid_request");
    }
    assert_unchanged(&app, &before, &alices);
}

// ---- 503 -------------------------------------------------------------------

#[test]
fn without_a_webhook_secret_the_webhook_is_not_configured() {
    let app = App::without_webhook_secret();
    let (_, secret) = app.create_key_as(ALICE, "still-works");
    let body = event(ALICE);
    let reply = app.deliver(&new_webhook_id(), now_unix(), &body);
    assert_problem(&reply, 503, "webhook_not_configured");
    expect_json(&app.verify(&secret), 200);
    assert_eq!(app.audit("action=user.removed")["total"], 0);
}
