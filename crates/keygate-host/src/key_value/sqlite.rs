//! The local store: Spin's default, a SQLite file (or memory) with one
//! connection, in Spin's table layout.

use std::future::ready;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension};

use super::KeyValueStore;
use crate::runtime_config::Location;
use crate::sqlite::{BoxFuture, Checkpointer, enlarge_page_cache, open_sqlite_file};

/// A store in a SQLite file, in the same table layout as Spin's default
/// (`spin_key_value(store, key, value)`), so a state directory moves between
/// keygate-host and `spin up`.
pub struct SqliteKeyValueStore {
    label: String,
    conn: Arc<Mutex<Connection>>,
    checkpoints: Option<Checkpointer>,
}

impl SqliteKeyValueStore {
    pub fn open(label: &str, location: &Location) -> Result<Self> {
        let (conn, path) = match location {
            Location::File(path) => (open_sqlite_file(path)?, Some(path)),
            Location::Memory => (Connection::open_in_memory()?, None),
            other => bail!("not a local SQLite location: {other:?}"),
        };
        enlarge_page_cache(&conn)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
        )
        .with_context(|| format!("key-value store `{label}`: cannot create its table"))?;
        let conn = Arc::new(Mutex::new(conn));
        let checkpoints = match path {
            Some(path) => Some(Checkpointer::start(path, &conn)?),
            None => None,
        };
        Ok(Self {
            label: label.to_string(),
            conn,
            checkpoints,
        })
    }

    fn wrote(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.wrote(1);
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, String> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&conn).map_err(|e| e.to_string())
    }

    fn read_value(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row((&self.label, key), |row| row.get(0))
                .optional()
        })
    }

    fn write_value(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute((&self.label, key, value))
            .map(drop)
        })?;
        self.wrote();
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), String> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute((&self.label, key))
                .map(drop)
        })?;
        self.wrote();
        Ok(())
    }

    fn contains(&self, key: &str) -> Result<bool, String> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
            )?
            .query_row((&self.label, key), |row| row.get(0))
        })
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        self.with(|c| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                .query_map([&self.label], |row| row.get(0))?
                .collect()
        })
    }
}

/// Each call runs at once on the calling thread (a few microseconds under
/// the store's lock), as before the trait became async: the futures are ready.
impl KeyValueStore for SqliteKeyValueStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(ready(self.read_value(key)))
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(ready(self.write_value(key, value)))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(ready(self.remove(key)))
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(ready(self.contains(key)))
    }

    fn get_keys(&self) -> BoxFuture<'_, Result<Vec<String>, String>> {
        Box::pin(ready(self.keys()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_round_trips_and_isolates_labels() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("kv.db"));
        let a = SqliteKeyValueStore::open("a", &location).unwrap();
        let b = SqliteKeyValueStore::open("b", &location).unwrap();
        a.set("k", b"one").await.unwrap();
        a.set("k", b"two").await.unwrap();
        a.set("j", b"").await.unwrap();
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(a.get("j").await.unwrap().as_deref(), Some(&b""[..]));
        assert!(a.exists("k").await.unwrap());
        assert_eq!(a.get_keys().await.unwrap(), ["j", "k"]);
        assert_eq!(
            b.get("k").await.unwrap(),
            None,
            "labels do not see each other's keys"
        );
        a.delete("k").await.unwrap();
        a.delete("never-there").await.unwrap();
        assert!(!a.exists("k").await.unwrap());
        drop((a, b));
        let reopened = SqliteKeyValueStore::open("a", &location).unwrap();
        assert_eq!(
            reopened.get_keys().await.unwrap(),
            ["j"],
            "data survives reopening the file"
        );
    }
}
