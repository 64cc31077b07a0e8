//! Management authentication on every management route: the admin token
//! (401), then the acting user (400), then whether that user was removed (403).

use base64::Engine as _;
use keygate_tests::api::*;
use keygate_tests::{Json, json};

/// Every management operation, as (method, path, body), against a real key.
fn routes(key_id: &str) -> Vec<(&'static str, String, Option<Json>)> {
    vec![
        ("POST", "/api/keys".into(), Some(json!({"name": "new-key"}))),
        ("GET", "/api/keys".into(), None),
        ("GET", format!("/api/keys/{key_id}"), None),
        ("DELETE", format!("/api/keys/{key_id}"), None),
        ("GET", "/api/audit".into(), None),
    ]
}

fn request<'a>(app: &'a App, method: &str, path: &str, body: &Option<Json>) -> Call<'a> {
    let call = app.call(method, path);
    match body {
        Some(body) => call.json(body),
        None => call,
    }
}

/// An app with one key of Alice's; returns it and its secret.
fn app_with_key() -> (App, String, String) {
    let app = App::start();
    let (key, secret) = app.create_key("existing");
    (app, key["id"].as_str().unwrap().to_owned(), secret)
}

#[test]
fn no_or_wrong_admin_token_is_401_unauthenticated() {
    let (app, id, secret) = app_with_key();
    let before = app.snapshot();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_TOKEN}"));
    let wrong_authorizations: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer wrong-token".into()),
        Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        Some(format!("Bearer {}", ADMIN_TOKEN.to_uppercase())),
        Some(format!("Basic {basic}")),
        Some(ADMIN_TOKEN.to_owned()),
        // An API key never authenticates a management call.
        Some(format!("Bearer {secret}")),
    ];
    for (method, path, body) in routes(&id) {
        for authorization in &wrong_authorizations {
            let mut call = request(&app, method, &path, &body).acting(ALICE);
            if let Some(value) = authorization {
                call = call.header("authorization", value);
            }
            let reply = call.send();
            let problem = assert_problem(&reply, 401, "unauthenticated");
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{method} {path}: {challenge:?}"
            );
            assert_no_secret(&problem.to_string(), &[ADMIN_TOKEN, &secret], "a 401");
        }
        // Nor does an API key in X-API-Key.
        let reply = request(&app, method, &path, &body)
            .acting(ALICE)
            .header("x-api-key", &secret)
            .send();
        assert_problem(&reply, 401, "unauthenticated");
    }
    assert_eq!(
        app.snapshot(),
        before,
        "nothing was created, deleted or used"
    );
}

#[test]
fn the_token_is_checked_before_the_acting_user() {
    let (app, id, _) = app_with_key();
    app.remove_user(BOB);
    for (method, path, body) in routes(&id) {
        let reply = request(&app, method, &path, &body).send();
        assert_problem(&reply, 401, "unauthenticated");
        let reply = request(&app, method, &path, &body)
            .bearer("wrong-token")
            .acting(BOB)
            .send();
        assert_problem(&reply, 401, "unauthenticated");
    }
}

#[test]
fn missing_or_invalid_acting_user_is_400_acting_user_required() {
    let (app, id, _) = app_with_key();
    let before = app.snapshot();
    let too_long = "u".repeat(201);
    let invalid: [Option<&str>; 5] = [
        None,
        Some(""),
        Some("   "),
        Some(&too_long),
        Some("tab\there"),
    ];
    for (method, path, body) in routes(&id) {
        for user in invalid {
            let mut call = request(&app, method, &path, &body).bearer(ADMIN_TOKEN);
            if let Some(user) = user {
                call = call.acting(user);
            }
            assert_problem(&call.send(), 400, "acting_user_required");
        }
    }
    assert_eq!(app.snapshot(), before);
}

#[test]
fn the_acting_user_is_checked_before_the_body_and_the_id() {
    let (app, _, _) = app_with_key();
    let reply = app
        .call("POST", "/api/keys")
        .bearer(ADMIN_TOKEN)
        .body("application/json", "{not json")
        .send();
    assert_problem(&reply, 400, "acting_user_required");
    let reply = app
        .call("DELETE", "/api/keys/key_0000000000000000000000")
        .bearer(ADMIN_TOKEN)
        .send();
    assert_problem(&reply, 400, "acting_user_required");
    let reply = app
        .call("GET", "/api/keys?per_page=0")
        .bearer(ADMIN_TOKEN)
        .send();
    assert_problem(&reply, 400, "acting_user_required");
}

#[test]
fn acting_users_of_up_to_200_printable_characters_are_accepted() {
    let (app, _, _) = app_with_key();
    let longest = format!("{}@example.com", "u".repeat(200 - "@example.com".len()));
    for user in [
        longest.as_str(),
        "x",
        "svc:orders-portal",
        "Floris van Dijk",
    ] {
        let (key, _) = app.create_key_as(user, &format!("by {}", &user[..user.len().min(20)]));
        assert_eq!(key["created_by"], user);
        expect_json(&app.mgmt("GET", "/api/keys").acting(user).send(), 200);
        expect_json(&app.mgmt("GET", "/api/audit").acting(user).send(), 200);
    }
}

#[test]
fn a_removed_user_gets_403_user_removed_on_every_route() {
    let (app, id, secret) = app_with_key();
    let (_, bob_secret) = app.create_key_as(BOB, "bobs");
    app.remove_user(BOB);
    let before = app.snapshot();
    for (method, path, body) in routes(&id) {
        let reply = request(&app, method, &path, &body)
            .bearer(ADMIN_TOKEN)
            .acting(BOB)
            .send();
        assert_problem(&reply, 403, "user_removed");
    }
    assert_eq!(app.snapshot(), before);
    // Everyone else carries on.
    expect_json(&app.verify(&secret), 200);
    assert_key_rejected(&app.verify(&bob_secret), "revoked_key");
    assert_eq!(app.delete_key(&id).status, 204);
}
