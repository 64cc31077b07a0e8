//! keygate scaled out: two instances sharing one Redis and one libSQL server
//! (sqld), as the README's scale-out deployment runs it. Contention between
//! the instances, both starting at once on an empty or an older database,
//! and one killed while it serves.
//!
//! Opt-in, as the servers are not part of the normal CI:
//! `cargo test -p keygate-tests --features scale-out --test scale_out_instances`
//! (`./dev test --scale-out` runs it). Needs `redis-server` and `sqld`
//! (see `keygate_tests::servers`); without them every test fails.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use keygate_tests::api::*;
use keygate_tests::servers::{RedisServer, Sqld};
use keygate_tests::{Json, json};

/// Redis for `default` key-value, sqld for `default` SQL: the README's
/// scale-out configuration.
fn instance(redis: &RedisServer, sqld: &Sqld) -> App {
    let config = format!(
        "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n\
         [sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"any\"\n",
        redis.url(),
        sqld.url()
    );
    App::start_with(|c| c.runtime_config(&config))
}

/// Prints the instances' logs when the test fails, to see what each was doing.
struct LogsOnFailure<'a>(&'a [App], &'a Sqld);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            for (n, app) in self.0.iter().enumerate() {
                eprintln!("--- instance {n} log:\n{}", app.stderr());
            }
            eprintln!("--- sqld log:\n{}", self.1.log());
        }
    }
}

/// SIGKILL: no shutdown, requests in flight cut off.
fn kill(app: &App) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &app.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Two instances, started one after the other.
fn pair(redis: &RedisServer, sqld: &Sqld) -> [App; 2] {
    [instance(redis, sqld), instance(redis, sqld)]
}

/// Two instances started at the same moment (each migrates on first use).
fn pair_at_once(redis: &RedisServer, sqld: &Sqld) -> [App; 2] {
    thread::scope(|s| {
        let a = s.spawn(|| instance(redis, sqld));
        let b = s.spawn(|| instance(redis, sqld));
        [a.join().unwrap(), b.join().unwrap()]
    })
}

fn schema_version(sqld: &Sqld) -> i64 {
    sqld.rows("PRAGMA user_version", &[])[0][0]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("user_version")
}

/// Creates through every instance at once; every answer must be 201.
fn create_through_both(apps: &[App; 2], per_instance: usize, tag: &str) -> Vec<(Json, String)> {
    thread::scope(|s| {
        let handles: Vec<_> = (0..per_instance * 2)
            .map(|n| {
                let app = &apps[n % 2];
                s.spawn(move || {
                    let reply = app.create(ALICE, &json!({ "name": format!("{tag}-{n}") }));
                    assert_eq!(reply.status, 201, "create {n}: {}", reply.text());
                    let key = reply.json();
                    let secret = key["secret"].as_str().unwrap().to_owned();
                    (key, secret)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn two_instances_starting_together_on_an_empty_database_both_serve_at_once() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let apps = pair_at_once(&redis, &sqld);
    let keys = create_through_both(&apps, 12, "first");
    assert_eq!(
        schema_version(&sqld),
        8,
        "migrated once, to the current version"
    );
    // Each key verifies through the instance that did not create it.
    for (n, (key, secret)) in keys.iter().enumerate() {
        let reply = apps[(n + 1) % 2].verify(secret);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["key_id"], key["id"]);
    }
    assert_eq!(apps[0].list_all("").len(), 24);
    assert_eq!(apps[1].audit_all("action=key.created").len(), 24);
}

#[test]
fn two_instances_starting_together_on_an_older_schema_both_bring_it_up_to_date() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    // A database an older keygate left at schema version 5, with a key in it.
    {
        let old = instance(&redis, &sqld);
        let (_, secret) = old.create_key("from-before");
        assert_eq!(old.verify(&secret).status, 200);
        for undo in [
            "DROP INDEX audit_revocations_by_user",
            "DROP TRIGGER key_deletion_removes_the_key_and_is_audited",
            "DROP TRIGGER audit_key_deleted_only_for_a_removed_key",
            "DROP TABLE key_deletions",
            "CREATE TRIGGER audit_key_deleted_removes_the_key AFTER INSERT ON audit_log \
             WHEN NEW.action = 'key.deleted' BEGIN DELETE FROM api_keys WHERE id = NEW.key_id; END",
            "PRAGMA user_version = 5",
        ] {
            sqld.execute(undo, &[])
                .unwrap_or_else(|e| panic!("{undo}: {e}"));
        }
    }
    assert_eq!(schema_version(&sqld), 5);
    let apps = pair_at_once(&redis, &sqld);
    let keys = create_through_both(&apps, 8, "after");
    assert_eq!(schema_version(&sqld), 8);
    let listed = apps[1].list_all("");
    assert_eq!(listed.len(), 17, "the old key and the 16 new ones");
    // A deletion goes through v7's key_deletions on both instances.
    let (key, secret) = &keys[0];
    let id = key["id"].as_str().unwrap();
    assert_eq!(apps[1].delete_key(id).status, 204);
    assert_eq!(apps[0].verify(secret).status, 401);
    assert_eq!(
        apps[0]
            .audit_all(&format!("key_id={id}&action=key.deleted"))
            .len(),
        1
    );
}

/// Deletes and user removals through one instance while six threads verify
/// the same keys through both: every answer is 200 or 401 (never 503), and
/// once a delete or removal is answered, no instance verifies its keys.
#[test]
fn contention_between_instances_never_answers_503() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let apps = pair(&redis, &sqld);
    let _logs = LogsOnFailure(&apps, &sqld);
    for round in 0..10 {
        let owner = format!("leaver-{round}@example.com");
        let keys: Vec<(Json, String)> = (0..4)
            .map(|n| {
                let reply = apps[n % 2].create(&owner, &json!({ "name": format!("r{round}-{n}") }));
                let key = expect_json(&reply, 201);
                let secret = key["secret"].as_str().unwrap().to_owned();
                (key, secret)
            })
            .collect();
        let stop = AtomicBool::new(false);
        let answered = AtomicU64::new(0);
        thread::scope(|s| {
            for t in 0..12 {
                let (apps, keys, stop, answered) = (&apps, &keys, &stop, &answered);
                s.spawn(move || {
                    let mut n = t;
                    while !stop.load(Ordering::Relaxed) {
                        let reply = apps[n % 2].verify(&keys[n % keys.len()].1);
                        assert!(
                            reply.status == 200 || reply.status == 401,
                            "verify answered {}: {}",
                            reply.status,
                            reply.text()
                        );
                        answered.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                });
            }
            // While they verify: delete one key, then remove the owner.
            let (doomed, _) = &keys[0];
            let reply = apps[round % 2].delete_key(doomed["id"].as_str().unwrap());
            assert_eq!(reply.status, 204, "delete: {}", reply.text());
            let body = user_removed_event(&owner).to_string();
            let reply =
                apps[(round + 1) % 2].deliver(&new_webhook_id(), now_unix(), body.as_bytes());
            assert_eq!(reply.status, 200, "removal: {}", reply.text());
            stop.store(true, Ordering::Relaxed);
        });
        assert!(answered.load(Ordering::Relaxed) > 0);
        for (_, secret) in &keys {
            for app in &apps {
                assert_eq!(app.verify(secret).status, 401, "a removed key verifies");
            }
        }
    }
}

/// One instance killed (SIGKILL) while both serve verifies: the other keeps
/// answering, every `200` either instance gave is in the audit trail, and a
/// new instance started in its place serves the same keys.
#[test]
fn an_instance_killed_while_serving_loses_no_answered_use() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let [a, b] = pair(&redis, &sqld);
    let (key, secret) = b.create_key("survivor");
    let id = key["id"].as_str().unwrap().to_owned();
    let ok = AtomicU64::new(0);
    let killed = AtomicBool::new(false);
    let b_after_kill = AtomicU64::new(0);
    thread::scope(|s| {
        for t in 0..4 {
            let (a, b, secret, ok, killed, b_after_kill) =
                (&a, &b, &secret, &ok, &killed, &b_after_kill);
            s.spawn(move || {
                for n in 0..60 {
                    let through_a = (n + t) % 2 == 0;
                    if through_a && killed.load(Ordering::SeqCst) {
                        continue;
                    }
                    let was_killed = killed.load(Ordering::SeqCst);
                    let app = if through_a { a } else { b };
                    let sent = app
                        .agent()
                        .get(app.url("/api/verify"))
                        .header("authorization", &format!("Bearer {secret}"))
                        .call();
                    match sent.map(|r| r.status().as_u16()) {
                        Ok(200) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            if !through_a && was_killed {
                                b_after_kill.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        // A request to A when it died: no answer.
                        Err(_) if through_a => {}
                        other => panic!(
                            "verify through {}: {other:?}",
                            if through_a { "A" } else { "B" }
                        ),
                    }
                }
            });
        }
        // Kill A once some uses went through.
        while ok.load(Ordering::SeqCst) < 40 {
            thread::yield_now();
        }
        kill(&a);
        killed.store(true, Ordering::SeqCst);
    });
    assert!(
        b_after_kill.load(Ordering::SeqCst) > 0,
        "B served after A died"
    );
    let answered = ok.load(Ordering::SeqCst) as usize;
    let recorded = b.audit_all(&format!("key_id={id}&action=key.used")).len();
    // Requests in flight to A when it died may have been recorded without
    // an answer (at most one per thread); no answered use is missing.
    assert!(
        (answered..=answered + 4).contains(&recorded),
        "{answered} uses answered 200, {recorded} recorded"
    );
    let c = instance(&redis, &sqld);
    assert_eq!(c.verify(&secret).status, 200);
    assert_eq!(c.get_key(&id).status, 200);
}
