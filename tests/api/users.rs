//! Users (design `api.md`, v2 "Users" and "Who is acting"): user ids match
//! ASCII case-insensitively everywhere, a key shows its creator's id as
//! written, and the entries of management calls say how the actor signed in.
//! Here through the admin token and `X-Acting-User`.

use keygate_tests::api::*;
use keygate_tests::{Json, json};

const FLORIS: &str = "Floris@Example.com";

/// `GET /api/keys` for one owner, in the spelling given: (total, ids).
fn owned_by(app: &App, user: &str) -> (u64, Vec<String>) {
    let page = app.list(&query(&[("created_by", user)]));
    let items = page["items"].as_array().unwrap();
    (page["total"].as_u64().unwrap(), ids(items))
}

fn entries_of(app: &App, user: &str, action: &str) -> Vec<Json> {
    app.audit_all(&query(&[("user", user), ("action", action)]))
}

#[test]
fn keys_are_found_by_their_creator_in_any_ascii_case_and_show_the_id_as_written() {
    let app = App::start();
    let (key, _) = app.create_key_as(FLORIS, "floris-sync");
    app.create_key_as(ALICE, "alices");
    assert_eq!(key["created_by"], FLORIS);
    let id = key["id"].as_str().unwrap().to_owned();
    for spelling in [FLORIS, "floris@example.com", "FLORIS@EXAMPLE.COM"] {
        assert_eq!(
            owned_by(&app, spelling),
            (1, vec![id.clone()]),
            "{spelling}"
        );
        let active = app.list(&query(&[("created_by", spelling), ("status", "active")]));
        assert_eq!(active["total"], 1, "{spelling}");
        assert_eq!(active["items"][0]["created_by"], FLORIS);
    }
    assert_eq!(owned_by(&app, "floris").0, 0, "whole ids only");
    // The same user in another spelling: their keys are listed together.
    app.create_key_as("floris@example.com", "floris-export");
    let (total, _) = owned_by(&app, "FLORIS@example.com");
    assert_eq!(total, 2);
    let listed = app.list_all(&query(&[("created_by", "fLoRiS@eXaMpLe.cOm")]));
    let mut shown: Vec<&str> = listed
        .iter()
        .map(|k| k["created_by"].as_str().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, [FLORIS, "floris@example.com"], "each as written");
}

#[test]
fn the_audit_user_filter_matches_in_any_ascii_case_and_entries_say_how_the_actor_signed_in() {
    let app = App::start();
    let (key, _) = app.create_key_as(FLORIS, "floris-sync");
    let id = key["id"].as_str().unwrap();
    let reply = app
        .mgmt("DELETE", &format!("/api/keys/{id}"))
        .acting("FLORIS@example.com")
        .send();
    assert_eq!(reply.status, 204, "{}", reply.text());

    let created = entries_of(&app, "floris@EXAMPLE.com", "key.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["user"], FLORIS);
    assert_eq!(created[0]["key_id"], id);
    assert_eq!(created[0]["details"], json!({"auth": "admin_token"}));
    let deleted = entries_of(&app, "floris@example.com", "key.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        deleted[0]["user"], "FLORIS@example.com",
        "the acting user as sent"
    );
    assert_eq!(deleted[0]["details"], json!({"auth": "admin_token"}));
    assert_eq!(
        app.audit_all(&query(&[("user", "FLORIS@EXAMPLE.COM")]))
            .len(),
        2
    );
    assert!(app.audit_all(&query(&[("user", "floris")])).is_empty());
}

#[test]
fn a_removal_in_another_case_revokes_the_users_keys_and_stops_every_spelling_acting() {
    let app = App::start();
    let (first, first_secret) = app.create_key_as(FLORIS, "floris-sync");
    let (second, second_secret) = app.create_key_as("floris@example.com", "floris-export");
    let (_, alices_secret) = app.create_key_as(ALICE, "alices");

    assert_eq!(
        app.remove_user("floris@EXAMPLE.com"),
        json!({"user_id": "floris@EXAMPLE.com", "revoked_keys": 2})
    );
    for (key, secret) in [(&first, &first_secret), (&second, &second_secret)] {
        assert_key_rejected(&app.verify(secret), "revoked_key");
        let now = expect_json(&app.get_key(key["id"].as_str().unwrap()), 200);
        assert_eq!(now["status"], "revoked");
        assert_eq!(now["revoked_reason"], "owner_removed");
        assert_eq!(now["created_by"], key["created_by"], "still as written");
    }
    expect_json(&app.verify(&alices_secret), 200);

    let before = app.snapshot();
    for spelling in ["FLORIS@example.com", FLORIS, "floris@example.com"] {
        assert_problem(
            &app.mgmt("GET", "/api/keys").acting(spelling).send(),
            403,
            "user_removed",
        );
        assert_problem(
            &app.create(spelling, &json!({"name": "after-removal"})),
            403,
            "user_removed",
        );
    }
    assert_eq!(app.snapshot(), before, "nothing was created");

    // The same user removed again, in yet another spelling: nothing more.
    assert_eq!(
        app.remove_user("FLORIS@EXAMPLE.COM"),
        json!({"user_id": "FLORIS@EXAMPLE.COM", "revoked_keys": 0})
    );
    assert_eq!(app.snapshot(), before, "no second entry");
    let removed = app.audit_all("action=user.removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["user"], "floris@EXAMPLE.com", "as first removed");
    assert_eq!(removed[0]["details"]["revoked_keys"], 2);
    assert_eq!(
        app.audit_all(&query(&[
            ("user", "Floris@example.COM"),
            ("action", "key.revoked")
        ]))
        .len(),
        2
    );
}

// ---- Owners named at creation (v2) -----------------------------------------

const DAVE: &str = "dave@example.com";

#[test]
fn a_key_created_for_another_user_acts_as_that_user() {
    let app = App::start();
    let reply = app.create(
        ALICE,
        &json!({"name": "daves-sync", "owner": "Dave@Example.com"}),
    );
    let created = expect_json(&reply, 201);
    assert_eq!(created["owner"], "Dave@Example.com", "as written");
    assert_eq!(created["created_by"], ALICE);
    let id = created["id"].as_str().unwrap();
    let shown = expect_json(&app.get_key(id), 200);
    assert_key_object(&shown);
    assert_eq!(
        (&shown["owner"], &shown["created_by"]),
        (&json!("Dave@Example.com"), &json!(ALICE))
    );

    let verified = app.verify(created["secret"].as_str().unwrap());
    assert_eq!(expect_json(&verified, 200)["user_id"], "Dave@Example.com");
    assert_eq!(verified.header("x-user-id"), Some("Dave@Example.com"));
    let used = entries_of(&app, DAVE, "key.used");
    assert_eq!(used.len(), 1, "the use is dave's activity");
    assert!(entries_of(&app, ALICE, "key.used").is_empty());
    let made = entries_of(&app, ALICE, "key.created");
    assert_eq!(made.len(), 1, "making it is alice's");
    assert_eq!(made[0]["key_id"], id);
    assert_eq!(
        made[0]["details"],
        json!({"auth": "admin_token", "owner": "Dave@Example.com"}),
        "the entry says for whom, and outlives the key"
    );

    // The overview tells owner and creator apart.
    let by_owner = app.list(&query(&[("owner", DAVE)]));
    assert_eq!(ids(by_owner["items"].as_array().unwrap()), [id]);
    assert_eq!(app.list(&query(&[("owner", ALICE)]))["total"], 0);
    assert_eq!(app.list(&query(&[("created_by", ALICE)]))["total"], 1);
    assert_eq!(app.list(&query(&[("created_by", DAVE)]))["total"], 0);
}

#[test]
fn the_owners_removal_revokes_a_key_made_for_them_and_the_creators_does_not() {
    let app = App::start();
    let (for_dave, for_dave_secret) =
        app.create_key_with(ALICE, &json!({"name": "for-dave", "owner": DAVE}));
    let (for_alice, for_alice_secret) =
        app.create_key_with(DAVE, &json!({"name": "for-alice", "owner": ALICE}));

    // The creator of one and owner of the other leaves.
    assert_eq!(
        app.remove_user(ALICE),
        json!({"user_id": ALICE, "revoked_keys": 1})
    );
    assert_eq!(
        expect_json(&app.verify(&for_dave_secret), 200)["user_id"],
        DAVE
    );
    assert_key_rejected(&app.verify(&for_alice_secret), "revoked_key");
    let revoked = expect_json(&app.get_key(for_alice["id"].as_str().unwrap()), 200);
    assert_eq!(
        (&revoked["status"], &revoked["revoked_reason"]),
        (&json!("revoked"), &json!("owner_removed"))
    );
    assert_eq!(
        expect_json(&app.get_key(for_dave["id"].as_str().unwrap()), 200)["status"],
        "active"
    );

    // Dave, in another spelling, leaves too.
    assert_eq!(app.remove_user("DAVE@example.com")["revoked_keys"], 1);
    assert_key_rejected(&app.verify(&for_dave_secret), "revoked_key");
    let revocations = app.audit_all("action=key.revoked");
    let mut whose: Vec<&str> = revocations
        .iter()
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    whose.sort();
    assert_eq!(whose, [ALICE, DAVE], "each revoked as its owner's");
}

#[test]
fn a_key_cannot_be_created_for_a_removed_user_in_any_spelling() {
    let app = App::start();
    app.remove_user(DAVE);
    let before = app.snapshot();
    for owner in [DAVE, "Dave@Example.COM", "  dave@example.com  "] {
        let reply = app.create(ALICE, &json!({"name": "late", "owner": owner}));
        let problem = assert_validation_failed(&reply, &["owner"]);
        assert_eq!(error_fields(&problem), ["owner"]);
    }
    assert_eq!(app.snapshot(), before, "nothing was created");
    // The name is still free.
    app.create_key("late");
}

#[test]
fn an_owner_that_names_nobody_who_can_own_keys_is_refused_with_the_other_fields() {
    let app = App::start();
    let before = app.snapshot();
    for owner in [
        json!(""),
        json!("   "),
        json!("u".repeat(201)),
        json!("line\nbreak"),
        json!(7),
        json!(["dave@example.com"]),
        json!("sa_short"),
        json!("sa_0123456789abcdefghijkl"),
    ] {
        let reply = app.create(ALICE, &json!({"name": "k", "owner": owner}));
        let problem = assert_validation_failed(&reply, &["owner"]);
        assert_eq!(error_fields(&problem), ["owner"], "{owner}");
    }
    let reply = app.create(ALICE, &json!({"name": "", "owner": ""}));
    assert_validation_failed(&reply, &["name", "owner"]);
    assert_eq!(app.snapshot(), before);
    // Without an owner, or with `null`, the creator owns it.
    let (own, _) = app.create_key_with(ALICE, &json!({"name": "own", "owner": null}));
    assert_eq!(own["owner"], ALICE);
}

#[test]
fn the_overview_sorts_by_owner_in_any_case() {
    let app = App::start();
    for (owner, name) in [
        ("carol@example.com", "c"),
        ("Bob@example.com", "b1"),
        (ALICE, "a"),
        ("bob@Example.com", "b2"),
    ] {
        app.create_key_with(OPERATOR, &json!({"name": name, "owner": owner}));
    }
    let owners = |order: &str| -> Vec<String> {
        app.list_all(&format!("sort=owner&order={order}"))
            .iter()
            .map(|k| k["owner"].as_str().unwrap().to_ascii_lowercase())
            .collect()
    };
    assert_eq!(owners("asc"), [ALICE, BOB, BOB, "carol@example.com"]);
    assert_eq!(owners("desc"), ["carol@example.com", BOB, BOB, ALICE]);
    assert_eq!(
        app.list(&query(&[("owner", "BOB@EXAMPLE.COM")]))["total"],
        2
    );
}
