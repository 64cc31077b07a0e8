//! `GET /api/openapi.json`, and the document against what the service does.
//!
//! Every request any `tests/api` test sends goes through `Call::send`, which
//! fails the test when the answer's status is not listed in `docs/openapi.json`
//! for that operation; the tour below makes sure each documented answer is seen.

use std::collections::BTreeSet;

use keygate_tests::api::*;
use keygate_tests::idp::{TestIdp, TestKey};
use keygate_tests::{Reply, json};

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
