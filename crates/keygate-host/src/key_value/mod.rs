//! Key-value capability: `fermyon:spin/key-value@2.0.0` for components, backed
//! by stores behind the [`KeyValueStore`] trait: a local SQLite file
//! ([`SqliteKeyValueStore`], Spin's default) or a Redis server
//! ([`RedisKeyValueStore`], Spin's `type = "redis"`), picked per label by
//! the runtime config.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::key_value::{self as wit, Error};
use crate::faults::{Call, guard_async};
use crate::runtime_config::Location;
use crate::sqlite::BoxFuture;
use crate::state::RequestState;

mod redis;
mod sqlite;

pub use redis::RedisKeyValueStore;
pub use sqlite::SqliteKeyValueStore;

/// One labelled store. Errors are messages for the guest's `error::other`.
/// A network backend waits for its server without holding a runtime
/// thread, hence futures, as in [`crate::sqlite::DbConnection`].
pub trait KeyValueStore: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>>;
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>>;
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, String>>;
    fn get_keys(&self) -> BoxFuture<'_, Result<Vec<String>, String>>;
    /// Runs when a guest opens the store, as Spin's `Store::after_open`;
    /// never fails the open.
    fn after_open(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Opens the store for each label the runtime configuration defines. A
/// Redis store connects now, on the runtime the requests will use, so a
/// server that cannot be reached stops the start-up with its address.
pub fn open_stores(
    config: &BTreeMap<String, Location>,
) -> Result<BTreeMap<String, Arc<dyn KeyValueStore>>> {
    config
        .iter()
        .map(|(label, location)| {
            let store = open_store(label, location)
                .with_context(|| format!("key-value store `{label}` at {}", describe(location)))?;
            Ok((label.clone(), store))
        })
        .collect()
}

fn open_store(label: &str, location: &Location) -> Result<Arc<dyn KeyValueStore>> {
    Ok(match location {
        Location::File(_) | Location::Memory => {
            Arc::new(SqliteKeyValueStore::open(label, location)?)
        }
        Location::Redis { url } => {
            let runtime = tokio::runtime::Handle::try_current()
                .context("a Redis store is opened on the runner's runtime")?;
            Arc::new(runtime.block_on(RedisKeyValueStore::open(url))?)
        }
        Location::LibSql { .. } => bail!("a libSQL server holds SQLite databases, not key-value"),
    })
}

/// Where a store or database is, for messages: a URL's password is left out.
pub(crate) fn describe(location: &Location) -> String {
    match location {
        Location::File(p) => p.display().to_string(),
        Location::Memory => "memory".to_string(),
        Location::Redis { url } => format!("Redis {}", without_password(url)),
        Location::LibSql { url, .. } => format!("libSQL {}", without_password(url)),
    }
}

/// `scheme://user:secret@host` -> `scheme://user:***@host`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

/// A store a guest has opened: the resource behind `store` handles. Each
/// call takes the store out of the request's table before it awaits, so the
/// future holds no borrow of the request's state.
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
    async fn open(&mut self, label: String) -> Result<Resource<OpenStore>, Error> {
        // Spin checks the grant first, so an ungranted label never reveals
        // whether a store of that name exists.
        let Some(store) = self.component.key_value_stores.get(&label).cloned() else {
            return Err(Error::AccessDenied);
        };
        store.after_open().await;
        self.table
            .push(OpenStore(store))
            .map_err(|_| Error::StoreTableFull)
    }

    async fn get(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let faults = self.component.faults.clone();
        let store = store(self, &handle);
        let run = async { store?.get(&key).await.map_err(Error::Other) };
        guard_async(faults.as_deref(), Call::KvGet, &key, Error::Other, run).await
    }

    async fn set(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let faults = self.component.faults.clone();
        let store = store(self, &handle);
        let run = async { store?.set(&key, &value).await.map_err(Error::Other) };
        guard_async(faults.as_deref(), Call::KvSet, &key, Error::Other, run).await
    }

    async fn delete(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let faults = self.component.faults.clone();
        let store = store(self, &handle);
        let run = async { store?.delete(&key).await.map_err(Error::Other) };
        guard_async(faults.as_deref(), Call::KvDelete, &key, Error::Other, run).await
    }

    async fn exists(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let faults = self.component.faults.clone();
        let store = store(self, &handle);
        let run = async { store?.exists(&key).await.map_err(Error::Other) };
        guard_async(faults.as_deref(), Call::KvExists, &key, Error::Other, run).await
    }

    async fn get_keys(
        &mut self,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let faults = self.component.faults.clone();
        let store = store(self, &handle);
        let run = async { store?.get_keys().await.map_err(Error::Other) };
        guard_async(faults.as_deref(), Call::KvGetKeys, "", Error::Other, run).await
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
    fn descriptions_leave_passwords_out() {
        let redis = Location::Redis {
            url: "redis://user:hunter2@cache:6379/0".into(),
        };
        assert_eq!(describe(&redis), "Redis redis://user:***@cache:6379/0");
        let redis = Location::Redis {
            url: "redis://:hunter2@cache".into(),
        };
        assert_eq!(describe(&redis), "Redis redis://:***@cache");
        let plain = Location::Redis {
            url: "redis://127.0.0.1:6379".into(),
        };
        assert_eq!(describe(&plain), "Redis redis://127.0.0.1:6379");
    }

    #[test]
    fn a_libsql_location_is_no_key_value_store() {
        let e = open_store(
            "default",
            &Location::LibSql {
                url: "http://x".into(),
                token: crate::runtime_config::Token(String::new()),
            },
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not key-value"), "{e}");
    }
}
