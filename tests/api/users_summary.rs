//! `GET /api/users/{user_id}` (design `api.md`, v2 "Owners and service
//! accounts"): what removing this user would break — the keys the user owns
//! by status, how many of the active ones automations used in the last 30
//! days, and when the user was removed.

use std::time::{Duration, Instant};

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

const DAVE: &str = "dave@example.com";

fn summary_reply(app: &App, encoded_user: &str) -> Reply {
    app.mgmt("GET", &format!("/api/users/{encoded_user}"))
        .send()
}

/// The summary of `user` (percent-encoded into the path); asserts 200.
#[track_caller]
fn summary(app: &App, user: &str) -> Json {
    let body = expect_json(&summary_reply(app, &percent_encode(user)), 200);
    assert_summary_shape(&body);
    body
}

#[track_caller]
fn assert_summary_shape(body: &Json) {
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        fields.len(),
        4,
        "user_id, removed_at, keys, used_last_30_days: {body}"
    );
    assert!(body["user_id"].is_string(), "{body}");
    if !body["removed_at"].is_null() {
        assert_utc_timestamp(&body["removed_at"]);
    }
    for status in ["active", "expired", "revoked"] {
        assert!(body["keys"][status].is_u64(), "{body}");
    }
    assert_eq!(body["keys"].as_object().unwrap().len(), 3, "{body}");
    assert!(body["used_last_30_days"].is_u64(), "{body}");
}

fn counts(body: &Json) -> (u64, u64, u64, u64) {
    (
        body["keys"]["active"].as_u64().unwrap(),
        body["keys"]["expired"].as_u64().unwrap(),
        body["keys"]["revoked"].as_u64().unwrap(),
        body["used_last_30_days"].as_u64().unwrap(),
    )
}

fn transfer(app: &App, key_id: &str, owner: &str) -> Reply {
    app.mgmt("POST", &format!("/api/keys/{key_id}/transfer"))
        .json(&json!({ "owner": owner }))
        .send()
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn a_user_without_keys_has_nothing_to_break() {
    let app = App::start();
    assert_eq!(
        summary(&app, "nobody@example.com"),
        json!({"user_id": "nobody@example.com", "removed_at": null,
               "keys": {"active": 0, "expired": 0, "revoked": 0}, "used_last_30_days": 0})
    );
}

#[test]
fn the_keys_a_user_owns_are_counted_and_the_recently_used_ones_too() {
    let app = App::start();
    let (used_1, secret_1) = app.create_key_as(ALICE, "orders-sync");
    let (_, secret_2) = app.create_key_as(ALICE, "invoice-export");
    app.create_key_as(ALICE, "never-used");
    // Made by bob for alice: alice's. Made by alice for dave: dave's.
    let (_, from_bob) = app.create_key_with(BOB, &json!({"name": "from-bob", "owner": ALICE}));
    app.create_key_with(ALICE, &json!({"name": "for-dave", "owner": DAVE}));
    assert_eq!(
        counts(&summary(&app, ALICE)),
        (4, 0, 0, 0),
        "nothing used yet"
    );

    for secret in [&secret_1, &secret_1, &secret_2, &from_bob] {
        expect_json(&app.verify(secret), 200);
    }
    assert_eq!(counts(&summary(&app, ALICE)), (4, 0, 0, 3));
    assert_eq!(counts(&summary(&app, DAVE)), (1, 0, 0, 0));
    assert_eq!(
        counts(&summary(&app, BOB)),
        (0, 0, 0, 0),
        "bob owns nothing"
    );

    // A key moved away is no longer alice's to break.
    expect_json(&transfer(&app, used_1["id"].as_str().unwrap(), DAVE), 200);
    assert_eq!(counts(&summary(&app, ALICE)), (3, 0, 0, 2));
    assert_eq!(counts(&summary(&app, DAVE)), (2, 0, 0, 1));
    // A deleted key is gone from the count.
    let never = app.list_all("name=never-used");
    assert_eq!(app.delete_key(never[0]["id"].as_str().unwrap()).status, 204);
    assert_eq!(counts(&summary(&app, ALICE)), (2, 0, 0, 2));
}

#[test]
fn after_the_removal_every_key_is_revoked_and_removed_at_is_set() {
    let app = App::start();
    let (_, secret) = app.create_key_as(ALICE, "orders-sync");
    app.create_key_as(ALICE, "invoice-export");
    expect_json(&app.verify(&secret), 200);
    assert_eq!(summary(&app, ALICE)["removed_at"], json!(null));
    let before = now_unix();
    app.remove_user(ALICE);
    let after = summary(&app, ALICE);
    assert_eq!(counts(&after), (0, 0, 2, 0));
    let removed_at = parse_time(after["removed_at"].as_str().unwrap());
    assert!(
        (before - 1..=now_unix() + 1).contains(&removed_at),
        "removed_at {removed_at}, removal sent at {before}"
    );
    // A later removal in another spelling does not move it.
    app.remove_user("ALICE@EXAMPLE.COM");
    assert_eq!(summary(&app, ALICE)["removed_at"], after["removed_at"]);
}

#[test]
fn an_expired_key_is_counted_as_expired_and_breaks_nothing() {
    let app = App::start();
    let (key, secret) = app.create_key_with(
        ALICE,
        &json!({"name": "short-lived", "expires_at": format_time(now_unix() + 2)}),
    );
    app.create_key_as(ALICE, "lasting");
    expect_json(&app.verify(&secret), 200);
    assert_eq!(counts(&summary(&app, ALICE)), (2, 0, 0, 1));
    // Wait for the clock (not for another thread) to pass the expiry.
    let deadline = Instant::now() + Duration::from_secs(15);
    while expect_json(&app.get_key(key["id"].as_str().unwrap()), 200)["status"] != "expired" {
        assert!(Instant::now() < deadline, "the key never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(counts(&summary(&app, ALICE)), (1, 1, 0, 0));
    assert_key_rejected(&app.verify(&secret), "expired_key");
}

#[test]
fn user_ids_match_in_any_ascii_case_and_are_shown_as_asked() {
    let app = App::start();
    let (_, secret) = app.create_key_as("Floris@Example.com", "floris-sync");
    app.create_key_as("floris@example.com", "floris-export");
    expect_json(&app.verify(&secret), 200);
    for spelling in [
        "floris@example.com",
        "FLORIS@EXAMPLE.COM",
        "Floris@Example.com",
    ] {
        let body = summary(&app, spelling);
        assert_eq!(body["user_id"], spelling);
        assert_eq!(counts(&body), (2, 0, 0, 1), "{spelling}");
    }
}

#[test]
fn user_ids_are_percent_decoded_from_the_path() {
    let app = App::start();
    for user in [
        "jane doe",
        "ops/automation",
        "Jürgen@Beispiel.de",
        "100% sure+plus?#&=",
        "名前",
    ] {
        app.create_key_with(
            ALICE,
            &json!({"name": format!("for {user}"), "owner": user}),
        );
        let body = summary(&app, user);
        assert_eq!(body["user_id"], user);
        assert_eq!(counts(&body), (1, 0, 0, 0), "{user}");
    }
    // `@` and other characters allowed in a path segment need no encoding,
    // and `+` is a plus.
    let (_, _) = app.create_key_as("a+b@example.com", "plus");
    let raw = expect_json(&summary_reply(&app, "a+b@example.com"), 200);
    assert_eq!(raw["user_id"], "a+b@example.com");
    assert_eq!(counts(&raw), (1, 0, 0, 0));
    let encoded = expect_json(&summary_reply(&app, "a%2Bb%40example.com"), 200);
    assert_eq!(encoded, raw);
    // Lower-case hex digits decode the same.
    let lower = expect_json(&summary_reply(&app, "ops%2fautomation"), 200);
    assert_eq!(lower["user_id"], "ops/automation");
    // 200 characters is a user id.
    let long = "u".repeat(200);
    assert_eq!(summary(&app, &long)["user_id"], long.as_str());
}

#[test]
fn a_service_accounts_keys_can_be_counted_too() {
    let app = App::start();
    let sa = expect_json(
        &app.mgmt("POST", "/api/service-accounts")
            .json(&json!({"name": "etl"}))
            .send(),
        201,
    );
    let sa = sa["id"].as_str().unwrap();
    let (_, secret) = app.create_key_with(ALICE, &json!({"name": "etl", "owner": sa}));
    expect_json(&app.verify(&secret), 200);
    let body = summary(&app, sa);
    assert_eq!(
        (&body["user_id"], &body["removed_at"]),
        (&json!(sa), &json!(null))
    );
    assert_eq!(counts(&body), (1, 0, 0, 1));
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn a_path_that_is_not_a_percent_encoded_user_id_is_an_invalid_request() {
    let app = App::start();
    app.create_key_as(ALICE, "orders-sync");
    for segment in [
        "%FF",
        "%C3",
        "alice%C3%28",
        "%zz",
        "%",
        "alice%4",
        "%00",
        "a%0Ab",
        "tab%09",
        "%7F",
        "%C2%9B",
        "%20",
        "%20alice",
        "alice%20",
        &"u".repeat(201),
        &"%C3%BC".repeat(201),
    ] {
        let reply = summary_reply(&app, segment);
        let problem = assert_problem(&reply, 400, "invalid_request");
        assert!(
            problem["detail"].as_str().unwrap().contains("user id"),
            "{segment}: {problem}"
        );
    }
    let reply = app
        .mgmt("GET", "/api/users/alice%40example.com")
        .without_header("x-acting-user")
        .send();
    assert_problem(&reply, 400, "acting_user_required");
}

// ---- 401 / 403 -------------------------------------------------------------

#[test]
fn callers_without_the_admin_token_or_removed_learn_nothing() {
    let app = App::start();
    let (_, secret) = app.create_key_as(ALICE, "orders-sync");
    app.remove_user(CAROL);
    let path = "/api/users/alice%40example.com";
    for call in [
        app.call("GET", path).acting(OPERATOR),
        app.call("GET", path).bearer("wrong").acting(OPERATOR),
        app.call("GET", path).bearer(&secret).acting(OPERATOR),
    ] {
        let reply = call.send();
        assert_problem(&reply, 401, "unauthenticated");
        assert!(!reply.text().contains("orders-sync"));
    }
    assert_problem(
        &app.mgmt("GET", path).acting("carol@EXAMPLE.com").send(),
        403,
        "user_removed",
    );
    // The removed user's own summary is still there for others to read.
    assert!(summary(&app, CAROL)["removed_at"].is_string());
}

// ---- 404 -------------------------------------------------------------------

#[test]
fn paths_around_the_user_are_not_routes() {
    let app = App::start();
    for path in [
        "/api/users",
        "/api/users/a/b",
        "/api/users/alice%40example.com/keys",
    ] {
        assert_problem(&app.mgmt("GET", path).send(), 404, "not_found");
    }
}
