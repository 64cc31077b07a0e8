//! `spin:sqlite/sqlite@3.0.0` and `fermyon:spin/sqlite@2.0.0` as a component sees them.

use keygate_tests::{Json, RunnerConfig, json};

fn run(runner: &keygate_tests::Runner, endpoint: &str, statements: Json) -> (u16, Json) {
    let reply = runner.post_json(endpoint, &json!({ "statements": statements }));
    (reply.status, reply.json())
}

#[test]
fn every_value_type_round_trips() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let (status, out) = run(
        &runner,
        "/probe/sql/default",
        json!([
            {"sql": "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)"},
            {"sql": "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
             "params": [{"integer": -9007199254740993i64}, {"real": 2.5}, {"text": "héllo ✓"}, {"blob": [0, 1, 254, 255]}, "null"]},
            {"sql": "INSERT INTO t (i) VALUES (?)", "params": [{"integer": 7}]},
            {"sql": "SELECT i, r, s, b, n FROM t ORDER BY rowid"},
        ]),
    );
    assert_eq!(status, 200, "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results[1]["changes"], 1);
    assert_eq!(results[2]["last_insert_rowid"], 2);
    let select = &results[3];
    assert_eq!(select["columns"], json!(["i", "r", "s", "b", "n"]));
    assert_eq!(
        select["rows"],
        json!([
            [{"integer": -9007199254740993i64}, {"real": 2.5}, {"text": "héllo ✓"}, {"blob": [0, 1, 254, 255]}, "null"],
            [{"integer": 7}, "null", "null", "null", "null"],
        ])
    );
}

#[test]
fn older_interface_sees_the_same_database() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let (status, _) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "CREATE TABLE kv (k TEXT PRIMARY KEY, v)"}, {"sql": "INSERT INTO kv VALUES ('a', 1)"}]),
    );
    assert_eq!(status, 200);
    let (status, out) = run(
        &runner,
        "/probe/sql2/default",
        json!([{"sql": "INSERT INTO kv VALUES (?, ?)", "params": [{"text": "b"}, {"real": 0.5}]},
               {"sql": "SELECT k, v FROM kv ORDER BY k"}]),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["results"][1]["rows"],
        json!([[{"text": "a"}, {"integer": 1}], [{"text": "b"}, {"real": 0.5}]])
    );
}

#[test]
fn statement_errors_are_reported_to_the_guest() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let (status, out) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "CREATE TABLE u (x UNIQUE)"}, {"sql": "INSERT INTO u VALUES (1)"}, {"sql": "INSERT INTO u VALUES (1)"}]),
    );
    assert_eq!(status, 400);
    let error = out["results"][2]["error"].as_str().unwrap();
    assert!(error.contains("Io") && error.contains("UNIQUE"), "{error}");
    let (_, out) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "SELEKT nonsense"}]),
    );
    assert!(
        out["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("syntax"),
        "{out}"
    );
}

#[test]
fn transaction_left_open_by_a_request_is_rolled_back() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "CREATE TABLE t (x)"}]),
    );
    let (status, _) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "BEGIN"}, {"sql": "INSERT INTO t VALUES (1)"}]),
    );
    assert_eq!(status, 200);
    let (_, out) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "SELECT count(*) FROM t"}]),
    );
    assert_eq!(out["results"][0]["rows"], json!([[{"integer": 0}]]));
}

#[test]
fn data_survives_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let config = RunnerConfig::probe(&state);
    let runner = config.start();
    run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "CREATE TABLE t (x)"}, {"sql": "INSERT INTO t VALUES ('kept')"}]),
    );
    assert!(runner.terminate().0.success());
    assert!(
        config.state_dir.join("sqlite_db.db").is_file(),
        "Spin's default file name"
    );
    let runner = config.start();
    let (_, out) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "SELECT x FROM t"}]),
    );
    assert_eq!(out["results"][0]["rows"], json!([[{"text": "kept"}]]));
}

#[test]
fn ungranted_database_is_access_denied() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let (status, out) = run(&runner, "/probe/sql/other", json!([{"sql": "SELECT 1"}]));
    assert_eq!((status, out["error"].as_str()), (403, Some("AccessDenied")));
    let (status, out) = run(
        &runner,
        "/ungranted/sql/default",
        json!([{"sql": "SELECT 1"}]),
    );
    assert_eq!((status, out["error"].as_str()), (403, Some("AccessDenied")));
    let (status, out) = run(
        &runner,
        "/ungranted/sql2/default",
        json!([{"sql": "SELECT 1"}]),
    );
    assert_eq!((status, out["error"].as_str()), (403, Some("AccessDenied")));
}

/// As on Spin, where every `open` is a fresh SQLite connection: what one
/// request set on its connection is gone for the next, and a fresh
/// connection has SQLite's defaults (the file's journal, `synchronous =
/// FULL`), so a component that forgets its settings is caught here too.
#[test]
fn connection_settings_do_not_carry_over_to_the_next_request() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let settings = json!([
        {"sql": "PRAGMA journal_mode"},
        {"sql": "PRAGMA synchronous"},
        {"sql": "PRAGMA cache_size"},
    ]);
    let (status, fresh) = run(&runner, "/probe/sql/default", settings.clone());
    assert_eq!(status, 200, "{fresh}");
    let value = |out: &Json, i: usize| out["results"][i]["rows"][0][0].clone();
    assert_eq!(
        value(&fresh, 0),
        json!({"text": "delete"}),
        "the runner chose no journal"
    );
    assert_eq!(value(&fresh, 1), json!({"integer": 2}), "FULL");

    // Several requests at once, so the pool hands out more than one connection.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let (status, out) = run(
                    &runner,
                    "/probe/sql/default",
                    json!([
                        {"sql": "PRAGMA synchronous = OFF"},
                        {"sql": "PRAGMA cache_size = 7"},
                        {"sql": "PRAGMA synchronous"},
                    ]),
                );
                assert_eq!(status, 200, "{out}");
                assert_eq!(
                    value(&out, 2),
                    json!({"integer": 0}),
                    "set on its own connection"
                );
            });
        }
    });
    for _ in 0..8 {
        let (status, later) = run(&runner, "/probe/sql/default", settings.clone());
        assert_eq!(status, 200, "{later}");
        assert_eq!(later, fresh, "a later request's connection is fresh");
    }
}

/// The journal is the file's: a component sets WAL once and every later
/// connection has it.
#[test]
fn a_journal_mode_set_by_a_component_stays_with_the_file() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let (status, out) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "PRAGMA journal_mode = WAL"}]),
    );
    assert_eq!(status, 200, "{out}");
    let (_, out) = run(
        &runner,
        "/probe/sql/default",
        json!([{"sql": "PRAGMA journal_mode"}]),
    );
    assert_eq!(out["results"][0]["rows"][0][0], json!({"text": "wal"}));
}
