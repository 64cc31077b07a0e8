//! SQLite capability: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0` for components, backed by databases behind the
//! [`Database`] trait: a local file ([`LocalDatabase`], Spin's default) or a
//! libSQL server ([`LibSqlDatabase`], Spin's `type = "libsql"`).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;
use crate::faults::{Call, guard_async};
use crate::key_value::describe;
use crate::runtime_config::Location;
use crate::state::RequestState;

mod checkpoint;
mod group_commit;
mod libsql;
mod local;

pub use checkpoint::Checkpointer;
pub use libsql::LibSqlDatabase;
pub use local::LocalDatabase;

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
    /// Runs one statement. A backend may have to wait (for a group commit, a
    /// network round trip) without holding a runtime thread, hence a future.
    fn execute<'a>(
        &'a mut self,
        statement: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<QueryOutput, String>>;
    fn last_insert_rowid(&self) -> i64;
    fn changes(&self) -> u64;
    /// The `synchronous` level this connection's commits are made at now,
    /// where the backend has one (for `--trace-sql`).
    fn synchronous(&self) -> Option<u8>;
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens a SQLite file the runner itself owns (a key-value store's): WAL, so
/// readers do not wait for writers; `synchronous = NORMAL`; a busy handler
/// so concurrent writers queue instead of failing. A guest's database is
/// opened with [`open_as_spin_does`] instead.
pub fn open_sqlite_file(path: &Path) -> Result<Connection> {
    let conn = open_as_spin_does(path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

/// Opens a connection to a guest's database with SQLite's defaults, as
/// Spin's does: whatever journal the file has (a component sets WAL itself),
/// `synchronous = FULL`. What a component wants of its connection it must
/// set on every connection it opens, here as on Spin. One difference: the
/// runner's busy handler ([`wait_for_lock`]) instead of a 5 s busy timeout.
pub(super) fn open_as_spin_does(path: &Path) -> Result<Connection> {
    let is_uri = path.to_string_lossy().starts_with("file:");
    if let Some(dir) = path.parent().filter(|_| !is_uri) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_handler(Some(wait_for_lock))?;
    Ok(conn)
}

/// A 16 MiB page cache (SQLite's default is 2 MiB) for a connection whose
/// cache stays valid: one that does all the writing (the group-commit writer,
/// a key-value store's only connection). A pooled reader's cache is dropped
/// whenever another connection commits, so a big one would only hold memory.
pub fn enlarge_page_cache(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "cache_size", -16_384)?;
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
            let db = open_database(label, location)
                .with_context(|| format!("sqlite database `{label}` at {}", describe(location)))?;
            Ok((label.clone(), db))
        })
        .collect()
}

fn open_database(label: &str, location: &Location) -> Result<Arc<dyn Database>> {
    Ok(match location {
        Location::File(_) | Location::Memory => Arc::new(LocalDatabase::open(label, location)?),
        Location::LibSql { url, token } => Arc::new(LibSqlDatabase::open(url, &token.0)?),
        Location::Redis { .. } => bail!("a Redis server holds key-value stores, not SQLite"),
    })
}

/// A connection a guest has opened: the resource behind `connection` handles
/// of both interface versions, numbered for `--trace-sql`.
pub struct OpenConnection {
    conn: Box<dyn DbConnection>,
    number: u64,
}

impl OpenConnection {
    fn new(conn: Box<dyn DbConnection>) -> Self {
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Self { conn, number }
    }
}

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
            .push(OpenConnection::new(conn))
            .map_err(|e| Failure::Io(e.to_string()))
    }

    /// `execute` of both interface versions, under the fault switch.
    async fn sqlite_execute(
        &mut self,
        handle: &Resource<OpenConnection>,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<QueryOutput, Failure>> {
        let faults = self.component.faults.clone();
        let trace = self.component.trace_sql.then(|| self.component.clone());
        let run = async {
            let conn = self.sqlite_conn(handle)?;
            let result = conn
                .conn
                .execute(statement, &params)
                .await
                .map_err(Failure::Io);
            if let Some(component) = trace {
                trace_statement(&component.id, conn, statement, &result);
            }
            result
        };
        guard_async(
            faults.as_deref(),
            Call::SqliteExecute,
            statement,
            Failure::Io,
            run,
        )
        .await
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

/// `--trace-sql`: one log line per statement a guest ran, with its
/// connection and the `synchronous` level in force after it, so tests and
/// benchmarks see what each request sent and how durably it committed.
/// Statements only: parameters (hashes, names) stay out of the log.
fn trace_statement(
    component: &str,
    conn: &OpenConnection,
    statement: &str,
    result: &Result<QueryOutput, Failure>,
) {
    let synchronous = match conn.conn.synchronous() {
        Some(0) => "OFF",
        Some(1) => "NORMAL",
        Some(2) => "FULL",
        Some(3) => "EXTRA",
        _ => "-",
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!(
        "keygate-host: sql {component} connection={} synchronous={synchronous} {outcome}: {statement}",
        conn.number
    );
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

    async fn execute(
        &mut self,
        handle: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        let result = self.sqlite_execute(&handle, &statement, params).await?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    fn last_insert_rowid(&mut self, handle: Resource<OpenConnection>) -> i64 {
        self.sqlite_conn(&handle)
            .map(|c| c.conn.last_insert_rowid())
            .unwrap_or(0)
    }

    fn changes(&mut self, handle: Resource<OpenConnection>) -> u64 {
        self.sqlite_conn(&handle)
            .map(|c| c.conn.changes())
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

    async fn execute(
        &mut self,
        handle: Resource<OpenConnection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        let result = self.sqlite_execute(&handle, &statement, params).await?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    fn drop(&mut self, handle: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
