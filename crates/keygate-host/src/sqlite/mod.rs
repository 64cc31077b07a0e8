//! SQLite capability: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0` for components, backed by databases behind the
//! [`Database`] trait (a local file here; a libSQL server would be another).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, Result};
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
mod local;

pub use checkpoint::Checkpointer;
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
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

pub(super) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
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

    /// `execute` of both interface versions, under the fault switch.
    async fn sqlite_execute(
        &mut self,
        handle: &Resource<OpenConnection>,
        statement: &str,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<QueryOutput, Failure>> {
        let faults = self.component.faults.clone();
        let run = async {
            let conn = self.sqlite_conn(handle)?;
            conn.0
                .execute(statement, &params)
                .await
                .map_err(Failure::Io)
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
