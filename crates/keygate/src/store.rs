//! The two storage capabilities keygate needs, shaped like Spin's so the
//! component implementations are one-line mappings:
//! [`KeyValue`] ↔ `spin_sdk::key_value::Store`, [`Sql`] ↔
//! `spin_sdk::sqlite3::Connection::execute`.

use std::fmt;

/// Key-value store: the verify path's index.
pub trait KeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Deleting a missing key is not an error (as in Spin).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// SQLite: one statement per call, `?` placeholders bound to `params`.
pub trait Sql {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError>;
}

/// Mirrors `spin_sdk::sqlite3::Value`.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl SqlValue {
    pub(crate) fn text(s: impl Into<String>) -> Self {
        SqlValue::Text(s.into())
    }

    pub(crate) fn opt_text(s: Option<impl Into<String>>) -> Self {
        s.map_or(SqlValue::Null, |s| SqlValue::Text(s.into()))
    }

    pub(crate) fn opt_int(i: Option<i64>) -> Self {
        i.map_or(SqlValue::Null, SqlValue::Integer)
    }
}

/// Mirrors `spin_sdk::sqlite3::QueryResult` (rows flattened to their values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// A failed storage call. The message is for logs only: it never reaches a
/// response, and keygate never puts a secret into a storage call.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// SQLite's "no such table" or "no such column": the database has not
    /// been migrated to this version yet (verify, which does not migrate
    /// first, meets a database an older instance left).
    /// Spin flattens SQLite errors to text, so the text is all there is to go on.
    pub(crate) fn is_missing_schema(&self) -> bool {
        self.message.contains("no such table") || self.message.contains("no such column")
    }

    /// A statement the database server refuses to run for clients (libSQL's
    /// server for settings it keeps itself, such as the journal mode).
    pub(crate) fn is_unsupported_statement(&self) -> bool {
        self.message.contains("unsupported statement")
    }

    /// SQLite's `database is locked` (`SQLITE_BUSY`): another connection
    /// holds what this statement needs.
    pub(crate) fn is_locked(&self) -> bool {
        self.message.contains("database is locked") || self.message.contains("SQLITE_BUSY")
    }

    /// Refused for a busy file, nothing done: `database is locked`, or a
    /// virtual table (FTS5) that could not open for that reason, or a libSQL
    /// server's `TRANSACTION_TIMEOUT`: the server rolled the statement back
    /// after it waited 5 s for the write lock (sqld 0.24 under concurrent
    /// writers; docs/benchmarks.md 18.).
    pub(crate) fn is_busy(&self) -> bool {
        self.is_locked()
            || self.message.contains("vtable constructor failed")
            || self.message.contains("TRANSACTION_TIMEOUT")
    }

    /// The connection to a database server went away mid-statement (a
    /// libSQL server restarted, a Hrana stream expired or was dropped): the
    /// statement may or may not have run. Worded as Spin's libSQL client and
    /// keygate-host's report it.
    pub(crate) fn is_connection_lost(&self) -> bool {
        const SIGNS: [&str; 7] = [
            "stream closed",
            "stream has expired",
            "STREAM_EXPIRED",
            "stream not found",
            "http error",
            "connection closed",
            "connection reset",
        ];
        SIGNS.iter().any(|sign| self.message.contains(sign))
    }

    /// A violation of the "one live key per name" index.
    pub(crate) fn is_name_taken(&self) -> bool {
        self.message.contains("UNIQUE constraint failed")
            && self.message.contains("api_keys.name_folded")
    }

    pub(crate) fn is_service_account_name_taken(&self) -> bool {
        self.message.contains("UNIQUE constraint failed")
            && self.message.contains("service_accounts.name_folded")
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreError({:?})", self.message)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage error: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// Typed access to a result row whose column order the query fixed.
pub(crate) struct Row<'a>(pub &'a [SqlValue]);

impl Row<'_> {
    fn value(&self, i: usize) -> Result<&SqlValue, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::new(format!("row has no column {i}")))
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.value(i)? {
            SqlValue::Text(s) => Ok(s.clone()),
            other => Err(unexpected(i, "text", other)),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.value(i)? {
            SqlValue::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.value(i)? {
            SqlValue::Integer(n) => Ok(*n),
            other => Err(unexpected(i, "integer", other)),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.value(i)? {
            SqlValue::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }
}

fn unexpected(i: usize, want: &str, got: &SqlValue) -> StoreError {
    let got = match got {
        SqlValue::Integer(_) => "integer",
        SqlValue::Real(_) => "real",
        SqlValue::Text(_) => "text",
        SqlValue::Blob(_) => "blob",
        SqlValue::Null => "null",
    };
    StoreError::new(format!("column {i}: expected {want}, got {got}"))
}

impl Rows {
    pub(crate) fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|r| Row(r))
    }

    pub(crate) fn first(&self) -> Option<Row<'_>> {
        self.rows.first().map(|r| Row(r))
    }

    /// The single integer a `SELECT count(*)` or `PRAGMA` returns.
    pub(crate) fn scalar_int(&self) -> Result<i64, StoreError> {
        self.first()
            .ok_or_else(|| StoreError::new("expected one row"))?
            .int(0)
    }
}
