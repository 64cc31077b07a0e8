//! `GET /api/keys/{id}` and `DELETE /api/keys/{id}`.

use keygate_tests::api::*;
use keygate_tests::json;

// ---- GET -------------------------------------------------------------------

#[test]
fn get_returns_the_key_object_as_listed() {
    let app = App::start();
    let (created, _) = app.create_key_with(
        ALICE,
        &json!({"name": "orders-sync", "description": "Nightly order export"}),
    );
    app.create_key("another");
    let id = created["id"].as_str().unwrap();
    let key = expect_json(&app.get_key(id), 200);
    assert_key_object(&key);
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(key, without_secret);
    let listed = app.list_all("");
    assert_eq!(listed.iter().find(|k| k["id"] == id).unwrap(), &key);
}

#[test]
fn any_acting_user_may_read_any_key() {
    // The admin token is what authorises; the acting user is who is acting.
    let app = App::start();
    let (created, _) = app.create_key_as(ALICE, "alices");
    let reply = app
        .mgmt(
            "GET",
            &format!("/api/keys/{}", created["id"].as_str().unwrap()),
        )
        .acting(BOB)
        .send();
    assert_eq!(expect_json(&reply, 200)["created_by"], ALICE);
}

#[test]
fn unknown_ids_are_key_not_found() {
    let app = App::start();
    app.create_key("exists");
    for id in [
        "key_0000000000000000000000",
        "key_zzzzzzzzzzzzzzzzzzzzzz",
        "nope",
        "key_",
        "KEY_0000000000000000000000",
        "%27%20OR%201%3D1--",
    ] {
        assert_problem(&app.get_key(id), 404, "key_not_found");
        assert_problem(&app.delete_key(id), 404, "key_not_found");
    }
    assert_eq!(app.list("")["total"], 1);
}

#[test]
fn a_keys_secret_is_not_its_id() {
    let app = App::start();
    let (_, secret) = app.create_key("k");
    assert_problem(&app.get_key(&secret), 404, "key_not_found");
}

// ---- DELETE ----------------------------------------------------------------

#[test]
fn deleted_key_stops_verifying_and_leaves_the_overview() {
    let app = App::start();
    let (key, secret) = app.create_key("doomed");
    let (other, other_secret) = app.create_key("stays");
    let id = key["id"].as_str().unwrap();
    expect_json(&app.verify(&secret), 200);

    let reply = app.delete_key(id);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert!(reply.body.is_empty(), "204 has no body");

    assert_key_rejected(&app.verify(&secret), "unknown_key");
    assert_problem(&app.get_key(id), 404, "key_not_found");
    let listed = app.list_all("");
    assert_eq!(ids(&listed), ids(std::slice::from_ref(&other)));
    assert_eq!(app.list("")["total"], 1);
    assert_problem(&app.delete_key(id), 404, "key_not_found");

    // The other key is untouched.
    expect_json(&app.verify(&other_secret), 200);
    assert_eq!(
        expect_json(&app.get_key(other["id"].as_str().unwrap()), 200)["status"],
        "active"
    );
}

#[test]
fn delete_is_audited_as_the_acting_user() {
    let app = App::start();
    let (key, _) = app.create_key_as(ALICE, "alices-key");
    let id = key["id"].as_str().unwrap();
    let reply = app
        .mgmt("DELETE", &format!("/api/keys/{id}"))
        .acting(BOB)
        .send();
    assert_eq!(reply.status, 204);

    let entries = app.audit_all(&format!("action=key.deleted&key_id={id}"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["user"], BOB, "the acting user, not the owner");
    assert_eq!(entries[0]["key_id"], id);
    assert_eq!(entries[0]["key_name"], "alices-key");
    // A failed second delete is not audited again.
    assert_problem(&app.delete_key(id), 404, "key_not_found");
    assert_eq!(app.audit("action=key.deleted")["total"], 1);
}

#[test]
fn a_revoked_key_can_be_deleted() {
    let app = App::start();
    let (key, secret) = app.create_key_as(ALICE, "revoked-then-deleted");
    app.remove_user(ALICE);
    let id = key["id"].as_str().unwrap();
    let reply = app
        .mgmt("DELETE", &format!("/api/keys/{id}"))
        .acting(BOB)
        .send();
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_problem(
        &app.mgmt("GET", &format!("/api/keys/{id}"))
            .acting(BOB)
            .send(),
        404,
        "key_not_found",
    );
    assert_key_rejected(&app.verify(&secret), "unknown_key");
}
