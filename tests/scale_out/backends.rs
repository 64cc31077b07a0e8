//! The runner's scale-out backends against real servers: key-value stores on
//! `redis-server` (`type = "redis"`) and SQLite databases on `sqld`
//! (`type = "libsql"`), first as the probe component sees them, then as
//! keygate's users do, with two runners sharing one Redis and one sqld.
//!
//! Opt-in (the servers are not part of the normal CI):
//! `cargo test -p keygate-tests --features scale-out --test scale_out_backends`.
//! Needs `redis-server` and `sqld` (see `keygate_tests::servers`); without
//! them every test fails, none passes silently.

use keygate_tests::api::*;
use keygate_tests::servers::{RedisServer, Sqld};
use keygate_tests::{Json, Runner, RunnerConfig, json};
use sha2::{Digest, Sha256};

/// Both `default`s on the servers; the probe's `other` store on Redis too.
fn runtime_config(redis: &RedisServer, sqld: &Sqld) -> String {
    format!(
        "[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis}\"\n\
         [key_value_store.other]\ntype = \"redis\"\nurl = \"{redis}\"\n\
         [sqlite_database.default]\ntype = \"libsql\"\nurl = \"{sqld}\"\ntoken = \"\"\n",
        redis = redis.url(),
        sqld = sqld.url(),
    )
}

fn probe(state: &tempfile::TempDir, redis: &RedisServer, sqld: &Sqld) -> Runner {
    RunnerConfig::probe(state)
        .runtime_config(&runtime_config(redis, sqld))
        .arg("--trace-sql")
        .start()
}

fn sql(runner: &Runner, statements: Json) -> (u16, Json) {
    let reply = runner.post_json("/probe/sql/default", &json!({ "statements": statements }));
    (reply.status, reply.json())
}

#[test]
fn key_value_on_redis_keeps_keys_as_spin_does() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let state = tempfile::tempdir().unwrap();
    let runner = probe(&state, &redis, &sqld);

    assert_eq!(runner.get("/probe/kv/default/greeting").status, 404);
    assert_eq!(
        runner.put("/probe/kv/default/greeting", b"hello").status,
        204
    );
    assert_eq!(
        runner.put("/probe/kv/default/binary", &[0, 255, 1]).status,
        204
    );
    assert_eq!(runner.get("/probe/kv/default/greeting").body, b"hello");
    assert_eq!(runner.get("/probe/kv/default/binary").body, [0, 255, 1]);
    // In Redis under the key itself: no prefix, no label.
    assert_eq!(redis.get("greeting").as_deref(), Some(&b"hello"[..]));
    assert_eq!(redis.get("binary").as_deref(), Some(&[0, 255, 1][..]));
    // A key written by someone else is seen, and get-keys lists the server's keys.
    redis.command(&[b"SET", b"from-outside", b"x"]);
    let mut keys: Vec<String> =
        serde_json::from_value(runner.get("/probe/kv/default").json()["keys"].clone()).unwrap();
    keys.sort();
    assert_eq!(keys, ["binary", "from-outside", "greeting"]);
    // Two labels on one server share its keys, as on Spin.
    assert_eq!(runner.get("/probe/kv/other/greeting").body, b"hello");

    assert_eq!(runner.delete("/probe/kv/default/greeting").status, 204);
    assert_eq!(redis.get("greeting"), None);
    assert_eq!(runner.get("/probe/kv/default/greeting").status, 404);
    assert_eq!(
        runner.delete("/probe/kv/default/greeting").status,
        204,
        "deleting a missing key is fine"
    );
}

#[test]
fn sqlite_on_sqld_round_trips_values_and_transactions() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let state = tempfile::tempdir().unwrap();
    let runner = probe(&state, &redis, &sqld);

    let (status, out) = sql(
        &runner,
        json!([
            {"sql": "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)"},
            {"sql": "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
             "params": [{"integer": -9007199254740993i64}, {"real": 2.5}, {"text": "héllo ✓"}, {"blob": [0, 1, 254, 255]}, "null"]},
            {"sql": "SELECT i, r, s, b, n FROM t"},
        ]),
    );
    assert_eq!(status, 200, "{out}");
    let results = &out["results"];
    assert_eq!(results[2]["columns"], json!(["i", "r", "s", "b", "n"]));
    assert_eq!(
        results[2]["rows"],
        json!([[{"integer": -9007199254740993i64}, {"real": 2.5}, {"text": "héllo ✓"}, {"blob": [0, 1, 254, 255]}, "null"]])
    );
    // Spin's libSQL client reports neither (see sqlite/libsql.rs).
    assert_eq!(
        (&results[1]["changes"], &results[1]["last_insert_rowid"]),
        (&json!(0), &json!(0))
    );
    // The row is in sqld, as any other client sees it.
    assert_eq!(
        sqld.rows("SELECT s FROM t", &[]),
        [vec![Sqld::text("héllo ✓")]]
    );

    // A transaction stays on the connection's stream: rolled back, then committed.
    let (status, out) = sql(
        &runner,
        json!([
            {"sql": "BEGIN"},
            {"sql": "INSERT INTO t (i) VALUES (1)"},
            {"sql": "SELECT count(*) FROM t"},
            {"sql": "ROLLBACK"},
            {"sql": "BEGIN IMMEDIATE"},
            {"sql": "INSERT INTO t (i) VALUES (2)"},
            {"sql": "COMMIT"},
        ]),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["results"][2]["rows"], json!([[{"integer": 2}]]));
    assert_eq!(
        sqld.rows("SELECT i FROM t WHERE i > 0 ORDER BY i", &[]),
        [vec![json!({"type": "integer", "value": "2"})]]
    );
    // --trace-sql: libSQL has no `synchronous` level to show.
    runner.wait_for_log("synchronous=- ok: COMMIT");
}

#[test]
fn statement_errors_reach_the_guest_as_on_spin() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let state = tempfile::tempdir().unwrap();
    let runner = probe(&state, &redis, &sqld);
    let error = |statement: &str| {
        let (status, out) = sql(&runner, json!([{ "sql": statement }]));
        assert_eq!(status, 400, "{out}");
        out["results"][0]["error"].as_str().unwrap().to_string()
    };
    let e = error("SELECT * FROM missing");
    assert!(
        e.starts_with("Io(\"Hrana: `cursor error: `error at step 0: (error code: ")
            && e.contains("`SQLite error: no such table: missing```"),
        "{e}"
    );
    // sqld keeps these settings to itself; Spin's libSQL client refuses
    // them before sending, in the words keygate looks for.
    let e = error("PRAGMA journal_mode = WAL");
    assert_eq!(e, "Io(\"unsupported statement\")");
    // The runner goes on serving.
    let (status, out) = sql(&runner, json!([{"sql": "SELECT 1"}]));
    assert_eq!(
        (status, &out["results"][0]["rows"]),
        (200, &json!([[{"integer": 1}]]))
    );
}

/// The app with its stores on `redis` and `sqld`, set up as a deployment
/// would be.
fn app(redis: &RedisServer, sqld: &Sqld) -> App {
    let config = runtime_config(redis, sqld);
    App::start_with(|c| c.runtime_config(&config))
}

/// The verify index entry of `secret` in Redis: `key:` and its SHA-256.
fn index_key(secret: &str) -> String {
    format!("key:{:x}", Sha256::digest(secret.as_bytes()))
}

#[test]
fn the_app_keeps_its_keys_in_redis_and_sqld() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let app = app(&redis, &sqld);
    let (key, secret) = app.create_key("deploy-bot");
    let listed = app.list_all("");
    assert_eq!(ids(&listed), [key["id"].as_str().unwrap()]);
    let verified = expect_json(&app.verify(&secret), 200);
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["key_id"], key["id"]);

    // The data is where the runtime config says.
    let rows = sqld.rows(
        "SELECT name, key_hash FROM api_keys WHERE id = ?",
        &[Sqld::text(key["id"].as_str().unwrap())],
    );
    let hash = format!("{:x}", Sha256::digest(secret.as_bytes()));
    assert_eq!(rows, [vec![Sqld::text("deploy-bot"), Sqld::text(&hash)]]);
    assert_eq!(redis.keys("key:*"), [index_key(&secret)]);
    assert!(
        redis
            .get(&index_key(&secret))
            .is_some_and(|v| !v.is_empty())
    );
}

/// A statement sqld refuses, and sqld gone altogether, are `503`s the
/// caller can retry, never a crash; with the server back, all is as before.
#[test]
fn backend_failures_are_503s_and_the_app_recovers() {
    let (redis, mut sqld) = (RedisServer::start(), Sqld::start());
    let app = app(&redis, &sqld);
    let (key, secret) = app.create_key("before");

    sqld.execute(
        "CREATE TRIGGER refuse_keys BEFORE INSERT ON api_keys \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        &[],
    )
    .unwrap();
    assert_problem(
        &app.create(ALICE, &json!({"name": "refused"})),
        503,
        "storage_unavailable",
    );
    let log = app.wait_for_log("refused by the test");
    assert!(
        log.contains("keygate: storage failure:") && log.contains("Hrana: `cursor error:"),
        "{log}"
    );
    assert_eq!(app.get("/api/health").status, 200, "still serving");
    sqld.execute("DROP TRIGGER refuse_keys", &[]).unwrap();

    sqld.stop();
    let reply = app.mgmt("GET", "/api/keys").send();
    assert_problem(&reply, 503, "storage_unavailable");
    app.wait_for_log("Hrana: `http error: `");
    sqld.restart();
    assert_eq!(ids(&app.list_all("")), [key["id"].as_str().unwrap()]);
    assert_eq!(expect_json(&app.verify(&secret), 200)["valid"], true);
    let (created, _) = app.create_key("after");
    assert_eq!(app.list_all("").len(), 2, "{created}");
}

#[test]
fn two_runners_on_one_redis_and_sqld_share_their_keys() {
    let (redis, sqld) = (RedisServer::start(), Sqld::start());
    let (a, b) = (app(&redis, &sqld), app(&redis, &sqld));

    let (key, secret) = a.create_key("made-on-a");
    assert_eq!(ids(&b.list_all("")), [key["id"].as_str().unwrap()]);
    let verified = expect_json(&b.verify(&secret), 200);
    assert_eq!(verified["key_id"], key["id"], "{verified}");

    let (other, other_secret) = b.create_key("made-on-b");
    assert_eq!(a.list_all("").len(), 2);
    assert_eq!(
        expect_json(&a.verify(&other_secret), 200)["key_id"],
        other["id"]
    );

    // Deleted on one, refused on the other.
    assert_eq!(b.delete_key(key["id"].as_str().unwrap()).status, 204);
    assert_key_rejected(&a.verify(&secret), "unknown_key");
    assert_eq!(redis.keys("key:*"), [index_key(&other_secret)]);
}
