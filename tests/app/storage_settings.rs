//! What keygate asks of SQLite on every connection it opens. The runner, like
//! Spin, hands each request a connection with SQLite's defaults, so these
//! settings must come from the components; `--trace-sql` logs each statement
//! with the `synchronous` level it ran at.

use keygate_tests::api::{ALICE, App, BOB, expect_json};

/// One traced statement: (component, connection, synchronous, statement).
/// Every statement succeeded, but for one: a management call's first
/// statement on a fresh database finds no tables, which is what migrates it.
fn traced(log: &str) -> Vec<(String, String, String, String)> {
    let mut first_call_on_a_fresh_database = true;
    log.lines()
        .filter_map(|line| line.strip_prefix("keygate-host: sql "))
        .filter_map(|line| {
            let (head, statement) = line.split_once(": ").expect("traced line");
            let mut words = head.split(' ');
            let component = words.next().unwrap().to_owned();
            let connection = words.next().unwrap().to_owned();
            let synchronous = words.next().unwrap().to_owned();
            let ok = words.next() == Some("ok");
            let migrating = std::mem::take(&mut first_call_on_a_fresh_database);
            if !ok && migrating && statement.contains("pragma_user_version") {
                return None;
            }
            assert!(ok, "a statement failed: {line}");
            Some((component, connection, synchronous, statement.to_owned()))
        })
        .collect()
}

fn is_write(statement: &str) -> bool {
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|w| statement.starts_with(w))
}

#[test]
fn verify_records_uses_without_an_fsync_and_every_other_write_stays_fully_synced() {
    let app = App::start_with(|config| config.arg("--trace-sql"));
    let (_, secret) = app.create_key("orders-sync");
    let (other, _) = app.create_key_as(BOB, "billing");
    for _ in 0..3 {
        expect_json(&app.verify(&secret), 200);
    }
    let deleted = app.delete_key(other["id"].as_str().unwrap());
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    app.remove_user(ALICE);
    let log = app.wait_for_log("INSERT INTO webhook_deliveries");
    let statements = traced(&log);

    let verify: Vec<_> = statements.iter().filter(|s| s.0 == "verify").collect();
    let connections: std::collections::BTreeSet<_> = verify.iter().map(|s| &s.1).collect();
    assert_eq!(
        connections.len(),
        3,
        "one connection per verify: {verify:#?}"
    );
    for connection in connections {
        let sent: Vec<_> = verify
            .iter()
            .filter(|s| &s.1 == connection)
            .map(|s| (s.2.as_str(), s.3.as_str()))
            .collect();
        assert_eq!(sent.len(), 2, "the setting, then the one write: {sent:#?}");
        assert_eq!(
            sent[0],
            ("synchronous=NORMAL", "PRAGMA synchronous = NORMAL")
        );
        assert_eq!(sent[1].0, "synchronous=NORMAL");
        assert!(sent[1].1.starts_with("INSERT INTO audit_log"), "{sent:#?}");
    }

    let others: Vec<_> = statements
        .iter()
        .filter(|s| s.0 != "verify" && is_write(&s.3))
        .collect();
    for component in ["keys", "user-webhook"] {
        assert!(others.iter().any(|s| s.0 == component), "{statements:#?}");
    }
    for (component, _, synchronous, statement) in others {
        assert_eq!(
            synchronous, "synchronous=FULL",
            "{component} wrote without SQLite's full sync: {statement}"
        );
    }
}

#[test]
fn the_database_file_runs_with_a_write_ahead_log_from_the_first_request_on() {
    let app = App::start_with(|config| config.arg("--trace-sql"));
    app.create_key("orders-sync");
    let log = app.wait_for_log("INSERT INTO api_keys");
    assert!(
        traced(&log)
            .iter()
            .any(|s| s.0 == "keys" && s.3 == "PRAGMA journal_mode = WAL"),
        "{log}"
    );
    // The file's header says so (bytes 18 and 19: 2 for WAL, 1 for the
    // rollback journal), for every connection that opens it from now on.
    let header = std::fs::read(app.state_dir().join("sqlite_db.db")).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!(header[18..20], [2, 2], "the file is not in WAL mode");
}
