//! Spin's runtime-config TOML (`--runtime-config-file`): where each labelled
//! key-value store and SQLite database lives. keygate-host supports the kinds
//! `spin up` has built in for one machine (`type = "spin"`, a local SQLite
//! file) and for several instances sharing their data (`type = "redis"` for
//! key-value, `type = "libsql"` for SQLite), with Spin's field names; other
//! kinds real Spin provides are rejected by name.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeConfigFile {
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreConfig>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, StoreConfig>,
}

/// One `[key_value_store.<label>]` or `[sqlite_database.<label>]` table:
/// its `type` and the fields that type takes.
#[derive(Debug, Deserialize)]
struct StoreConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    fields: BTreeMap<String, toml::Value>,
}

/// Where one store or database is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A SQLite file on disk.
    File(PathBuf),
    /// In memory, gone when the runner stops (`type = "spin"` without `path`).
    Memory,
    /// A Redis server (`type = "redis"`, key-value only), by its URL.
    Redis { url: String },
    /// A libSQL server (`type = "libsql"`, SQLite only): its `http://` URL
    /// and the token sent as `Authorization: Bearer`.
    LibSql { url: String, token: Token },
}

/// A libSQL auth token: kept out of `Debug` output and error messages.
#[derive(Clone, PartialEq)]
pub struct Token(pub String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, Location>,
    pub sqlite_databases: BTreeMap<String, Location>,
}

impl RuntimeConfig {
    /// Spin's defaults: `default` stores in the state directory.
    pub fn defaults(state_dir: &Path) -> Self {
        Self {
            key_value_stores: BTreeMap::from([(
                "default".to_string(),
                Location::File(state_dir.join("sqlite_key_value.db")),
            )]),
            sqlite_databases: BTreeMap::from([(
                "default".to_string(),
                Location::File(state_dir.join("sqlite_db.db")),
            )]),
        }
    }

    /// Defaults overridden by a runtime-config file. Relative paths in the
    /// file are relative to the file's folder.
    pub fn load(state_dir: &Path, file: Option<&Path>) -> Result<Self> {
        let mut config = Self::defaults(state_dir);
        let Some(file) = file else { return Ok(config) };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read runtime config {}", file.display()))?;
        let parsed: RuntimeConfigFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: invalid runtime config: {e}", file.display()))?;
        let base = file.parent().unwrap_or(Path::new("."));
        for (label, store) in parsed.key_value_store {
            let at = format!("{}: key_value_store.{label}", file.display());
            config
                .key_value_stores
                .insert(label, store.location(Section::KeyValue, base, &at)?);
        }
        for (label, db) in parsed.sqlite_database {
            let at = format!("{}: sqlite_database.{label}", file.display());
            config
                .sqlite_databases
                .insert(label, db.location(Section::Sqlite, base, &at)?);
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    KeyValue,
    Sqlite,
}

impl StoreConfig {
    fn location(mut self, section: Section, base: &Path, at: &str) -> Result<Location> {
        let takes: &[&str] = match (section, self.kind.as_str()) {
            (_, "spin") => &["path"],
            (Section::KeyValue, "redis") => &["url"],
            (Section::Sqlite, "libsql") => &["url", "token"],
            (Section::KeyValue, kind) => bail!(
                "{at}: type = {kind:?} is not supported by keygate-host (a key-value store is \
                 \"spin\", a local SQLite file, or \"redis\"); real Spin may support it"
            ),
            (Section::Sqlite, kind) => bail!(
                "{at}: type = {kind:?} is not supported by keygate-host (a SQLite database is \
                 \"spin\", a local SQLite file, or \"libsql\"); real Spin may support it"
            ),
        };
        if let Some(key) = self.fields.keys().find(|k| !takes.contains(&k.as_str())) {
            let takes = takes.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>();
            bail!(
                "{at}: unknown field `{key}` (type {:?} takes only {})",
                self.kind,
                takes.join(" and ")
            );
        }
        Ok(match self.kind.as_str() {
            "spin" => match self.take_string("path", false, at)? {
                Some(path) => Location::File(base.join(path)),
                None => Location::Memory,
            },
            "redis" => {
                let url = self.take_string("url", true, at)?.unwrap_or_default();
                check_redis_url(&url, at)?;
                Location::Redis { url }
            }
            _ => {
                let url = self.take_string("url", true, at)?.unwrap_or_default();
                let token = self.take_string("token", true, at)?.unwrap_or_default();
                check_libsql_url(&url, at)?;
                Location::LibSql {
                    url,
                    token: Token(token),
                }
            }
        })
    }

    /// Removes the string field `name`; an error if it has another type, or
    /// if it is missing and `required`.
    fn take_string(&mut self, name: &str, required: bool, at: &str) -> Result<Option<String>> {
        match self.fields.remove(name) {
            Some(toml::Value::String(value)) => Ok(Some(value)),
            Some(other) => bail!("{at}: `{name}` must be a string, not {}", other.type_str()),
            None if required => bail!(
                "{at}: missing field `{name}` (type {:?} needs it)",
                self.kind
            ),
            None => Ok(None),
        }
    }
}

/// `redis://host:port[/db]` as Spin takes it. `rediss://` needs TLS, which
/// the runner does not carry.
fn check_redis_url(url: &str, at: &str) -> Result<()> {
    if url.starts_with("rediss://") {
        bail!(
            "{at}: url {url:?}: keygate-host speaks plain TCP to Redis only (no TLS in the \
             runner); real Spin supports rediss://"
        );
    }
    if !["redis://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        bail!("{at}: url {url:?} is not a Redis URL (redis://host:port)");
    }
    Ok(())
}

/// Spin takes `http://` and `https://` for libSQL. The runner has no TLS
/// stack, so only `http://` (a server on the same network, such as sqld).
fn check_libsql_url(url: &str, at: &str) -> Result<()> {
    if url.starts_with("https://") {
        bail!(
            "{at}: url {url:?}: keygate-host speaks plain HTTP only (no TLS stack in the \
             runner); use an http:// URL, or real Spin, which supports https://"
        );
    }
    if !url.starts_with("http://") {
        bail!(
            "{at}: url {url:?} does not start with 'https://' or 'http://' (Spin talks to \
             libSQL over HTTP(S) only; keygate-host over http://)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuntimeConfig> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runtime-config.toml");
        std::fs::write(&file, text).unwrap();
        RuntimeConfig::load(Path::new("/state"), Some(&file)).map(|mut c| {
            // Make paths comparable independent of the temp folder.
            for loc in c
                .key_value_stores
                .values_mut()
                .chain(c.sqlite_databases.values_mut())
            {
                if let Location::File(p) = loc
                    && let Ok(rel) = p.strip_prefix(dir.path())
                {
                    *p = Path::new("CFG").join(rel);
                }
            }
            c
        })
    }

    #[test]
    fn defaults_live_in_the_state_dir() {
        let c = RuntimeConfig::load(Path::new("/state"), None).unwrap();
        assert_eq!(
            c.key_value_stores["default"],
            Location::File("/state/sqlite_key_value.db".into())
        );
        assert_eq!(
            c.sqlite_databases["default"],
            Location::File("/state/sqlite_db.db".into())
        );
    }

    #[test]
    fn spin_stores_are_added_and_override_defaults() {
        let c = load(
            "[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n\
             [key_value_store.cache]\ntype = \"spin\"\n\
             [sqlite_database.audit]\ntype = \"spin\"\npath = \"/abs/audit.db\"\n",
        )
        .unwrap();
        assert_eq!(
            c.key_value_stores["default"],
            Location::File("CFG/kv.db".into())
        );
        assert_eq!(c.key_value_stores["cache"], Location::Memory);
        assert_eq!(
            c.sqlite_databases["audit"],
            Location::File("/abs/audit.db".into())
        );
        assert_eq!(
            c.sqlite_databases["default"],
            Location::File("/state/sqlite_db.db".into())
        );
    }

    #[test]
    fn redis_and_libsql_take_spins_fields() {
        let c = load(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://127.0.0.1:8080\"\n\
             token = \"t0k\"\n",
        )
        .unwrap();
        assert_eq!(
            c.key_value_stores["default"],
            Location::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        let db = &c.sqlite_databases["default"];
        assert_eq!(
            db,
            &Location::LibSql {
                url: "http://127.0.0.1:8080".into(),
                token: Token("t0k".into())
            }
        );
        assert!(
            !format!("{db:?}").contains("t0k"),
            "the token stays out of Debug"
        );
    }

    #[test]
    fn each_kind_wants_its_own_fields() {
        let cases = [
            (
                "[key_value_store.default]\ntype = \"redis\"\n",
                "missing field `url`",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\n",
                "missing field `token`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = 6379\n",
                "`url` must be a string",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"\npath = \"kv.db\"\n",
                "unknown field `path` (type \"redis\" takes only `url`)",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\ntoken = \"t\"\n\
                 tokn = \"t\"\n",
                "unknown field `tokn` (type \"libsql\" takes only `url` and `token`)",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"http://x\"\n",
                "not a Redis URL",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"rediss://x:6380\"\n",
                "no TLS in the runner",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"libsql://x\"\ntoken = \"t\"\n",
                "does not start with 'https://' or 'http://'",
            ),
        ];
        for (text, expected) in cases {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn https_libsql_is_refused_at_start_up_with_the_reason() {
        let e = load(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://db.example.turso.io\"\n\
             token = \"secret-token\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sqlite_database.default")
                && e.contains("plain HTTP only")
                && e.contains("real Spin"),
            "{e}"
        );
        assert!(!e.contains("secret-token"), "{e}");
    }

    #[test]
    fn other_kinds_are_rejected_by_name() {
        let e = load("[key_value_store.default]\ntype = \"azure_cosmos\"\naccount = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key_value_store.default") && e.contains("azure_cosmos"),
            "{e}"
        );
        // Each section has its own kinds: no Redis database, no libSQL store.
        let e = load("[sqlite_database.default]\ntype = \"redis\"\nurl = \"redis://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sqlite_database.default") && e.contains("\"redis\" is not supported"),
            "{e}"
        );
        let e = load(
            "[key_value_store.default]\ntype = \"libsql\"\nurl = \"http://x\"\ntoken = \"t\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("key_value_store.default") && e.contains("\"libsql\" is not supported"),
            "{e}"
        );
    }

    #[test]
    fn unknown_sections_and_fields_are_rejected() {
        assert!(
            load("[llm_compute]\ntype = \"spin\"\n")
                .unwrap_err()
                .to_string()
                .contains("llm_compute")
        );
        let e = load("[key_value_store.default]\ntype = \"spin\"\npth = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pth"), "{e}");
    }
}
