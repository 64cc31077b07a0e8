//! Key-value capability: `fermyon:spin/key-value@2.0.0` for components, backed
//! by stores behind the [`KeyValueStore`] trait (a local SQLite file, as Spin's
//! default; another backend such as Redis implements the same five methods).

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::key_value::{self as wit, Error};
use crate::faults::{Call, guard};
use crate::runtime_config::Location;
use crate::sqlite::{Checkpointer, enlarge_page_cache, open_sqlite_file};
use crate::state::RequestState;

/// One labelled store. Errors are messages for the guest's `error::other`.
pub trait KeyValueStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    fn delete(&self, key: &str) -> Result<(), String>;
    fn exists(&self, key: &str) -> Result<bool, String>;
    fn get_keys(&self) -> Result<Vec<String>, String>;
}

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
}

impl KeyValueStore for SqliteKeyValueStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row((&self.label, key), |row| row.get(0))
                .optional()
        })
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
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

    fn delete(&self, key: &str) -> Result<(), String> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute((&self.label, key))
                .map(drop)
        })?;
        self.wrote();
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, String> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2)",
            )?
            .query_row((&self.label, key), |row| row.get(0))
        })
    }

    fn get_keys(&self) -> Result<Vec<String>, String> {
        self.with(|c| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                .query_map([&self.label], |row| row.get(0))?
                .collect()
        })
    }
}

/// Opens the store for each label the runtime configuration defines.
pub fn open_stores(
    config: &std::collections::BTreeMap<String, Location>,
) -> Result<std::collections::BTreeMap<String, Arc<dyn KeyValueStore>>> {
    config
        .iter()
        .map(|(label, location)| {
            let store = SqliteKeyValueStore::open(label, location)
                .with_context(|| format!("key-value store `{label}` at {}", describe(location)))?;
            Ok((label.clone(), Arc::new(store) as Arc<dyn KeyValueStore>))
        })
        .collect()
}

pub(crate) fn describe(location: &Location) -> String {
    match location {
        Location::File(p) => p.display().to_string(),
        Location::Memory => "memory".to_string(),
    }
}

/// A store a guest has opened: the resource behind `store` handles.
pub struct OpenStore(Arc<dyn KeyValueStore>);

fn store(
    state: &RequestState,
    handle: &Resource<OpenStore>,
) -> Result<Arc<dyn KeyValueStore>, Error> {
    state
        .table
        .get(handle)
        .map(|s| s.0.clone())
        .map_err(|e| Error::Other(e.to_string()))
}

impl wit::Host for RequestState {}

impl wit::HostStore for RequestState {
    fn open(&mut self, label: String) -> Result<Resource<OpenStore>, Error> {
        // Spin checks the grant first, so an ungranted label never reveals
        // whether a store of that name exists.
        let Some(store) = self.component.key_value_stores.get(&label) else {
            return Err(Error::AccessDenied);
        };
        self.table
            .push(OpenStore(store.clone()))
            .map_err(|_| Error::StoreTableFull)
    }

    fn get(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let faults = self.component.faults.clone();
        guard(faults.as_deref(), Call::KvGet, &key, Error::Other, || {
            store(self, &handle)?.get(&key).map_err(Error::Other)
        })
    }

    fn set(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let faults = self.component.faults.clone();
        guard(faults.as_deref(), Call::KvSet, &key, Error::Other, || {
            store(self, &handle)?
                .set(&key, &value)
                .map_err(Error::Other)
        })
    }

    fn delete(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let faults = self.component.faults.clone();
        guard(
            faults.as_deref(),
            Call::KvDelete,
            &key,
            Error::Other,
            || store(self, &handle)?.delete(&key).map_err(Error::Other),
        )
    }

    fn exists(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let faults = self.component.faults.clone();
        guard(
            faults.as_deref(),
            Call::KvExists,
            &key,
            Error::Other,
            || store(self, &handle)?.exists(&key).map_err(Error::Other),
        )
    }

    fn get_keys(
        &mut self,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let faults = self.component.faults.clone();
        guard(faults.as_deref(), Call::KvGetKeys, "", Error::Other, || {
            store(self, &handle)?.get_keys().map_err(Error::Other)
        })
    }

    fn drop(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_store_round_trips_and_isolates_labels() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::File(dir.path().join("kv.db"));
        let a = SqliteKeyValueStore::open("a", &location).unwrap();
        let b = SqliteKeyValueStore::open("b", &location).unwrap();
        a.set("k", b"one").unwrap();
        a.set("k", b"two").unwrap();
        a.set("j", b"").unwrap();
        assert_eq!(a.get("k").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(a.get("j").unwrap().as_deref(), Some(&b""[..]));
        assert!(a.exists("k").unwrap());
        assert_eq!(a.get_keys().unwrap(), ["j", "k"]);
        assert_eq!(
            b.get("k").unwrap(),
            None,
            "labels do not see each other's keys"
        );
        a.delete("k").unwrap();
        a.delete("never-there").unwrap();
        assert!(!a.exists("k").unwrap());
        drop((a, b));
        let reopened = SqliteKeyValueStore::open("a", &location).unwrap();
        assert_eq!(
            reopened.get_keys().unwrap(),
            ["j"],
            "data survives reopening the file"
        );
    }
}
