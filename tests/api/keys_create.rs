//! `POST /api/keys`: what the person creating a key sees.

use std::sync::Barrier;

use keygate_tests::api::*;
use keygate_tests::json;

// ---- 201 -------------------------------------------------------------------

#[test]
fn created_key_is_the_key_object_plus_a_secret_and_a_location() {
    let app = App::start();
    let expires_at = format_time(now_unix() + 30 * DAY);
    let reply = app.create(
        ALICE,
        &json!({"name": "orders-sync", "description": "Nightly order export", "expires_at": expires_at}),
    );
    let created = expect_json(&reply, 201);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/keys/{id}").as_str())
    );

    let secret = created["secret"].as_str().unwrap();
    assert!(
        is_well_formed_key(secret),
        "kg_ + 32 base62 + 6 base62 of the CRC32 of those 32: {secret}"
    );
    let mut key = created.clone();
    key.as_object_mut().unwrap().remove("secret");
    assert_key_object(&key);
    assert_eq!(key["name"], "orders-sync");
    assert_eq!(key["description"], "Nightly order export");
    assert_eq!(key["created_by"], ALICE);
    assert!((parse_time(key["created_at"].as_str().unwrap()) - now_unix()).abs() < 120);
    assert_eq!(key["last_used_at"], json!(null));
    assert_eq!(key["expires_at"], expires_at);
    assert_eq!(key["status"], "active");
    assert_eq!(key["revoked_at"], json!(null));
    assert_eq!(key["revoked_reason"], json!(null));
    assert_eq!(key["hint"], hint_of(secret));

    // The Location is the key, and the secret is never shown again.
    let fetched = expect_json(
        &app.mgmt("GET", reply.header("location").unwrap()).send(),
        200,
    );
    assert_eq!(fetched, key);
}

#[test]
fn only_the_name_is_required() {
    let app = App::start();
    let (key, _) = app.create_key("minimal");
    assert_eq!(key["description"], json!(null));
    assert_eq!(key["expires_at"], json!(null));
    assert_eq!(key["status"], "active");
}

#[test]
fn the_new_key_verifies_at_once_as_its_creator() {
    let app = App::start();
    let (key, secret) = app.create_key_as(BOB, "deploy-bot");
    let verified = expect_json(&app.verify(&secret), 200);
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["key_id"], key["id"]);
    assert_eq!(verified["user_id"], BOB);
}

#[test]
fn every_key_gets_its_own_id_and_secret() {
    let app = App::start();
    let keys: Vec<(serde_json::Value, String)> = (0..6)
        .map(|i| app.create_key(&format!("key-{i}")))
        .collect();
    let ids: std::collections::BTreeSet<&str> = keys
        .iter()
        .map(|(k, _)| k["id"].as_str().unwrap())
        .collect();
    let secrets: std::collections::BTreeSet<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!((ids.len(), secrets.len()), (6, 6));
}

#[test]
fn name_is_trimmed() {
    let app = App::start();
    let (key, _) = app.create_key("  \t orders-sync \t ");
    assert_eq!(key["name"], "orders-sync");
    assert_eq!(app.list_all("")[0]["name"], "orders-sync");
}

#[test]
fn names_count_characters_not_bytes() {
    let app = App::start();
    let (key, _) = app.create_key(&"é".repeat(100));
    assert_eq!(key["name"].as_str().unwrap().chars().count(), 100);
    let (key, _) = app.create_key(&"n".repeat(100));
    assert_eq!(key["name"].as_str().unwrap().len(), 100);
    let (key, _) = app.create_key_with(
        ALICE,
        &json!({"name": "long-description", "description": "ü".repeat(500)}),
    );
    assert_eq!(key["description"].as_str().unwrap().chars().count(), 500);
}

#[test]
fn expires_at_is_shown_in_utc() {
    let app = App::start();
    let (key, secret) = app.create_key_with(
        ALICE,
        &json!({"name": "expiring", "expires_at": "2099-06-01T02:00:00+02:00"}),
    );
    assert_eq!(key["expires_at"], "2099-06-01T00:00:00Z");
    assert_eq!(key["status"], "active", "not expired yet");
    assert_eq!(
        expect_json(&app.verify(&secret), 200)["expires_at"],
        "2099-06-01T00:00:00Z"
    );
}

#[test]
fn expires_at_must_be_showable_in_utc() {
    // A legal RFC 3339 offset that puts the instant in year 10000 UTC: it
    // used to be accepted and shown back as 1970-01-01T00:00:00Z, "active".
    let app = App::start();
    let reply = app.create(
        ALICE,
        &json!({"name": "far", "expires_at": "9999-12-31T23:59:59-23:59"}),
    );
    assert_validation_failed(&reply, &["expires_at"]);
    let (key, _) = app.create_key_with(
        ALICE,
        &json!({"name": "last", "expires_at": "9999-12-31T23:59:59Z"}),
    );
    assert_eq!(key["expires_at"], "9999-12-31T23:59:59Z");
}

#[test]
fn charset_parameter_on_json_is_fine() {
    let app = App::start();
    let reply = app
        .mgmt("POST", "/api/keys")
        .body(
            "application/json; charset=utf-8",
            r#"{"name":"with-charset"}"#,
        )
        .send();
    expect_json(&reply, 201);
}

// ---- 409 -------------------------------------------------------------------

#[test]
fn names_are_unique_case_insensitively_across_users() {
    let app = App::start();
    app.create_key("Orders-Sync");
    for (user, name) in [
        (ALICE, "orders-sync"),
        (ALICE, "ORDERS-SYNC"),
        (ALICE, "  orders-SYNC  "),
        (BOB, "orders-sync"),
    ] {
        let reply = app.create(user, &json!({ "name": name }));
        assert_problem(&reply, 409, "name_taken");
    }
    assert_eq!(app.list("")["total"], 1);
    assert_eq!(app.audit("action=key.created")["total"], 1);
}

#[test]
fn name_uniqueness_folds_non_ascii_letters_too() {
    let app = App::start();
    app.create_key("ÄPI-Schlüssel");
    let reply = app.create(ALICE, &json!({"name": "äpi-schlüssel"}));
    assert_problem(&reply, 409, "name_taken");
}

#[test]
fn a_deleted_keys_name_is_free_again() {
    let app = App::start();
    let (key, _) = app.create_key("rotated");
    assert_eq!(app.delete_key(key["id"].as_str().unwrap()).status, 204);
    let (again, _) = app.create_key("Rotated");
    assert_ne!(again["id"], key["id"]);
}

#[test]
fn a_revoked_keys_name_can_be_reused() {
    let app = App::start();
    let (old, _) = app.create_key_as(ALICE, "shared-name");
    assert_eq!(app.remove_user(ALICE)["revoked_keys"], 1);
    let (new, secret) = app.create_key_as(BOB, "SHARED-NAME");
    assert_eq!(expect_json(&app.verify(&secret), 200)["key_id"], new["id"]);

    let listed = app.list_all("name=shared-name");
    assert_eq!(listed.len(), 2);
    let status_of =
        |id: &serde_json::Value| listed.iter().find(|k| k["id"] == *id).unwrap()["status"].clone();
    assert_eq!(status_of(&old["id"]), "revoked");
    assert_eq!(status_of(&new["id"]), "active");
    // Two active keys may still not share it.
    assert_problem(
        &app.create(CAROL, &json!({"name": "shared-name"})),
        409,
        "name_taken",
    );
}

#[test]
fn concurrent_creates_of_one_name_give_exactly_one_key() {
    let app = App::start();
    let barrier = Barrier::new(16);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (app, barrier) = (&app, &barrier);
                s.spawn(move || {
                    let user = format!("user{i}@example.com");
                    barrier.wait();
                    let reply = app.create(&user, &json!({"name": "race"}));
                    (reply.status, problem_code(&reply))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    let taken = statuses
        .iter()
        .filter(|(s, c)| *s == 409 && c.as_deref() == Some("name_taken"))
        .count();
    assert_eq!((created, taken), (1, 15), "{statuses:?}");
    assert_eq!(app.list("")["total"], 1);
    assert_eq!(app.audit("action=key.created")["total"], 1);
}

// ---- 422 -------------------------------------------------------------------

#[test]
fn invalid_fields_are_validation_failed_and_create_nothing() {
    let app = App::start();
    let past = format_time(now_unix() - 60);
    let cases: Vec<(serde_json::Value, &[&str])> = vec![
        (json!({}), &["name"]),
        (json!({"name": ""}), &["name"]),
        (json!({"name": "   \t "}), &["name"]),
        (json!({"name": "n".repeat(101)}), &["name"]),
        (json!({"name": "é".repeat(101)}), &["name"]),
        (
            json!({"name": format!("  {}  ", "n".repeat(101))}),
            &["name"],
        ),
        (json!({"name": "line\nbreak"}), &["name"]),
        (json!({"name": "tab\there"}), &["name"]),
        (json!({"name": "nul\u{0}char"}), &["name"]),
        (json!({"name": "del\u{7f}char"}), &["name"]),
        (json!({"name": "c1\u{9b}control"}), &["name"]),
        (
            json!({"name": "ok-1", "description": "d".repeat(501)}),
            &["description"],
        ),
        (json!({"name": "ok-2", "expires_at": past}), &["expires_at"]),
        (
            json!({"name": "ok-3", "expires_at": "2000-01-01T00:00:00Z"}),
            &["expires_at"],
        ),
        (
            json!({"name": "ok-4", "expires_at": "next tuesday"}),
            &["expires_at"],
        ),
        (
            json!({"name": "ok-5", "expires_at": "2099-13-01T00:00:00Z"}),
            &["expires_at"],
        ),
        (
            json!({"name": "", "description": "d".repeat(501), "expires_at": past}),
            &["name", "description", "expires_at"],
        ),
    ];
    for (body, fields) in cases {
        let reply = app.create(ALICE, &body);
        assert_validation_failed(&reply, fields);
    }
    assert_eq!(app.list("")["total"], 0);
    assert_eq!(app.audit("")["total"], 0);
}

#[test]
fn wrong_field_types_are_refused() {
    // api.md does not say whether a wrong type is a parse error (400) or a
    // field error (422); either way it is refused with the field named or a
    // problem, and nothing is created.
    let app = App::start();
    for body in [
        json!({"name": 42}),
        json!({"name": ["a"]}),
        json!({"name": "ok", "description": 7}),
        json!({"name": "ok", "expires_at": 1_900_000_000}),
    ] {
        let reply = app.create(ALICE, &body);
        match reply.status {
            400 => {
                assert_problem(&reply, 400, "invalid_request");
            }
            _ => {
                assert_problem(&reply, 422, "validation_failed");
            }
        }
    }
    assert_eq!(app.list("")["total"], 0);
}
