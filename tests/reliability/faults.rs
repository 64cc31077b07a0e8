//! Fault injection (docs/reliability.md, "Fault injection"): create, delete
//! and the user-removed webhook, each with a storage failure (`--fail`) and
//! with a crash (`--crash-after`) at every storage call of the operation in
//! turn. After the fault, and again after the caller's retry, the overview,
//! verify and the audit trail must agree:
//!
//! - no key verifies that the overview does not show as active;
//! - no key shown as active fails to verify;
//! - a deleted key never verifies again; a removed user's keys never verify
//!   again once the webhook has been retried to success;
//! - the audit trail has no entry for an operation that did not happen, and
//!   no duplicate for one retried.
//!
//! The steps are found, not listed: the fault goes on call 1, 2, 3, … until a
//! run in which it never fires, so a new storage call in an operation is
//! covered without touching this file. Each run sets its data up on a
//! fault-free runner and restarts it with the fault on the same state dir.

use std::collections::{BTreeMap, BTreeSet};

use keygate_tests::api::*;
use keygate_tests::{Json, Reply};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The call returns a storage error.
    Fail,
    /// The call succeeds, then the request traps.
    Crash,
}

impl Fault {
    fn flag(self) -> &'static str {
        match self {
            Fault::Fail => "--fail",
            Fault::Crash => "--crash-after",
        }
    }
}

/// A key whose secret the test holds.
#[derive(Clone, Debug)]
struct Known {
    id: String,
    secret: String,
}

fn create_known(app: &App, user: &str, name: &str) -> Known {
    let (key, secret) = app.create_key_as(user, name);
    Known {
        id: key["id"].as_str().unwrap().to_owned(),
        secret,
    }
}

/// Runs `attempt` with `fault` on the 1st, 2nd, … storage call until a run in
/// which the fault did not fire; returns the number of storage calls the
/// operation makes. `setup` runs on a fault-free runner first; `check` gets
/// the runner (whose one fault is spent), the setup, the step and the reply.
fn sweep<S>(
    fault: Fault,
    setup: impl Fn(&App) -> S,
    attempt: impl Fn(&App, &S) -> (String, Reply),
    check: impl Fn(&App, &S, usize, &Reply),
) -> usize {
    for step in 1.. {
        let app = App::start();
        let state = setup(&app);
        let app = app.restart_with(|c| c.arg(fault.flag()).arg(&format!("*:{step}")));
        let (request_line, reply) = attempt(&app, &state);
        // The runner logs an injected fault before the request's own line.
        let log = app.wait_for_log(&request_line);
        if !log.contains("fault injected") {
            assert!(
                reply.status < 300,
                "without a fault the operation succeeds: {} {}",
                reply.status,
                reply.text()
            );
            return step - 1;
        }
        match fault {
            Fault::Fail if reply.status != 503 => {
                // Only a failure after the operation took effect may answer
                // success (see delete); anything else is a 503.
                assert!(
                    reply.status < 300,
                    "step {step}: a storage failure answers 503 or success, got {}: {}",
                    reply.status,
                    reply.text()
                );
            }
            Fault::Fail => {
                assert_problem(&reply, 503, "storage_unavailable");
            }
            Fault::Crash => assert_eq!(reply.status, 500, "step {step}: {}", reply.text()),
        }
        check(&app, &state, step, &reply);
    }
    unreachable!()
}

/// The entries of the trail, oldest first.
fn trail(app: &App) -> Vec<Json> {
    let mut entries = app.audit_all("");
    entries.reverse();
    entries
}

fn entries_of<'a>(trail: &'a [Json], action: &str, key_id: &str) -> Vec<&'a Json> {
    trail
        .iter()
        .filter(|e| e["action"] == action && e["key_id"] == key_id)
        .collect()
}

/// The four invariants over everything the API shows: the overview against
/// verify for every key whose secret is known, and the trail against the
/// overview for every key.
#[track_caller]
fn assert_invariants(app: &App, known: &[Known], when: &str) {
    let listed: BTreeMap<String, Json> = app
        .list_all("")
        .into_iter()
        .map(|k| (k["id"].as_str().unwrap().to_owned(), k))
        .collect();
    for key in known {
        let reply = app.verify(&key.secret);
        match listed.get(&key.id).map(|k| k["status"].as_str().unwrap()) {
            Some("active") => assert_eq!(
                (reply.status, reply.header("x-key-id")),
                (200, Some(key.id.as_str())),
                "{when}: {} is listed as active but does not verify: {}",
                key.id,
                reply.text()
            ),
            Some("revoked") => {
                assert_eq!(reply.status, 401, "{when}: revoked {} verifies", key.id);
                assert_key_rejected(&reply, "revoked_key");
            }
            None => {
                assert_eq!(reply.status, 401, "{when}: unlisted {} verifies", key.id);
                assert_key_rejected(&reply, "unknown_key");
            }
            Some(other) => panic!("{when}: unexpected status {other}"),
        }
    }

    let trail = trail(app);
    let key_ids: BTreeSet<&str> = trail.iter().filter_map(|e| e["key_id"].as_str()).collect();
    for id in &key_ids {
        let created = entries_of(&trail, "key.created", id);
        let deleted = entries_of(&trail, "key.deleted", id);
        let revoked = entries_of(&trail, "key.revoked", id);
        let key = listed.get(*id);
        assert_eq!(
            created.len(),
            1,
            "{when}: {id} has {} key.created entries: {trail:#?}",
            created.len()
        );
        assert_eq!(
            deleted.len(),
            usize::from(key.is_none()),
            "{when}: {id} is {} with {} key.deleted entries",
            if key.is_some() {
                "listed"
            } else {
                "not listed"
            },
            deleted.len()
        );
        let is_revoked = key.is_some_and(|k| k["status"] == "revoked");
        assert!(
            revoked.len() <= 1 && (key.is_none() || revoked.len() == usize::from(is_revoked)),
            "{when}: {id} ({key:?}) has {} key.revoked entries",
            revoked.len()
        );
        // Nothing uses a key after it was deleted or revoked.
        let end = deleted
            .iter()
            .chain(&revoked)
            .map(|e| e["id"].as_i64().unwrap())
            .min();
        if let Some(end) = end {
            for used in entries_of(&trail, "key.used", id) {
                assert!(
                    used["id"].as_i64().unwrap() < end,
                    "{when}: {id} used after its deletion or revocation: {used}"
                );
            }
        }
    }
    for (id, key) in &listed {
        assert!(
            key_ids.contains(id.as_str()),
            "{when}: {id} is listed but the trail never saw it created: {key}"
        );
    }
    let removals: Vec<&str> = trail
        .iter()
        .filter(|e| e["action"] == "user.removed")
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&&str> = removals.iter().collect();
    assert_eq!(
        distinct.len(),
        removals.len(),
        "{when}: a user removed twice: {removals:?}"
    );
}

fn listed_named(app: &App, name: &str) -> Vec<Json> {
    app.list_all(&query(&[("name", name)]))
        .into_iter()
        .filter(|k| k["name"] == name)
        .collect()
}

const NAME: &str = "orders-sync";

fn create_under(fault: Fault) -> usize {
    sweep(
        fault,
        |app| vec![create_known(app, ALICE, "bystander")],
        |app, _| {
            let reply = app
                .mgmt("POST", "/api/keys")
                .acting(ALICE)
                .json(&serde_json::json!({ "name": NAME }))
                .send_any_status();
            ("POST /api/keys keys ".to_owned(), reply)
        },
        |app, known, step, reply| {
            let mut known = known.clone();
            let when = format!("create, {} at step {step}", fault.flag());
            if reply.status == 201 {
                let key = reply.json();
                known.push(Known {
                    id: key["id"].as_str().unwrap().to_owned(),
                    secret: key["secret"].as_str().unwrap().to_owned(),
                });
            }
            assert_invariants(app, &known, &when);
            let left = listed_named(app, NAME);
            // A failure answered 503 left nothing. A crash after the last
            // write loses the response of a key that was created (listed and
            // audited, its secret gone with the response): the retry hears
            // name_taken. Anything in between leaves nothing.
            if fault == Fault::Fail && reply.status == 503 {
                assert!(left.is_empty(), "{when}: a 503 left a key: {left:?}");
            }
            let retry = app.create(ALICE, &serde_json::json!({ "name": NAME }));
            if left.is_empty() {
                let key = expect_json(&retry, 201);
                known.push(Known {
                    id: key["id"].as_str().unwrap().to_owned(),
                    secret: key["secret"].as_str().unwrap().to_owned(),
                });
            } else if reply.status != 201 {
                assert_problem(&retry, 409, "name_taken");
            }
            let when = format!("{when}, after the retry");
            assert_invariants(app, &known, &when);
            assert_eq!(listed_named(app, NAME).len(), 1, "{when}");
            let created = trail(app)
                .into_iter()
                .filter(|e| e["action"] == "key.created" && e["key_name"] == NAME)
                .count();
            assert_eq!(created, 1, "{when}: key.created entries for {NAME}");
        },
    )
}

fn delete_under(fault: Fault) -> usize {
    sweep(
        fault,
        |app| {
            [
                create_known(app, ALICE, "doomed"),
                create_known(app, ALICE, "bystander"),
            ]
        },
        |app, [doomed, _]| {
            let path = format!("/api/keys/{}", doomed.id);
            let reply = app.mgmt("DELETE", &path).send_any_status();
            (format!("DELETE {path} keys "), reply)
        },
        |app, known, step, reply| {
            let [doomed, bystander] = known;
            let when = format!("delete, {} at step {step}", fault.flag());
            assert_invariants(app, known, &when);
            let still_listed = app.get_key(&doomed.id).status == 200;
            match reply.status {
                204 => assert!(!still_listed, "{when}: 204 but still listed"),
                503 => assert!(still_listed, "{when}: 503 but the key is gone"),
                _ => {}
            }
            let retry = app.delete_key(&doomed.id);
            assert_eq!(
                retry.status,
                if still_listed { 204 } else { 404 },
                "{when}: retry {}",
                retry.text()
            );
            let when = format!("{when}, after the retry");
            assert_invariants(app, known, &when);
            assert_eq!(app.get_key(&doomed.id).status, 404, "{when}");
            assert_key_rejected(&app.verify(&doomed.secret), "unknown_key");
            assert_eq!(app.verify(&bystander.secret).status, 200, "{when}");
        },
    )
}

/// One signed delivery, kept so the retry sends exactly the same.
struct Delivery {
    id: String,
    timestamp: i64,
    body: Vec<u8>,
}

impl Delivery {
    fn send(&self, app: &App) -> Reply {
        app.call("POST", "/webhooks/user-removed")
            .headers(&sign_webhook(
                WEBHOOK_SECRET,
                &self.id,
                self.timestamp,
                &self.body,
            ))
            .body("application/json", self.body.clone())
            .send_any_status()
    }
}

fn webhook_under(fault: Fault) -> usize {
    sweep(
        fault,
        |app| {
            let known = vec![
                create_known(app, ALICE, "alice-1"),
                create_known(app, ALICE, "alice-2"),
                create_known(app, BOB, "bob-1"),
            ];
            let delivery = Delivery {
                id: new_webhook_id(),
                timestamp: now_unix(),
                body: user_removed_event(ALICE).to_string().into_bytes(),
            };
            (known, delivery)
        },
        |app, (_, delivery)| {
            (
                "POST /webhooks/user-removed ".to_owned(),
                delivery.send(app),
            )
        },
        |app, (known, delivery), step, _| {
            let when = format!("webhook, {} at step {step}", fault.flag());
            assert_invariants(app, known, &when);
            let retry = delivery.send(app);
            let answer = expect_json(&retry, 200);
            assert_eq!(
                answer,
                serde_json::json!({"user_id": ALICE, "revoked_keys": 2}),
                "{when}"
            );
            let when = format!("{when}, after the retry");
            assert_invariants(app, known, &when);
            for alices in &known[..2] {
                assert_key_rejected(&app.verify(&alices.secret), "revoked_key");
            }
            assert_eq!(
                app.verify(&known[2].secret).status,
                200,
                "{when}: bob's key"
            );
            let removed: Vec<Json> = trail(app)
                .into_iter()
                .filter(|e| e["action"] == "user.removed")
                .collect();
            assert_eq!(removed.len(), 1, "{when}");
            assert_eq!(removed[0]["details"]["revoked_keys"], 2, "{when}");
            assert_eq!(
                expect_json(&delivery.send(app), 200),
                answer,
                "{when}: redelivery"
            );
        },
    )
}

#[test]
fn create_survives_a_failure_or_a_crash_at_every_storage_call() {
    let failed = create_under(Fault::Fail);
    let crashed = create_under(Fault::Crash);
    eprintln!("create: {failed} storage calls, each failed and crashed after in turn");
    assert!(failed >= 3, "create makes {failed} storage calls?");
    assert_eq!(failed, crashed, "the same calls in both sweeps");
}

#[test]
fn delete_survives_a_failure_or_a_crash_at_every_storage_call() {
    let failed = delete_under(Fault::Fail);
    let crashed = delete_under(Fault::Crash);
    eprintln!("delete: {failed} storage calls, each failed and crashed after in turn");
    assert!(failed >= 3, "delete makes {failed} storage calls?");
    assert_eq!(failed, crashed, "the same calls in both sweeps");
}

#[test]
fn the_user_removed_webhook_survives_a_failure_or_a_crash_at_every_storage_call() {
    let failed = webhook_under(Fault::Fail);
    let crashed = webhook_under(Fault::Crash);
    eprintln!("webhook (2 keys): {failed} storage calls, each failed and crashed after in turn");
    assert!(failed >= 5, "the webhook makes {failed} storage calls?");
    assert_eq!(failed, crashed, "the same calls in both sweeps");
}

#[test]
fn a_rule_naming_a_statement_hits_that_statement_once() {
    let app = App::start_with(|c| c.arg("--fail").arg("sqlite.execute:~INSERT INTO api_keys"));
    app.wait_for_log("fault injection on: --fail sqlite.execute:1~INSERT INTO api_keys");
    // Reads before the insert are not counted; the insert fails, once.
    assert_eq!(app.list("")["total"], 0);
    let reply = app.create(ALICE, &serde_json::json!({ "name": NAME }));
    assert_problem(&reply, 503, "storage_unavailable");
    let log = app.wait_for_log("POST /api/keys keys 503");
    assert!(
        log.contains("fault injected: sqlite.execute failed"),
        "{log}"
    );
    let (_, secret) = app.create_key(NAME);
    assert_eq!(app.verify(&secret).status, 200);
    assert_eq!(app.audit("action=key.created")["total"], 1);
}

#[test]
fn keygate_faults_in_the_environment_crash_a_request_and_the_runner_keeps_serving() {
    let app = App::start();
    let doomed = create_known(&app, ALICE, "doomed");
    let app = app.restart_with(|c| c.env("KEYGATE_FAULTS", "crash-after=kv.delete:1"));
    let reply = app
        .mgmt("DELETE", &format!("/api/keys/{}", doomed.id))
        .send_any_status();
    assert_eq!(reply.status, 500, "{}", reply.text());
    let log = app.wait_for_log(&format!("DELETE /api/keys/{} keys 500", doomed.id));
    assert!(
        log.contains("fault injected: crash after kv.delete"),
        "{log}"
    );
    // The deletion had happened in full before the crash; the retry hears so.
    assert_problem(&app.delete_key(&doomed.id), 404, "key_not_found");
    assert_key_rejected(&app.verify(&doomed.secret), "unknown_key");
    assert_invariants(&app, &[doomed], "after a crash at the KV delete");
}
