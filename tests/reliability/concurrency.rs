//! Races (docs/reliability.md, "Concurrency"): racing creates of one name,
//! a delete racing verifies of the same key, and the user-removed webhook
//! racing creates for the same user. Threads start together at a barrier and
//! order is observed, never assumed: a request counts as "after" another
//! only if it was sent after that other's response arrived. No sleeps.

use std::collections::BTreeSet;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use keygate_tests::api::*;
use keygate_tests::{Json, json};

/// Rounds per race: enough to land in the windows the ordering closes
/// (each round is a few milliseconds on two cores), few enough for CI.
const ROUNDS: usize = 20;

fn entries(app: &App, query_string: &str) -> Vec<Json> {
    let mut all = app.audit_all(query_string);
    all.reverse(); // oldest first
    all
}

#[test]
fn racing_creates_of_one_name_make_exactly_one_key() {
    const RACERS: usize = 6;
    let app = App::start();
    let users = [ALICE, BOB, CAROL];
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let barrier = Barrier::new(RACERS);
        let replies: Vec<_> = thread::scope(|s| {
            let racers: Vec<_> = (0..RACERS)
                .map(|i| {
                    let (app, barrier, name) = (&app, &barrier, &name);
                    s.spawn(move || {
                        barrier.wait();
                        app.create(users[i % users.len()], &json!({ "name": name }))
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let created: Vec<Json> = replies
            .iter()
            .filter(|r| r.status == 201)
            .map(|r| r.json())
            .collect();
        assert_eq!(created.len(), 1, "round {round}: {replies:?}");
        for reply in replies.iter().filter(|r| r.status != 201) {
            assert_problem(reply, 409, "name_taken");
        }
        let winner = &created[0];
        let listed: Vec<Json> = app
            .list_all(&query(&[("name", &name)]))
            .into_iter()
            .filter(|k| k["name"] == name.as_str())
            .collect();
        assert_eq!(listed.len(), 1, "round {round}");
        assert_eq!(listed[0]["id"], winner["id"]);
        let audited = entries(&app, "action=key.created")
            .into_iter()
            .filter(|e| e["key_name"] == name.as_str())
            .count();
        assert_eq!(audited, 1, "round {round}: key.created entries");
        assert_eq!(
            app.verify(winner["secret"].as_str().unwrap()).status,
            200,
            "round {round}"
        );
    }
}

#[test]
fn after_a_delete_answers_no_verify_of_that_key_succeeds() {
    const VERIFIERS: usize = 4;
    let app = App::start();
    let mut uses = 0;
    for round in 0..ROUNDS {
        let (key, secret) = app.create_key(&format!("doomed-{round}"));
        let id = key["id"].as_str().unwrap();
        let deleted = AtomicBool::new(false);
        let barrier = Barrier::new(VERIFIERS + 1);
        let accepted: usize = thread::scope(|s| {
            let (app, barrier, deleted, secret) = (&app, &barrier, &deleted, &secret);
            s.spawn(move || {
                barrier.wait();
                let reply = app.delete_key(id);
                assert_eq!(reply.status, 204, "round {round}: {}", reply.text());
                deleted.store(true, Ordering::SeqCst);
            });
            let verifiers: Vec<_> = (0..VERIFIERS)
                .map(|_| {
                    s.spawn(move || {
                        barrier.wait();
                        let mut accepted = 0;
                        // Until the key is refused; from then on it stays refused.
                        loop {
                            let sent_after_delete = deleted.load(Ordering::SeqCst);
                            let reply = app.verify(secret);
                            if reply.status == 200 {
                                assert!(
                                    !sent_after_delete,
                                    "round {round}: verified after the delete answered"
                                );
                                accepted += 1;
                            } else {
                                assert_key_rejected(&reply, "unknown_key");
                                break;
                            }
                        }
                        accepted
                    })
                })
                .collect();
            verifiers.into_iter().map(|v| v.join().unwrap()).sum()
        });
        assert_key_rejected(&app.verify(&secret), "unknown_key");
        let trail = entries(&app, &query(&[("key_id", id)]));
        let deletions: Vec<&Json> = trail
            .iter()
            .filter(|e| e["action"] == "key.deleted")
            .collect();
        assert_eq!(deletions.len(), 1, "round {round}: {trail:#?}");
        let used: Vec<&Json> = trail.iter().filter(|e| e["action"] == "key.used").collect();
        // Every accepted verify is in the trail, and none after the deletion.
        assert_eq!(used.len(), accepted, "round {round}");
        let deleted_at = deletions[0]["id"].as_i64().unwrap();
        assert!(
            used.iter().all(|u| u["id"].as_i64().unwrap() < deleted_at),
            "round {round}: key.used after key.deleted: {trail:#?}"
        );
        uses += accepted;
    }
    eprintln!("delete vs verify: {ROUNDS} rounds, {uses} verifies accepted before the deletion");
}

#[test]
fn after_the_removal_webhook_answers_no_key_of_that_user_verifies_however_creates_raced_it() {
    const CREATORS: usize = 4;
    let app = App::start();
    let (mut raced, mut uses) = (0, 0);
    for round in 0..ROUNDS {
        let user = format!("racer-{round}@example.com");
        let first = app.create_key_as(&user, &format!("racer-{round}-first")).1;
        let removed = AtomicBool::new(false);
        let barrier = Barrier::new(CREATORS + 2);
        let (answer, secrets, accepted) = thread::scope(|s| {
            let (app, barrier, removed, user, first) = (&app, &barrier, &removed, &user, &first);
            // The user's automation, using its key while the removal runs.
            let verifier = s.spawn(move || {
                barrier.wait();
                let mut accepted = 0;
                loop {
                    let sent_after_removal = removed.load(Ordering::SeqCst);
                    let reply = app.verify(first);
                    if reply.status != 200 {
                        assert_key_rejected(&reply, "revoked_key");
                        break accepted;
                    }
                    assert!(
                        !sent_after_removal,
                        "round {round}: verified after the removal answered"
                    );
                    accepted += 1;
                }
            });
            let webhook = s.spawn(move || {
                barrier.wait();
                let answer = app.remove_user(user);
                removed.store(true, Ordering::SeqCst);
                answer
            });
            let creators: Vec<_> = (0..CREATORS)
                .map(|c| {
                    s.spawn(move || {
                        barrier.wait();
                        let mut secrets = Vec::new();
                        // Until the user is refused; from then on they stay refused.
                        for i in 0.. {
                            let sent_after_removal = removed.load(Ordering::SeqCst);
                            let body = json!({ "name": format!("racer-{round}-{c}-{i}") });
                            let reply = app.create(user, &body);
                            if reply.status == 201 {
                                assert!(
                                    !sent_after_removal,
                                    "round {round}: created after the removal answered"
                                );
                                secrets.push(reply.json()["secret"].as_str().unwrap().to_owned());
                            } else {
                                assert_problem(&reply, 403, "user_removed");
                                break;
                            }
                        }
                        secrets
                    })
                })
                .collect();
            let secrets: Vec<String> = creators
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            (webhook.join().unwrap(), secrets, verifier.join().unwrap())
        });
        raced += secrets.len();
        uses += accepted;
        // The delivery revoked every key that was created, racing or not.
        assert_eq!(
            answer,
            json!({ "user_id": user, "revoked_keys": secrets.len() + 1 }),
            "round {round}"
        );
        for secret in secrets.iter().chain([&first]) {
            assert_key_rejected(&app.verify(secret), "revoked_key");
        }
        let keys = app.list_all(&query(&[("created_by", &user)]));
        assert_eq!(keys.len(), secrets.len() + 1, "round {round}");
        assert!(
            keys.iter().all(|k| k["status"] == "revoked"),
            "round {round}: {keys:#?}"
        );
        let trail = entries(&app, &query(&[("user", &user)]));
        let actions: Vec<&str> = trail
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        let revoked: BTreeSet<&str> = trail
            .iter()
            .filter(|e| e["action"] == "key.revoked")
            .map(|e| e["key_id"].as_str().unwrap())
            .collect();
        assert_eq!(revoked.len(), keys.len(), "round {round}: {actions:?}");
        assert_eq!(
            actions.iter().filter(|a| **a == "key.revoked").count(),
            keys.len(),
            "round {round}: one key.revoked per key"
        );
        assert_eq!(
            actions.iter().filter(|a| **a == "key.created").count(),
            keys.len(),
            "round {round}: a key.created per key, none for refused creates"
        );
        // Every accepted use is audited, and none after the key's revocation
        // (by entry id, the order of writing; `at` is each request's clock).
        let id_of = |e: &Json| e["id"].as_i64().unwrap();
        let first_revoked = trail
            .iter()
            .find(|e| {
                e["action"] == "key.revoked" && e["key_name"] == format!("racer-{round}-first")
            })
            .map(id_of)
            .unwrap();
        let used: Vec<i64> = trail
            .iter()
            .filter(|e| e["action"] == "key.used")
            .map(id_of)
            .collect();
        assert_eq!(used.len(), accepted, "round {round}");
        assert!(
            used.iter().all(|&id| id < first_revoked),
            "round {round}: key.used after key.revoked: {trail:#?}"
        );
    }
    eprintln!(
        "webhook vs creates and a verifier: {ROUNDS} rounds, {raced} keys created and \
         {uses} verifies accepted while the removal raced"
    );
}
