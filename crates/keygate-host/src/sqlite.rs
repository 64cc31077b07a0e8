//! SQLite capability: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0` for components, backed by databases behind the
//! [`Database`] trait (a local file here; a libSQL server would be another).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;
use crate::faults::{Call, guard};
use crate::key_value::describe;
use crate::runtime_config::Location;
use crate::state::RequestState;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

#[derive(Debug, Default, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// A labelled database: hands out connections.
pub trait Database: Send + Sync {
    fn connect(&self) -> Result<Box<dyn DbConnection>, String>;
}

/// One connection, held by a guest for as long as its handle lives, so a
/// transaction it opens with `BEGIN` stays on it.
pub trait DbConnection: Send {
    fn execute(&mut self, statement: &str, params: &[SqlValue]) -> Result<QueryOutput, String>;
    fn last_insert_rowid(&self) -> i64;
    fn changes(&self) -> u64;
}

/// Opens a SQLite file the way both capabilities want it: WAL, so readers do
/// not wait for writers and data survives a restart; a busy handler so
/// concurrent writers queue instead of failing.
pub fn open_sqlite_file(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    configure(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// How a connection waits for another's write lock: about 5 s in all, as a
/// busy timeout of 5 s would. SQLite's own handler sleeps 1, 2, 5, 10… ms
/// between tries, on a runtime worker thread, while a write here holds the
/// lock for tens of microseconds; short pauses first waste far less.
fn wait_for_lock(attempt: i32) -> bool {
    let pause = match attempt {
        0..100 => std::time::Duration::from_micros(20),
        100..200 => std::time::Duration::from_micros(200),
        200..5_200 => std::time::Duration::from_millis(1),
        _ => return false,
    };
    std::thread::sleep(pause);
    true
}

/// A local SQLite database with a small pool of open connections.
pub struct LocalDatabase {
    location: Location,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// Connections kept open between requests; more are opened under load.
const IDLE_CONNECTIONS: usize = 8;

impl LocalDatabase {
    pub fn open(label: &str, location: &Location) -> Result<Self> {
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
        let db = Self {
            location,
            idle: Arc::default(),
        };
        let first = db.open_connection()?;
        db.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(first);
        Ok(db)
    }

    fn open_connection(&self) -> Result<Connection> {
        let Location::File(path) = &self.location else {
            unreachable!("memory is mapped to a URI")
        };
        if path.to_string_lossy().starts_with("file:") {
            let conn = Connection::open(path)?;
            configure(&conn)?;
            Ok(conn)
        } else {
            open_sqlite_file(path)
        }
    }
}

impl Database for LocalDatabase {
    fn connect(&self) -> Result<Box<dyn DbConnection>, String> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open_connection().map_err(|e| format!("{e:#}"))?,
        };
        Ok(Box::new(PooledConnection {
            conn: Some(conn),
            idle: self.idle.clone(),
        }))
    }
}

struct PooledConnection {
    conn: Option<Connection>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl PooledConnection {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
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
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }
}

impl DbConnection for PooledConnection {
    fn execute(&mut self, statement: &str, params: &[SqlValue]) -> Result<QueryOutput, String> {
        let conn = self.conn();
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

    fn last_insert_rowid(&self) -> i64 {
        self.conn().last_insert_rowid()
    }

    fn changes(&self) -> u64 {
        self.conn().changes()
    }
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
            SqlValue::Null => ValueRef::Null,
        }))
    }
}

/// Opens each database the runtime configuration defines.
pub fn open_databases(
    config: &BTreeMap<String, Location>,
) -> Result<BTreeMap<String, Arc<dyn Database>>> {
    config
        .iter()
        .map(|(label, location)| {
            let db = LocalDatabase::open(label, location)
                .with_context(|| format!("sqlite database `{label}` at {}", describe(location)))?;
            Ok((label.clone(), Arc::new(db) as Arc<dyn Database>))
        })
        .collect()
}

/// A connection a guest has opened: the resource behind `connection` handles
/// of both interface versions.
pub struct OpenConnection(Box<dyn DbConnection>);

/// The errors both interface versions share, before mapping to either.
enum Failure {
    AccessDenied,
    InvalidConnection,
    Io(String),
}

impl RequestState {
    fn sqlite_open(&mut self, database: &str) -> Result<Resource<OpenConnection>, Failure> {
        let Some(db) = self.component.sqlite_databases.get(database) else {
            return Err(Failure::AccessDenied);
        };
        let conn = db.connect().map_err(Failure::Io)?;
        self.table
            .push(OpenConnection(conn))
            .map_err(|e| Failure::Io(e.to_string()))
    }

    fn sqlite_conn(
        &mut self,
        handle: &Resource<OpenConnection>,
    ) -> Result<&mut OpenConnection, Failure> {
        self.table
            .get_mut(handle)
            .map_err(|_| Failure::InvalidConnection)
    }
}

macro_rules! value_conversions {
    ($m:ident) => {
        impl From<$m::Value> for SqlValue {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => SqlValue::Integer(i),
                    $m::Value::Real(r) => SqlValue::Real(r),
                    $m::Value::Text(t) => SqlValue::Text(t),
                    $m::Value::Blob(b) => SqlValue::Blob(b),
                    $m::Value::Null => SqlValue::Null,
                }
            }
        }

        impl From<SqlValue> for $m::Value {
            fn from(v: SqlValue) -> Self {
                match v {
                    SqlValue::Integer(i) => $m::Value::Integer(i),
                    SqlValue::Real(r) => $m::Value::Real(r),
                    SqlValue::Text(t) => $m::Value::Text(t),
                    SqlValue::Blob(b) => $m::Value::Blob(b),
                    SqlValue::Null => $m::Value::Null,
                }
            }
        }

        impl From<QueryOutput> for $m::QueryResult {
            fn from(out: QueryOutput) -> Self {
                $m::QueryResult {
                    columns: out.columns,
                    rows: out
                        .rows
                        .into_iter()
                        .map(|values| $m::RowResult {
                            values: values.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl From<Failure> for $m::Error {
            fn from(f: Failure) -> Self {
                match f {
                    Failure::AccessDenied => $m::Error::AccessDenied,
                    Failure::InvalidConnection => $m::Error::InvalidConnection,
                    Failure::Io(message) => $m::Error::Io(message),
                }
            }
        }

        impl $m::Host for RequestState {}
    };
}

value_conversions!(v2);
value_conversions!(v3);

impl v3::HostConnection for RequestState {
    fn open(&mut self, database: String) -> Result<Resource<OpenConnection>, v3::Error> {
        Ok(self.sqlite_open(&database)?)
    }

    fn execute(
        &mut self,
        handle: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params: Vec<SqlValue> = parameters.into_iter().map(Into::into).collect();
        let faults = self.component.faults.clone();
        guard(
            faults.as_deref(),
            Call::SqliteExecute,
            &statement,
            v3::Error::Io,
            || {
                let conn = self.sqlite_conn(&handle)?;
                conn.0
                    .execute(&statement, &params)
                    .map(Into::into)
                    .map_err(v3::Error::Io)
            },
        )
    }

    fn last_insert_rowid(&mut self, handle: Resource<OpenConnection>) -> i64 {
        self.sqlite_conn(&handle)
            .map(|c| c.0.last_insert_rowid())
            .unwrap_or(0)
    }

    fn changes(&mut self, handle: Resource<OpenConnection>) -> u64 {
        self.sqlite_conn(&handle)
            .map(|c| c.0.changes())
            .unwrap_or(0)
    }

    fn drop(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl v2::HostConnection for RequestState {
    fn open(&mut self, database: String) -> Result<Resource<OpenConnection>, v2::Error> {
        Ok(self.sqlite_open(&database)?)
    }

    fn execute(
        &mut self,
        handle: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params: Vec<SqlValue> = parameters.into_iter().map(Into::into).collect();
        let faults = self.component.faults.clone();
        guard(
            faults.as_deref(),
            Call::SqliteExecute,
            &statement,
            v2::Error::Io,
            || {
                let conn = self.sqlite_conn(&handle)?;
                conn.0
                    .execute(&statement, &params)
                    .map(Into::into)
                    .map_err(v2::Error::Io)
            },
        )
    }

    fn drop(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_type_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let db =
            LocalDatabase::open("default", &Location::File(dir.path().join("db.sqlite"))).unwrap();
        let mut c = db.connect().unwrap();
        c.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)", &[])
            .unwrap();
        let values = vec![
            SqlValue::Integer(i64::MIN),
            SqlValue::Real(1.5),
            SqlValue::Text("héllo".into()),
            SqlValue::Blob(vec![0, 255, 7]),
            SqlValue::Null,
        ];
        c.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", &values)
            .unwrap();
        assert_eq!(c.changes(), 1);
        assert_eq!(c.last_insert_rowid(), 1);
        let out = c.execute("SELECT * FROM t", &[]).unwrap();
        assert_eq!(out.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(out.rows, vec![values]);
    }

    #[test]
    fn an_open_transaction_is_rolled_back_when_the_connection_is_released() {
        let db = LocalDatabase::open("mem", &Location::Memory).unwrap();
        let mut c = db.connect().unwrap();
        c.execute("CREATE TABLE t (x)", &[]).unwrap();
        c.execute("BEGIN", &[]).unwrap();
        c.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        drop(c);
        let mut c = db.connect().unwrap();
        let out = c.execute("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(out.rows, vec![vec![SqlValue::Integer(0)]]);
    }

    #[test]
    fn statement_errors_are_reported_not_panicked() {
        let db = LocalDatabase::open("mem2", &Location::Memory).unwrap();
        let mut c = db.connect().unwrap();
        assert!(c.execute("SELEKT 1", &[]).unwrap_err().contains("syntax"));
        let e = c.execute("SELECT ?", &[]).unwrap_err();
        assert!(
            e.contains("parameters"),
            "a missing parameter is an error, as in Spin: {e}"
        );
    }
}
