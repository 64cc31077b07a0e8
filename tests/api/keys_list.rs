//! `GET /api/keys`: the overview — defaults, sorting, paging, filters, bad queries.

use std::collections::BTreeSet;

use keygate_tests::api::*;
use keygate_tests::{Json, json};

const SORTS: [&str; 4] = ["name", "created_by", "created_at", "last_used_at"];
const ORDERS: [&str; 2] = ["asc", "desc"];

/// `n` keys named `key-00`… by Alice, Bob and Carol in turn.
fn seed(app: &App, n: usize) -> Vec<(Json, String)> {
    let users = [ALICE, BOB, CAROL];
    (0..n)
        .map(|i| app.create_key_as(users[i % 3], &format!("key-{i:02}")))
        .collect()
}

/// Asserts `query` returns exactly the keys of `all` that `keep` selects.
#[track_caller]
fn assert_selects(app: &App, query: &str, all: &[Json], keep: impl Fn(&Json) -> bool) {
    let got = app.list_all(query);
    let want: Vec<Json> = all.iter().filter(|k| keep(k)).cloned().collect();
    assert_eq!(id_set(&got), id_set(&want), "{query}");
    assert_eq!(app.list(query)["total"], want.len(), "{query}");
}

fn names(items: &[Json]) -> BTreeSet<String> {
    items
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn day_start(date: &str) -> i64 {
    parse_time(&format!("{date}T00:00:00Z"))
}

fn created(key: &Json) -> i64 {
    parse_time(key["created_at"].as_str().unwrap())
}

// ---- 200: defaults, sorting, paging -----------------------------------------

#[test]
fn empty_overview() {
    let app = App::start();
    assert_eq!(
        app.list(""),
        json!({"items": [], "page": 1, "per_page": 25, "total": 0, "total_pages": 0})
    );
}

#[test]
fn defaults_are_newest_first_page_one_of_twenty_five() {
    let app = App::start();
    let keys = seed(&app, 27);
    let first = app.list("");
    assert_eq!(
        (
            &first["page"],
            &first["per_page"],
            &first["total"],
            &first["total_pages"]
        ),
        (&json!(1), &json!(25), &json!(27), &json!(2))
    );
    let first_items = first["items"].as_array().unwrap().clone();
    assert_eq!(first_items.len(), 25);
    first_items.iter().for_each(assert_key_object);
    let second = app.list("page=2");
    let second_items = second["items"].as_array().unwrap().clone();
    assert_eq!((second_items.len(), &second["page"]), (2, &json!(2)));

    let all: Vec<Json> = first_items.into_iter().chain(second_items).collect();
    assert_sorted(&all, "created_at", "desc");
    let created_ids: BTreeSet<String> = keys
        .iter()
        .map(|(k, _)| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(id_set(&all), created_ids);
    assert_eq!(ids(&all), ids(&app.list_all("sort=created_at&order=desc")));
}

#[test]
fn every_sort_column_in_both_orders() {
    let app = App::start();
    let users = [BOB, ALICE, CAROL];
    let names_in_creation_order = [
        "delta", "alpha", "charlie", "echo", "bravo", "golf", "foxtrot", "hotel",
    ];
    let keys: Vec<(Json, String)> = names_in_creation_order
        .iter()
        .enumerate()
        .map(|(i, name)| app.create_key_as(users[i % 3], name))
        .collect();
    // Three keys used, five never.
    for i in [4, 0, 6] {
        expect_json(&app.verify(&keys[i].1), 200);
    }
    let all_ids: BTreeSet<String> = keys
        .iter()
        .map(|(k, _)| k["id"].as_str().unwrap().to_owned())
        .collect();

    for sort in SORTS {
        for order in ORDERS {
            let items = app.list_all(&format!("sort={sort}&order={order}"));
            assert_eq!(id_set(&items), all_ids, "sort={sort}&order={order}");
            assert_sorted(&items, sort, order);
        }
        // `order` defaults to desc.
        assert_eq!(
            ids(&app.list_all(&format!("sort={sort}"))),
            ids(&app.list_all(&format!("sort={sort}&order=desc"))),
        );
    }
    // `sort` defaults to created_at.
    assert_eq!(
        ids(&app.list_all("order=asc")),
        ids(&app.list_all("sort=created_at&order=asc"))
    );

    let by_name: Vec<String> = app
        .list_all("sort=name&order=asc")
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        by_name,
        [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"
        ]
    );
    // Never-used keys sort as the oldest last_used_at.
    let recent_first = app.list_all("sort=last_used_at&order=desc");
    assert!(
        recent_first[..3]
            .iter()
            .all(|k| k["last_used_at"].is_string())
    );
    assert!(
        recent_first[3..]
            .iter()
            .all(|k| k["last_used_at"].is_null())
    );
    let oldest_first = app.list_all("sort=last_used_at&order=asc");
    assert!(
        oldest_first[..5]
            .iter()
            .all(|k| k["last_used_at"].is_null())
    );
}

#[test]
fn sorting_by_name_ignores_case() {
    let app = App::start();
    for name in ["beta", "Alpha", "gamma", "Delta"] {
        app.create_key(name);
    }
    let by_name: Vec<String> = app
        .list_all("sort=name&order=asc")
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(by_name, ["Alpha", "beta", "Delta", "gamma"]);
}

#[test]
fn paging_visits_every_key_exactly_once_in_every_order() {
    let app = App::start();
    let keys = seed(&app, 23);
    // Some used, so last_used_at has values and ties.
    for (_, secret) in keys.iter().step_by(4) {
        expect_json(&app.verify(secret), 200);
    }
    let mut queries = vec![String::new()];
    for sort in SORTS {
        for order in ORDERS {
            queries.push(format!("sort={sort}&order={order}&"));
        }
    }
    for prefix in queries {
        let mut seen = Vec::new();
        for page in 1..=5 {
            let body = app.list(&format!("{prefix}per_page=5&page={page}"));
            assert_eq!(
                (
                    &body["page"],
                    &body["per_page"],
                    &body["total"],
                    &body["total_pages"]
                ),
                (&json!(page), &json!(5), &json!(23), &json!(5)),
                "{prefix}"
            );
            let items = body["items"].as_array().unwrap();
            assert_eq!(
                items.len(),
                if page < 5 { 5 } else { 3 },
                "{prefix}page={page}"
            );
            seen.extend(ids(items));
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 23, "{prefix}: a key repeated or skipped");
        assert_eq!(
            seen,
            ids(&app.list_all(prefix.trim_end_matches('&'))),
            "{prefix}: pages concatenate to the whole list"
        );
    }
}

#[test]
fn a_page_past_the_end_is_empty() {
    let app = App::start();
    seed(&app, 23);
    let body = app.list("per_page=5&page=6");
    assert_eq!(body["items"], json!([]));
    assert_eq!(
        (&body["page"], &body["total"], &body["total_pages"]),
        (&json!(6), &json!(23), &json!(5))
    );
    assert_eq!(app.list("page=1000")["items"], json!([]));
}

#[test]
fn per_page_bounds_are_accepted() {
    let app = App::start();
    seed(&app, 3);
    let one = app.list("per_page=1");
    assert_eq!(
        (one["items"].as_array().unwrap().len(), &one["total_pages"]),
        (1, &json!(3))
    );
    let hundred = app.list("per_page=100");
    assert_eq!(
        (&hundred["per_page"], &hundred["total_pages"]),
        (&json!(100), &json!(1))
    );
}

// ---- 200: filters ------------------------------------------------------------

#[test]
fn name_filter_is_a_case_insensitive_substring() {
    let app = App::start();
    for name in [
        "orders-sync",
        "Orders-Export",
        "billing",
        "reorder-job",
        "100%-done",
        "snake_case",
        "nightly export",
    ] {
        app.create_key(name);
    }
    let find = |needle: &str| names(&app.list_all(&query(&[("name", needle)])));
    assert_eq!(
        find("ORDER"),
        set(&["orders-sync", "Orders-Export", "reorder-job"])
    );
    assert_eq!(find("sync"), set(&["orders-sync"]));
    assert_eq!(find("ly ex"), set(&["nightly export"]));
    assert_eq!(find("zzz"), set(&[]));
    // Wildcard characters are just characters.
    assert_eq!(find("%"), set(&["100%-done"]));
    assert_eq!(find("_"), set(&["snake_case"]));
    assert_eq!(app.list(&query(&[("name", "order")]))["total"], 3);
}

#[test]
fn created_by_filter_is_exact() {
    let app = App::start();
    app.create_key_as(ALICE, "a1");
    app.create_key_as(ALICE, "a2");
    app.create_key_as(BOB, "b1");
    app.create_key_as("alice@example.com.evil", "e1");
    let by = |user: &str| names(&app.list_all(&query(&[("created_by", user)])));
    assert_eq!(by(ALICE), set(&["a1", "a2"]));
    assert_eq!(by(BOB), set(&["b1"]));
    assert!(by("alice").is_empty());
    assert!(by("nobody@example.com").is_empty());
}

#[test]
fn creation_time_bounds_take_dates_and_timestamps_inclusively() {
    let app = App::start();
    seed(&app, 4);
    let all = app.list_all("");
    let first = all.iter().map(created).min().unwrap();
    let last = all.iter().map(created).max().unwrap();
    let first_day = format_date(first);
    let last_day = format_date(last);

    // A date as lower bound is 00:00Z of that day; as upper bound the whole day.
    assert_selects(&app, &format!("created_from={first_day}"), &all, |_| true);
    assert_selects(&app, &format!("created_to={last_day}"), &all, |_| true);
    assert_selects(
        &app,
        &format!("created_from={}", format_date(last + DAY)),
        &all,
        |_| false,
    );
    assert_selects(
        &app,
        &format!("created_to={}", format_date(first - DAY)),
        &all,
        |_| false,
    );
    assert_selects(
        &app,
        &format!("created_from={first_day}&created_to={last_day}"),
        &all,
        |_| true,
    );
    assert_selects(&app, &format!("created_to={first_day}"), &all, |k| {
        created(k) < day_start(&first_day) + DAY
    });

    // RFC 3339 bounds are inclusive to the second.
    let q = |name: &str, t: &str| query(&[(name, t)]);
    assert_selects(&app, &q("created_from", &format_time(last)), &all, |k| {
        created(k) >= last
    });
    assert_selects(&app, &q("created_to", &format_time(first)), &all, |k| {
        created(k) <= first
    });
    assert_selects(
        &app,
        &q("created_from", &format_time(last + 1)),
        &all,
        |_| false,
    );
    assert_selects(
        &app,
        &q("created_to", &format_time(first - 1)),
        &all,
        |_| false,
    );
    // Any offset means the same instant.
    let last_plus_one_hour = format_time(last + 3600).replace('Z', "+01:00");
    assert_selects(&app, &q("created_from", &last_plus_one_hour), &all, |k| {
        created(k) >= last
    });
}

#[test]
fn status_filter() {
    let app = App::start();
    let expires_at = format_time(now_unix() + 7 * DAY);
    let (expiring, _) = app.create_key_with(
        ALICE,
        &json!({"name": "expiring", "expires_at": expires_at}),
    );
    let (forever, _) = app.create_key_as(ALICE, "forever");
    let (bobs, _) = app.create_key_as(BOB, "bobs");
    app.remove_user(BOB);

    let active = app.list_all("status=active");
    assert_eq!(id_set(&active), id_set(&[expiring.clone(), forever]));
    let listed_expiring = active.iter().find(|k| k["id"] == expiring["id"]).unwrap();
    assert_eq!(listed_expiring["expires_at"], expires_at);
    assert_eq!(listed_expiring["status"], "active");

    let revoked = app.list_all("status=revoked");
    assert_eq!(ids(&revoked), ids(&[bobs]));
    assert_eq!(revoked[0]["status"], "revoked");
    assert_eq!(revoked[0]["revoked_reason"], "owner_removed");
    assert_utc_timestamp(&revoked[0]["revoked_at"]);

    // No key can be past its expiry without waiting (expires_at must be in the
    // future when a key is created), so `expired` is only seen to select none
    // of the active and revoked keys.
    assert_eq!(app.list("status=expired")["total"], 0);
    assert_eq!(app.list("")["total"], 3);
}

#[test]
fn unused_since_keeps_never_used_keys_and_keys_last_used_before() {
    let app = App::start();
    let (unused, _) = app.create_key("unused");
    let (used, secret) = app.create_key("used");
    expect_json(&app.verify(&secret), 200);
    let both = id_set(&[unused.clone(), used]);
    let only_unused = id_set(&[unused]);
    let now = now_unix();
    for (bound, want) in [
        (format_date(now + DAY), &both),
        (format_time(now + DAY), &both),
        (format_date(now - DAY), &only_unused),
        ("2000-01-01T00:00:00Z".to_owned(), &only_unused),
        ("2000-01-01".to_owned(), &only_unused),
    ] {
        let q = query(&[("unused_since", &bound)]);
        assert_eq!(&id_set(&app.list_all(&q)), want, "{q}");
    }
}

#[test]
fn filters_combine() {
    let app = App::start();
    app.create_key_as(ALICE, "sync-job");
    app.create_key_as(ALICE, "export");
    app.create_key_as(BOB, "bob-sync");
    app.create_key_as(CAROL, "carol-sync");
    app.remove_user(CAROL);
    let got = names(&app.list_all(&query(&[("name", "SYNC"), ("status", "active")])));
    assert_eq!(got, set(&["sync-job", "bob-sync"]));
    let got = names(&app.list_all(&query(&[("name", "sync"), ("created_by", ALICE)])));
    assert_eq!(got, set(&["sync-job"]));
    let got = app.list(&query(&[
        ("name", "sync"),
        ("created_by", CAROL),
        ("status", "active"),
    ]));
    assert_eq!(got["total"], 0);
}

#[test]
fn list_and_get_never_show_a_secret() {
    let app = App::start();
    let secrets: Vec<String> = seed(&app, 3).into_iter().map(|(_, s)| s).collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let list = app.mgmt("GET", "/api/keys").send();
    assert_no_secret(&list.text(), &secrets, "the overview");
    for key in app.list_all("") {
        assert_key_object(&key);
        let got = app.get_key(key["id"].as_str().unwrap());
        assert_no_secret(&got.text(), &secrets, "a key");
    }
}

// ---- 400 -------------------------------------------------------------------

#[test]
fn malformed_parameters_are_invalid_query_naming_them() {
    let app = App::start();
    seed(&app, 2);
    for (q, param) in [
        ("sort=size", "sort"),
        ("sort=", "sort"),
        ("sort=name%3B%20DROP%20TABLE%20api_keys", "sort"),
        ("order=up", "order"),
        ("status=deleted", "status"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=-5", "per_page"),
        ("per_page=ten", "per_page"),
        ("created_from=yesterday", "created_from"),
        ("created_from=2026-13-01", "created_from"),
        ("created_from=2026-11-26T25:00:00Z", "created_from"),
        ("created_to=2026-02-30", "created_to"),
        ("created_to=26-11-2026", "created_to"),
        ("unused_since=notadate", "unused_since"),
        ("unused_since=2026-11-26T17%3A00%3A00", "unused_since"),
        ("sort=name&per_page=500", "per_page"),
    ] {
        assert_invalid_query(&app.mgmt("GET", &format!("/api/keys?{q}")).send(), param);
    }
}
