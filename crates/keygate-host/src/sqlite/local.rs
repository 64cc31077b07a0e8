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
mod tests;
