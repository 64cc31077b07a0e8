//! `PATCH /api/keys/{id}` (design api.md, v2 "Key lifecycle"): JSON Merge
//! Patch of `name`, `description` and `expires_at`, by status; what the
//! overview, verify and the audit trail see afterwards; a patch interrupted
//! at any storage call and finished by its retry.

use keygate_tests::api::*;
use keygate_tests::idp::{CLIENT_ID, TestIdp, TestKey};
use keygate_tests::{Json, Reply, json};

const MERGE_PATCH: &str = "application/merge-patch+json";

fn path(id: &str) -> String {
    format!("/api/keys/{id}")
}

/// `PATCH /api/keys/{id}` as [`OPERATOR`] with an `application/merge-patch+json` body.
fn patch(app: &App, id: &str, body: &Json) -> Reply {
    app.mgmt("PATCH", &path(id))
        .body(MERGE_PATCH, body.to_string())
        .send()
}

/// Creates a key as [`ALICE`] from `body`; (its id, its secret).
#[track_caller]
fn key(app: &App, body: Json) -> (String, String) {
    let (key, secret) = app.create_key_with(ALICE, &body);
    (key["id"].as_str().unwrap().to_owned(), secret)
}

/// The key as `GET` shows it; asserts 200.
#[track_caller]
fn get(app: &App, id: &str) -> Json {
    expect_json(&app.get_key(id), 200)
}

/// Verify's 200 body for `secret`.
#[track_caller]
fn verified(app: &App, secret: &str) -> Json {
    expect_json(&app.verify(secret), 200)
}

fn key_updated(app: &App, id: &str) -> Vec<Json> {
    app.audit_all(&format!("action=key.updated&key_id={id}"))
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn a_merge_patch_changes_name_description_and_expiry() {
    let app = App::start();
    let expires = now_unix() + DAY;
    let (id, secret) = key(
        &app,
        json!({"name": "orders-sync", "description": "Nightly", "expires_at": format_time(expires)}),
    );
    let before = get(&app, &id);
    let new_expiry = format_time(now_unix() + 2 * DAY);
    let reply = patch(
        &app,
        &id,
        &json!({"name": "  orders-export  ", "description": "Hourly", "expires_at": new_expiry}),
    );
    let patched = expect_json(&reply, 200);
    assert_key_object(&patched);
    assert_eq!(patched["name"], "orders-export", "trimmed as on create");
    assert_eq!(patched["description"], "Hourly");
    assert_eq!(patched["expires_at"], new_expiry);
    for same in [
        "id",
        "created_by",
        "owner",
        "created_at",
        "hint",
        "status",
        "last_used_at",
    ] {
        assert_eq!(patched[same], before[same], "{same} stays");
    }
    assert_eq!(get(&app, &id), patched);
    let listed = app.list_all("");
    assert_eq!(
        listed.iter().find(|k| k["id"] == id.as_str()),
        Some(&patched)
    );

    // The same secret keeps working, under the new name and expiry.
    let body = verified(&app, &secret);
    assert_eq!(body["key_name"], "orders-export");
    assert_eq!(body["expires_at"], new_expiry);
    assert_eq!(body["user_id"], ALICE);
}

#[test]
fn a_plain_json_body_is_a_merge_patch_too() {
    let app = App::start();
    let (id, secret) = key(&app, json!({"name": "k", "description": "d"}));
    let reply = app
        .mgmt("PATCH", &path(&id))
        .json(&json!({"description": "only this"}))
        .send();
    let patched = expect_json(&reply, 200);
    assert_eq!(
        (&patched["name"], &patched["description"]),
        (&json!("k"), &json!("only this")),
        "fields left out stay"
    );
    // Parameters on either media type are fine.
    let reply = app
        .mgmt("PATCH", &path(&id))
        .body(
            "Application/Merge-Patch+JSON; charset=utf-8",
            json!({"name": "k2"}).to_string(),
        )
        .send();
    assert_eq!(expect_json(&reply, 200)["name"], "k2");
    assert_eq!(verified(&app, &secret)["key_name"], "k2");
}

#[test]
fn null_removes_the_description_and_the_expiry() {
    let app = App::start();
    let (id, secret) = key(
        &app,
        json!({"name": "k", "description": "d", "expires_at": format_time(now_unix() + 3600)}),
    );
    let patched = expect_json(
        &patch(&app, &id, &json!({"description": null, "expires_at": null})),
        200,
    );
    assert_eq!(patched["description"], Json::Null);
    assert_eq!(patched["expires_at"], Json::Null);
    assert_eq!(patched["name"], "k");
    assert_eq!(verified(&app, &secret)["expires_at"], Json::Null);
    assert_eq!(
        key_updated(&app, &id)[0]["details"]["fields"],
        json!(["description", "expires_at"])
    );
}

#[test]
fn the_overview_finds_the_key_by_its_new_name_only() {
    let app = App::start();
    let (id, _) = key(&app, json!({"name": "payments-nightly"}));
    app.create_key("unrelated");
    expect_json(&patch(&app, &id, &json!({"name": "ledger-hourly"})), 200);
    let found = app.list(&query(&[("name", "ledger")]));
    assert_eq!(ids(found["items"].as_array().unwrap()), vec![id.as_str()]);
    assert_eq!(app.list(&query(&[("name", "payments")]))["total"], 0);
    let sorted = app.list_all("sort=name&order=asc");
    assert_eq!(sorted[0]["name"], "ledger-hourly");
}

#[test]
fn a_shortened_expiry_refuses_the_key_once_passed_and_an_extension_revives_it() {
    let app = App::start();
    let (id, secret) = key(
        &app,
        json!({"name": "k", "expires_at": format_time(now_unix() + DAY)}),
    );
    let soon = now_unix() + 2;
    let patched = expect_json(
        &patch(&app, &id, &json!({"expires_at": format_time(soon)})),
        200,
    );
    assert_eq!(patched["status"], "active");
    assert_eq!(verified(&app, &secret)["expires_at"], format_time(soon));
    // The new expiry passing is the event under test, not a synchronisation:
    // wait for the clock (at most 2 s), never longer.
    while now_unix() < soon {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_key_rejected(&app.verify(&secret), "expired_key");
    assert_eq!(get(&app, &id)["status"], "expired");
    assert_eq!(app.list("status=expired")["total"], 1);

    // An expired key may be patched: extending it lets it verify again at once.
    let later = format_time(now_unix() + DAY);
    let patched = expect_json(&patch(&app, &id, &json!({"expires_at": later})), 200);
    assert_eq!(patched["status"], "active");
    assert_eq!(verified(&app, &secret)["expires_at"], later);
    assert_eq!(app.list("status=active")["total"], 1);
    // As does removing the expiry.
    expect_json(&patch(&app, &id, &json!({"expires_at": null})), 200);
    assert_eq!(verified(&app, &secret)["expires_at"], Json::Null);
}

// ---- Audit -----------------------------------------------------------------

#[test]
fn key_updated_names_exactly_the_changed_fields_as_the_acting_user() {
    let app = App::start();
    let (id, _) = key(
        &app,
        json!({"name": "k", "description": "d", "expires_at": format_time(now_unix() + DAY)}),
    );
    let reply = app
        .mgmt("PATCH", &path(&id))
        .acting(BOB)
        .body(
            MERGE_PATCH,
            json!({"name": "renamed", "description": "d"}).to_string(),
        )
        .send();
    expect_json(&reply, 200);
    let entries = key_updated(&app, &id);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["user"], BOB, "the acting user, not the owner");
    assert_eq!(e["key_id"], id.as_str());
    assert_eq!(e["key_name"], "renamed");
    assert_eq!(
        e["details"],
        json!({"fields": ["name"], "auth": "admin_token"}),
        "the unchanged description is not named"
    );
    let at = parse_time(e["at"].as_str().unwrap());
    assert!((at - now_unix()).abs() <= 5, "{e}");

    expect_json(
        &patch(&app, &id, &json!({"expires_at": null, "description": null})),
        200,
    );
    let entries = key_updated(&app, &id);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["details"]["fields"],
        json!(["description", "expires_at"])
    );
    assert_eq!(entries[0]["user"], OPERATOR);
}

#[test]
fn a_patch_that_changes_nothing_is_answered_and_not_audited() {
    let app = App::start();
    let expires = format_time(now_unix() + DAY);
    let (id, _) = key(
        &app,
        json!({"name": "Same", "description": "d", "expires_at": expires}),
    );
    let key_now = get(&app, &id);
    let before = app.snapshot();
    for body in [
        json!({}),
        json!({"name": "Same"}),
        json!({"name": " Same "}),
        json!({"name": "Same", "description": "d", "expires_at": expires}),
    ] {
        assert_eq!(
            expect_json(&patch(&app, &id, &body), 200),
            key_now,
            "{body}"
        );
    }
    assert_eq!(app.snapshot(), before, "no audit entry, nothing changed");
    // Another case of the same name is a change.
    expect_json(&patch(&app, &id, &json!({"name": "SAME"})), 200);
    assert_eq!(key_updated(&app, &id).len(), 1);
}

// ---- 400 / 404 / 409 / 413 / 415 / 422 -------------------------------------

#[test]
fn bodies_that_are_not_a_json_object_of_known_fields_are_invalid_request() {
    let app = App::start();
    let (id, secret) = key(&app, json!({"name": "k"}));
    let before = app.snapshot();
    for body in [
        "",
        "{",
        "{\"name\": \"x\",}",
        "[]",
        "[{\"name\": \"x\"}]",
        "\"name\"",
        "42",
        "null",
        "{\"name\": \"a\", \"name\": \"b\"}",
    ] {
        let reply = app.mgmt("PATCH", &path(&id)).body(MERGE_PATCH, body).send();
        assert_problem(&reply, 400, "invalid_request");
    }
    // The secret cannot be patched: an unknown field, named but never echoed.
    let reply = patch(&app, &id, &json!({"secret": secret}));
    let problem = assert_problem(&reply, 400, "invalid_request");
    assert!(
        problem["detail"].as_str().unwrap().contains("secret"),
        "{problem}"
    );
    assert_no_secret(&problem.to_string(), &[&secret], "the 400");
    for unknown in [
        json!({"owner": BOB}),
        json!({"hint": "x"}),
        json!({"status": "revoked"}),
    ] {
        assert_problem(&patch(&app, &id, &unknown), 400, "invalid_request");
    }
    assert_eq!(app.snapshot(), before);
    expect_json(&app.verify(&secret), 200);
}

#[test]
fn unknown_malformed_and_deleted_ids_are_key_not_found() {
    let app = App::start();
    let (id, _) = key(&app, json!({"name": "doomed"}));
    assert_eq!(app.delete_key(&id).status, 204);
    for unknown in [
        id.as_str(),
        "key_0000000000000000000000",
        "nope",
        "%27%20OR%201%3D1--",
    ] {
        assert_problem(
            &patch(&app, unknown, &json!({"name": "x"})),
            404,
            "key_not_found",
        );
    }
    assert!(app.audit_all("action=key.updated").is_empty());
}

#[test]
fn another_active_keys_name_in_any_case_is_name_taken() {
    let app = App::start();
    app.create_key_as(BOB, "Orders Sync");
    let (id, secret) = key(&app, json!({"name": "mine"}));
    let before = app.snapshot();
    for taken in ["Orders Sync", "orders sync", "ORDERS SYNC", " orders sync "] {
        assert_problem(
            &patch(&app, &id, &json!({"name": taken, "description": "x"})),
            409,
            "name_taken",
        );
    }
    assert_eq!(
        app.snapshot(),
        before,
        "the other fields did not change either"
    );
    // A revoked key's name is free again.
    app.remove_user(BOB);
    let patched = expect_json(&patch(&app, &id, &json!({"name": "orders sync"})), 200);
    assert_eq!(patched["name"], "orders sync");
    assert_eq!(verified(&app, &secret)["key_name"], "orders sync");
}

#[test]
fn a_revoked_key_cannot_be_patched() {
    let app = App::start();
    let (id, secret) = key(&app, json!({"name": "k"}));
    app.remove_user(ALICE);
    let before = app.snapshot();
    for body in [
        json!({"name": "revived"}),
        json!({"expires_at": null}),
        json!({}),
    ] {
        assert_problem(&patch(&app, &id, &body), 409, "key_revoked");
    }
    assert_eq!(app.snapshot(), before);
    assert_key_rejected(&app.verify(&secret), "revoked_key");
}

#[test]
fn a_body_over_64_kib_is_413_and_other_media_types_415() {
    let app = App::start();
    let (id, _) = key(&app, json!({"name": "k"}));
    let before = app.snapshot();
    let huge = json!({"description": "x".repeat(70 * 1024)}).to_string();
    let reply = app.mgmt("PATCH", &path(&id)).body(MERGE_PATCH, huge).send();
    assert_problem(&reply, 413, "payload_too_large");
    let body = json!({"name": "x"}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json-patch"),
        None,
    ] {
        let call = app.mgmt("PATCH", &path(&id));
        let reply = match content_type {
            Some(ct) => call.body(ct, body.clone()),
            None => call.raw_body(body.clone()),
        }
        .send();
        assert_problem(&reply, 415, "unsupported_media_type");
    }
    assert_eq!(app.snapshot(), before);
}

#[test]
fn each_bad_field_is_named_by_422() {
    let app = App::start();
    let (id, secret) = key(&app, json!({"name": "k", "description": "d"}));
    let before = app.snapshot();
    let past = format_time(now_unix() - 60);
    let cases: Vec<(Json, &str)> = vec![
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "tab\there"}), "name"),
        (json!({"name": null}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"description": "x".repeat(501)}), "description"),
        (json!({"description": ["d"]}), "description"),
        (json!({"expires_at": past}), "expires_at"),
        (json!({"expires_at": format_time(now_unix())}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"expires_at": "2030-01-01"}), "expires_at"),
        (json!({"expires_at": 1_900_000_000}), "expires_at"),
    ];
    for (body, field) in cases {
        let problem = assert_validation_failed(&patch(&app, &id, &body), &[field]);
        assert_eq!(error_fields(&problem), [field], "{body}: {problem}");
    }
    // Every bad field at once.
    let problem = assert_validation_failed(
        &patch(
            &app,
            &id,
            &json!({"name": "", "description": 1, "expires_at": past}),
        ),
        &["name", "description", "expires_at"],
    );
    assert_eq!(error_fields(&problem).len(), 3, "{problem}");
    // Limits are inclusive: 100 and 500 characters are fine.
    let long = json!({"name": "n".repeat(100), "description": "d".repeat(500)});
    expect_json(&patch(&app, &id, &long), 200);
    assert_eq!(app.audit_all("action=key.updated").len(), 1);
    let (listed, _) = app.snapshot();
    assert_ne!(listed, before.0);
    expect_json(&app.verify(&secret), 200);
}

// ---- 400 / 401 / 403 -------------------------------------------------------

#[test]
fn patch_authenticates_like_every_management_route() {
    let app = App::start();
    let (id, secret) = key(&app, json!({"name": "k"}));
    let body = json!({"name": "hijacked"}).to_string();
    let before = app.snapshot();
    for authorization in [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {secret}")),
    ] {
        let mut call = app
            .call("PATCH", &path(&id))
            .acting(ALICE)
            .body(MERGE_PATCH, body.clone());
        if let Some(value) = &authorization {
            call = call.header("authorization", value);
        }
        let reply = call.send();
        assert_problem(&reply, 401, "unauthenticated");
        assert!(reply.header("www-authenticate").is_some());
    }
    let reply = app
        .mgmt("PATCH", &path(&id))
        .without_header("x-acting-user")
        .body(MERGE_PATCH, body.clone())
        .send();
    assert_problem(&reply, 400, "acting_user_required");
    app.remove_user(CAROL);
    let reply = app
        .mgmt("PATCH", &path(&id))
        .acting("Carol@Example.com")
        .body(MERGE_PATCH, body.clone())
        .send();
    assert_problem(&reply, 403, "user_removed");
    let (keys, _) = app.snapshot();
    assert_eq!(keys, before.0, "nothing changed");
    assert!(app.audit_all("action=key.updated").is_empty());
}

#[test]
fn other_methods_on_a_key_list_patch_as_allowed() {
    let app = App::start();
    let (id, _) = key(&app, json!({"name": "k"}));
    let reply = app
        .mgmt("PUT", &path(&id))
        .json(&json!({"name": "x"}))
        .send();
    assert_problem(&reply, 405, "method_not_allowed");
    let allow = reply.header("allow").unwrap_or_default();
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(methods.contains(&"PATCH"), "Allow: {allow}");
}

// ---- Failures part-way -----------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fault {
    Fail,
    Crash,
}

/// A patch (name, description removed, expiry removed) with a fault on the
/// 1st, 2nd, … storage call (until a run in which it never fires): while it
/// is unfinished the key verifies; its retry finishes it, with one
/// `key.updated`, and verify sees the new name and no expiry. Returns the
/// storage calls seen.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    let body = json!({"name": "renamed", "description": null, "expires_at": null});
    for step in 1.. {
        let app = App::start();
        let (id, secret) = key(
            &app,
            json!({"name": "k", "description": "d", "expires_at": format_time(now_unix() + DAY)}),
        );
        let app = app.restart_with(|c| c.arg(flag).arg(&format!("*:{step}")));
        let reply = app
            .mgmt("PATCH", &path(&id))
            .body(MERGE_PATCH, body.to_string())
            .send_any_status();
        let log = app.wait_for_log(&format!("PATCH /api/keys/{id} "));
        if !log.contains("fault injected") {
            expect_json(&reply, 200);
            return step - 1;
        }
        let when = format!("{flag} *:{step}");
        match fault {
            Fault::Fail => {
                assert_problem(&reply, 503, "storage_unavailable");
            }
            Fault::Crash => assert_eq!(reply.status, 500, "{when}: {}", reply.text()),
        }
        // Unfinished, the key still works (under either name).
        let used = verified(&app, &secret);
        assert!(
            used["key_name"] == "k" || used["key_name"] == "renamed",
            "{when}: {used}"
        );

        let retried = expect_json(&patch(&app, &id, &body), 200);
        assert_eq!(retried["name"], "renamed", "{when}");
        assert_eq!(retried["description"], Json::Null, "{when}");
        assert_eq!(retried["expires_at"], Json::Null, "{when}");
        let entries = key_updated(&app, &id);
        assert_eq!(entries.len(), 1, "{when}: {entries:?}");
        assert_eq!(
            entries[0]["details"]["fields"],
            json!(["name", "description", "expires_at"]),
            "{when}"
        );
        let used = verified(&app, &secret);
        assert_eq!(
            (&used["key_name"], &used["expires_at"]),
            (&json!("renamed"), &Json::Null),
            "{when}"
        );
        // A later repeat changes nothing.
        let before = app.snapshot();
        let current = get(&app, &id);
        assert_eq!(expect_json(&patch(&app, &id, &body), 200), current);
        assert_eq!(app.snapshot(), before, "{when}");
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_is_finished_by_the_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("a patch: {calls} storage calls, each failed in turn");
    assert!(calls >= 5, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_is_finished_by_the_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!("a patch: {calls} storage calls, a crash after each in turn");
    assert!(calls >= 5, "{calls} storage calls?");
}

// ---- Signed in through OIDC ------------------------------------------------

#[test]
fn signed_in_through_oidc_a_patch_is_audited_so_and_another_acting_user_is_403() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = App::start_with(|config| {
        config
            .env("SPIN_VARIABLE_OIDC_ISSUER", &idp.issuer)
            .env("SPIN_VARIABLE_OIDC_ORIGIN", &idp.issuer)
            .env("SPIN_VARIABLE_OIDC_CLIENT_ID", CLIENT_ID)
    });
    let (id, secret) = key(&app, json!({"name": "k"}));
    let token = idp.token(TestKey::RsaA, "Dana@Example.com");
    let body = json!({"name": "renamed"}).to_string();
    let reply = app
        .call("PATCH", &path(&id))
        .bearer(&token)
        .acting(BOB)
        .body(MERGE_PATCH, body.clone())
        .send();
    assert_problem(&reply, 403, "acting_user_mismatch");
    assert_eq!(get(&app, &id)["name"], "k");
    let reply = app
        .call("PATCH", &path(&id))
        .bearer(&token)
        .body(MERGE_PATCH, body.clone())
        .send();
    assert_eq!(expect_json(&reply, 200)["name"], "renamed");
    let entries = key_updated(&app, &id);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["user"], "Dana@Example.com");
    assert_eq!(
        entries[0]["details"],
        json!({"fields": ["name"], "auth": "oidc"})
    );
    assert_eq!(verified(&app, &secret)["key_name"], "renamed");
}
