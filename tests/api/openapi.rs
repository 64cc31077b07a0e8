//! `GET /api/openapi.json`, and the document against what the service does.
//!
//! Every request any `tests/api` test sends goes through `Call::send`, which
//! fails the test when the answer's status is not listed in `docs/openapi.json`
//! for that operation; the tour below makes sure each documented answer is seen.

use std::collections::BTreeSet;

use keygate_tests::api::*;
use keygate_tests::idp::{TestIdp, TestKey};
use keygate_tests::{Json, Reply, json};

#[test]
fn the_served_document_is_docs_openapi_json() {
    let app = App::start();
    // Public: no admin token, no acting user.
    let reply = app.call("GET", "/api/openapi.json").send();
    let served = expect_json(&reply, 200);
    assert_eq!(&served, openapi());
    assert_eq!(
        served["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
}

#[test]
fn the_status_check_knows_the_documented_operations() {
    assert_eq!(
        documented_path("/api/keys/key_abc?x=1"),
        Some("/api/keys/{id}")
    );
    assert_eq!(documented_path("/api/keys"), Some("/api/keys"));
    assert_eq!(documented_path("/api/keys/a/b"), None);
    assert!(
        documented_statuses("DELETE", "/api/keys/key_abc")
            .unwrap()
            .contains(&204)
    );
    assert!(documented_statuses("PUT", "/api/keys").is_none());
    assert!(
        !documented_statuses("POST", "/api/verify")
            .unwrap()
            .contains(&422)
    );
}

/// (method, documented path, status) of each reply.
fn seen(tour: &[(&str, String, Reply)]) -> BTreeSet<(String, String, u16)> {
    tour.iter()
        .map(|(method, path, reply)| {
            let template = documented_path(path).unwrap_or_else(|| panic!("{path} is documented"));
            (method.to_string(), template.to_owned(), reply.status)
        })
        .collect()
}

#[test]
fn every_documented_answer_can_be_seen_and_nothing_else_is() {
    let app = App::start();
    let (key, secret) = app.create_key("tour");
    let key_path = format!("/api/keys/{}", key["id"].as_str().unwrap());
    app.remove_user(CAROL);
    let big = format!(
        r#"{{"name": "big", "description": "{}"}}"#,
        " ".repeat(64 * 1024)
    );
    let keys = "/api/keys".to_owned();
    let audit = "/api/audit".to_owned();
    let verify = "/api/verify".to_owned();
    let webhook = "/webhooks/user-removed".to_owned();
    let event = user_removed_event(BOB).to_string();
    // The Okta hook is on only with okta_hook_secret; `app` has it off (404).
    let okta =
        App::start_with(|c| c.env("SPIN_VARIABLE_OKTA_HOOK_SECRET", "okta-hook-tour-secret"));
    let okta_hook = "/webhooks/okta".to_owned();
    let okta_body = json!({"eventType": "com.okta.event_hook", "data": {"events": [
        {"uuid": "tour-1", "eventType": "user.lifecycle.deactivate",
         "target": [{"type": "User", "alternateId": BOB}]}
    ]}})
    .to_string();
    fn okta_post<'a>(app: &'a App, body: &str) -> keygate_tests::api::Call<'a> {
        app.call("POST", "/webhooks/okta")
            .header("authorization", "okta-hook-tour-secret")
            .body("application/json", body.to_owned())
    }
    // The SSF receiver is on only with ssf_issuer (a transmitter on
    // 127.0.0.1); `app` has it off (404).
    let transmitter = TestIdp::start(&[TestKey::RsaA]);
    let ssf = App::start_with(|c| {
        c.env("SPIN_VARIABLE_SSF_ISSUER", &transmitter.issuer)
            .env("SPIN_VARIABLE_SSF_AUDIENCE", "keygate-tour")
            .env("SPIN_VARIABLE_SSF_ORIGIN", &transmitter.issuer)
    });
    let ssf_events = "/ssf/events".to_owned();
    let set = TestKey::RsaA.sign_set(&json!({
        "iss": transmitter.issuer, "aud": "keygate-tour", "iat": now_unix(), "jti": "tour-1",
        "sub_id": {"format": "email", "email": BOB},
        "events": {"https://schemas.openid.net/secevent/risc/event-type/account-disabled": {}}
    }));
    fn ssf_post<'a>(app: &'a App, body: &str) -> keygate_tests::api::Call<'a> {
        app.call("POST", "/ssf/events")
            .body("application/secevent+jwt", body.to_owned())
    }

    let mut tour: Vec<(&str, String, Reply)> = vec![
        // POST /api/keys
        (
            "POST",
            keys.clone(),
            app.create(ALICE, &json!({"name": "tour-2"})),
        ),
        (
            "POST",
            keys.clone(),
            app.mgmt("POST", &keys).body("application/json", "{").send(),
        ),
        (
            "POST",
            keys.clone(),
            app.call("POST", &keys).json(&json!({"name": "x"})).send(),
        ),
        (
            "POST",
            keys.clone(),
            app.create(CAROL, &json!({"name": "x"})),
        ),
        (
            "POST",
            keys.clone(),
            app.create(ALICE, &json!({"name": "tour"})),
        ),
        (
            "POST",
            keys.clone(),
            app.mgmt("POST", &keys).body("application/json", big).send(),
        ),
        (
            "POST",
            keys.clone(),
            app.mgmt("POST", &keys).body("text/plain", "{}").send(),
        ),
        (
            "POST",
            keys.clone(),
            app.create(ALICE, &json!({"name": ""})),
        ),
        // GET /api/keys
        ("GET", keys.clone(), app.mgmt("GET", &keys).send()),
        (
            "GET",
            keys.clone(),
            app.mgmt("GET", "/api/keys?page=0").send(),
        ),
        ("GET", keys.clone(), app.call("GET", &keys).send()),
        (
            "GET",
            keys.clone(),
            app.mgmt("GET", &keys).acting(CAROL).send(),
        ),
        // GET /api/keys/{id}
        ("GET", key_path.clone(), app.mgmt("GET", &key_path).send()),
        (
            "GET",
            key_path.clone(),
            app.call("GET", &key_path).bearer(ADMIN_TOKEN).send(),
        ),
        ("GET", key_path.clone(), app.call("GET", &key_path).send()),
        (
            "GET",
            key_path.clone(),
            app.mgmt("GET", &key_path).acting(CAROL).send(),
        ),
        (
            "GET",
            key_path.clone(),
            app.get_key("key_0000000000000000000000"),
        ),
        // GET /api/audit
        ("GET", audit.clone(), app.mgmt("GET", &audit).send()),
        (
            "GET",
            audit.clone(),
            app.mgmt("GET", "/api/audit?action=nope").send(),
        ),
        ("GET", audit.clone(), app.call("GET", &audit).send()),
        (
            "GET",
            audit.clone(),
            app.mgmt("GET", &audit).acting(CAROL).send(),
        ),
        // GET /api/verify
        ("GET", verify.clone(), app.verify(&secret)),
        ("GET", verify.clone(), app.call("GET", &verify).send()),
        // POST /api/verify
        (
            "POST",
            verify.clone(),
            app.call("POST", &verify)
                .json(&json!({"key": secret}))
                .send(),
        ),
        (
            "POST",
            verify.clone(),
            app.call("POST", &verify)
                .body("application/json", "{")
                .send(),
        ),
        (
            "POST",
            verify.clone(),
            app.call("POST", &verify).json(&json!({})).send(),
        ),
        (
            "POST",
            verify.clone(),
            app.call("POST", &verify)
                .body(
                    "application/json",
                    format!(r#"{{"key": "{}"}}"#, "k".repeat(70_000)),
                )
                .send(),
        ),
        (
            "POST",
            verify.clone(),
            app.call("POST", &verify).body("text/plain", "x").send(),
        ),
        // POST /webhooks/user-removed
        (
            "POST",
            webhook.clone(),
            app.deliver(&new_webhook_id(), now_unix(), event.as_bytes()),
        ),
        (
            "POST",
            webhook.clone(),
            app.deliver(&new_webhook_id(), now_unix(), b"{"),
        ),
        ("POST", webhook.clone(), app.webhook(&[], event.as_bytes())),
        (
            "POST",
            webhook.clone(),
            app.deliver(&new_webhook_id(), now_unix(), " ".repeat(70_000).as_bytes()),
        ),
        (
            "POST",
            webhook.clone(),
            app.call("POST", &webhook)
                .headers(&sign_webhook(
                    WEBHOOK_SECRET,
                    "msg_t",
                    now_unix(),
                    event.as_bytes(),
                ))
                .body("text/plain", event.clone())
                .send(),
        ),
        // GET /webhooks/okta
        (
            "GET",
            okta_hook.clone(),
            okta.call("GET", &okta_hook)
                .header("x-okta-verification-challenge", "tour")
                .send(),
        ),
        (
            "GET",
            okta_hook.clone(),
            okta.call("GET", &okta_hook).send(),
        ),
        (
            "GET",
            okta_hook.clone(),
            app.call("GET", &okta_hook)
                .header("x-okta-verification-challenge", "tour")
                .send(),
        ),
        // POST /webhooks/okta
        (
            "POST",
            okta_hook.clone(),
            okta_post(&okta, &okta_body).send(),
        ),
        ("POST", okta_hook.clone(), okta_post(&okta, "{").send()),
        (
            "POST",
            okta_hook.clone(),
            okta_post(&okta, &okta_body)
                .without_header("authorization")
                .send(),
        ),
        (
            "POST",
            okta_hook.clone(),
            okta_post(&app, &okta_body).send(),
        ),
        (
            "POST",
            okta_hook.clone(),
            okta_post(&okta, &" ".repeat(70_000)).send(),
        ),
        (
            "POST",
            okta_hook.clone(),
            okta_post(&okta, &okta_body)
                .header("content-type", "text/plain")
                .send(),
        ),
        // POST /ssf/events
        ("POST", ssf_events.clone(), ssf_post(&ssf, &set).send()),
        (
            "POST",
            ssf_events.clone(),
            ssf_post(&ssf, "not.a.set").send(),
        ),
        ("POST", ssf_events.clone(), ssf_post(&app, &set).send()),
        (
            "POST",
            ssf_events.clone(),
            ssf_post(&ssf, &"a".repeat(70_000)).send(),
        ),
        // Operations
        (
            "GET",
            "/api/health".to_owned(),
            app.call("GET", "/api/health").send(),
        ),
        (
            "GET",
            "/api/openapi.json".to_owned(),
            app.call("GET", "/api/openapi.json").send(),
        ),
        (
            "GET",
            "/api/auth-config".to_owned(),
            app.call("GET", "/api/auth-config").send(),
        ),
    ];
    tour.extend(owners_and_lifecycle_tour(&app));
    // DELETE /api/keys/{id}, last: it removes the key.
    tour.push((
        "DELETE",
        key_path.clone(),
        app.call("DELETE", &key_path).send(),
    ));
    tour.push((
        "DELETE",
        key_path.clone(),
        app.call("DELETE", &key_path).bearer(ADMIN_TOKEN).send(),
    ));
    tour.push((
        "DELETE",
        key_path.clone(),
        app.mgmt("DELETE", &key_path).acting(CAROL).send(),
    ));
    tour.push((
        "DELETE",
        key_path.clone(),
        app.delete_key(&key_path["/api/keys/".len()..]),
    ));
    tour.push((
        "DELETE",
        key_path.clone(),
        app.delete_key(&key_path["/api/keys/".len()..]),
    ));

    let seen = seen(&tour);
    // Each answer seen is documented for its operation…
    for (method, template, status) in &seen {
        let listed = documented_statuses(method, template).unwrap();
        assert!(
            listed.contains(status),
            "{method} {template} {status} is undocumented"
        );
    }
    // …and each documented answer was seen (405 needs another method, and
    // 503 a broken store, so those are left out).
    let paths = openapi()["paths"].as_object().unwrap();
    for (template, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(responses) = operation.get("responses").and_then(|r| r.as_object()) else {
                continue;
            };
            for status in responses.keys().filter_map(|s| s.parse::<u16>().ok()) {
                if status == 405 || status == 503 {
                    continue;
                }
                let key = (method.to_ascii_uppercase(), template.clone(), status);
                assert!(seen.contains(&key), "the tour never saw {key:?}");
            }
        }
    }
}

/// The v2 routes (owners, service accounts, the key lifecycle), each
/// documented answer once.
fn owners_and_lifecycle_tour(app: &App) -> Vec<(&'static str, String, Reply)> {
    // Not removed by the tour (BOB and CAROL are).
    const DAVE: &str = "dave@example.com";
    let big = format!(r#"{{"owner": "{}"}}"#, " ".repeat(64 * 1024));
    let (key, _) = app.create_key("tour-lifecycle");
    let path = format!("/api/keys/{}", key["id"].as_str().unwrap());
    let (transfer, roll) = (format!("{path}/transfer"), format!("{path}/roll"));
    let missing = "/api/keys/key_0000000000000000000000";
    let accounts = "/api/service-accounts".to_owned();
    // A revoked key: its service account was deleted.
    let account = expect_json(
        &app.mgmt("POST", &accounts)
            .json(&json!({"name": "tour-revoked"}))
            .send(),
        201,
    );
    let account_id = account["id"].as_str().unwrap().to_owned();
    let (revoked, _) = app.create_key_with(ALICE, &json!({"name": "tour-sa", "owner": account_id}));
    let revoked = format!("/api/keys/{}", revoked["id"].as_str().unwrap());
    assert_eq!(
        app.mgmt("DELETE", &format!("{accounts}/{account_id}"))
            .send()
            .status,
        204
    );
    let account_path = format!("{accounts}/{account_id}");
    let user = "/api/users/alice%40example.com".to_owned();
    fn merge(call: keygate_tests::api::Call<'_>, body: Json) -> keygate_tests::api::Call<'_> {
        call.body("application/merge-patch+json", body.to_string())
    }
    fn body<'a>(call: keygate_tests::api::Call<'a>, body: &str) -> keygate_tests::api::Call<'a> {
        call.body("application/json", body.to_owned())
    }
    let mut tour = vec![
        // PATCH /api/keys/{id}
        (
            "PATCH",
            path.clone(),
            merge(app.mgmt("PATCH", &path), json!({"description": "tour"})).send(),
        ),
        (
            "PATCH",
            path.clone(),
            body(app.mgmt("PATCH", &path), "{").send(),
        ),
        (
            "PATCH",
            path.clone(),
            merge(app.call("PATCH", &path), json!({})).send(),
        ),
        (
            "PATCH",
            path.clone(),
            merge(app.mgmt("PATCH", &path).acting(CAROL), json!({})).send(),
        ),
        (
            "PATCH",
            path.clone(),
            merge(app.mgmt("PATCH", missing), json!({})).send(),
        ),
        (
            "PATCH",
            path.clone(),
            merge(app.mgmt("PATCH", &path), json!({"name": "tour"})).send(),
        ),
        (
            "PATCH",
            path.clone(),
            body(app.mgmt("PATCH", &path), &big).send(),
        ),
        (
            "PATCH",
            path.clone(),
            app.mgmt("PATCH", &path).body("text/plain", "{}").send(),
        ),
        (
            "PATCH",
            path.clone(),
            merge(app.mgmt("PATCH", &path), json!({"name": null})).send(),
        ),
        // POST /api/keys/{id}/roll
        ("POST", roll.clone(), app.mgmt("POST", &roll).send()),
        (
            "POST",
            roll.clone(),
            body(app.mgmt("POST", &roll), "[]").send(),
        ),
        ("POST", roll.clone(), app.call("POST", &roll).send()),
        (
            "POST",
            roll.clone(),
            app.mgmt("POST", &roll).acting(CAROL).send(),
        ),
        (
            "POST",
            roll.clone(),
            app.mgmt("POST", &format!("{missing}/roll")).send(),
        ),
        (
            "POST",
            roll.clone(),
            app.mgmt("POST", &format!("{revoked}/roll")).send(),
        ),
        (
            "POST",
            roll.clone(),
            body(app.mgmt("POST", &roll), &big).send(),
        ),
        (
            "POST",
            roll.clone(),
            app.mgmt("POST", &roll).body("text/plain", "{}").send(),
        ),
        (
            "POST",
            roll.clone(),
            body(app.mgmt("POST", &roll), r#"{"expires_previous_in": -1}"#).send(),
        ),
        // POST /api/keys/{id}/transfer
        (
            "POST",
            transfer.clone(),
            app.mgmt("POST", &transfer)
                .json(&json!({"owner": DAVE}))
                .send(),
        ),
        (
            "POST",
            transfer.clone(),
            body(app.mgmt("POST", &transfer), "{").send(),
        ),
        (
            "POST",
            transfer.clone(),
            app.call("POST", &transfer)
                .json(&json!({"owner": DAVE}))
                .send(),
        ),
        (
            "POST",
            transfer.clone(),
            app.mgmt("POST", &transfer)
                .acting(CAROL)
                .json(&json!({"owner": DAVE}))
                .send(),
        ),
        (
            "POST",
            transfer.clone(),
            app.mgmt("POST", &format!("{missing}/transfer"))
                .json(&json!({"owner": DAVE}))
                .send(),
        ),
        (
            "POST",
            transfer.clone(),
            app.mgmt("POST", &format!("{revoked}/transfer"))
                .json(&json!({"owner": DAVE}))
                .send(),
        ),
        (
            "POST",
            transfer.clone(),
            body(app.mgmt("POST", &transfer), &big).send(),
        ),
        (
            "POST",
            transfer.clone(),
            app.mgmt("POST", &transfer).body("text/plain", "{}").send(),
        ),
        (
            "POST",
            transfer.clone(),
            app.mgmt("POST", &transfer)
                .json(&json!({"owner": CAROL}))
                .send(),
        ),
        // POST /api/service-accounts
        (
            "POST",
            accounts.clone(),
            app.mgmt("POST", &accounts)
                .json(&json!({"name": "tour-sa"}))
                .send(),
        ),
        (
            "POST",
            accounts.clone(),
            body(app.mgmt("POST", &accounts), "{").send(),
        ),
        (
            "POST",
            accounts.clone(),
            app.call("POST", &accounts)
                .json(&json!({"name": "x"}))
                .send(),
        ),
        (
            "POST",
            accounts.clone(),
            app.mgmt("POST", &accounts)
                .acting(CAROL)
                .json(&json!({"name": "x"}))
                .send(),
        ),
        (
            "POST",
            accounts.clone(),
            app.mgmt("POST", &accounts)
                .json(&json!({"name": "TOUR-SA"}))
                .send(),
        ),
        (
            "POST",
            accounts.clone(),
            body(app.mgmt("POST", &accounts), &big.replace("owner", "name")).send(),
        ),
        (
            "POST",
            accounts.clone(),
            app.mgmt("POST", &accounts).body("text/plain", "{}").send(),
        ),
        (
            "POST",
            accounts.clone(),
            app.mgmt("POST", &accounts)
                .json(&json!({"name": ""}))
                .send(),
        ),
        // GET /api/service-accounts
        ("GET", accounts.clone(), app.mgmt("GET", &accounts).send()),
        (
            "GET",
            accounts.clone(),
            app.mgmt("GET", "/api/service-accounts?per_page=0").send(),
        ),
        ("GET", accounts.clone(), app.call("GET", &accounts).send()),
        (
            "GET",
            accounts.clone(),
            app.mgmt("GET", &accounts).acting(CAROL).send(),
        ),
        // GET /api/users/{user_id}
        ("GET", user.clone(), app.mgmt("GET", &user).send()),
        (
            "GET",
            user.clone(),
            app.mgmt("GET", "/api/users/%FF").send(),
        ),
        ("GET", user.clone(), app.call("GET", &user).send()),
        (
            "GET",
            user.clone(),
            app.mgmt("GET", &user).acting(CAROL).send(),
        ),
    ];
    // DELETE /api/service-accounts/{id}: the account was deleted above.
    let live = expect_json(
        &app.mgmt("POST", &accounts)
            .json(&json!({"name": "tour-delete"}))
            .send(),
        201,
    );
    let live = format!("{accounts}/{}", live["id"].as_str().unwrap());
    tour.extend([
        ("DELETE", live.clone(), app.call("DELETE", &live).send()),
        (
            "DELETE",
            live.clone(),
            app.mgmt("DELETE", &live).header("x-acting-user", "").send(),
        ),
        (
            "DELETE",
            live.clone(),
            app.mgmt("DELETE", &live).acting(CAROL).send(),
        ),
        ("DELETE", live.clone(), app.mgmt("DELETE", &live).send()),
        (
            "DELETE",
            account_path.clone(),
            app.mgmt("DELETE", &account_path).send(),
        ),
    ]);
    tour
}
