//! `POST /api/keys/{id}/transfer` (design `api.md`, v2 "Owners and service
//! accounts"): a key handed to another owner keeps its secret, so the
//! automation keeps working, and from then on acts as the new owner. What the
//! person moving it, the automation using it and the audit trail see —
//! including when the move races a deletion or a removal, and when storage
//! fails or the runner crashes part-way.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

/// Owners no test here removes unless it says so.
const DAVE: &str = "dave@example.com";
const ERIN: &str = "erin@example.com";

fn transfer_path(key_id: &str) -> String {
    format!("/api/keys/{key_id}/transfer")
}

fn transfer(app: &App, key_id: &str, owner: &str) -> Reply {
    app.mgmt("POST", &transfer_path(key_id))
        .json(&json!({ "owner": owner }))
        .send()
}

fn id(item: &Json) -> &str {
    item["id"].as_str().unwrap()
}

/// A service account named `name`; its id.
#[track_caller]
fn service_account(app: &App, name: &str) -> String {
    let created = expect_json(
        &app.mgmt("POST", "/api/service-accounts")
            .json(&json!({ "name": name }))
            .send(),
        201,
    );
    id(&created).to_owned()
}

/// Whom the key acts as, as verify says; also checks that `X-User-Id` says
/// the same and that the use was recorded as theirs.
#[track_caller]
fn acts_as(app: &App, key_id: &str, secret: &str) -> String {
    let reply = app.verify(secret);
    let verified = expect_json(&reply, 200);
    let user = verified["user_id"].as_str().unwrap().to_owned();
    assert_eq!(reply.header("x-user-id"), Some(user.as_str()));
    assert_eq!(verified["key_id"], key_id);
    let used = app.audit(&query(&[("key_id", key_id), ("action", "key.used")]));
    assert_eq!(
        used["items"][0]["user"],
        user.as_str(),
        "the use is the owner's"
    );
    user
}

fn transfers_of(app: &App, key_id: &str) -> Vec<Json> {
    app.audit_all(&query(&[("key_id", key_id), ("action", "key.transferred")]))
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn a_transferred_key_keeps_its_secret_and_acts_as_the_new_owner() {
    let app = App::start();
    let (key, secret) = app.create_key("orders-sync");
    let key_id = id(&key);
    assert_eq!(acts_as(&app, key_id, &secret), ALICE);

    let reply = app
        .mgmt("POST", &transfer_path(key_id))
        .acting(BOB)
        .json(&json!({ "owner": DAVE }))
        .send();
    let moved = expect_json(&reply, 200);
    assert_key_object(&moved);
    assert_eq!(moved["owner"], DAVE);
    assert_eq!(moved["created_by"], ALICE, "who made it does not change");
    for field in ["id", "name", "hint", "created_at", "expires_at", "status"] {
        assert_eq!(moved[field], key[field], "{field}");
    }
    assert!(moved["last_used_at"].is_string());
    assert_eq!(expect_json(&app.get_key(key_id), 200), moved);

    // Same secret, new owner: verify, X-User-Id and the trail say so.
    assert_eq!(acts_as(&app, key_id, &secret), DAVE);
    let daves = app.list(&query(&[("owner", "DAVE@example.com")]));
    assert_eq!(ids(daves["items"].as_array().unwrap()), [key_id]);
    assert_eq!(app.list(&query(&[("owner", ALICE)]))["total"], 0);
    assert_eq!(
        app.list(&query(&[("created_by", ALICE)]))["total"],
        1,
        "still created by alice"
    );

    let entries = transfers_of(&app, key_id);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["user"], BOB, "by the acting user");
    assert_eq!(entries[0]["key_name"], "orders-sync");
    assert_eq!(
        entries[0]["details"],
        json!({"from": ALICE, "to": DAVE, "auth": "admin_token"})
    );
    // The trail in order: alice's use, the move, dave's use.
    let mut trail: Vec<(String, String)> = app
        .audit_all(&query(&[("key_id", key_id)]))
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    trail.reverse();
    assert_eq!(
        trail,
        [
            ("key.created".to_owned(), ALICE.to_owned()),
            ("key.used".to_owned(), ALICE.to_owned()),
            ("key.transferred".to_owned(), BOB.to_owned()),
            ("key.used".to_owned(), DAVE.to_owned()),
        ]
    );
}

#[test]
fn a_key_can_be_given_to_a_service_account() {
    let app = App::start();
    let sa = service_account(&app, "nightly-etl");
    let (key, secret) = app.create_key("orders-sync");
    let moved = expect_json(&transfer(&app, id(&key), &sa), 200);
    assert_eq!(moved["owner"], sa.as_str());
    assert_eq!(acts_as(&app, id(&key), &secret), sa);
    assert_eq!(
        transfers_of(&app, id(&key))[0]["details"],
        json!({"from": ALICE, "to": sa, "auth": "admin_token"})
    );
}

#[test]
fn the_owner_is_trimmed_and_kept_as_written() {
    let app = App::start();
    let (key, secret) = app.create_key("orders-sync");
    let moved = expect_json(&transfer(&app, id(&key), "  Dave@Example.com \t"), 200);
    assert_eq!(moved["owner"], "Dave@Example.com");
    assert_eq!(acts_as(&app, id(&key), &secret), "Dave@Example.com");
}

#[test]
fn a_transfer_to_the_current_owner_changes_nothing() {
    let app = App::start();
    let (key, _) = app.create_key("orders-sync");
    let before = app.snapshot();
    for spelling in [ALICE, "ALICE@example.com"] {
        let same = expect_json(&transfer(&app, id(&key), spelling), 200);
        assert_eq!(same["owner"], ALICE, "as first written");
    }
    assert_eq!(app.snapshot(), before, "no entry, no change");
}

#[test]
fn a_key_can_move_on_and_the_trail_keeps_every_move() {
    let app = App::start();
    let sa = service_account(&app, "etl");
    let (key, secret) = app.create_key("orders-sync");
    for to in [DAVE, sa.as_str(), ERIN, ALICE] {
        assert_eq!(expect_json(&transfer(&app, id(&key), to), 200)["owner"], to);
        assert_eq!(acts_as(&app, id(&key), &secret), to);
    }
    let mut moves: Vec<(Json, Json)> = transfers_of(&app, id(&key))
        .iter()
        .map(|e| (e["details"]["from"].clone(), e["details"]["to"].clone()))
        .collect();
    moves.reverse();
    assert_eq!(
        moves,
        [
            (json!(ALICE), json!(DAVE)),
            (json!(DAVE), json!(sa)),
            (json!(sa), json!(ERIN)),
            (json!(ERIN), json!(ALICE)),
        ]
    );
}

#[test]
fn the_new_owners_removal_revokes_it_and_the_old_owners_does_not() {
    let app = App::start();
    let (key, secret) = app.create_key("orders-sync");
    let (_, alices_other) = app.create_key("alices-other");
    expect_json(&transfer(&app, id(&key), DAVE), 200);

    assert_eq!(
        app.remove_user(ALICE),
        json!({"user_id": ALICE, "revoked_keys": 1})
    );
    assert_key_rejected(&app.verify(&alices_other), "revoked_key");
    assert_eq!(acts_as(&app, id(&key), &secret), DAVE);
    assert_eq!(expect_json(&app.get_key(id(&key)), 200)["status"], "active");

    assert_eq!(
        app.remove_user("DAVE@EXAMPLE.COM"),
        json!({"user_id": "DAVE@EXAMPLE.COM", "revoked_keys": 1})
    );
    assert_key_rejected(&app.verify(&secret), "revoked_key");
    let now = expect_json(&app.get_key(id(&key)), 200);
    assert_eq!(
        (&now["status"], &now["revoked_reason"], &now["owner"]),
        (&json!("revoked"), &json!("owner_removed"), &json!(DAVE))
    );
    let revoked = app.audit_all(&query(&[("key_id", id(&key)), ("action", "key.revoked")]));
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["user"], DAVE, "revoked as dave's");
}

/// The issue's done-when: a person can move every automation key of a
/// colleague who is leaving to a service account, the automations keep
/// working through the removal, and the audit trail says who moved what.
#[test]
fn a_leaving_colleagues_automations_move_to_a_service_account_and_keep_working() {
    let app = App::start();
    const LEAVER: &str = "floris@example.com";
    const ANNA: &str = "anna@example.com";
    let automations: Vec<(Json, String)> = ["orders-sync", "invoice-export", "stock-feed"]
        .iter()
        .map(|name| app.create_key_as(LEAVER, name))
        .collect();
    let (_, personal) = app.create_key_as(LEAVER, "floris-laptop");
    for (key, secret) in &automations {
        assert_eq!(acts_as(&app, id(key), secret), LEAVER);
    }
    let summary = |user: &str| {
        expect_json(
            &app.mgmt("GET", &format!("/api/users/{}", percent_encode(user)))
                .acting(ANNA)
                .send(),
            200,
        )
    };
    assert_eq!(summary(LEAVER)["keys"]["active"], 4);
    assert_eq!(summary(LEAVER)["used_last_30_days"], 3);

    // Anna sets up a service account and moves the automations to it.
    let sa = expect_json(
        &app.mgmt("POST", "/api/service-accounts")
            .acting(ANNA)
            .json(&json!({"name": "warehouse-automations"}))
            .send(),
        201,
    );
    let sa = id(&sa).to_owned();
    for (key, _) in &automations {
        let reply = app
            .mgmt("POST", &transfer_path(id(key)))
            .acting(ANNA)
            .json(&json!({ "owner": sa }))
            .send();
        assert_eq!(expect_json(&reply, 200)["owner"], sa.as_str());
    }
    assert_eq!(summary(LEAVER)["keys"]["active"], 1, "only the laptop's");

    // Floris leaves: the identity system removes him.
    assert_eq!(
        app.remove_user(LEAVER),
        json!({"user_id": LEAVER, "revoked_keys": 1})
    );
    assert_key_rejected(&app.verify(&personal), "revoked_key");
    for (key, secret) in &automations {
        assert_eq!(acts_as(&app, id(key), secret), sa, "still working");
    }
    let after = summary(LEAVER);
    assert!(after["removed_at"].is_string());
    assert_eq!(
        after["keys"],
        json!({"active": 0, "expired": 0, "revoked": 1})
    );
    assert_eq!(
        app.list(&query(&[("owner", &sa), ("status", "active")]))["total"],
        3
    );

    // The trail says who moved what, from whom, to what.
    let moves = app.audit_all("action=key.transferred");
    assert_eq!(moves.len(), 3);
    let mut moved_ids: Vec<&str> = moves
        .iter()
        .map(|e| e["key_id"].as_str().unwrap())
        .collect();
    moved_ids.sort();
    let mut expected: Vec<&str> = automations.iter().map(|(k, _)| id(k)).collect();
    expected.sort();
    assert_eq!(moved_ids, expected);
    for entry in &moves {
        assert_eq!(entry["user"], ANNA);
        assert_eq!(
            entry["details"],
            json!({"from": LEAVER, "to": sa, "auth": "admin_token"})
        );
    }
    assert_eq!(
        app.audit_all(&query(&[("user", ANNA)])).len(),
        4,
        "the account and three moves"
    );
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn bodies_that_do_not_parse_or_have_unknown_fields_are_invalid_requests() {
    let app = App::start();
    let (key, _) = app.create_key("orders-sync");
    let before = app.snapshot();
    for body in [
        "{",
        "",
        "[]",
        "\"dave@example.com\"",
        r#"{"owner": "dave@example.com", "name": "x"}"#,
        r#"{"owner": "dave@example.com", "owner": "erin@example.com"}"#,
        r#"{"to": "dave@example.com"}"#,
        r#"{"owner": "dave@example.com"} {}"#,
    ] {
        let reply = app
            .mgmt("POST", &transfer_path(id(&key)))
            .body("application/json", body)
            .send();
        assert_problem(&reply, 400, "invalid_request");
    }
    let reply = app
        .mgmt("POST", &transfer_path(id(&key)))
        .without_header("x-acting-user")
        .json(&json!({ "owner": DAVE }))
        .send();
    assert_problem(&reply, 400, "acting_user_required");
    assert_eq!(app.snapshot(), before);
}

// ---- 401 / 403 -------------------------------------------------------------

#[test]
fn callers_without_the_admin_token_or_removed_cannot_move_keys() {
    let app = App::start();
    let (key, secret) = app.create_key("orders-sync");
    app.remove_user(CAROL);
    let before = app.snapshot();
    let path = transfer_path(id(&key));
    let body = json!({ "owner": DAVE });
    for call in [
        app.call("POST", &path).acting(OPERATOR),
        app.call("POST", &path).bearer("wrong").acting(OPERATOR),
        // The key itself never manages anything, not even itself.
        app.call("POST", &path).bearer(&secret).acting(OPERATOR),
    ] {
        assert_problem(&call.json(&body).send(), 401, "unauthenticated");
    }
    for spelling in [CAROL, "CAROL@example.com"] {
        let reply = app.mgmt("POST", &path).acting(spelling).json(&body).send();
        assert_problem(&reply, 403, "user_removed");
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(expect_json(&app.verify(&secret), 200)["user_id"], ALICE);
}

// ---- 404 -------------------------------------------------------------------

#[test]
fn unknown_and_deleted_keys_are_not_found() {
    let app = App::start();
    let (key, _) = app.create_key("orders-sync");
    assert_eq!(app.delete_key(id(&key)).status, 204);
    let before = app.snapshot();
    for key_id in [
        id(&key),
        "key_0000000000000000000000",
        "key_short",
        "nope",
        "sa_0123456789abcdefghijkl",
    ] {
        assert_problem(&transfer(&app, key_id, DAVE), 404, "key_not_found");
    }
    assert_eq!(app.snapshot(), before);
}

// ---- 409 -------------------------------------------------------------------

#[test]
fn a_revoked_key_cannot_be_moved_back_to_life() {
    let app = App::start();
    let sa = service_account(&app, "etl");
    let (removed_owners, secret_1) = app.create_key_as(BOB, "bobs");
    let (deleted_owners, secret_2) =
        app.create_key_with(ALICE, &json!({"name": "etl", "owner": sa}));
    app.remove_user(BOB);
    assert_eq!(
        app.mgmt("DELETE", &format!("/api/service-accounts/{sa}"))
            .send()
            .status,
        204
    );
    let before = app.snapshot();
    for key in [&removed_owners, &deleted_owners] {
        for to in [DAVE, BOB] {
            let problem = assert_problem(&transfer(&app, id(key), to), 409, "key_revoked");
            assert!(problem["detail"].as_str().unwrap().contains("revoked"));
        }
    }
    assert_eq!(app.snapshot(), before, "nothing moved");
    assert_key_rejected(&app.verify(&secret_1), "revoked_key");
    assert_key_rejected(&app.verify(&secret_2), "revoked_key");
}

// ---- 413 / 415 -------------------------------------------------------------

#[test]
fn oversized_and_non_json_bodies_are_refused() {
    let app = App::start();
    let (key, _) = app.create_key("orders-sync");
    let path = transfer_path(id(&key));
    let before = app.snapshot();
    let big = format!(
        r#"{{"owner": "dave@example.com"{}}}"#,
        " ".repeat(64 * 1024)
    );
    let reply = app.mgmt("POST", &path).body("application/json", big).send();
    assert_problem(&reply, 413, "payload_too_large");
    let body = r#"{"owner": "dave@example.com"}"#;
    for reply in [
        app.mgmt("POST", &path).body("text/plain", body).send(),
        app.mgmt("POST", &path).body("application/xml", body).send(),
        app.mgmt("POST", &path).raw_body(body).send(),
    ] {
        assert_problem(&reply, 415, "unsupported_media_type");
    }
    assert_eq!(app.snapshot(), before);
    // Any JSON media type will do.
    let reply = app
        .mgmt("POST", &path)
        .body("application/merge-patch+json; charset=utf-8", body)
        .send();
    assert_eq!(expect_json(&reply, 200)["owner"], DAVE);
}

// ---- 422 -------------------------------------------------------------------

#[test]
fn an_owner_who_cannot_own_keys_is_refused_and_nothing_moves() {
    let app = App::start();
    let (key, secret) = app.create_key("orders-sync");
    app.remove_user("Bob@Example.com");
    let deleted = service_account(&app, "gone");
    assert_eq!(
        app.mgmt("DELETE", &format!("/api/service-accounts/{deleted}"))
            .send()
            .status,
        204
    );
    let before = app.snapshot();
    for to in [
        BOB,
        "BOB@EXAMPLE.COM",
        " bob@example.com ",
        deleted.as_str(),
        "sa_0123456789abcdefghijkl",
        "sa_short",
        "sa_",
    ] {
        let problem = assert_validation_failed(&transfer(&app, id(&key), to), &["owner"]);
        assert_eq!(error_fields(&problem), ["owner"], "{to}");
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(acts_as(&app, id(&key), &secret), ALICE);
}

#[test]
fn an_owner_that_is_not_a_user_id_or_service_account_id_is_refused() {
    let app = App::start();
    let (key, _) = app.create_key("orders-sync");
    let before = app.snapshot();
    let path = transfer_path(id(&key));
    for body in [
        json!({}),
        json!({"owner": null}),
        json!({"owner": ""}),
        json!({"owner": "   "}),
        json!({"owner": "u".repeat(201)}),
        json!({"owner": "line\nbreak"}),
        json!({"owner": "nul\u{0}"}),
        json!({"owner": 42}),
        json!({"owner": ["dave@example.com"]}),
        json!({"owner": {"id": "dave@example.com"}}),
    ] {
        let reply = app.mgmt("POST", &path).json(&body).send();
        let problem = assert_validation_failed(&reply, &["owner"]);
        assert_eq!(error_fields(&problem), ["owner"], "{body}");
    }
    assert_eq!(app.snapshot(), before);
    // 200 characters is a user id.
    let long = "u".repeat(200);
    assert_eq!(
        expect_json(&transfer(&app, id(&key), &long), 200)["owner"],
        long
    );
}

// ---- races -----------------------------------------------------------------

/// Rounds per race: enough to land in the windows, few enough for CI.
const ROUNDS: usize = 20;

/// A key's trail, oldest first.
fn trail(app: &App, key_id: &str) -> Vec<Json> {
    let mut all = app.audit_all(&query(&[("key_id", key_id)]));
    all.reverse();
    all
}

#[test]
fn a_transfer_racing_a_delete_of_the_key_ends_deleted_and_no_use_follows_the_deletion() {
    const VERIFIERS: usize = 2;
    let app = App::start();
    let (mut moved, mut not_moved) = (0, 0);
    for round in 0..ROUNDS {
        let (key, secret) = app.create_key(&format!("race-{round}"));
        let key_id = id(&key);
        let deleted = AtomicBool::new(false);
        let barrier = Barrier::new(VERIFIERS + 2);
        let transferred = thread::scope(|s| {
            let (app, barrier, deleted, secret) = (&app, &barrier, &deleted, &secret);
            let mover = s.spawn(move || {
                barrier.wait();
                transfer(app, key_id, DAVE)
            });
            s.spawn(move || {
                barrier.wait();
                let reply = app.delete_key(key_id);
                assert_eq!(reply.status, 204, "round {round}: {}", reply.text());
                deleted.store(true, Ordering::SeqCst);
            });
            for _ in 0..VERIFIERS {
                s.spawn(move || {
                    barrier.wait();
                    loop {
                        let sent_after_delete = deleted.load(Ordering::SeqCst);
                        let reply = app.verify(secret);
                        if reply.status == 200 {
                            assert!(
                                !sent_after_delete,
                                "round {round}: verified after the delete"
                            );
                            let user = reply.json()["user_id"].as_str().unwrap().to_owned();
                            assert!(user == ALICE || user == DAVE, "round {round}: {user}");
                        } else {
                            assert_key_rejected(&reply, "unknown_key");
                            break;
                        }
                    }
                });
            }
            mover.join().unwrap()
        });
        // Either moved then deleted, or deleted first (404); gone either way.
        assert_problem(&app.get_key(key_id), 404, "key_not_found");
        assert_key_rejected(&app.verify(&secret), "unknown_key");
        let trail = trail(&app, key_id);
        let position = |action: &str| trail.iter().position(|e| e["action"] == action);
        let deletions = trail
            .iter()
            .filter(|e| e["action"] == "key.deleted")
            .count();
        assert_eq!(deletions, 1, "round {round}: {trail:#?}");
        let deleted_at = position("key.deleted").unwrap();
        let moves = trail
            .iter()
            .filter(|e| e["action"] == "key.transferred")
            .count();
        match transferred.status {
            200 => {
                assert_eq!(transferred.json()["owner"], DAVE);
                assert_eq!(moves, 1, "round {round}: {trail:#?}");
            }
            _ => {
                assert_problem(&transferred, 404, "key_not_found");
                // Deleted before the move, or right after it (the answer
                // came too late to show the key).
                assert!(moves <= 1, "round {round}: {trail:#?}");
            }
        }
        if let Some(moved_at) = position("key.transferred") {
            assert!(
                moved_at < deleted_at,
                "round {round}: moved after the deletion"
            );
            moved += 1;
        } else {
            not_moved += 1;
        }
        // Every use is after creation and before the deletion, as whoever
        // owned the key at that moment.
        let moved_at = position("key.transferred").unwrap_or(usize::MAX);
        for (at, entry) in trail
            .iter()
            .enumerate()
            .filter(|(_, e)| e["action"] == "key.used")
        {
            assert!(
                at < deleted_at,
                "round {round}: key.used after key.deleted: {trail:#?}"
            );
            let owner = if at > moved_at { DAVE } else { ALICE };
            assert_eq!(entry["user"], owner, "round {round}: {trail:#?}");
        }
    }
    eprintln!("transfer vs delete: {moved} rounds moved first, {not_moved} deleted first");
}

#[test]
fn a_transfer_to_a_user_racing_their_removal_never_leaves_them_a_working_key() {
    let app = App::start();
    let (mut refused, mut revoked) = (0, 0);
    for round in 0..ROUNDS {
        let newcomer = format!("newcomer-{round}@example.com");
        let (key, secret) = app.create_key(&format!("race-{round}"));
        let key_id = id(&key);
        let barrier = Barrier::new(2);
        let reply = thread::scope(|s| {
            let (app, barrier, newcomer) = (&app, &barrier, &newcomer);
            let mover = s.spawn(move || {
                barrier.wait();
                transfer(app, key_id, newcomer)
            });
            s.spawn(move || {
                barrier.wait();
                app.remove_user(newcomer);
            });
            mover.join().unwrap()
        });
        let now = expect_json(&app.get_key(key_id), 200);
        match reply.status {
            200 => {
                // Moved first: the removal found it and revoked it.
                assert_eq!(now["owner"], newcomer.as_str(), "round {round}");
                assert_eq!(now["status"], "revoked", "round {round}: {now}");
                assert_eq!(now["revoked_reason"], "owner_removed");
                assert_key_rejected(&app.verify(&secret), "revoked_key");
                revoked += 1;
            }
            _ => {
                // Removed first: nothing moved.
                assert_validation_failed(&reply, &["owner"]);
                assert_eq!(now["owner"], ALICE, "round {round}");
                assert_eq!(now["status"], "active", "round {round}");
                assert_eq!(acts_as(&app, key_id, &secret), ALICE);
                assert!(transfers_of(&app, key_id).is_empty());
                refused += 1;
            }
        }
    }
    eprintln!(
        "transfer vs the new owner's removal: {revoked} moved then revoked, {refused} refused"
    );
}

#[test]
fn a_transfer_away_racing_the_old_owners_removal_is_either_refused_or_keeps_working() {
    let app = App::start();
    let sa = service_account(&app, "etl");
    let (mut kept, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let leaver = format!("leaver-{round}@example.com");
        // A few keys, so the removal's revocations take a while.
        let keys: Vec<(Json, String)> = (0..3)
            .map(|i| app.create_key_as(&leaver, &format!("race-{round}-{i}")))
            .collect();
        let barrier = Barrier::new(2);
        let replies = thread::scope(|s| {
            let (app, barrier, leaver, sa, keys) = (&app, &barrier, &leaver, &sa, &keys);
            let mover = s.spawn(move || {
                barrier.wait();
                keys.iter()
                    .map(|(key, _)| transfer(app, id(key), sa))
                    .collect::<Vec<_>>()
            });
            s.spawn(move || {
                barrier.wait();
                app.remove_user(leaver);
            });
            mover.join().unwrap()
        });
        for ((key, secret), reply) in keys.iter().zip(&replies) {
            let now = expect_json(&app.get_key(id(key)), 200);
            match reply.status {
                200 => {
                    assert_eq!(now["owner"], sa.as_str(), "round {round}");
                    assert_eq!(
                        now["status"], "active",
                        "round {round}: moved, then revoked: {now}"
                    );
                    assert_eq!(acts_as(&app, id(key), secret), sa);
                    kept += 1;
                }
                _ => {
                    assert_problem(reply, 409, "key_revoked");
                    assert_eq!(now["owner"], leaver.as_str(), "round {round}");
                    assert_eq!(now["status"], "revoked");
                    assert_key_rejected(&app.verify(secret), "revoked_key");
                    refused += 1;
                }
            }
        }
        // Whatever was revoked was revoked as the leaver's.
        for entry in app.audit_all("action=key.revoked") {
            assert!(
                entry["user"].as_str().unwrap().starts_with("leaver-"),
                "{entry}"
            );
        }
    }
    eprintln!(
        "transfer away vs the old owner's removal: {kept} moved and working, {refused} refused"
    );
}

// ---- 503 / a crash, then the retry -----------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Fail,
    Crash,
}

/// A transfer with a fault at its 1st, 2nd, … storage call (until a run in
/// which it never fires). After each, the key verifies as exactly one owner
/// (old or new, and the overview agrees), and the retry finishes the move
/// with one `key.transferred`. Returns the storage calls seen.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    for step in 1.. {
        let app = App::start();
        let (key, secret) = app.create_key("orders-sync");
        let key_id = id(&key).to_owned();
        let app = app.restart_with(|c| c.arg(flag).arg(&format!("*:{step}")));
        let reply = app
            .mgmt("POST", &transfer_path(&key_id))
            .json(&json!({ "owner": DAVE }))
            .send_any_status();
        let log = app.wait_for_log(&format!("POST {} ", transfer_path(&key_id)));
        if !log.contains("fault injected") {
            assert_eq!(expect_json(&reply, 200)["owner"], DAVE);
            return step - 1;
        }
        let when = format!("{flag} at step {step}");
        match fault {
            Fault::Fail => {
                assert_problem(&reply, 503, "storage_unavailable");
            }
            Fault::Crash => assert_eq!(reply.status, 500, "{when}: {}", reply.text()),
        }
        let owner = acts_as(&app, &key_id, &secret);
        assert!(owner == ALICE || owner == DAVE, "{when}: {owner}");
        assert_eq!(
            expect_json(&app.get_key(&key_id), 200)["owner"],
            owner.as_str(),
            "{when}: the overview agrees"
        );
        let moves = transfers_of(&app, &key_id).len();
        assert_eq!(moves, usize::from(owner == DAVE), "{when}");

        let retry = expect_json(&transfer(&app, &key_id, DAVE), 200);
        assert_eq!(retry["owner"], DAVE, "{when}");
        assert_eq!(acts_as(&app, &key_id, &secret), DAVE, "{when}");
        let moves = transfers_of(&app, &key_id);
        assert_eq!(moves.len(), 1, "{when}: {moves:#?}");
        assert_eq!(
            moves[0]["details"],
            json!({"from": ALICE, "to": DAVE, "auth": "admin_token"}),
            "{when}"
        );
        // And dave's removal revokes it, alice's would not have.
        app.remove_user(ALICE);
        assert_eq!(acts_as(&app, &key_id, &secret), DAVE, "{when}");
        app.remove_user(DAVE);
        assert_key_rejected(&app.verify(&secret), "revoked_key");
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_of_a_transfer_is_finished_by_the_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("a transfer: {calls} storage calls, each failed in turn");
    assert!(calls >= 4, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_of_a_transfer_is_finished_by_the_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!("a transfer: {calls} storage calls, a crash after each in turn");
    assert!(calls >= 4, "{calls} storage calls?");
}
