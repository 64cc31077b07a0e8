//! `/api/service-accounts` (design `api.md`, v2 "Owners and service
//! accounts"): owners no identity system removes, so automations outlive the
//! person who set them up. What the people managing them see.

use keygate_tests::api::*;
use keygate_tests::{Json, Reply, json};

const ACCOUNTS: &str = "/api/service-accounts";

fn create_account(app: &App, body: &Json) -> Reply {
    app.mgmt("POST", ACCOUNTS).json(body).send()
}

/// Creates a service account named `name` as [`OPERATOR`]; asserts 201.
#[track_caller]
fn account(app: &App, name: &str) -> Json {
    expect_json(&create_account(app, &json!({ "name": name })), 201)
}

fn id(item: &Json) -> &str {
    item["id"].as_str().unwrap()
}

fn delete_account(app: &App, id: &str) -> Reply {
    app.mgmt("DELETE", &format!("{ACCOUNTS}/{id}")).send()
}

/// Every live service account (walks the pages, 100 at a time).
#[track_caller]
fn all_accounts(app: &App) -> Vec<Json> {
    let mut items = Vec::new();
    for page in 1.. {
        let body = expect_json(
            &app.mgmt("GET", &format!("{ACCOUNTS}?page={page}&per_page=100"))
                .send(),
            200,
        );
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        if page >= body["total_pages"].as_u64().unwrap() {
            break;
        }
    }
    items
}

fn transfer(app: &App, key_id: &str, owner: &str) -> Reply {
    app.mgmt("POST", &format!("/api/keys/{key_id}/transfer"))
        .json(&json!({ "owner": owner }))
        .send()
}

/// A key `creator` makes for `owner`: (key, secret).
#[track_caller]
fn key_for(app: &App, creator: &str, owner: &str, name: &str) -> (Json, String) {
    app.create_key_with(creator, &json!({"name": name, "owner": owner}))
}

#[track_caller]
fn assert_service_account(item: &Json) {
    let id = id(item);
    assert!(
        id.len() == 25
            && id.starts_with("sa_")
            && id[3..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "id is sa_ + 22 base62: {item}"
    );
    assert!(
        item["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{item}"
    );
    assert!(
        item["description"].is_string() || item["description"].is_null(),
        "{item}"
    );
    assert!(item["created_by"].is_string(), "{item}");
    assert_utc_timestamp(&item["created_at"]);
    let fields: Vec<&String> = item.as_object().unwrap().keys().collect();
    assert_eq!(
        fields.len(),
        5,
        "id, name, description, created_by, created_at: {item}"
    );
}

// ---- 201 -------------------------------------------------------------------

#[test]
fn a_created_service_account_is_shown_with_its_creator_and_audited() {
    let app = App::start();
    let reply = app
        .mgmt("POST", ACCOUNTS)
        .acting(ALICE)
        .json(&json!({"name": "  nightly-etl ", "description": "The warehouse's nightly jobs"}))
        .send();
    let created = expect_json(&reply, 201);
    assert_service_account(&created);
    assert_eq!(created["name"], "nightly-etl", "trimmed");
    assert_eq!(created["description"], "The warehouse's nightly jobs");
    assert_eq!(created["created_by"], ALICE);
    assert!((parse_time(created["created_at"].as_str().unwrap()) - now_unix()).abs() < 120);
    assert_eq!(all_accounts(&app), std::slice::from_ref(&created));

    let entries = app.audit_all("action=service_account.created");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["user"], ALICE);
    assert_eq!(entries[0]["key_id"], json!(null));
    assert_eq!(entries[0]["key_name"], json!(null));
    assert_eq!(
        entries[0]["details"],
        json!({"service_account_id": id(&created), "name": "nightly-etl", "auth": "admin_token"})
    );
}

#[test]
fn only_the_name_is_required_and_a_blank_description_is_none() {
    let app = App::start();
    assert_eq!(account(&app, "etl")["description"], json!(null));
    let blank = expect_json(
        &create_account(&app, &json!({"name": "etl-2", "description": "   "})),
        201,
    );
    assert_eq!(blank["description"], json!(null));
}

#[test]
fn keys_can_be_created_for_a_service_account_and_act_as_it() {
    let app = App::start();
    let sa = account(&app, "etl");
    let (key, secret) = key_for(&app, ALICE, id(&sa), "etl-export");
    assert_eq!(key["owner"], id(&sa));
    assert_eq!(key["created_by"], ALICE);
    let reply = app.verify(&secret);
    let verified = expect_json(&reply, 200);
    assert_eq!(verified["user_id"], id(&sa));
    assert_eq!(reply.header("x-user-id"), Some(id(&sa)));
    let used = app.audit_all("action=key.used");
    assert_eq!(used[0]["user"], id(&sa), "its uses are the account's");
    // The overview finds it by owner.
    let owned = app.list(&query(&[("owner", id(&sa))]));
    assert_eq!(
        ids(owned["items"].as_array().unwrap()),
        [key["id"].as_str().unwrap()]
    );
}

// ---- 200 -------------------------------------------------------------------

#[test]
fn the_list_is_newest_first_and_paged_without_repeats_or_gaps() {
    let app = App::start();
    let created: Vec<String> = (0..5)
        .map(|i| id(&account(&app, &format!("sa-{i}"))).to_owned())
        .collect();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let body = expect_json(
            &app.mgmt("GET", &format!("{ACCOUNTS}?page={page}&per_page=2"))
                .send(),
            200,
        );
        assert_eq!(
            (
                &body["page"],
                &body["per_page"],
                &body["total"],
                &body["total_pages"]
            ),
            (&json!(page), &json!(2), &json!(5), &json!(3))
        );
        for item in body["items"].as_array().unwrap() {
            assert_service_account(item);
            seen.push(id(item).to_owned());
        }
    }
    // Created within the same second, they tie on created_at: the order is
    // still one order, and every account is on exactly one page.
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_created = created.clone();
    sorted_created.sort();
    assert_eq!(sorted_seen, sorted_created);
    let times: Vec<i64> = all_accounts(&app)
        .iter()
        .map(|a| parse_time(a["created_at"].as_str().unwrap()))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let past = expect_json(
        &app.mgmt("GET", &format!("{ACCOUNTS}?page=4&per_page=2"))
            .send(),
        200,
    );
    assert_eq!(past["items"], json!([]));
    assert_eq!(past["total"], 5);
    // Defaults: page 1, 25 per page.
    let default = expect_json(&app.mgmt("GET", ACCOUNTS).send(), 200);
    assert_eq!(
        (&default["page"], &default["per_page"]),
        (&json!(1), &json!(25))
    );
    assert_eq!(ids(default["items"].as_array().unwrap()), seen);
}

#[test]
fn the_list_is_empty_at_first_and_leaves_deleted_accounts_out() {
    let app = App::start();
    let empty = expect_json(&app.mgmt("GET", ACCOUNTS).send(), 200);
    assert_eq!(
        empty,
        json!({"items": [], "page": 1, "per_page": 25, "total": 0, "total_pages": 0})
    );
    let gone = account(&app, "gone");
    let kept = account(&app, "kept");
    assert_eq!(delete_account(&app, id(&gone)).status, 204);
    assert_eq!(all_accounts(&app), [kept]);
}

// ---- 204 -------------------------------------------------------------------

#[test]
fn deleting_a_service_account_revokes_its_keys_and_only_its_keys() {
    let app = App::start();
    let sa = account(&app, "etl");
    let sa_id = id(&sa).to_owned();
    let (a, a_secret) = key_for(&app, ALICE, &sa_id, "etl-1");
    let (b, b_secret) = key_for(&app, BOB, &sa_id, "etl-2");
    let (_, alices_secret) = app.create_key_as(ALICE, "alices-own");
    let (made_by_sa_creator, other_secret) = key_for(&app, OPERATOR, BOB, "bobs");
    expect_json(&app.verify(&a_secret), 200);

    let reply = delete_account(&app, &sa_id);
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert!(reply.body.is_empty());
    for (key, secret) in [(&a, &a_secret), (&b, &b_secret)] {
        assert_key_rejected(&app.verify(secret), "revoked_key");
        let now = expect_json(&app.get_key(key["id"].as_str().unwrap()), 200);
        assert_key_object(&now);
        assert_eq!(now["status"], "revoked");
        assert_eq!(now["revoked_reason"], "owner_deleted");
        assert_eq!(now["owner"], sa_id.as_str(), "still shows whose it was");
    }
    expect_json(&app.verify(&alices_secret), 200);
    expect_json(&app.verify(&other_secret), 200);
    assert_eq!(made_by_sa_creator["owner"], BOB);
    assert_eq!(
        app.list(&query(&[("owner", &sa_id), ("status", "revoked")]))["total"],
        2
    );

    // The trail: who deleted it, and each key revoked as the account's.
    let deleted = app.audit_all("action=service_account.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["user"], OPERATOR);
    assert_eq!(
        deleted[0]["details"],
        json!({"service_account_id": sa_id, "name": "etl", "auth": "admin_token"})
    );
    let revoked = app.audit_all("action=key.revoked");
    assert_eq!(revoked.len(), 2);
    for entry in &revoked {
        assert_eq!(entry["user"], sa_id.as_str());
        assert_eq!(entry["details"], json!({"reason": "owner_deleted"}));
    }
    // No use of a revoked key after its revocation.
    let (used_a, revoked_a) = (
        app.audit_all(&query(&[
            ("key_id", a["id"].as_str().unwrap()),
            ("action", "key.used"),
        ])),
        revoked.iter().find(|e| e["key_id"] == a["id"]).unwrap()["id"]
            .as_i64()
            .unwrap(),
    );
    assert!(used_a.iter().all(|u| u["id"].as_i64().unwrap() < revoked_a));
}

#[test]
fn a_deleted_service_account_can_own_nothing_any_more() {
    let app = App::start();
    let sa = account(&app, "etl");
    let sa_id = id(&sa).to_owned();
    let (alices, alices_secret) = app.create_key_as(ALICE, "alices");
    assert_eq!(delete_account(&app, &sa_id).status, 204);
    let before = app.snapshot();
    assert_validation_failed(
        &app.create(ALICE, &json!({"name": "late", "owner": sa_id})),
        &["owner"],
    );
    assert_validation_failed(
        &transfer(&app, alices["id"].as_str().unwrap(), &sa_id),
        &["owner"],
    );
    assert_eq!(app.snapshot(), before, "nothing created, nothing moved");
    assert_eq!(
        expect_json(&app.verify(&alices_secret), 200)["user_id"],
        ALICE
    );
}

#[test]
fn a_deleted_service_accounts_name_is_free_again() {
    let app = App::start();
    let old = account(&app, "etl");
    assert_eq!(delete_account(&app, id(&old)).status, 204);
    let new = account(&app, "ETL");
    assert_ne!(new["id"], old["id"]);
    assert_eq!(all_accounts(&app), [new]);
}

#[test]
fn an_identity_systems_removal_never_revokes_a_service_accounts_keys() {
    let app = App::start();
    let sa = account(&app, "etl");
    let sa_id = id(&sa).to_owned();
    let (_, sa_secret) = key_for(&app, ALICE, &sa_id, "etl");
    let (_, alices_secret) = app.create_key_as(ALICE, "alices");

    // Its creator leaves: her own key goes, the account's stays.
    assert_eq!(
        app.remove_user(ALICE),
        json!({"user_id": ALICE, "revoked_keys": 1})
    );
    assert_key_rejected(&app.verify(&alices_secret), "revoked_key");
    assert_eq!(
        expect_json(&app.verify(&sa_secret), 200)["user_id"],
        sa_id.as_str()
    );

    // A delivery naming the account's id, in any spelling, revokes nothing of it.
    for spelling in [sa_id.clone(), sa_id.to_ascii_uppercase()] {
        assert_eq!(
            app.remove_user(&spelling),
            json!({"user_id": spelling, "revoked_keys": 0})
        );
    }
    assert_eq!(
        expect_json(&app.verify(&sa_secret), 200)["user_id"],
        sa_id.as_str()
    );
    assert_eq!(
        app.list(&query(&[("owner", &sa_id), ("status", "active")]))["total"],
        1
    );
    // It still owns keys: one made for it and one moved to it.
    let (_, made) = key_for(&app, BOB, &sa_id, "etl-2");
    let (bobs, _) = app.create_key_as(BOB, "bobs");
    expect_json(&transfer(&app, bobs["id"].as_str().unwrap(), &sa_id), 200);
    assert_eq!(
        expect_json(&app.verify(&made), 200)["user_id"],
        sa_id.as_str()
    );
    assert!(
        app.audit_all("action=key.revoked").len() == 1,
        "alice's key only"
    );
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn bodies_that_do_not_parse_or_have_unknown_fields_are_invalid_requests() {
    let app = App::start();
    for body in [
        "{",
        "[]",
        "\"etl\"",
        "null",
        r#"{"name": "etl", "owner": "x"}"#,
        r#"{"name": "etl", "name": "etl-2"}"#,
        r#"{"name": "etl"} trailing"#,
    ] {
        let reply = app
            .mgmt("POST", ACCOUNTS)
            .body("application/json", body)
            .send();
        assert_problem(&reply, 400, "invalid_request");
    }
    assert!(all_accounts(&app).is_empty());
    assert_eq!(app.audit("")["total"], 0);
}

#[test]
fn bad_paging_parameters_are_invalid_queries_naming_them() {
    let app = App::start();
    for (q, param) in [
        ("page=0", "page"),
        ("page=x", "page"),
        ("page=1000001", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=", "per_page"),
        ("page=1&page=2", "page"),
        ("sort=name", "sort"),
        ("name=etl", "name"),
    ] {
        let reply = app.mgmt("GET", &format!("{ACCOUNTS}?{q}")).send();
        assert_invalid_query(&reply, param);
    }
}

#[test]
fn an_acting_user_is_required() {
    let app = App::start();
    let sa = account(&app, "etl");
    for reply in [
        app.mgmt("POST", ACCOUNTS)
            .without_header("x-acting-user")
            .json(&json!({"name": "x"}))
            .send(),
        app.mgmt("GET", ACCOUNTS)
            .without_header("x-acting-user")
            .send(),
        app.mgmt("DELETE", &format!("{ACCOUNTS}/{}", id(&sa)))
            .header("x-acting-user", " ")
            .send(),
    ] {
        assert_problem(&reply, 400, "acting_user_required");
    }
    assert_eq!(all_accounts(&app).len(), 1);
}

// ---- 401 / 403 -------------------------------------------------------------

#[test]
fn callers_without_the_admin_token_get_nothing() {
    let app = App::start();
    let sa = account(&app, "etl");
    let one = format!("{ACCOUNTS}/{}", id(&sa));
    let (_, secret) = key_for(&app, ALICE, id(&sa), "etl");
    fn with<'a>(
        call: keygate_tests::api::Call<'a>,
        token: Option<&str>,
    ) -> keygate_tests::api::Call<'a> {
        match token {
            Some(t) => call.bearer(t).acting(OPERATOR),
            None => call.acting(OPERATOR),
        }
    }
    // An API key, even the account's own, never manages anything.
    for token in [None, Some("wrong-token"), Some(secret.as_str())] {
        for reply in [
            with(app.call("POST", ACCOUNTS), token)
                .json(&json!({"name": "x"}))
                .send(),
            with(app.call("GET", ACCOUNTS), token).send(),
            with(app.call("DELETE", &one), token).send(),
        ] {
            assert_problem(&reply, 401, "unauthenticated");
            assert!(reply.header("www-authenticate").is_some());
        }
    }
    assert_eq!(all_accounts(&app).len(), 1);
    expect_json(&app.verify(&secret), 200);
}

#[test]
fn a_removed_user_can_no_longer_manage_service_accounts() {
    let app = App::start();
    let sa = account(&app, "etl");
    app.remove_user(CAROL);
    let one = format!("{ACCOUNTS}/{}", id(&sa));
    for reply in [
        app.mgmt("POST", ACCOUNTS)
            .acting("Carol@Example.com")
            .json(&json!({"name": "x"}))
            .send(),
        app.mgmt("GET", ACCOUNTS).acting(CAROL).send(),
        app.mgmt("DELETE", &one).acting(CAROL).send(),
    ] {
        assert_problem(&reply, 403, "user_removed");
    }
    assert_eq!(all_accounts(&app), [sa]);
}

// ---- 404 -------------------------------------------------------------------

#[test]
fn deleting_an_unknown_or_already_deleted_account_is_not_found() {
    let app = App::start();
    let sa = account(&app, "etl");
    let (_, secret) = key_for(&app, ALICE, id(&sa), "etl");
    assert_eq!(delete_account(&app, id(&sa)).status, 204);
    let before = app.snapshot();
    for target in [
        id(&sa),
        "sa_0123456789abcdefghijkl",
        "sa_short",
        "nope",
        "key_0123456789abcdefghijkl",
        "SA_0123456789ABCDEFGHIJKL",
    ] {
        let reply = delete_account(&app, target);
        assert_problem(&reply, 404, "service_account_not_found");
    }
    assert_eq!(app.snapshot(), before, "a second deletion changes nothing");
    assert_key_rejected(&app.verify(&secret), "revoked_key");
    assert_eq!(app.audit("action=service_account.deleted")["total"], 1);
}

// ---- 409 -------------------------------------------------------------------

#[test]
fn names_are_unique_case_insensitively() {
    let app = App::start();
    account(&app, "Nightly-ETL");
    for name in ["nightly-etl", "NIGHTLY-ETL", "  nightly-Etl "] {
        let reply = create_account(&app, &json!({ "name": name }));
        let problem = assert_problem(&reply, 409, "name_taken");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("service account")
        );
    }
    assert_eq!(all_accounts(&app).len(), 1);
    assert_eq!(app.audit("action=service_account.created")["total"], 1);
    // A key may have the same name as an account: they are different things.
    app.create_key("nightly-etl");
}

#[test]
fn concurrent_creates_of_one_name_make_one_account() {
    let app = App::start();
    let barrier = std::sync::Barrier::new(8);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (app, barrier) = (&app, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let reply = create_account(app, &json!({"name": "race"}));
                    if reply.status != 201 {
                        assert_problem(&reply, 409, "name_taken");
                    }
                    reply.status
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(all_accounts(&app).len(), 1);
    assert_eq!(app.audit("action=service_account.created")["total"], 1);
}

// ---- 413 / 415 -------------------------------------------------------------

#[test]
fn oversized_and_non_json_bodies_are_refused() {
    let app = App::start();
    let big = format!(
        r#"{{"name": "big", "description": "{}"}}"#,
        " ".repeat(64 * 1024)
    );
    let reply = app
        .mgmt("POST", ACCOUNTS)
        .body("application/json", big)
        .send();
    assert_problem(&reply, 413, "payload_too_large");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let reply = app
            .mgmt("POST", ACCOUNTS)
            .body(content_type, r#"{"name": "etl"}"#)
            .send();
        assert_problem(&reply, 415, "unsupported_media_type");
    }
    let reply = app
        .mgmt("POST", ACCOUNTS)
        .raw_body(r#"{"name": "etl"}"#)
        .send();
    assert_problem(&reply, 415, "unsupported_media_type");
    assert!(all_accounts(&app).is_empty());
}

// ---- 422 -------------------------------------------------------------------

#[test]
fn invalid_fields_are_validation_failed_and_create_nothing() {
    let app = App::start();
    let cases: Vec<(Json, &[&str])> = vec![
        (json!({}), &["name"]),
        (json!({"description": "only"}), &["name"]),
        (json!({"name": ""}), &["name"]),
        (json!({"name": "  "}), &["name"]),
        (json!({"name": "n".repeat(101)}), &["name"]),
        (json!({"name": "line\nbreak"}), &["name"]),
        (json!({"name": 7}), &["name"]),
        (
            json!({"name": "ok", "description": "d".repeat(501)}),
            &["description"],
        ),
        (json!({"name": "ok", "description": 7}), &["description"]),
        (
            json!({"name": "", "description": "d".repeat(501)}),
            &["name", "description"],
        ),
    ];
    for (body, fields) in cases {
        assert_validation_failed(&create_account(&app, &body), fields);
    }
    assert!(all_accounts(&app).is_empty());
    assert_eq!(app.audit("")["total"], 0);
    // At the limits it is fine.
    let edge = expect_json(
        &create_account(
            &app,
            &json!({"name": "é".repeat(100), "description": "ü".repeat(500)}),
        ),
        201,
    );
    assert_eq!(edge["name"].as_str().unwrap().chars().count(), 100);
}

// ---- 503 / a crash, then the retry -----------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Fail,
    Crash,
}

/// A deletion with a fault at its 1st, 2nd, … storage call (until a run in
/// which it never fires). After each, every key of the account is either
/// revoked and refused or active and verifying, and repeating the DELETE
/// finishes the revocations (answering 404 once the account is marked
/// deleted). Returns the storage calls seen.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    for step in 1.. {
        let app = App::start();
        let sa = id(&account(&app, "etl")).to_owned();
        let keys: Vec<(Json, String)> = (0..2)
            .map(|i| key_for(&app, ALICE, &sa, &format!("etl-{i}")))
            .collect();
        let (_, alices) = app.create_key_as(ALICE, "alices");
        let app = app.restart_with(|c| c.arg(flag).arg(&format!("*:{step}")));
        let path = format!("{ACCOUNTS}/{sa}");
        let reply = app.mgmt("DELETE", &path).send_any_status();
        let log = app.wait_for_log(&format!("DELETE {path} "));
        if !log.contains("fault injected") {
            assert_eq!(reply.status, 204, "{}", reply.text());
            return step - 1;
        }
        let when = format!("{flag} at step {step}");
        match fault {
            Fault::Fail => {
                assert_problem(&reply, 503, "storage_unavailable");
            }
            Fault::Crash => assert_eq!(reply.status, 500, "{when}: {}", reply.text()),
        }
        for (key, secret) in &keys {
            let status =
                expect_json(&app.get_key(key["id"].as_str().unwrap()), 200)["status"].clone();
            let reply = app.verify(secret);
            if reply.status == 200 {
                assert_eq!(status, "active", "{when}");
            } else {
                assert_key_rejected(&reply, "revoked_key");
                assert_eq!(status, "revoked", "{when}");
            }
        }
        let marked = app.audit("action=service_account.deleted")["total"] == 1;
        let retry = app.mgmt("DELETE", &path).send();
        if marked {
            assert_problem(&retry, 404, "service_account_not_found");
        } else {
            assert_eq!(retry.status, 204, "{when}: {}", retry.text());
        }
        for (key, secret) in &keys {
            assert_key_rejected(&app.verify(secret), "revoked_key");
            let now = expect_json(&app.get_key(key["id"].as_str().unwrap()), 200);
            assert_eq!(now["revoked_reason"], "owner_deleted", "{when}");
        }
        expect_json(&app.verify(&alices), 200);
        assert_eq!(
            app.audit("action=service_account.deleted")["total"],
            1,
            "{when}"
        );
        assert_eq!(app.audit("action=key.revoked")["total"], 2, "{when}");
        assert!(all_accounts(&app).is_empty(), "{when}");
        // And again: nothing more.
        let before = app.snapshot();
        assert_problem(
            &app.mgmt("DELETE", &path).send(),
            404,
            "service_account_not_found",
        );
        assert_eq!(app.snapshot(), before, "{when}");
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_of_a_deletion_is_finished_by_repeating_it() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("deleting a service account with 2 keys: {calls} storage calls, each failed in turn");
    assert!(calls >= 6, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_of_a_deletion_is_finished_by_repeating_it() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!(
        "deleting a service account with 2 keys: {calls} storage calls, a crash after each in turn"
    );
    assert!(calls >= 6, "{calls} storage calls?");
}
