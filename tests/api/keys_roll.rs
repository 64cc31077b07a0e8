//! `POST /api/keys/{id}/roll` (design api.md, v2 "Key lifecycle"): a new
//! secret for the same key, the old one verifying for `expires_previous_in`
//! seconds (0 … 604800, default 0), then `unknown_key`; by status, the
//! audit trail, races with verify and with another roll, and a roll
//! interrupted at any storage call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate_tests::api::*;
use keygate_tests::idp::{CLIENT_ID, TestIdp, TestKey};
use keygate_tests::{Json, Reply, json};

fn roll_path(id: &str) -> String {
    format!("/api/keys/{id}/roll")
}

/// `POST /api/keys/{id}/roll` as [`OPERATOR`] with `{"expires_previous_in": grace}`.
fn roll(app: &App, id: &str, grace: i64) -> Reply {
    app.mgmt("POST", &roll_path(id))
        .json(&json!({ "expires_previous_in": grace }))
        .send()
}

/// Rolls with `grace`; asserts 201 and returns (the answer, its secret).
#[track_caller]
fn rolled(app: &App, id: &str, grace: i64) -> (Json, String) {
    let body = expect_json(&roll(app, id, grace), 201);
    let secret = body["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("a roll answered without a secret: {body}"))
        .to_owned();
    (body, secret)
}

/// Creates a key as [`ALICE`]; (its id, its secret).
#[track_caller]
fn key(app: &App, name: &str) -> (String, String) {
    let (key, secret) = app.create_key(name);
    (key["id"].as_str().unwrap().to_owned(), secret)
}

/// The key's `key.rolled` entries, newest first.
fn key_rolled(app: &App, id: &str) -> Vec<Json> {
    app.audit_all(&format!("action=key.rolled&key_id={id}"))
}

/// Seconds since the epoch, with fractions.
fn now_precise() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Asserts `secret` verifies as key `id` of [`ALICE`].
#[track_caller]
fn assert_verifies_as(app: &App, secret: &str, id: &str) {
    assert_verifies_as_reply(&app.verify(secret), id);
}

/// Asserts verify's answer is a 200 for key `id` of [`ALICE`].
#[track_caller]
fn assert_verifies_as_reply(reply: &Reply, id: &str) {
    let body = expect_json(reply, 200);
    assert_eq!(body["key_id"], id, "{body}");
    assert_eq!(body["user_id"], ALICE, "{body}");
    assert_eq!(reply.header("x-key-id"), Some(id));
}

// ---- 201 -------------------------------------------------------------------

#[test]
fn a_roll_answers_a_new_secret_for_the_same_key() {
    let app = App::start();
    let expires = format_time(now_unix() + DAY);
    let (created, old) = app.create_key_with(
        ALICE,
        &json!({"name": "orders-sync", "description": "Nightly", "expires_at": expires}),
    );
    let id = created["id"].as_str().unwrap();
    expect_json(&app.verify(&old), 200);
    let before = expect_json(&app.get_key(id), 200);

    let (body, secret) = rolled(&app, id, 0);
    assert!(is_well_formed_key(&secret), "{secret}");
    assert_ne!(secret, old);
    assert_eq!(body["hint"], hint_of(&secret));
    assert_ne!(body["hint"], before["hint"]);
    let mut key = body.clone();
    key.as_object_mut().unwrap().remove("secret");
    assert_key_object(&key);
    for same in [
        "id",
        "name",
        "description",
        "owner",
        "created_by",
        "created_at",
        "expires_at",
        "status",
        "last_used_at",
        "revoked_at",
    ] {
        assert_eq!(body[same], before[same], "{same} stays");
    }
    assert_eq!(expect_json(&app.get_key(id), 200), key);
    assert_eq!(
        app.list_all("")
            .into_iter()
            .find(|k| k["id"] == id)
            .unwrap(),
        key
    );

    // The new secret works at once, as the same key; the old one, with no
    // grace, is unknown at once.
    let verified = expect_json(&app.verify(&secret), 200);
    assert_eq!(
        (
            &verified["key_id"],
            &verified["key_name"],
            &verified["user_id"],
            &verified["expires_at"]
        ),
        (
            &json!(id),
            &json!("orders-sync"),
            &json!(ALICE),
            &json!(expires)
        )
    );
    assert_key_rejected(&app.verify(&old), "unknown_key");
    // Shown once: nowhere else.
    let (keys, trail) = app.snapshot();
    for (what, text) in [("the overview", keys), ("the audit trail", trail)] {
        assert_no_secret(&Json::from(text).to_string(), &[&secret, &old], what);
    }
    assert_no_secret(&app.stderr(), &[&secret, &old], "the log");
}

#[test]
fn no_body_an_empty_object_and_zero_all_mean_no_grace() {
    let app = App::start();
    for n in 0..5 {
        let (id, old) = key(&app, &format!("k{n}"));
        let call = app.mgmt("POST", &roll_path(&id));
        let reply = match n {
            0 => call,
            1 => call.raw_body(Vec::new()),
            2 => call.body("application/json", "  \n"),
            3 => call.json(&json!({})),
            _ => call.json(&json!({"expires_previous_in": 0})),
        }
        .send();
        let body = expect_json(&reply, 201);
        let secret = body["secret"].as_str().unwrap();
        assert_verifies_as(&app, secret, &id);
        assert_key_rejected(&app.verify(&old), "unknown_key");
        let entry = &key_rolled(&app, &id)[0];
        assert_eq!(
            entry["details"]["previous_secret_expires_at"], entry["at"],
            "case {n}: the previous secret ends as the roll happens"
        );
    }
}

#[test]
fn with_a_short_grace_the_old_secret_verifies_until_it_ends_and_is_refused_after() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let rolled_at = now_unix();
    let (_, secret) = rolled(&app, &id, 2);

    // Poll the old secret, 50 ms apart, until it is refused (or for at most
    // 4 s): when each verify was sent and answered, and what it said.
    let mut attempts: Vec<(f64, f64, Reply)> = Vec::new();
    loop {
        let sent = now_precise();
        let reply = app.verify(&old);
        let refused = reply.status != 200;
        attempts.push((sent, now_precise(), reply));
        if refused || sent > (rolled_at + 4) as f64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // The grace, as the trail records it.
    let entry = &key_rolled(&app, &id)[0];
    let ends = parse_time(
        entry["details"]["previous_secret_expires_at"]
            .as_str()
            .unwrap(),
    );
    let at = parse_time(entry["at"].as_str().unwrap());
    assert_eq!(ends, at + 2, "{entry}");
    assert!((rolled_at..=rolled_at + 1).contains(&at), "{entry}");

    let (accepted, last) = attempts.split_at(attempts.len() - 1);
    let (sent, answered, refusal) = &last[0];
    assert_key_rejected(refusal, "unknown_key");
    assert!(*answered >= ends as f64, "refused before the grace ended");
    assert!(
        *sent < (ends + 1) as f64,
        "the old secret still verified one second after its grace ended"
    );
    assert!(
        !accepted.is_empty(),
        "the old secret never verified in its grace"
    );
    for (sent, _, reply) in accepted {
        assert_verifies_as_reply(reply, &id);
        assert!(
            *sent < ends as f64,
            "200 for a verify sent after the grace ended"
        );
    }
    // And stays refused; the new secret works throughout.
    assert_key_rejected(&app.verify(&old), "unknown_key");
    assert_verifies_as(&app, &secret, &id);
    // Every 200 of either secret is in the trail as the key's, the owner's.
    let used = app.audit_all(&format!("action=key.used&key_id={id}"));
    assert_eq!(used.len(), accepted.len() + 1);
    assert!(used.iter().all(|e| e["user"] == ALICE));
}

#[test]
fn uses_of_both_secrets_are_the_keys_and_its_owners() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let reply = app
        .mgmt("POST", &roll_path(&id))
        .acting(BOB)
        .json(&json!({"expires_previous_in": 3600}))
        .send();
    let body = expect_json(&reply, 201);
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(body["owner"], ALICE, "rolling does not change the owner");
    assert_verifies_as(&app, &old, &id);
    assert_verifies_as(&app, secret, &id);
    let used = app.audit_all(&format!("action=key.used&key_id={id}"));
    assert_eq!(used.len(), 2);
    for entry in &used {
        assert_eq!(entry["user"], ALICE, "{entry}");
        assert_eq!(entry["key_name"], "k", "{entry}");
    }
    assert_eq!(
        app.audit(&format!("user={ALICE}&action=key.used"))["total"],
        2
    );

    let entries = key_rolled(&app, &id);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["user"], BOB, "the acting user");
    assert_eq!(e["key_name"], "k");
    let at = parse_time(e["at"].as_str().unwrap());
    assert!((at - now_unix()).abs() <= 5, "{e}");
    assert_eq!(
        e["details"],
        json!({"previous_secret_expires_at": format_time(at + 3600), "auth": "admin_token"})
    );
    assert_no_secret(&e.to_string(), &[&old, secret], "key.rolled");
}

#[test]
fn rolling_again_stops_the_first_secret_even_within_its_grace() {
    let app = App::start();
    let (id, original) = key(&app, "k");
    let (_, first) = rolled(&app, &id, 3600);
    assert_verifies_as(&app, &original, &id);
    let (body, second) = rolled(&app, &id, 3600);
    assert_eq!(body["hint"], hint_of(&second));
    assert_key_rejected(&app.verify(&original), "unknown_key");
    assert_verifies_as(&app, &first, &id);
    assert_verifies_as(&app, &second, &id);
    // Without a grace, only the newest secret is left.
    let (_, third) = rolled(&app, &id, 0);
    for gone in [&original, &first, &second] {
        assert_key_rejected(&app.verify(gone), "unknown_key");
    }
    assert_verifies_as(&app, &third, &id);
    assert_eq!(key_rolled(&app, &id).len(), 3);
}

#[test]
fn the_longest_grace_is_seven_days() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    rolled(&app, &id, 604_800);
    let e = &key_rolled(&app, &id)[0];
    let at = parse_time(e["at"].as_str().unwrap());
    assert_eq!(
        e["details"]["previous_secret_expires_at"],
        format_time(at + 7 * DAY)
    );
    assert_verifies_as(&app, &old, &id);
}

#[test]
fn deleting_a_rolled_key_stops_both_secrets() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let (_, secret) = rolled(&app, &id, 3600);
    assert_eq!(app.delete_key(&id).status, 204);
    assert_key_rejected(&app.verify(&old), "unknown_key");
    assert_key_rejected(&app.verify(&secret), "unknown_key");
}

#[test]
fn removing_the_owner_revokes_both_secrets_and_the_key_cannot_be_rolled() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let (_, secret) = rolled(&app, &id, 3600);
    app.remove_user(ALICE);
    assert_key_rejected(&app.verify(&old), "revoked_key");
    assert_key_rejected(&app.verify(&secret), "revoked_key");
    let before = app.snapshot();
    for grace in [0, 60] {
        assert_problem(&roll(&app, &id, grace), 409, "key_revoked");
    }
    assert_problem(
        &app.mgmt("POST", &roll_path(&id)).send(),
        409,
        "key_revoked",
    );
    assert_eq!(app.snapshot(), before, "no new secret, no audit entry");
    assert_key_rejected(&app.verify(&secret), "revoked_key");
}

// ---- 400 / 404 / 413 / 415 / 422 / 401 / 403 -------------------------------

#[test]
fn unknown_malformed_and_deleted_ids_are_key_not_found() {
    let app = App::start();
    let (id, _) = key(&app, "doomed");
    assert_eq!(app.delete_key(&id).status, 204);
    for unknown in [
        id.as_str(),
        "key_0000000000000000000000",
        "nope",
        "%27%20OR%201%3D1--",
    ] {
        assert_problem(&roll(&app, unknown, 0), 404, "key_not_found");
    }
    assert!(app.audit_all("action=key.rolled").is_empty());
}

#[test]
fn a_grace_out_of_range_or_not_whole_seconds_is_422() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let before = app.snapshot();
    for grace in [
        json!(604_801),
        json!(-1),
        json!(1.5),
        json!("60"),
        json!(true),
        json!([60]),
        json!(1e20),
    ] {
        let reply = app
            .mgmt("POST", &roll_path(&id))
            .json(&json!({ "expires_previous_in": grace }))
            .send();
        let problem = assert_validation_failed(&reply, &["expires_previous_in"]);
        assert_eq!(error_fields(&problem), ["expires_previous_in"], "{grace}");
    }
    assert_eq!(app.snapshot(), before, "nothing rolled");
    assert_verifies_as(&app, &old, &id);
}

#[test]
fn bodies_that_are_not_a_json_object_of_known_fields_are_invalid_request() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let before = app.snapshot();
    for body in [
        "{",
        "[]",
        "60",
        "null",
        "{\"expires_previous_in\": 1, \"expires_previous_in\": 2}",
        "{\"grace\": 60}",
        "{\"secret\": \"kg_x\"}",
    ] {
        let reply = app
            .mgmt("POST", &roll_path(&id))
            .body("application/json", body)
            .send();
        assert_problem(&reply, 400, "invalid_request");
    }
    assert_eq!(app.snapshot(), before);
    assert_verifies_as(&app, &old, &id);
}

#[test]
fn a_body_over_64_kib_is_413_and_other_media_types_415() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let before = app.snapshot();
    let huge = format!("{{\"expires_previous_in\": 0{}}}", " ".repeat(70 * 1024));
    let reply = app
        .mgmt("POST", &roll_path(&id))
        .body("application/json", huge)
        .send();
    assert_problem(&reply, 413, "payload_too_large");
    let body = json!({"expires_previous_in": 60}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let call = app.mgmt("POST", &roll_path(&id));
        let reply = match content_type {
            Some(ct) => call.body(ct, body.clone()),
            None => call.raw_body(body.clone()),
        }
        .send();
        assert_problem(&reply, 415, "unsupported_media_type");
    }
    assert_eq!(app.snapshot(), before);
    assert_verifies_as(&app, &old, &id);
}

#[test]
fn roll_authenticates_like_every_management_route() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let before = app.snapshot();
    for authorization in [
        None,
        Some("Bearer wrong-token".to_owned()),
        // A key cannot roll itself: API keys never authenticate management calls.
        Some(format!("Bearer {old}")),
    ] {
        let mut call = app.call("POST", &roll_path(&id)).acting(ALICE);
        if let Some(value) = &authorization {
            call = call.header("authorization", value);
        }
        let reply = call.send();
        assert_problem(&reply, 401, "unauthenticated");
        assert!(reply.header("www-authenticate").is_some());
    }
    assert_problem(
        &app.mgmt("POST", &roll_path(&id))
            .without_header("x-acting-user")
            .send(),
        400,
        "acting_user_required",
    );
    app.remove_user(CAROL);
    assert_problem(
        &app.mgmt("POST", &roll_path(&id))
            .acting("CAROL@example.com")
            .send(),
        403,
        "user_removed",
    );
    let (keys, _) = app.snapshot();
    assert_eq!(keys, before.0, "not rolled");
    assert!(key_rolled(&app, &id).is_empty());
    assert_verifies_as(&app, &old, &id);
}

#[test]
fn only_post_rolls() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        let reply = app.mgmt(method, &roll_path(&id)).send();
        assert_problem(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("POST"), "{method}");
    }
    assert_verifies_as(&app, &old, &id);
}

// ---- Races -----------------------------------------------------------------

/// One verify of the old secret: when it was sent and answered, and its status.
struct Attempt {
    sent: f64,
    status: u16,
}

#[test]
fn a_roll_racing_verifies_of_the_old_secret_leaves_every_200_in_the_trail_and_none_after() {
    let app = App::start();
    let (id, old) = key(&app, "k");
    let threads = 3;
    let (under_way, started) = std::sync::mpsc::channel();
    let rolled_answer: Mutex<Option<f64>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let attempts: Vec<Attempt> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let under_way = under_way.clone();
                scope.spawn(|| {
                    let under_way = under_way;
                    let mut mine = Vec::new();
                    let mut after_roll = 0;
                    while !stop.load(Ordering::SeqCst) || after_roll < 10 {
                        let sent = now_precise();
                        let reply = app.call("GET", "/api/verify").bearer(&old).send();
                        match reply.status {
                            200 => {}
                            _ => {
                                assert_key_rejected(&reply, "unknown_key");
                            }
                        }
                        if rolled_answer.lock().unwrap().is_some_and(|t| sent > t) {
                            after_roll += 1;
                        }
                        mine.push(Attempt {
                            sent,
                            status: reply.status,
                        });
                        if mine.len() == 10 {
                            under_way.send(()).unwrap();
                        }
                    }
                    mine
                })
            })
            .collect();
        // Roll once every thread has verified 10 times (told, not slept for).
        for _ in 0..threads {
            started.recv().unwrap();
        }
        let (_, secret) = rolled(&app, &id, 0);
        *rolled_answer.lock().unwrap() = Some(now_precise());
        stop.store(true, Ordering::SeqCst);
        let attempts = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        assert_verifies_as(&app, &secret, &id);
        attempts
    });
    let answered = rolled_answer.lock().unwrap().unwrap();
    let ok = attempts.iter().filter(|a| a.status == 200).count();
    let late_ok = attempts
        .iter()
        .filter(|a| a.status == 200 && a.sent > answered)
        .count();
    let refused = attempts.len() - ok;
    eprintln!("{ok} verifies of the old secret answered 200, {refused} unknown_key");
    assert_eq!(late_ok, 0, "200s for verifies sent after the roll answered");
    assert!(ok >= 30 && refused >= threads * 10, "{ok} / {refused}");
    // Every 200 (and the new secret's one) is in the trail, none after the roll.
    let used = app.audit_all(&format!("action=key.used&key_id={id}"));
    assert_eq!(used.len(), ok + 1);
    let rolled_at = parse_time(key_rolled(&app, &id)[0]["at"].as_str().unwrap());
    let old_uses_after = used
        .iter()
        .skip(1)
        .filter(|e| parse_time(e["at"].as_str().unwrap()) > rolled_at)
        .count();
    assert_eq!(old_uses_after, 0, "a use of the old secret after the roll");
}

#[test]
fn of_two_rolls_at_once_one_wins_and_only_its_secret_verifies() {
    let app = App::start();
    let (id, mut current) = key(&app, "k");
    let rounds = 20;
    let (mut conflicts, mut both) = (0, 0);
    for round in 0..rounds {
        let barrier = Barrier::new(2);
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        roll(&app, &id, 0)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let secrets: Vec<String> = replies
            .iter()
            .filter(|r| r.status == 201)
            .map(|r| r.json()["secret"].as_str().unwrap().to_owned())
            .collect();
        let losers: Vec<&Reply> = replies.iter().filter(|r| r.status != 201).collect();
        for loser in &losers {
            assert_problem(loser, 409, "roll_conflict");
        }
        assert!(!secrets.is_empty(), "round {round}: neither roll won");
        // Two 201s are two rolls one after the other: the later one's secret
        // is the key's. Exactly one secret verifies either way.
        let working: Vec<&String> = secrets
            .iter()
            .filter(|s| app.verify(s).status == 200)
            .collect();
        assert_eq!(
            working.len(),
            1,
            "round {round}: {} secrets work",
            working.len()
        );
        assert_key_rejected(&app.verify(&current), "unknown_key");
        let key = expect_json(&app.get_key(&id), 200);
        assert_eq!(key["hint"], hint_of(working[0]), "round {round}");
        if secrets.len() == 1 {
            conflicts += 1;
        } else {
            both += 1;
        }
        current = working[0].clone();
    }
    eprintln!(
        "{rounds} rounds of two rolls at once: {conflicts} conflicts, {both} one after the other"
    );
    assert!(conflicts >= 1, "the two rolls never overlapped");
    assert_eq!(key_rolled(&app, &id).len(), conflicts + 2 * both);
}

// ---- Failures part-way -----------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fault {
    Fail,
    Crash,
}

/// A roll without grace with a fault on the 1st, 2nd, … storage call (until
/// a run in which it never fires). A 503 leaves the old secret working and
/// nothing rolled; a 201 (a failure after the roll's statement) means the
/// answered secret works and the old one does not; a crash leaves the old
/// secret working exactly when no roll was recorded. The retry's secret
/// then works and no earlier one does. Returns the storage calls seen.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    for step in 1.. {
        let app = App::start();
        let (id, old) = key(&app, "k");
        let app = app.restart_with(|c| c.arg(flag).arg(&format!("*:{step}")));
        let reply = app
            .mgmt("POST", &roll_path(&id))
            .json(&json!({"expires_previous_in": 0}))
            .send_any_status();
        let log = app.wait_for_log(&format!("POST /api/keys/{id}/roll "));
        if !log.contains("fault injected") {
            expect_json(&reply, 201);
            return step - 1;
        }
        let when = format!("{flag} *:{step}");
        let mut secrets = vec![old.clone()];
        match (fault, reply.status) {
            (Fault::Fail, 201) => {
                let secret = reply.json()["secret"].as_str().unwrap().to_owned();
                assert_verifies_as(&app, &secret, &id);
                assert_key_rejected(&app.verify(&old), "unknown_key");
                secrets.push(secret);
            }
            (Fault::Fail, _) => {
                assert_problem(&reply, 503, "storage_unavailable");
                assert_verifies_as(&app, &old, &id);
                assert!(key_rolled(&app, &id).is_empty(), "{when}: rolled after all");
            }
            (Fault::Crash, status) => {
                assert_eq!(status, 500, "{when}: {}", reply.text());
                let recorded = !key_rolled(&app, &id).is_empty();
                let old_works = app.verify(&old).status == 200;
                assert_eq!(old_works, !recorded, "{when}");
            }
        }
        let rolled_before = key_rolled(&app, &id).len();

        let (body, secret) = rolled(&app, &id, 0);
        assert_verifies_as(&app, &secret, &id);
        for earlier in &secrets {
            assert_key_rejected(&app.verify(earlier), "unknown_key");
        }
        assert_eq!(body["hint"], hint_of(&secret), "{when}");
        assert_eq!(key_rolled(&app, &id).len(), rolled_before + 1, "{when}");
        assert_eq!(
            expect_json(&app.get_key(&id), 200)["hint"],
            hint_of(&secret),
            "{when}"
        );
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_leaves_one_working_secret_and_the_retry_rolls() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("a roll: {calls} storage calls, each failed in turn");
    assert!(calls >= 4, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_leaves_at_most_one_working_secret_and_the_retry_rolls() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!("a roll: {calls} storage calls, a crash after each in turn");
    assert!(calls >= 4, "{calls} storage calls?");
}

// ---- Signed in through OIDC ------------------------------------------------

#[test]
fn signed_in_through_oidc_a_roll_is_audited_so_and_another_acting_user_is_403() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = App::start_with(|config| {
        config
            .env("SPIN_VARIABLE_OIDC_ISSUER", &idp.issuer)
            .env("SPIN_VARIABLE_OIDC_ORIGIN", &idp.issuer)
            .env("SPIN_VARIABLE_OIDC_CLIENT_ID", CLIENT_ID)
    });
    let (id, old) = key(&app, "k");
    let token = idp.token(TestKey::RsaA, "Dana@Example.com");
    let reply = app
        .call("POST", &roll_path(&id))
        .bearer(&token)
        .acting(BOB)
        .send();
    assert_problem(&reply, 403, "acting_user_mismatch");
    assert_verifies_as(&app, &old, &id);
    let reply = app
        .call("POST", &roll_path(&id))
        .bearer(&token)
        .json(&json!({"expires_previous_in": 60}))
        .send();
    let secret = expect_json(&reply, 201)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let entries = key_rolled(&app, &id);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["user"], "Dana@Example.com");
    assert_eq!(entries[0]["details"]["auth"], "oidc");
    assert_verifies_as(&app, &old, &id);
    assert_verifies_as(&app, &secret, &id);
}
