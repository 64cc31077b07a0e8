//! `GET /api/audit`: who did what, newest first, with filters and paging.

use std::collections::BTreeSet;

use keygate_tests::api::*;
use keygate_tests::{Json, json};

fn at(entry: &Json) -> i64 {
    parse_time(entry["at"].as_str().unwrap())
}

/// Every entry has the documented shape.
#[track_caller]
fn assert_entry(entry: &Json) {
    assert!(entry["id"].as_u64().is_some_and(|id| id > 0), "{entry}");
    assert_utc_timestamp(&entry["at"]);
    assert!(entry["user"].is_string(), "{entry}");
    let action = entry["action"].as_str().unwrap_or_default();
    assert!(
        [
            "key.created",
            "key.deleted",
            "key.used",
            "key.revoked",
            "user.removed"
        ]
        .contains(&action),
        "{entry}"
    );
    if action == "user.removed" {
        assert!(
            entry["key_id"].is_null() && entry["key_name"].is_null(),
            "{entry}"
        );
    } else {
        assert!(
            entry["key_id"].is_string() && entry["key_name"].is_string(),
            "{entry}"
        );
    }
    assert!(entry["details"].is_object(), "{entry}");
}

/// The `key.used` entry of one key (there must be exactly one).
#[track_caller]
fn used_entry(app: &App, key_id: &str) -> Json {
    let entries = app.audit_all(&format!("action=key.used&key_id={key_id}"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

/// (action, user, key_id) of every entry, as a multiset-ish sorted list.
fn summary(entries: &[Json]) -> Vec<(String, String, Option<String>)> {
    let mut out: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["user"].as_str().unwrap().to_owned(),
                e["key_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

// ---- 200: what is recorded -----------------------------------------------------

#[test]
fn empty_trail() {
    let app = App::start();
    assert_eq!(
        app.audit(""),
        json!({"items": [], "page": 1, "per_page": 25, "total": 0, "total_pages": 0})
    );
}

#[test]
fn each_action_is_recorded_for_the_right_user() {
    let app = App::start();
    let (k1, s1) = app.create_key_as(ALICE, "alice-one");
    let (k2, _) = app.create_key_as(ALICE, "alice-two");
    let (k3, s3) = app.create_key_as(BOB, "bob-one");
    // Bob's portal verifies Alice's key: the use is Alice's activity.
    expect_json(&app.verify(&s1), 200);
    // Bob deletes Alice's second key: the deletion is Bob's.
    assert_eq!(
        app.mgmt(
            "DELETE",
            &format!("/api/keys/{}", k2["id"].as_str().unwrap())
        )
        .acting(BOB)
        .send()
        .status,
        204
    );
    assert_eq!(
        app.remove_user(ALICE),
        json!({"user_id": ALICE, "revoked_keys": 1})
    );
    expect_json(&app.verify(&s3), 200);

    let entries = app.audit_all("");
    entries.iter().for_each(assert_entry);
    let id = |k: &Json| Some(k["id"].as_str().unwrap().to_owned());
    let entry =
        |action: &str, user: &str, key: Option<String>| (action.to_owned(), user.to_owned(), key);
    let mut want = vec![
        entry("key.created", ALICE, id(&k1)),
        entry("key.created", ALICE, id(&k2)),
        entry("key.created", BOB, id(&k3)),
        entry("key.used", ALICE, id(&k1)),
        entry("key.deleted", BOB, id(&k2)),
        entry("user.removed", ALICE, None),
        entry("key.revoked", ALICE, id(&k1)),
        entry("key.used", BOB, id(&k3)),
    ];
    want.sort();
    assert_eq!(summary(&entries), want);
    let ids: BTreeSet<u64> = entries.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), entries.len(), "entry ids are unique");

    // key_name is the key's name at the time.
    for e in &entries {
        if e["key_id"] == k2["id"] {
            assert_eq!(e["key_name"], "alice-two");
        }
    }
}

#[test]
fn newest_first() {
    let app = App::start();
    let (_, secret) = app.create_key("k1");
    app.create_key_as(BOB, "k2");
    for _ in 0..3 {
        expect_json(&app.verify(&secret), 200);
    }
    app.remove_user(ALICE);
    let entries = app.audit_all("");
    assert_eq!(entries.len(), 2 + 3 + 2);
    // api.md does not say how entries of the same second are ordered; only
    // that time never goes forwards down the list.
    for pair in entries.windows(2) {
        assert!(
            at(&pair[0]) >= at(&pair[1]),
            "{} before {}",
            pair[0],
            pair[1]
        );
    }
    let newest = entries.iter().map(at).max().unwrap();
    assert_eq!(at(&entries[0]), newest);
}

#[test]
fn key_used_records_the_call_described_in_the_body() {
    let app = App::start();
    let (key, secret) = app.create_key("body-described");
    let reply = app
        .call("POST", "/api/verify")
        .json(&json!({"key": secret, "method": "POST", "path": "/orders/export", "source_ip": "203.0.113.7"}))
        .send();
    expect_json(&reply, 200);
    let entry = used_entry(&app, key["id"].as_str().unwrap());
    assert_eq!(entry["user"], ALICE);
    assert_eq!(entry["key_name"], "body-described");
    assert_eq!(
        entry["details"],
        json!({"method": "POST", "path": "/orders/export", "source_ip": "203.0.113.7"})
    );
}

#[test]
fn key_used_records_traefik_and_caddy_forward_auth_headers() {
    let app = App::start();
    let (key, secret) = app.create_key("traefik");
    let reply = app
        .call("GET", "/api/verify")
        .bearer(&secret)
        .header("x-forwarded-method", "DELETE")
        .header("x-forwarded-uri", "/invoices/42")
        .header("x-forwarded-for", "198.51.100.23")
        .send();
    expect_json(&reply, 200);
    assert_eq!(
        used_entry(&app, key["id"].as_str().unwrap())["details"],
        json!({"method": "DELETE", "path": "/invoices/42", "source_ip": "198.51.100.23"})
    );
}

#[test]
fn key_used_records_nginx_auth_request_headers() {
    let app = App::start();
    let (key, secret) = app.create_key("nginx");
    let reply = app
        .call("GET", "/api/verify")
        .header("x-api-key", &secret)
        .header("x-original-method", "PUT")
        .header("x-original-uri", "/reports/weekly")
        .header("x-real-ip", "192.0.2.44")
        .send();
    expect_json(&reply, 200);
    assert_eq!(
        used_entry(&app, key["id"].as_str().unwrap())["details"],
        json!({"method": "PUT", "path": "/reports/weekly", "source_ip": "192.0.2.44"})
    );
}

#[test]
fn body_fields_describe_the_call_before_forward_auth_headers() {
    let app = App::start();
    let (key, secret) = app.create_key("both");
    let reply = app
        .call("POST", "/api/verify")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/from-header")
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"key": secret, "method": "PATCH", "path": "/from-body", "source_ip": "203.0.113.9"}))
        .send();
    expect_json(&reply, 200);
    assert_eq!(
        used_entry(&app, key["id"].as_str().unwrap())["details"],
        json!({"method": "PATCH", "path": "/from-body", "source_ip": "203.0.113.9"})
    );
}

#[test]
fn unknown_call_details_are_null() {
    let app = App::start();
    let (key, secret) = app.create_key("bare");
    expect_json(&app.verify(&secret), 200);
    let details = used_entry(&app, key["id"].as_str().unwrap())["details"].clone();
    // Nothing described the call being authorised. (Whether the verify
    // caller's own address counts as the source IP, api.md leaves open.)
    assert_eq!(details["method"], json!(null), "{details}");
    assert_eq!(details["path"], json!(null), "{details}");
    assert!(
        details["source_ip"].is_null() || details["source_ip"].is_string(),
        "{details}"
    );
}

#[test]
fn failed_verifications_are_not_key_used() {
    let app = App::start();
    let (_, secret) = app.create_key("k");
    let mut wrong = secret.clone();
    wrong.replace_range(10..11, if &secret[10..11] == "A" { "B" } else { "A" });
    assert_key_rejected(&app.verify(&wrong), "malformed_key");
    assert_key_rejected(
        &app.verify(&well_formed_key(&"7".repeat(32))),
        "unknown_key",
    );
    assert_key_rejected(&app.call("GET", "/api/verify").send(), "missing_key");
    assert_eq!(app.audit("action=key.used")["total"], 0);
}

#[test]
fn entries_outlive_the_keys_they_name() {
    let app = App::start();
    let (key, secret) = app.create_key("short-lived");
    let id = key["id"].as_str().unwrap();
    expect_json(&app.verify(&secret), 200);
    assert_eq!(app.delete_key(id).status, 204);
    let entries = app.audit_all(&format!("key_id={id}"));
    let mut actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(actions, ["key.created", "key.deleted", "key.used"]);
    assert!(entries.iter().all(|e| e["key_name"] == "short-lived"));
}

#[test]
fn the_trail_never_shows_a_secret() {
    let app = App::start();
    let (_, s1) = app.create_key("one");
    let (_, s2) = app.create_key_as(BOB, "two");
    expect_json(&app.verify(&s1), 200);
    app.call("POST", "/api/verify")
        .json(&json!({"key": s2, "method": "GET", "path": "/x", "source_ip": "192.0.2.1"}))
        .send();
    app.remove_user(BOB);
    let text = app.mgmt("GET", "/api/audit?per_page=100").send().text();
    assert_no_secret(
        &text,
        &[&s1, &s2, ADMIN_TOKEN, WEBHOOK_SECRET],
        "the audit trail",
    );
}

// ---- 200: filters and paging ----------------------------------------------------

/// A trail with every action, by three users.
fn busy_app() -> App {
    let app = App::start();
    let (_, a1) = app.create_key_as(ALICE, "a1");
    let (_, b1) = app.create_key_as(BOB, "b1");
    let (c1, c1_secret) = app.create_key_as(CAROL, "c1");
    app.create_key_as(CAROL, "c2");
    for secret in [&a1, &a1, &b1, &c1_secret] {
        expect_json(&app.verify(secret), 200);
    }
    assert_eq!(app.delete_key(c1["id"].as_str().unwrap()).status, 204);
    app.remove_user(BOB);
    app
}

#[track_caller]
fn assert_selects(app: &App, query: &str, all: &[Json], keep: impl Fn(&Json) -> bool) {
    let got = app.audit_all(query);
    let want: Vec<Json> = all.iter().filter(|e| keep(e)).cloned().collect();
    assert_eq!(
        ids(&got),
        ids(&want),
        "{query}: the same entries, newest first"
    );
}

#[test]
fn filters_by_user_key_and_action() {
    let app = busy_app();
    let all = app.audit_all("");
    assert_eq!(all.len(), 4 + 4 + 1 + 2);
    for user in [ALICE, BOB, CAROL, "dave@example.com"] {
        assert_selects(&app, &query(&[("user", user)]), &all, |e| e["user"] == user);
    }
    for action in [
        "key.created",
        "key.deleted",
        "key.used",
        "key.revoked",
        "user.removed",
    ] {
        assert_selects(&app, &query(&[("action", action)]), &all, |e| {
            e["action"] == action
        });
    }
    let some_key = all.iter().find(|e| e["action"] == "key.used").unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_selects(&app, &query(&[("key_id", &some_key)]), &all, |e| {
        e["key_id"] == some_key
    });
    assert_selects(
        &app,
        &query(&[("user", ALICE), ("action", "key.used")]),
        &all,
        |e| e["user"] == ALICE && e["action"] == "key.used",
    );
    assert_selects(&app, "key_id=key_0000000000000000000000", &all, |_| false);
}

#[test]
fn filters_by_time_with_dates_and_timestamps() {
    let app = busy_app();
    let all = app.audit_all("");
    let first = all.iter().map(at).min().unwrap();
    let last = all.iter().map(at).max().unwrap();
    let q = |name: &str, value: &str| query(&[(name, value)]);
    assert_selects(&app, &q("from", &format_date(first)), &all, |_| true);
    assert_selects(&app, &q("to", &format_date(last)), &all, |_| true);
    assert_selects(&app, &q("from", &format_date(last + DAY)), &all, |_| false);
    assert_selects(&app, &q("to", &format_date(first - DAY)), &all, |_| false);
    assert_selects(&app, &q("from", &format_time(last)), &all, |e| {
        at(e) >= last
    });
    assert_selects(&app, &q("to", &format_time(first)), &all, |e| {
        at(e) <= first
    });
    assert_selects(&app, &q("from", &format_time(last + 1)), &all, |_| false);
    assert_selects(
        &app,
        &query(&[("from", &format_time(first)), ("to", &format_time(last))]),
        &all,
        |_| true,
    );
    let offset = format_time(first + 2 * 3600).replace('Z', "+02:00");
    assert_selects(&app, &q("from", &offset), &all, |e| at(e) >= first);
}

#[test]
fn paging_visits_every_entry_once() {
    let app = busy_app();
    let all = app.audit_all("");
    let total = all.len();
    let pages = total.div_ceil(4);
    let mut seen = Vec::new();
    for page in 1..=pages {
        let body = app.audit(&format!("per_page=4&page={page}"));
        assert_eq!(
            (
                &body["page"],
                &body["per_page"],
                &body["total"],
                &body["total_pages"]
            ),
            (&json!(page), &json!(4), &json!(total), &json!(pages))
        );
        seen.extend(ids(body["items"].as_array().unwrap()));
    }
    assert_eq!(seen, ids(&all));
    let past = app.audit(&format!("per_page=4&page={}", pages + 1));
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["total"], total);
    assert_eq!(app.audit("")["per_page"], 25);
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn malformed_parameters_are_invalid_query_naming_them() {
    let app = App::start();
    for (q, param) in [
        ("action=key.exploded", "action"),
        ("action=created", "action"),
        ("action=", "action"),
        ("from=yesterday", "from"),
        ("from=2026-13-01", "from"),
        ("to=2026-02-30", "to"),
        ("to=2026-11-26T17%3A00%3A00", "to"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
    ] {
        assert_invalid_query(&app.mgmt("GET", &format!("/api/audit?{q}")).send(), param);
    }
}
