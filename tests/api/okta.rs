//! `/webhooks/okta`: Okta Event Hooks as Okta (and the removed user's
//! automations) see them. Okta's documented bodies are replayed byte for
//! byte: the sample delivery of developer.okta.com's "Event hooks" concept
//! page (a `user.session.start`), and the `user.lifecycle.deactivate` event
//! object of its "Event hook implementation" guide inside that same
//! envelope (Okta documents the deactivation as an event, not a whole
//! delivery). Okta sends `Accept` and `Content-Type: application/json` and
//! the registered `Authorization` value verbatim; it gives up after 3 s,
//! retries a timeout or a 5xx once, and never retries a 4xx.

use std::time::{Duration, Instant};

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

/// `okta_hook_secret` of the apps here: what an admin would type into
/// Okta's "Authentication secret" (Okta's own guide uses a Basic value).
const OKTA_SECRET: &str = "Basic a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ=";
const HOOK: &str = "/webhooks/okta";
/// The user Okta's documented deactivation names (`target[0].alternateId`).
const JOHN: &str = "john.doe@example.com";
const JOHNS_EVENT: &str = "ab62c0bc-2837-11eb-9823-9fb8f750c5a9";
const SAMPLE_EVENT: &str = "f1d0b993-cc19-11ed-a688-db22c99ef6c4";

/// Okta's sample event delivery payload, verbatim (okta/okta-developer-docs,
/// docs/concepts/event-hooks/index.md, "Sample event delivery payload", as
/// of 941f3f7, 2026-08-04).
const OKTA_SAMPLE_DELIVERY: &str = r#"{
    "eventType": "com.okta.event_hook",
    "eventTypeVersion": "1.0",
    "cloudEventsVersion": "0.1",
    "source": "https://{yourOktaDomain}/api/v1/eventHooks/who7hphp39JoHLni81d7",
    "eventId": "85b60edb-4263-4e13-993b-818e26201052",
    "data": {
        "events": [
            {
                "uuid": "f1d0b993-cc19-11ed-a688-db22c99ef6c4",
                "published": "2023-03-26T21:05:32.159Z",
                "eventType": "user.session.start",
                "version": "0",
                "displayMessage": "User login to Okta",
                "severity": "INFO",
                "client": {
                    "userAgent": {
                        "rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/111.0.0.0 Safari/537.36",
                        "os": "Mac OS X",
                        "browser": "CHROME"
                    },
                    "zone": "null",
                    "device": "Computer",
                    "id": null,
                    "ipAddress": "142.126.158.61",
                    "geographicalContext": {
                        "city": "Toronto",
                        "state": "Ontario",
                        "country": "Canada",
                        "postalCode": "M4M",
                        "geolocation": {
                            "lat": 43.6567,
                            "lon": -79.34
                        }
                    },
                    "ipChain": [
                        {
                            "ip": "142.126.158.61",
                            "geographicalContext": {
                                "city": "Toronto",
                                "state": "Ontario",
                                "country": "Canada",
                                "postalCode": "M4M",
                                "geolocation": {
                                    "lat": 43.6567,
                                    "lon": -79.34
                                }
                            },
                            "version": "V4",
                            "source": null
                        }
                    ]
                },
                "device": null,
                "actor": {
                    "id": "00uz9fj5aT69fHVro1d6",
                    "type": "User",
                    "alternateId": "admin@okta.com",
                    "displayName": "Admin Name",
                    "detailEntry": null
                },
                "outcome": {
                    "result": "SUCCESS",
                    "reason": null
                },
                "target": [
                    {
                        "id": "lae42mkdc9i9cbw3U1d6",
                        "type": "AuthenticatorEnrollment",
                        "alternateId": "unknown",
                        "displayName": "Password",
                        "detailEntry": null
                    },
                    {
                        "id": "0oaz9fj21WKqTeaqs1d6",
                        "type": "AppInstance",
                        "alternateId": "Okta Admin Console",
                        "displayName": "Okta Admin Console",
                        "detailEntry": null
                    }
                ],
                "transaction": {
                    "type": "WEB",
                    "id": "ZCCzm8j2wTvzwele2NwLnwAADSc",
                    "detail": {}
                },
                "debugContext": {
                    "debugData": {
                        "authnRequestId": "ZCCzlCoZuOyo8RfASqHmPAAAAc8",
                        "deviceFingerprint": "3411ee4c591b2229f3bea251e12e0c1a",
                        "requestId": "ZCCzm8j2wTvzwele2NwLnwAADSc",
                        "dtHash": "f59d98b2e02f1319ef4ca651f57c36e3f25507f67dd6daf0408f753896b7e8dc",
                        "origin": "https://{yourOktaDomain}",
                        "requestUri": "/idp/idx/identify",
                        "threatSuspected": "false",
                        "url": "/idp/idx/identify?"
                    }
                },
                "legacyEventType": "core.user_auth.login_success",
                "authenticationContext": {
                    "authenticationProvider": null,
                    "credentialProvider": null,
                    "credentialType": null,
                    "issuer": null,
                    "authenticationStep": 0,
                    "externalSessionId": "idxyNcxVX2ESsSL0u462548Qg",
                    "interface": null
                },
                "securityContext": {
                    "asNumber": null,
                    "asOrg": null,
                    "isp": null,
                    "domain": null,
                    "isProxy": null
                },
                "insertionTimestamp": null
            }
        ]
    },
    "eventTime": "2023-03-28T17:03:37.093Z",
    "contentType": "application/json"
}"#;

/// Okta's example `user.lifecycle.deactivate` event object, verbatim
/// (okta/okta-developer-docs, docs/guides/event-hook-implementation/main/
/// nodejs/event-object.md, as of 0a2c688).
const OKTA_DEACTIVATE_EVENT: &str = r#"{
        "actor": {
            "id": "00u2di94bAMSEPvAY1d6",
            "type": "User",
            "alternateId": "okta.trainer@okta.com",
            "displayName": "Okta Trainer",
            "detailEntry": null
        },
        "client": {
            "userAgent": {
                "rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.198 Safari/537.36",
                "os": "Mac OS X",
                "browser": "CHROME"
            },
            "zone": "null",
            "device": "Computer",
            "id": null,
            "ipAddress": "174.89.174.56",
            "geographicalContext": {
                "city": "Toronto",
                "state": "Ontario",
                "country": "Canada",
                "postalCode": "M6B",
                "geolocation": {
                    "lat": 43.7114,
                    "lon": -79.4462
                }
            }
        },
        "authenticationContext": {
            "authenticationProvider": null,
            "credentialProvider": null,
            "credentialType": null,
            "issuer": null,
            "interface": null,
            "authenticationStep": 0,
            "externalSessionId": "102lMcfHbwSTuS5V1oPHJs3lw"
        },
        "displayMessage": "Deactivate Okta User",
        "eventType": "user.lifecycle.deactivate",
        "outcome": {
            "result": "SUCCESS",
            "reason": null
        },
        "published": "2020-11-16T18:15:12.862Z",
        "securityContext": {
            "asNumber": 577,
            "asOrg": "example",
            "isp": "exampleISP",
            "domain": "example.com",
            "isProxy": false
        },
        "severity": "INFO",
        "debugContext": {
            "debugData": {
                "requestId": "X7LBsMxeqO-ADcGcmp0WGQAAB@g",
                "requestUri": "/admin/user/deactivate/00u3m90rxKjGQ0G6L1d6",
                "threatSuspected": "false",
                "url": "/admin/user/deactivate/00u3m90rxKjGQ0G6L1d6?"
            }
        },
        "legacyEventType": "core.user.config.user_deactivated",
        "transaction": {
            "type": "WEB",
            "id": "X7LBsMxeqO-ADcGcmp0WGQAAB@g",
            "detail": {}
        },
        "uuid": "ab62c0bc-2837-11eb-9823-9fb8f750c5a9",
        "version": "0",
        "request": {
            "ipChain": [
                {
                    "ip": "174.89.174.56",
                    "geographicalContext": {
                        "city": "Toronto",
                        "state": "Ontario",
                        "country": "Canada",
                        "postalCode": "M6B",
                        "geolocation": {
                            "lat": 43.7114,
                            "lon": -79.4462
                        }
                    },
                    "version": "V4",
                    "source": null
                }
            ]
        },
        "target": [
            {
                "id": "00u3m90rxKjGQ0G6L1d6",
                "type": "User",
                "alternateId": "john.doe@example.com",
                "displayName": "John Doe",
                "detailEntry": null
            }
        ]
    }"#;

/// Okta's documented envelope around these event objects (each verbatim).
fn in_documented_envelope(events: &[&str]) -> String {
    let open = "\"events\": [\n";
    let start = OKTA_SAMPLE_DELIVERY
        .find(open)
        .expect("the envelope's events")
        + open.len();
    let end = OKTA_SAMPLE_DELIVERY
        .find("\n        ]\n    },\n    \"eventTime\"")
        .expect("the envelope's end");
    format!(
        "{}{}{}",
        &OKTA_SAMPLE_DELIVERY[..start],
        events.join(",\n"),
        &OKTA_SAMPLE_DELIVERY[end..]
    )
}

/// Okta's documented deactivation of john.doe@example.com, as a delivery.
fn documented_deactivation() -> String {
    in_documented_envelope(&[OKTA_DEACTIVATE_EVENT])
}

#[track_caller]
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "test bug: {from}");
    text.replace(from, to)
}

/// Okta's documented event with another type, uuid and target login.
fn event_like_documented(event_type: &str, uuid: &str, login: &str) -> String {
    let event = replace_once(
        OKTA_DEACTIVATE_EVENT,
        "\"eventType\": \"user.lifecycle.deactivate\"",
        &format!("\"eventType\": {}", json!(event_type)),
    );
    let event = replace_once(&event, JOHNS_EVENT, uuid);
    replace_once(
        &event,
        &format!("\"alternateId\": \"{JOHN}\""),
        &format!("\"alternateId\": {}", json!(login)),
    )
}

fn okta_app() -> App {
    App::start_with(|c| c.env("SPIN_VARIABLE_OKTA_HOOK_SECRET", OKTA_SECRET))
}

/// A delivery with Okta's headers.
fn deliver(app: &App, body: &str) -> Reply {
    okta_post(app, body).send()
}

fn okta_post<'a>(app: &'a App, body: &str) -> Call<'a> {
    app.call("POST", HOOK)
        .header("accept", "application/json")
        .header("authorization", OKTA_SECRET)
        .body("application/json", body)
}

/// The one-time verification request.
fn challenge(app: &App, value: &str) -> Reply {
    app.call("GET", HOOK)
        .header("x-okta-verification-challenge", value)
        .send()
}

/// Keys of John (one created under another spelling: user ids match
/// case-insensitively), Bob and Carol.
struct Keys {
    john: Vec<String>,
    others: Vec<String>,
}

fn with_keys(app: &App) -> Keys {
    let john = vec![
        app.create_key_as(JOHN, "john-1").1,
        app.create_key_as(JOHN, "john-2").1,
        app.create_key_as("John.Doe@Example.com", "john-3").1,
    ];
    let others = vec![
        app.create_key_as(BOB, "bob-1").1,
        app.create_key_as(CAROL, "carol-1").1,
    ];
    Keys { john, others }
}

#[track_caller]
fn assert_all_verify(app: &App, secrets: &[String]) {
    for secret in secrets {
        expect_json(&app.verify(secret), 200);
    }
}

#[track_caller]
fn assert_all_revoked(app: &App, secrets: &[String]) {
    for secret in secrets {
        assert_key_rejected(&app.verify(secret), "revoked_key");
    }
}

/// Asserts a refused delivery changed nothing: the same overview and trail,
/// and every key still verifies.
#[track_caller]
fn assert_unchanged(app: &App, before: &(Vec<Json>, Vec<Json>), keys: &Keys) {
    assert_eq!(&app.snapshot(), before, "a refused request changed state");
    // (After the comparison: a verification adds a key.used entry.)
    assert_all_verify(app, &keys.john);
    assert_all_verify(app, &keys.others);
}

/// A problem that shows no secret and, for the 401, challenges nobody.
#[track_caller]
fn assert_okta_problem(reply: &Reply, status: u16, code: &str) -> Json {
    let problem = assert_problem(reply, status, code);
    assert_no_secret(
        &reply.text(),
        &[OKTA_SECRET, "a2V5Z2F0ZTpva3Rh"],
        "an Okta hook error",
    );
    problem
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn the_one_time_verification_echoes_the_challenge() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    // Okta sends no Authorization with it; the secret is not needed here.
    for value in [
        "TnWX5Yc0GskoY2k9dqqvRUXKjgGU7Y2AXvGxCBBHjaU",
        "a \"quoted\" <value>",
    ] {
        let reply = challenge(&app, value);
        assert_eq!(expect_json(&reply, 200), json!({ "verification": value }));
    }
    let with_secret = app
        .call("GET", HOOK)
        .header("authorization", OKTA_SECRET)
        .header("X-Okta-Verification-Challenge", "abc")
        .send();
    assert_eq!(
        expect_json(&with_secret, 200),
        json!({"verification": "abc"})
    );
    assert_unchanged(&app, &before, &keys);
}

#[test]
fn oktas_documented_deactivation_removes_the_user_and_revokes_every_key() {
    let app = okta_app();
    let keys = with_keys(&app);
    let started = Instant::now();
    let reply = deliver(&app, &documented_deactivation());
    let took = started.elapsed();
    assert_eq!(
        expect_json(&reply, 200),
        json!({"events": [{
            "uuid": JOHNS_EVENT,
            "event_type": "user.lifecycle.deactivate",
            "result": "removed",
            "user_id": JOHN,
            "revoked_keys": 3,
        }]})
    );
    assert!(
        took < Duration::from_secs(1),
        "well within Okta's 3 s: {took:?}"
    );

    assert_all_revoked(&app, &keys.john);
    assert_all_verify(&app, &keys.others);
    for key in app.list_all("") {
        let johns = key["created_by"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(JOHN);
        assert_eq!(
            key["status"],
            if johns { "revoked" } else { "active" },
            "{key}"
        );
        if johns {
            assert_eq!(key["revoked_reason"], "owner_removed");
        }
    }
    let removed = app.audit_all("action=user.removed");
    assert_eq!(removed.len(), 1);
    assert!(
        removed[0]["user"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(JOHN)
    );
    assert_eq!(removed[0]["details"]["revoked_keys"], 3);
    assert_eq!(
        removed[0]["details"]["channel"], "okta",
        "the console shows the channel"
    );
    let revoked = app.audit_all("action=key.revoked");
    assert_eq!(revoked.len(), 3);
    assert!(
        revoked
            .iter()
            .all(|e| e["user"].as_str().unwrap().eq_ignore_ascii_case(JOHN))
    );
    // John can no longer act.
    assert_problem(
        &app.create(JOHN, &json!({"name": "after-removal"})),
        403,
        "user_removed",
    );
}

#[test]
fn delete_initiated_removes_the_user_the_same_way() {
    let app = okta_app();
    let keys = with_keys(&app);
    let uuid = "0b1f3a52-1c2d-11ee-8a5a-69d62fcd0f8b";
    let body = in_documented_envelope(&[&event_like_documented(
        "user.lifecycle.delete.initiated",
        uuid,
        JOHN,
    )]);
    let answer = expect_json(&deliver(&app, &body), 200);
    assert_eq!(
        answer["events"],
        json!([{"uuid": uuid, "event_type": "user.lifecycle.delete.initiated",
                "result": "removed", "user_id": JOHN, "revoked_keys": 3}])
    );
    assert_all_revoked(&app, &keys.john);
    assert_all_verify(&app, &keys.others);
    assert_eq!(app.audit("action=user.removed")["total"], 1);
    assert_eq!(app.audit("action=key.revoked")["total"], 3);
}

#[test]
fn oktas_documented_sample_delivery_is_acknowledged_and_changes_nothing() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    let reply = deliver(&app, OKTA_SAMPLE_DELIVERY);
    assert_eq!(
        expect_json(&reply, 200),
        json!({"events": [{"uuid": SAMPLE_EVENT, "event_type": "user.session.start",
                           "result": "ignored"}]})
    );
    assert_unchanged(&app, &before, &keys);
}

#[test]
fn unrelated_and_unsuccessful_events_are_acknowledged_and_change_nothing() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    let failed = replace_once(
        &event_like_documented("user.lifecycle.deactivate", "evt-failed", JOHN),
        "\"result\": \"SUCCESS\"",
        "\"result\": \"FAILURE\"",
    );
    let events = [
        event_like_documented("user.lifecycle.activate", "evt-1", JOHN),
        event_like_documented("user.lifecycle.suspend", "evt-2", JOHN),
        event_like_documented("user.account.lock", "evt-3", JOHN),
        event_like_documented("group.user_membership.remove", "evt-4", JOHN),
        event_like_documented("user.lifecycle.deactivated", "evt-5", JOHN),
        failed,
    ];
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let answer = expect_json(&deliver(&app, &in_documented_envelope(&events)), 200);
    let results: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["ignored"; 6]);
    assert_eq!(
        answer["events"][5],
        json!({"uuid": "evt-failed", "event_type": "user.lifecycle.deactivate",
               "result": "ignored"})
    );
    assert_unchanged(&app, &before, &keys);
}

#[test]
fn a_repeated_event_answers_the_same_and_revokes_nothing_more() {
    let app = okta_app();
    let keys = with_keys(&app);
    let body = documented_deactivation();
    let first = expect_json(&deliver(&app, &body), 200);
    let before = app.snapshot();

    // Okta's retry (the same bytes), and the same event in another batch.
    let again = expect_json(&deliver(&app, &body), 200);
    assert_eq!(again, first);
    let batch = in_documented_envelope(&[
        &event_like_documented("user.session.start", "evt-new", "x@example.com"),
        OKTA_DEACTIVATE_EVENT,
    ]);
    let rebatched = expect_json(&deliver(&app, &batch), 200);
    assert_eq!(rebatched["events"][1], first["events"][0]);
    // A new event for the removed user (deleted after being deactivated).
    let deleted = in_documented_envelope(&[&event_like_documented(
        "user.lifecycle.delete.initiated",
        "evt-delete",
        "JOHN.DOE@example.com",
    )]);
    let later = expect_json(&deliver(&app, &deleted), 200);
    assert_eq!(later["events"][0]["revoked_keys"], 0);

    assert_eq!(app.snapshot(), before, "no second revocation, no new entry");
    assert_all_revoked(&app, &keys.john);
}

#[test]
fn a_batch_removes_each_user_it_names() {
    let app = okta_app();
    let keys = with_keys(&app);
    let batch = in_documented_envelope(&[
        OKTA_DEACTIVATE_EVENT,
        &event_like_documented("user.session.start", "evt-2", CAROL),
        &event_like_documented("user.lifecycle.delete.initiated", "evt-3", BOB),
    ]);
    let answer = expect_json(&deliver(&app, &batch), 200);
    let summary: Vec<(&str, Option<&str>, Option<u64>)> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["result"].as_str().unwrap(),
                e["user_id"].as_str(),
                e["revoked_keys"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("removed", Some(JOHN), Some(3)),
            ("ignored", None, None),
            ("removed", Some(BOB), Some(1)),
        ]
    );
    assert_all_revoked(&app, &keys.john);
    assert_all_revoked(&app, &keys.others[..1]);
    assert_all_verify(&app, &keys.others[1..]);
    assert_eq!(app.audit("action=user.removed")["total"], 2);
}

#[test]
fn an_empty_batch_is_acknowledged() {
    let app = okta_app();
    let body = in_documented_envelope(&[]);
    assert_eq!(
        expect_json(&deliver(&app, &body), 200),
        json!({"events": []})
    );
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn bodies_that_are_not_an_okta_delivery_are_invalid_request_and_change_nothing() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    let deactivation = documented_deactivation();
    let no_user = replace_once(
        &deactivation,
        "\"type\": \"User\",\n                \"alternateId\": \"john",
        "\"type\": \"AppUser\",\n                \"alternateId\": \"john",
    );
    let two_users = in_documented_envelope(&[&replace_once(
        OKTA_DEACTIVATE_EVENT,
        "\"target\": [",
        "\"target\": [{\"id\": \"00u1\", \"type\": \"User\", \"alternateId\": \"bob@example.com\"},",
    )]);
    let bodies: Vec<String> = vec![
        String::new(),
        "{".into(),
        "[]".into(),
        "null".into(),
        deactivation[..deactivation.len() - 1].to_owned(),
        replace_once(&deactivation, "com.okta.event_hook", "com.okta.inline_hook"),
        replace_once(
            &deactivation,
            "\"eventType\": \"com.okta.event_hook\",\n",
            "",
        ),
        json!({"eventType": "com.okta.event_hook", "data": {}}).to_string(),
        json!({"eventType": "com.okta.event_hook", "data": {"events": {}}}).to_string(),
        json!({"eventType": "com.okta.event_hook"}).to_string(),
        in_documented_envelope(&["42"]),
        replace_once(&deactivation, &format!("\"uuid\": \"{JOHNS_EVENT}\","), ""),
        replace_once(&deactivation, &format!("\"{JOHNS_EVENT}\""), "\"\""),
        replace_once(&deactivation, &format!("\"{JOHNS_EVENT}\""), "7"),
        no_user,
        two_users,
        replace_once(&deactivation, "\"john.doe@example.com\"", "\"\""),
        replace_once(&deactivation, "\"john.doe@example.com\"", "null"),
        replace_once(
            &deactivation,
            "\"john.doe@example.com\"",
            &json!("u".repeat(201)).to_string(),
        ),
        replace_once(
            &deactivation,
            "\"john.doe@example.com\"",
            "\"john\\u0000@example.com\"",
        ),
    ];
    for body in &bodies {
        let problem = assert_okta_problem(&deliver(&app, body), 400, "invalid_request");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{problem}"
        );
    }
    let not_utf8 = okta_post(&app, "").raw_body(b"\xff\xfe{}".to_vec()).send();
    assert_okta_problem(&not_utf8, 400, "invalid_request");
    assert_unchanged(&app, &before, &keys);
}

#[test]
fn a_bad_event_anywhere_refuses_the_whole_delivery() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    // John's removal first, then a removal keygate cannot carry out.
    let unusable = replace_once(
        &event_like_documented("user.lifecycle.delete.initiated", "evt-2", BOB),
        "\"type\": \"User\",\n                \"alternateId\": \"bob",
        "\"type\": \"Group\",\n                \"alternateId\": \"bob",
    );
    let body = in_documented_envelope(&[OKTA_DEACTIVATE_EVENT, &unusable]);
    let problem = assert_okta_problem(&deliver(&app, &body), 400, "invalid_request");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("`data.events[1]`"),
        "{problem}"
    );
    assert_unchanged(&app, &before, &keys);
}

#[test]
fn a_verification_without_a_usable_challenge_is_invalid_request() {
    let app = okta_app();
    assert_okta_problem(&app.call("GET", HOOK).send(), 400, "invalid_request");
    assert_okta_problem(&challenge(&app, ""), 400, "invalid_request");
    assert_okta_problem(&challenge(&app, &"c".repeat(1025)), 400, "invalid_request");
}

// ---- 401 -------------------------------------------------------------------

#[test]
fn wrong_or_missing_secrets_are_unauthenticated_and_change_nothing() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    let body = documented_deactivation();
    let wrong = [
        "",
        "a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ=",
        "Bearer a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ=",
        "basic a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ=",
        "Basic a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ",
        "Basic a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ==",
        "Basic a2V5Z2F0ZTpva3RhLWhvb2stdGVzdC1zZWNyZXQ=,Basic x",
        ADMIN_TOKEN,
    ];
    for value in wrong {
        let reply = okta_post(&app, &body).header("authorization", value).send();
        assert_okta_problem(&reply, 401, "unauthenticated");
        assert_eq!(
            reply.header("www-authenticate"),
            None,
            "no bearer challenge"
        );
    }
    let missing = okta_post(&app, &body)
        .without_header("authorization")
        .send();
    assert_okta_problem(&missing, 401, "unauthenticated");
    // The secret is checked before the body is read or parsed.
    let unread = [
        okta_post(&app, "{").header("authorization", "wrong").send(),
        okta_post(&app, &" ".repeat(70_000))
            .header("authorization", "wrong")
            .send(),
        okta_post(&app, "x")
            .header("authorization", "wrong")
            .header("content-type", "text/plain")
            .send(),
    ];
    for reply in &unread {
        assert_okta_problem(reply, 401, "unauthenticated");
    }
    assert_unchanged(&app, &before, &keys);
}

// ---- 404 -------------------------------------------------------------------

#[test]
fn without_a_secret_every_request_to_the_hook_is_not_found() {
    for configured in [None, Some(""), Some("   ")] {
        let app = App::start_with(|c| match configured {
            Some(value) => c.env("SPIN_VARIABLE_OKTA_HOOK_SECRET", value),
            None => c,
        });
        let keys = with_keys(&app);
        let before = app.snapshot();
        let replies = [
            challenge(&app, "TnWX5Yc0GskoY2k9dqqvRUXKjgGU7Y2AXvGxCBBHjaU"),
            deliver(&app, &documented_deactivation()),
            okta_post(&app, &documented_deactivation())
                .header("authorization", configured.unwrap_or_default())
                .send(),
            okta_post(&app, &documented_deactivation())
                .without_header("authorization")
                .send(),
            app.call("PUT", HOOK).send_any_status(),
        ];
        for reply in &replies {
            assert_okta_problem(reply, 404, "not_found");
        }
        assert_unchanged(&app, &before, &keys);
    }
}

// ---- 405 -------------------------------------------------------------------

#[test]
fn other_methods_are_not_allowed() {
    let app = okta_app();
    for method in ["PUT", "DELETE", "PATCH"] {
        let reply = app
            .call(method, HOOK)
            .header("authorization", OKTA_SECRET)
            .send_any_status();
        assert_okta_problem(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("GET, POST"));
    }
}

// ---- 413 -------------------------------------------------------------------

#[test]
fn bodies_over_64_kib_are_payload_too_large_and_change_nothing() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    // A valid deactivation, padded with whitespace past the limit.
    let padded =
        documented_deactivation().replacen('{', &format!("{{{}", " ".repeat(64 * 1024)), 1);
    assert!(serde_json::from_str::<Json>(&padded).is_ok());
    assert_okta_problem(&deliver(&app, &padded), 413, "payload_too_large");
    let chunked = okta_post(&app, &padded).chunked().send();
    assert_okta_problem(&chunked, 413, "payload_too_large");
    assert_unchanged(&app, &before, &keys);
    // At the limit it is read.
    let at_limit = documented_deactivation();
    let at_limit = at_limit.replacen(
        '{',
        &format!("{{{}", " ".repeat(64 * 1024 - at_limit.len())),
        1,
    );
    assert_eq!(at_limit.len(), 64 * 1024);
    expect_json(&deliver(&app, &at_limit), 200);
    assert_all_revoked(&app, &keys.john);
}

// ---- 415 -------------------------------------------------------------------

#[test]
fn non_json_bodies_are_unsupported_media_type_and_change_nothing() {
    let app = okta_app();
    let keys = with_keys(&app);
    let before = app.snapshot();
    let body = documented_deactivation();
    for reply in [
        okta_post(&app, &body)
            .header("content-type", "text/plain")
            .send(),
        okta_post(&app, &body).without_header("content-type").send(),
    ] {
        assert_okta_problem(&reply, 415, "unsupported_media_type");
    }
    assert_unchanged(&app, &before, &keys);
}

// ---- 503 / a crash, then Okta's one retry ----------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Fail,
    Crash,
}

/// The documented deactivation with a fault on the 1st, 2nd, … storage call
/// (until a run in which it never fires); after each, Okta's single retry of
/// the same bytes must finish the removal. Returns the storage calls seen.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    let body = documented_deactivation();
    for step in 1.. {
        let app = okta_app();
        let keys = with_keys(&app);
        let app = app.restart_with(|c| {
            c.env("SPIN_VARIABLE_OKTA_HOOK_SECRET", OKTA_SECRET)
                .arg(flag)
                .arg(&format!("*:{step}"))
        });
        let reply = okta_post(&app, &body).send_any_status();
        let log = app.wait_for_log("POST /webhooks/okta ");
        if !log.contains("fault injected") {
            expect_json(&reply, 200);
            return step - 1;
        }
        let when = format!("{flag} at step {step}");
        match fault {
            Fault::Fail => {
                assert_okta_problem(&reply, 503, "storage_unavailable");
            }
            Fault::Crash => assert_eq!(reply.status, 500, "{when}: {}", reply.text()),
        }
        assert_all_verify(&app, &keys.others);

        let retry = expect_json(&okta_post(&app, &body).send(), 200);
        assert_eq!(
            retry["events"][0],
            json!({"uuid": JOHNS_EVENT, "event_type": "user.lifecycle.deactivate",
                   "result": "removed", "user_id": JOHN, "revoked_keys": 3}),
            "{when}"
        );
        assert_all_revoked(&app, &keys.john);
        assert_all_verify(&app, &keys.others);
        assert_eq!(app.audit("action=user.removed")["total"], 1, "{when}");
        assert_eq!(app.audit("action=key.revoked")["total"], 3, "{when}");
        assert_eq!(app.list("status=revoked")["total"], 3, "{when}");
        // And a later redelivery changes nothing.
        let before = app.snapshot();
        assert_eq!(expect_json(&okta_post(&app, &body).send(), 200), retry);
        assert_eq!(app.snapshot(), before, "{when}");
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_is_finished_by_oktas_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("the Okta removal of 3 keys: {calls} storage calls, each failed in turn");
    assert!(calls >= 8, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_is_finished_by_oktas_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!("the Okta removal of 3 keys: {calls} storage calls, a crash after each in turn");
    assert!(calls >= 8, "{calls} storage calls?");
}

// ---- Measurements (not run by default) --------------------------------------

/// Creates `n` keys for `user` through the API (4 at a time); their secrets.
fn create_many(app: &App, user: &str, n: usize) -> Vec<String> {
    let threads = 4;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| app.create_key_as(user, &format!("bench-{i}")).1)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// How many of `secrets` verify (200), are refused as revoked, and got any
/// other answer (with a runner cutting requests off: its 500).
fn verify_all(app: &App, secrets: &[String]) -> (usize, usize, usize) {
    let threads = 4;
    let chunk = secrets.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = secrets
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().fold((0, 0, 0), |(ok, revoked, other), secret| {
                        let reply = app
                            .call("GET", "/api/verify")
                            .bearer(secret)
                            .send_any_status();
                        match (reply.status, problem_code(&reply).as_deref()) {
                            (200, _) => (ok + 1, revoked, other),
                            (401, Some("revoked_key")) => (ok, revoked + 1, other),
                            (401, code) => panic!("verify: 401 {code:?}"),
                            _ => (ok, revoked, other + 1),
                        }
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0, 0), |(a, b, c), (d, e, f)| (a + d, b + e, c + f))
    })
}

fn bench_delivery(user: &str, uuid: &str) -> String {
    in_documented_envelope(&[&event_like_documented(
        "user.lifecycle.deactivate",
        uuid,
        user,
    )])
}

/// Sends a delivery as Okta does, giving up after `limit`: the status, or
/// `None` when it timed out.
fn okta_with_limit(app: &App, body: &str, limit: Duration) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(limit))
        .build()
        .into();
    match agent
        .post(app.url(HOOK))
        .header("accept", "application/json")
        .header("authorization", OKTA_SECRET)
        .content_type("application/json")
        .send(body)
    {
        Ok(response) => Some(response.status().as_u16()),
        Err(ureq::Error::Timeout(_)) => None,
        Err(e) => panic!("{e}"),
    }
}

fn revoked_in_overview(app: &App) -> u64 {
    app.list("status=revoked&per_page=1")["total"]
        .as_u64()
        .unwrap()
}

/// `cargo test --release -p keygate-tests --test api_okta -- --ignored --nocapture`
/// (OKTA_BENCH_SIZES, default `1,100,10000`; OKTA_BENCH_CUT, the runner's
/// `--request-timeout` for the cut-off run, default 1 s).
#[test]
#[ignore = "a measurement: minutes, prints numbers"]
fn removal_time_through_the_okta_hook() {
    let sizes: Vec<usize> = std::env::var("OKTA_BENCH_SIZES")
        .unwrap_or_else(|_| "1,100,10000".into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let largest = *sizes.iter().max().unwrap();
    println!("| keys | create (s) | Okta hook answer | all refused after (s) |");
    println!("|---:|---:|---:|---:|");
    for &n in &sizes {
        let app = okta_app();
        let user = format!("bench-{n}@example.com");
        let started = Instant::now();
        let secrets = create_many(&app, &user, n);
        let created = started.elapsed();
        let started = Instant::now();
        let reply = deliver(&app, &bench_delivery(&user, &format!("bench-{n}")));
        let took = started.elapsed();
        let answer = expect_json(&reply, 200);
        assert_eq!(answer["events"][0]["revoked_keys"], n);
        let started = Instant::now();
        assert_eq!(verify_all(&app, &secrets), (0, n, 0));
        println!(
            "| {n} | {:.1} | {:.0} ms | {:.1} |",
            created.as_secs_f64(),
            took.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64()
        );
    }

    // Past Okta's limit, Okta gives up and retries once. To see that path
    // with this machine's speed, the client here gives up after
    // OKTA_BENCH_CLIENT_LIMIT seconds (default 1) instead of 3.
    let limit: f64 = std::env::var("OKTA_BENCH_CLIENT_LIMIT")
        .map(|s| s.parse().unwrap())
        .unwrap_or(1.0);
    let app = okta_app();
    let user = "bench-okta-timeout@example.com";
    let secrets = create_many(&app, user, largest);
    let body = bench_delivery(user, "bench-timeout");
    let started = Instant::now();
    let first = okta_with_limit(&app, &body, Duration::from_secs_f64(limit));
    let gave_up = started.elapsed();
    let revoked_then = revoked_in_overview(&app);
    let started = Instant::now();
    // Okta's retry, at once (while the first attempt may still run).
    let retry = okta_with_limit(&app, &body, Duration::from_secs(30));
    println!(
        "\n{largest} keys, a client giving up after {limit} s: first attempt {first:?} after \
         {:.0} ms ({revoked_then} revoked in the overview then); the retry {retry:?} after {:.0} ms",
        gave_up.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    );
    app.wait_for_log("POST /webhooks/okta okta-hook 200");
    std::thread::sleep(Duration::from_millis(200));
    for line in app
        .stderr()
        .lines()
        .filter(|l| l.contains("POST /webhooks/okta"))
    {
        println!("  runner: {line}");
    }
    assert_eq!(verify_all(&app, &secrets), (0, largest, 0));
    let answer = expect_json(&deliver(&app, &body), 200);
    println!("  afterwards: {}", answer["events"][0]);
    assert_eq!(answer["events"][0]["revoked_keys"], largest);
    assert_eq!(app.audit("action=key.revoked")["total"], largest);

    // Stopped part-way (a crash after half the revocations), then Okta's
    // retry: what the retry redoes, and how long it takes.
    let half = largest / 2;
    let app = okta_app();
    let user = "bench-crash@example.com";
    let secrets = create_many(&app, user, largest);
    let app = app.restart_with(|c| {
        c.env("SPIN_VARIABLE_OKTA_HOOK_SECRET", OKTA_SECRET)
            .arg("--crash-after")
            .arg(&format!(
                "sqlite.execute:{half}~UPDATE api_keys SET revoked_at"
            ))
    });
    let body = bench_delivery(user, "bench-crash");
    let started = Instant::now();
    let first = okta_post(&app, &body).send_any_status();
    let first_took = started.elapsed();
    let revoked_then = revoked_in_overview(&app);
    let (ok_then, refused_then, _) = verify_all(&app, &secrets);
    let started = Instant::now();
    let retry = okta_post(&app, &body).send();
    let retry_took = started.elapsed();
    let answer = expect_json(&retry, 200);
    println!(
        "\n{largest} keys, a crash after revocation {half}: {} after {:.0} ms ({revoked_then} \
         revoked in the overview, {refused_then} refused and {ok_then} still verifying); \
         the retry 200 after {:.0} ms: {}",
        first.status,
        first_took.as_secs_f64() * 1e3,
        retry_took.as_secs_f64() * 1e3,
        answer["events"][0]
    );
    assert_eq!(verify_all(&app, &secrets), (0, largest, 0));
    assert_eq!(app.audit("action=key.revoked")["total"], largest);
}
