use super::*;

/// A database file in a directory that lives as long as the returned guard.
fn database_in_a_temporary_file() -> (tempfile::TempDir, Arc<LocalDatabase>) {
    let dir = tempfile::tempdir().unwrap();
    let db = LocalDatabase::open("default", &Location::File(dir.path().join("db.sqlite")));
    (dir, Arc::new(db.unwrap()))
}

#[tokio::test]
async fn every_value_type_round_trips() {
    let (_dir, db) = database_in_a_temporary_file();
    let mut c = db.connect().unwrap();
    c.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)", &[])
        .await
        .unwrap();
    let values = vec![
        SqlValue::Integer(i64::MIN),
        SqlValue::Real(1.5),
        SqlValue::Text("héllo".into()),
        SqlValue::Blob(vec![0, 255, 7]),
        SqlValue::Null,
    ];
    c.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", &values)
        .await
        .unwrap();
    assert_eq!(c.changes(), 1);
    assert_eq!(c.last_insert_rowid(), 1);
    let out = c.execute("SELECT * FROM t", &[]).await.unwrap();
    assert_eq!(out.columns, ["i", "r", "s", "b", "n"]);
    assert_eq!(out.rows, vec![values]);
}

#[tokio::test]
async fn an_open_transaction_is_rolled_back_when_the_connection_is_released() {
    let db = LocalDatabase::open("mem", &Location::Memory).unwrap();
    let mut c = db.connect().unwrap();
    c.execute("CREATE TABLE t (x)", &[]).await.unwrap();
    c.execute("BEGIN", &[]).await.unwrap();
    c.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    drop(c);
    let mut c = db.connect().unwrap();
    let out = c.execute("SELECT count(*) FROM t", &[]).await.unwrap();
    assert_eq!(out.rows, vec![vec![SqlValue::Integer(0)]]);
}

#[tokio::test]
async fn statement_errors_are_reported_not_panicked() {
    let db = LocalDatabase::open("mem2", &Location::Memory).unwrap();
    let mut c = db.connect().unwrap();
    assert!(
        c.execute("SELEKT 1", &[])
            .await
            .unwrap_err()
            .contains("syntax")
    );
    let e = c.execute("SELECT ?", &[]).await.unwrap_err();
    assert!(
        e.contains("parameters"),
        "a missing parameter is an error, as in Spin: {e}"
    );
    let e = c
        .execute("INSERT INTO missing VALUES (1)", &[])
        .await
        .unwrap_err();
    assert!(e.contains("no such table"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_each_commit_with_their_own_row_id_and_change_count() {
    let (_dir, db) = database_in_a_temporary_file();
    let mut c = db.connect().unwrap();
    c.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)",
        &[],
    )
    .await
    .unwrap();
    let writers = (0..64).map(|w| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = db.connect().unwrap();
            c.execute("INSERT INTO t (writer) VALUES (?)", &[SqlValue::Integer(w)])
                .await
                .unwrap();
            let rowid = c.last_insert_rowid();
            assert_eq!(c.changes(), 1);
            // Read-your-write on the same connection, and the row id is this write's.
            let out = c
                .execute(
                    "SELECT writer FROM t WHERE id = ?",
                    &[SqlValue::Integer(rowid)],
                )
                .await
                .unwrap();
            assert_eq!(out.rows, vec![vec![SqlValue::Integer(w)]]);
            assert_eq!((c.last_insert_rowid(), c.changes()), (rowid, 1));
            rowid
        })
    });
    let mut rowids = Vec::new();
    for writer in writers.collect::<Vec<_>>() {
        rowids.push(writer.await.unwrap());
    }
    rowids.sort();
    assert_eq!(rowids, (1..=64).collect::<Vec<i64>>());
}

/// Verify under load: every request holds a handle while its insert
/// waits for the group commit. Such handles take no pooled connection;
/// when they did, 16 requests in flight emptied the pool of 8 and every
/// further request opened (and closed) a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_that_only_write_outside_a_transaction_take_no_pooled_connection() {
    let (_dir, db) = database_in_a_temporary_file();
    let mut c = db.connect().unwrap();
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", &[])
        .await
        .unwrap();
    drop(c);
    let idle = || db.pool.idle.lock().unwrap().len();
    assert_eq!(idle(), 1);
    let mut handles: Vec<_> = (0..32).map(|_| db.connect().unwrap()).collect();
    assert_eq!(
        (handles[0].last_insert_rowid(), handles[0].changes()),
        (0, 0),
        "a handle that ran nothing answers as a fresh connection"
    );
    let writes: Vec<_> = handles
        .drain(..)
        .map(|mut c| {
            tokio::spawn(async move {
                c.execute("INSERT INTO t DEFAULT VALUES", &[])
                    .await
                    .unwrap();
                c
            })
        })
        .collect();
    for write in writes {
        handles.push(write.await.unwrap());
    }
    assert_eq!(idle(), 1, "no handle took the pooled connection");
    let mut rowids: Vec<i64> = handles.iter().map(|c| c.last_insert_rowid()).collect();
    rowids.sort();
    assert_eq!(rowids, (1..=32).collect::<Vec<i64>>());
    // The first read takes one; it goes back to the pool with the handle.
    let out = handles[0]
        .execute("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_eq!(out.rows, vec![vec![SqlValue::Integer(32)]]);
    assert_eq!(idle(), 0);
    drop(handles);
    assert_eq!(idle(), 1);
}

#[tokio::test]
async fn a_temp_table_is_written_on_its_own_connection_and_not_handed_on() {
    let db = LocalDatabase::open("mem3", &Location::Memory).unwrap();
    let mut c = db.connect().unwrap();
    c.execute("CREATE TEMP TABLE scratch (x)", &[])
        .await
        .unwrap();
    c.execute("INSERT INTO scratch VALUES (1)", &[])
        .await
        .unwrap();
    assert_eq!(c.last_insert_rowid(), 1);
    let out = c
        .execute("SELECT count(*) FROM scratch", &[])
        .await
        .unwrap();
    assert_eq!(out.rows, vec![vec![SqlValue::Integer(1)]]);
    drop(c);
    let mut next = db.connect().unwrap();
    let e = next
        .execute("SELECT * FROM scratch", &[])
        .await
        .unwrap_err();
    assert!(e.contains("no such table"), "{e}");
}

#[test]
fn only_plain_data_changes_are_grouped() {
    for dml in [
        "INSERT INTO t VALUES (1)",
        "  update t set x = 1",
        "-- why\nDELETE FROM t",
        "/* c */ REPLACE INTO t VALUES (1)",
    ] {
        assert!(is_dml(dml), "{dml}");
    }
    for other in [
        "CREATE TABLE t (x)",
        "PRAGMA user_version = 3",
        "VACUUM",
        "BEGIN",
        "SELECT 1",
        "INSERTX",
        "",
    ] {
        assert!(!is_dml(other), "{other}");
    }
}

#[test]
fn pragma_settings_are_told_from_pragma_reads() {
    for (statement, setting) in [
        ("PRAGMA synchronous = NORMAL", Some("synchronous")),
        ("  /* x */ pragma main.cache_size=-2000", Some("cache_size")),
        ("PRAGMA wal_checkpoint(TRUNCATE)", Some("wal_checkpoint")),
        ("PRAGMA user_version", None),
        ("PRAGMA synchronous", None),
        ("SELECT 1", None),
        ("INSERT INTO t VALUES (1)", None),
        ("é", None),
    ] {
        assert_eq!(pragma_setting(statement), setting, "{statement}");
    }
}

#[test]
fn synchronous_levels_are_read_from_the_setting_only() {
    for (statement, level) in [
        ("PRAGMA synchronous = NORMAL", Some(1)),
        ("pragma synchronous=off;", Some(0)),
        ("PRAGMA synchronous = 3", Some(3)),
        ("PRAGMA synchronous = 'NORMAL'", None),
        ("PRAGMA main.synchronous = 1", None),
        ("PRAGMA synchronous", None),
        ("PRAGMA cache_size = 1", None),
    ] {
        assert_eq!(synchronous_setting(statement), level, "{statement}");
    }
}

/// Set before any statement needed a connection, `synchronous` takes
/// none from the pool, and still governs the handle's writes and what
/// the handle reads back once it has a connection.
#[tokio::test]
async fn synchronous_set_first_is_kept_by_the_handle_and_applied_when_it_connects() {
    let (_dir, db) = database_in_a_temporary_file();
    let mut c = db.connect().unwrap();
    c.execute("PRAGMA synchronous = NORMAL", &[]).await.unwrap();
    assert_eq!(c.synchronous(), Some(1));
    let out = c.execute("PRAGMA synchronous", &[]).await.unwrap();
    assert_eq!(out.rows, vec![vec![SqlValue::Integer(1)]]);
    drop(c);
    let mut next = db.connect().unwrap();
    let out = next.execute("PRAGMA synchronous", &[]).await.unwrap();
    assert_eq!(out.rows, vec![vec![SqlValue::Integer(2)]], "not handed on");
}
