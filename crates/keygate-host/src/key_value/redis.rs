//! A store on a Redis server (`type = "redis"`), as Spin's
//! `spin-key-value-redis` crate keeps it, with the same client crate
//! (`redis` 0.32): keys go to Redis as they are (no prefix, and the label
//! is not part of them, so every label pointed at one server shares its
//! keys), values as Redis strings, and `get-keys` is `KEYS *`.
//!
//! The `redis` crate is built with only `aio`, `tokio-comp` and
//! `connection-manager` (no TLS, no cluster, no scripting): RESP over TCP on
//! the runner's tokio runtime and a reconnecting multiplexed connection.
//! With what it pulls in (combine, num-bigint, url, arc-swap, backon) that
//! is about 0.4 MB of the runner's code.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, AsyncConnectionConfig, Client, RedisError};

use super::KeyValueStore;
use crate::sqlite::BoxFuture;

/// How long start-up waits for Redis to accept a connection and answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One store: one connection shared by every request, as Spin's
/// `KeyValueRedis` shares one per runtime-config entry. Commands from
/// concurrent requests are pipelined on it; if it breaks, the manager
/// reconnects in the background.
pub struct RedisKeyValueStore {
    connection: ConnectionManager,
}

impl RedisKeyValueStore {
    /// Connects, and checks with a `PING` that a Redis server answers, so
    /// a wrong address stops the start-up instead of failing requests.
    /// (Spin connects at the first `Store::open` instead.)
    pub async fn open(url: &str) -> Result<Self> {
        let client = Client::open(url).context("invalid Redis URL")?;
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(CONNECT_TIMEOUT);
        let mut first = client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut first)
            .await
            .map_err(|e| anyhow::anyhow!("Redis did not answer PING: {e}"))?;
        if pong != "PONG" {
            bail!("Redis answered PING with {pong:?}");
        }
        drop(first);
        // Spin's settings (the crate's defaults): reconnection with backoff,
        // no timeouts on commands.
        let connection = ConnectionManager::new_with_config(client, ConnectionManagerConfig::new())
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
        Ok(Self { connection })
    }
}

/// Spin's `log_error`: the error's `Debug` text (the same as its `Display`
/// in this crate) for the guest's `error::other`.
fn other(e: RedisError) -> String {
    format!("{e:?}")
}

impl KeyValueStore for RedisKeyValueStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        let mut conn = self.connection.clone();
        Box::pin(async move { conn.get(key).await.map_err(other) })
    }

    fn set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        let mut conn = self.connection.clone();
        Box::pin(async move { conn.set(key, value).await.map_err(other) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let mut conn = self.connection.clone();
        Box::pin(async move { conn.del(key).await.map_err(other) })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        let mut conn = self.connection.clone();
        Box::pin(async move { conn.exists(key).await.map_err(other) })
    }

    /// Every key on the server (`KEYS *`), as Spin lists them: not only this
    /// label's, and in the server's order.
    fn get_keys(&self) -> BoxFuture<'_, Result<Vec<String>, String>> {
        let mut conn = self.connection.clone();
        Box::pin(async move { conn.keys("*").await.map_err(other) })
    }

    /// Spin pings at every `Store::open` and ignores the answer: a broken
    /// connection then starts reconnecting before the guest's first command.
    fn after_open(&self) -> BoxFuture<'_, ()> {
        let mut conn = self.connection.clone();
        Box::pin(async move {
            let _ = redis::cmd("PING").query_async::<()>(&mut conn).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_start_up_error() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = RedisKeyValueStore::open(&format!("redis://127.0.0.1:{port}"))
            .await
            .err()
            .expect("nothing listens there");
        assert!(e.to_string().contains("cannot connect to Redis"), "{e:#}");
        let e = RedisKeyValueStore::open("redis://")
            .await
            .err()
            .expect("no host");
        assert!(format!("{e:#}").contains("Redis"), "{e:#}");
    }

    #[tokio::test]
    async fn a_server_that_is_not_redis_is_refused() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let e = RedisKeyValueStore::open(&format!("redis://127.0.0.1:{port}"))
            .await
            .err()
            .expect("not Redis");
        assert!(e.to_string().contains("Redis"), "{e:#}");
    }
}
