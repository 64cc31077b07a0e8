//! Spin's runtime-config TOML (`--runtime-config-file`): where each labelled
//! key-value store and SQLite database lives. keygate-host supports the local
//! kind (`type = "spin"`); the others real Spin provides are rejected by name.

use std::collections::BTreeMap;
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

#[derive(Debug, Deserialize)]
struct StoreConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(flatten)]
    rest: BTreeMap<String, toml::Value>,
}

/// Where one store or database is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A SQLite file on disk.
    File(PathBuf),
    /// In memory, gone when the runner stops (`type = "spin"` without `path`).
    Memory,
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
                .insert(label, store.location(base, &at)?);
        }
        for (label, db) in parsed.sqlite_database {
            let at = format!("{}: sqlite_database.{label}", file.display());
            config
                .sqlite_databases
                .insert(label, db.location(base, &at)?);
        }
        Ok(config)
    }
}

impl StoreConfig {
    fn location(self, base: &Path, at: &str) -> Result<Location> {
        if self.kind != "spin" {
            bail!(
                "{at}: type = {:?} is not supported by keygate-host (only \"spin\", a local SQLite file); \
                 real Spin supports it",
                self.kind
            );
        }
        if let Some(key) = self.rest.keys().next() {
            bail!("{at}: unknown field `{key}` (type \"spin\" takes only `path`)");
        }
        Ok(match self.path {
            Some(path) => Location::File(base.join(path)),
            None => Location::Memory,
        })
    }
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
    fn other_kinds_are_rejected_by_name() {
        let e = load("[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key_value_store.default") && e.contains("redis"),
            "{e}"
        );
        let e = load(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://x\"\ntoken = \"t\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sqlite_database.default") && e.contains("libsql"),
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
