//! Storage for tests: an in-memory key-value store, wrappers that fail a
//! chosen call (to test what each write order leaves behind), and — in this
//! crate's own tests — SQLite through rusqlite, which behaves like Spin's
//! (one statement per call, the same error texts).
//!
//! Compiled for this crate's tests and with the `testing` feature; rusqlite
//! is a dev-dependency only, so it never reaches the Wasm build.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::store::{KeyValue, Rows, Sql, SqlValue, StoreError};

#[derive(Debug, Default)]
pub struct MemoryKeyValue {
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl MemoryKeyValue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn keys(&self) -> Vec<String> {
        self.entries.borrow().keys().cloned().collect()
    }
}

impl KeyValue for MemoryKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    Get,
    Set,
    Delete,
}

/// A rule: fail the `nth` (1-based, counted from when the rule was added)
/// call that matches.
#[derive(Debug)]
struct Rule<M> {
    matches: M,
    remaining: usize,
}

fn should_fail<M>(rules: &RefCell<Vec<Rule<M>>>, matches: impl Fn(&M) -> bool) -> bool {
    let mut rules = rules.borrow_mut();
    let mut fail = false;
    rules.retain_mut(|rule| {
        if !matches(&rule.matches) {
            return true;
        }
        rule.remaining -= 1;
        if rule.remaining == 0 {
            fail = true;
            false
        } else {
            true
        }
    });
    fail
}

/// Wraps a [`KeyValue`], records every call, and fails the calls it is told
/// to (before they reach the inner store, so the failed write did not happen).
#[derive(Debug)]
pub struct FailingKeyValue<K> {
    inner: K,
    rules: RefCell<Vec<Rule<KvOp>>>,
    log: RefCell<Vec<(KvOp, String)>>,
}

impl<K: KeyValue> FailingKeyValue<K> {
    pub fn new(inner: K) -> Self {
        Self {
            inner,
            rules: RefCell::default(),
            log: RefCell::default(),
        }
    }

    /// Fail the `nth` (1-based) `op` call from now on.
    pub fn fail_nth(&self, op: KvOp, nth: usize) {
        assert!(nth >= 1);
        self.rules.borrow_mut().push(Rule {
            matches: op,
            remaining: nth,
        });
    }

    /// Every call so far (failed ones included), with its key.
    pub fn calls(&self) -> Vec<(KvOp, String)> {
        self.log.borrow().clone()
    }

    pub fn clear_calls(&self) {
        self.log.borrow_mut().clear();
    }

    pub fn inner(&self) -> &K {
        &self.inner
    }

    fn check(&self, op: KvOp, key: &str) -> Result<(), StoreError> {
        self.log.borrow_mut().push((op, key.to_owned()));
        if should_fail(&self.rules, |o| *o == op) {
            Err(StoreError::new(format!("injected failure of {op:?} {key}")))
        } else {
            Ok(())
        }
    }
}

impl<K: KeyValue> KeyValue for FailingKeyValue<K> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check(KvOp::Get, key)?;
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check(KvOp::Set, key)?;
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check(KvOp::Delete, key)?;
        self.inner.delete(key)
    }
}

/// Wraps a [`Sql`], records every statement, and fails the statements it is
/// told to (before they run).
#[derive(Debug)]
pub struct FailingSql<S> {
    inner: S,
    rules: RefCell<Vec<Rule<String>>>,
    log: RefCell<Vec<String>>,
}

impl<S: Sql> FailingSql<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rules: RefCell::default(),
            log: RefCell::default(),
        }
    }

    /// Fail the `nth` (1-based) statement from now on whose SQL contains `pattern`.
    pub fn fail_nth_matching(&self, pattern: &str, nth: usize) {
        assert!(nth >= 1);
        self.rules.borrow_mut().push(Rule {
            matches: pattern.to_owned(),
            remaining: nth,
        });
    }

    /// Every statement so far (failed ones included).
    pub fn statements(&self) -> Vec<String> {
        self.log.borrow().clone()
    }

    pub fn clear_statements(&self) {
        self.log.borrow_mut().clear();
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Sql> Sql for FailingSql<S> {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        self.log.borrow_mut().push(sql.to_owned());
        if should_fail(&self.rules, |pattern| sql.contains(pattern.as_str())) {
            return Err(StoreError::new("injected failure: disk I/O error"));
        }
        self.inner.execute(sql, params)
    }
}

#[cfg(test)]
pub use sqlite::SqliteSql;

#[cfg(test)]
mod sqlite {
    use rusqlite::types::{ToSqlOutput, ValueRef};

    use super::*;

    /// An in-memory SQLite database, executed as Spin (and keygate-host) do:
    /// `prepare` (which refuses several statements) and collect every row.
    pub struct SqliteSql {
        conn: rusqlite::Connection,
    }

    impl SqliteSql {
        pub fn new() -> Self {
            Self {
                conn: rusqlite::Connection::open_in_memory().expect("in-memory SQLite"),
            }
        }

        /// A database file, opened as Spin opens one: SQLite's defaults.
        pub fn open(path: &std::path::Path) -> Self {
            Self {
                conn: rusqlite::Connection::open(path).expect("SQLite file"),
            }
        }
    }

    impl Default for SqliteSql {
        fn default() -> Self {
            Self::new()
        }
    }

    struct Param<'a>(&'a SqlValue);

    impl rusqlite::ToSql for Param<'_> {
        fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
            Ok(ToSqlOutput::Borrowed(match self.0 {
                SqlValue::Integer(i) => ValueRef::Integer(*i),
                SqlValue::Real(r) => ValueRef::Real(*r),
                SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
                SqlValue::Blob(b) => ValueRef::Blob(b),
                SqlValue::Null => ValueRef::Null,
            }))
        }
    }

    impl Sql for SqliteSql {
        fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
            let mut stmt = self.conn.prepare(sql).map_err(StoreError::new)?;
            let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(StoreError::new)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(StoreError::new)? {
                let values = (0..columns.len())
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            ValueRef::Null => SqlValue::Null,
                            ValueRef::Integer(i) => SqlValue::Integer(i),
                            ValueRef::Real(r) => SqlValue::Real(r),
                            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into()),
                            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(StoreError::new)?;
                out.push(values);
            }
            Ok(Rows { columns, rows: out })
        }
    }

    #[test]
    fn behaves_like_spin_for_errors() {
        let sql = SqliteSql::new();
        assert!(sql.execute("SELECT 1; SELECT 2", &[]).is_err());
        let e = sql.execute("SELECT * FROM nope", &[]).unwrap_err();
        assert!(e.is_missing_schema(), "{e}");
    }
}
