//! A local SQLite file: request connections from a pool, their single
//! statement writes through the [`GroupCommit`].

use std::sync::{Arc, Mutex};

use anyhow::Result;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::checkpoint::Checkpointer;
use super::group_commit::GroupCommit;
use super::{
    BoxFuture, Database, DbConnection, QueryOutput, SqlValue, enlarge_page_cache, open_as_spin_does,
};
use crate::runtime_config::Location;

/// A local SQLite database with a small pool of open connections, and one
/// more connection that commits the requests' single-statement writes
/// together ([`GroupCommit`]).
pub struct LocalDatabase {
    pool: Arc<ConnectionPool>,
    group: Arc<GroupCommit>,
}

/// Where a database's request connections come from: up to
/// [`IDLE_CONNECTIONS`] kept open between requests, more opened under load.
struct ConnectionPool {
    location: Location,
    idle: Mutex<Vec<Connection>>,
}

/// Connections kept open between requests; more are opened under load. As
/// many as the requests that may hold one at once under load (a handle that
/// set `synchronous` holds its connection while its write waits for the
/// group): opening one costs a file open and a parse of the whole schema.
const IDLE_CONNECTIONS: usize = 32;

/// SQLite's default `synchronous` (FULL), which every fresh connection has,
/// on Spin as here.
const FRESH_SYNCHRONOUS: u8 = 2;

impl ConnectionPool {
    /// An idle connection, or a new one.
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_location(&self.location),
        }
    }

    /// Keeps `conn` for the next request, unless enough are idle already.
    /// The caller has put its settings back as a fresh connection has them.
    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }
}

impl LocalDatabase {
    pub fn open(label: &str, location: &Location) -> Result<Self> {
        let file = match location {
            Location::File(path) => Some(path),
            Location::Memory => None,
            other => anyhow::bail!("not a local SQLite location: {other:?}"),
        };
        let location = match location {
            // A named shared-cache memory database, so every pooled connection
            // sees the same data; one connection stays idle to keep it alive.
            Location::Memory => Location::File(
                format!(
                    "file:keygate-{label}-{}?mode=memory&cache=shared",
                    std::process::id()
                )
                .into(),
            ),
            file => file.clone(),
        };
        let writer = open_location(&location)?;
        enlarge_page_cache(&writer)?;
        writer.pragma_update(None, "synchronous", FRESH_SYNCHRONOUS)?;
        let writer = Arc::new(Mutex::new(writer));
        // A memory database has no WAL to checkpoint.
        let checkpoints = file
            .map(|path| Checkpointer::start(path, &writer))
            .transpose()?;
        let first = open_location(&location)?;
        Ok(Self {
            pool: Arc::new(ConnectionPool {
                location,
                idle: Mutex::new(vec![first]),
            }),
            group: Arc::new(GroupCommit::new(writer, FRESH_SYNCHRONOUS, checkpoints)),
        })
    }
}

fn open_location(location: &Location) -> Result<Connection> {
    let Location::File(path) = location else {
        unreachable!("memory is mapped to a URI")
    };
    open_as_spin_does(path)
}

impl Database for LocalDatabase {
    /// The connection is taken from the pool (or opened) only when a
    /// statement needs it, as Spin's does: a request whose writes all go to
    /// the group commit, or that never runs a statement, holds none.
    fn connect(&self) -> Result<Box<dyn DbConnection>, String> {
        Ok(Box::new(PooledConnection {
            conn: None,
            pool: self.pool.clone(),
            group: self.group.clone(),
            committed_elsewhere: None,
            may_have_local_schema: false,
            synchronous: FRESH_SYNCHRONOUS,
            settings_changed: SettingsChanged::default(),
        }))
    }
}

struct PooledConnection {
    /// Taken from `pool` at the first statement that needs it.
    conn: Option<Connection>,
    pool: Arc<ConnectionPool>,
    group: Arc<GroupCommit>,
    /// `last_insert_rowid` and `changes` of this connection's last write when
    /// the group commit ran it, so both answer as if it had run here.
    committed_elsewhere: Option<(i64, u64)>,
    /// Set once the guest ran a statement that may create state only this
    /// connection sees (a `TEMP` table, an `ATTACH`): its writes then stay
    /// here, where those names resolve.
    may_have_local_schema: bool,
    /// The guest's `synchronous` on this connection: its writes commit at
    /// this level, also when the group commit runs them.
    synchronous: u8,
    /// What the guest changed of its connection, to be undone before the
    /// next request gets it: no setting carries over to another request's
    /// connection, as none does on Spin, where every open starts fresh.
    settings_changed: SettingsChanged,
}

#[derive(Default)]
struct SettingsChanged {
    synchronous: bool,
    /// Any other setting (`PRAGMA name = …` or `PRAGMA name(…)`): such a
    /// connection is closed at the end, not handed on.
    other: bool,
}

impl PooledConnection {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("taken before use")
    }

    fn take_connection(&mut self) -> Result<(), String> {
        if self.conn.is_none() {
            let conn = self.pool.take().map_err(|e| format!("{e:#}"))?;
            // A `synchronous` set before there was a connection (below).
            if self.synchronous != FRESH_SYNCHRONOUS {
                conn.pragma_update(None, "synchronous", self.synchronous)
                    .map_err(|e| e.to_string())?;
                self.settings_changed.synchronous = true;
            }
            self.conn = Some(conn);
        }
        Ok(())
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A transaction the guest left open is rolled back, never inherited
        // by the next request.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        // Nor are its TEMP tables or attached databases: such a connection is
        // closed, as Spin's connection would be at the end of the request.
        if self.may_have_local_schema && has_local_schema(&conn) {
            return;
        }
        // Nor its settings.
        if self.settings_changed.other
            || (self.settings_changed.synchronous
                && conn
                    .pragma_update(None, "synchronous", FRESH_SYNCHRONOUS)
                    .is_err())
        {
            return;
        }
        self.pool.give_back(conn);
    }
}

impl DbConnection for PooledConnection {
    fn execute<'a>(
        &'a mut self,
        statement: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<QueryOutput, String>> {
        // `PRAGMA synchronous = <level>` before the handle has a connection
        // only says how its writes commit: kept here and applied to the
        // connection if it ever takes one, so a request that sets it and then
        // only writes (verify) still takes none from the pool.
        if self.conn.is_none()
            && let Some(level) = synchronous_setting(statement)
        {
            self.synchronous = level;
            return Box::pin(std::future::ready(Ok(QueryOutput::default())));
        }
        let dml = is_dml(statement);
        // Without a connection of its own the guest has no transaction open
        // and no TEMP table: its data change goes straight to the group.
        let groupable = dml
            && match &self.conn {
                None => true,
                Some(conn) => conn.is_autocommit() && !self.may_have_local_schema,
            };
        if !groupable {
            if let Err(e) = self.take_connection() {
                return Box::pin(std::future::ready(Err(e)));
            }
            let readonly = match self.conn().prepare_cached(statement) {
                Ok(stmt) => stmt.readonly(),
                Err(e) => return Box::pin(std::future::ready(Err(e.to_string()))),
            };
            let setting = pragma_setting(statement);
            if !readonly && !dml && setting.is_none() {
                self.may_have_local_schema = true;
            }
            let conn = self.conn();
            let rowid = conn.last_insert_rowid();
            let result = run_statement(conn, statement, params);
            match setting {
                Some(name) if name.eq_ignore_ascii_case("synchronous") => {
                    self.settings_changed.synchronous = true;
                    self.synchronous = self
                        .conn()
                        .pragma_query_value(None, "synchronous", |row| row.get(0))
                        .unwrap_or(FRESH_SYNCHRONOUS);
                }
                Some(_) => self.settings_changed.other = true,
                None => {}
            }
            if result.is_ok() && self.committed_elsewhere.is_some() {
                let conn = self.conn();
                let (mut last_rowid, mut changes) = self.committed_elsewhere.unwrap_or_default();
                if conn.last_insert_rowid() != rowid {
                    last_rowid = conn.last_insert_rowid();
                }
                if is_dml(statement) {
                    changes = conn.changes();
                }
                self.committed_elsewhere = Some((last_rowid, changes));
            }
            return Box::pin(std::future::ready(result));
        }
        let group = self.group.clone();
        let synchronous = self.synchronous;
        Box::pin(async move {
            let written = group.write(statement, params, synchronous).await?;
            let last_rowid = written.rowid.unwrap_or_else(|| self.last_insert_rowid());
            self.committed_elsewhere = Some((last_rowid, written.changes));
            Ok(written.output)
        })
    }

    fn last_insert_rowid(&self) -> i64 {
        match (self.committed_elsewhere, &self.conn) {
            (Some((rowid, _)), _) => rowid,
            (None, Some(conn)) => conn.last_insert_rowid(),
            (None, None) => 0,
        }
    }

    fn changes(&self) -> u64 {
        match (self.committed_elsewhere, &self.conn) {
            (Some((_, changes)), _) => changes,
            (None, Some(conn)) => conn.changes(),
            (None, None) => 0,
        }
    }

    fn synchronous(&self) -> Option<u8> {
        Some(self.synchronous)
    }
}

/// The level of `PRAGMA synchronous = <level>` (`0`–`3`, `OFF`, `NORMAL`,
/// `FULL`, `EXTRA`); `None` for anything else, which then runs on a real
/// connection as usual.
fn synchronous_setting(statement: &str) -> Option<u8> {
    let name = pragma_setting(statement)?;
    if !name.eq_ignore_ascii_case("synchronous") || statement.contains('.') {
        return None;
    }
    let value = statement
        .split_once('=')?
        .1
        .trim()
        .trim_end_matches(';')
        .trim();
    match value.to_ascii_uppercase().as_str() {
        "0" | "OFF" => Some(0),
        "1" | "NORMAL" => Some(1),
        "2" | "FULL" => Some(2),
        "3" | "EXTRA" => Some(3),
        _ => None,
    }
}

/// The name of the setting a `PRAGMA` statement changes (`PRAGMA name = v`,
/// `PRAGMA schema.name(v)`); `None` for other statements and for a `PRAGMA`
/// that only reads (`PRAGMA name`).
fn pragma_setting(statement: &str) -> Option<&str> {
    let rest = skip_comments(statement);
    let keyword = rest.get(..6)?;
    if !keyword.eq_ignore_ascii_case("PRAGMA") {
        return None;
    }
    let rest = rest[6..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(end);
    let name = name.rsplit('.').next().unwrap_or(name);
    let after = after.trim_start();
    (after.starts_with('=') || after.starts_with('(')).then_some(name)
}

fn has_local_schema(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT (SELECT count(*) FROM temp.sqlite_master)
              + (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp'))",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map_or(true, |n| n > 0)
}

pub(super) fn run_statement(
    conn: &Connection,
    statement: &str,
    params: &[SqlValue],
) -> Result<QueryOutput, String> {
    let mut stmt = conn.prepare_cached(statement).map_err(|e| e.to_string())?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows_out = Vec::new();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(|e| e.to_string())?;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(i) => SqlValue::Integer(i),
                ValueRef::Real(r) => SqlValue::Real(r),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
            });
        }
        rows_out.push(values);
    }
    Ok(QueryOutput {
        columns,
        rows: rows_out,
    })
}

/// `INSERT`, `UPDATE`, `DELETE` or `REPLACE`: statements that can run inside
/// someone else's transaction with exactly their own effect. Schema changes,
/// `PRAGMA`s, `VACUUM` and transaction control run on the guest's connection.
pub(super) fn is_dml(statement: &str) -> bool {
    let word = skip_comments(statement)
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|dml| word.eq_ignore_ascii_case(dml))
}

/// The statement from its first keyword on.
fn skip_comments(statement: &str) -> &str {
    let mut rest = statement.trim_start();
    loop {
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return rest;
        }
    }
}

#[cfg(test)]
mod tests {
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
}
