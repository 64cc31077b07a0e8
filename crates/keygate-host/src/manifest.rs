//! The Spin application manifest (`spin.toml`, manifest version 2): the subset
//! keygate-host runs, parsed strictly so that a typo is an error at start-up
//! rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::variables::{Template, validate_variable_name};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Trigger-wide settings and tool sections: accepted, not used by this runner.
    #[serde(default)]
    pub trigger: Option<toml::Table>,
    #[serde(default)]
    pub tool: Option<toml::Table>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    /// Any other trigger type: rejected by [`Manifest::validate`] with its name.
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub route: RouteDecl,
    pub component: toml::Value,
    #[serde(default)]
    pub executor: Option<toml::Table>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RouteDecl {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: toml::Value,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<toml::Value>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default)]
    pub build: Option<BuildDecl>,
    #[serde(default)]
    pub tool: Option<toml::Table>,
    #[serde(default)]
    pub dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    pub dependencies: Option<toml::Table>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    pub command: BuildCommand,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum BuildCommand {
    One(String),
    Many(Vec<String>),
}

impl BuildCommand {
    pub fn commands(&self) -> Vec<&str> {
        match self {
            BuildCommand::One(c) => vec![c.as_str()],
            BuildCommand::Many(cs) => cs.iter().map(String::as_str).collect(),
        }
    }
}

/// A manifest checked for everything that can be checked without the runtime
/// configuration: component references, variable templates, paths.
#[derive(Debug)]
pub struct App {
    pub name: String,
    /// Folder of the manifest; relative paths in it are relative to this.
    pub base_dir: PathBuf,
    pub manifest_path: PathBuf,
    pub variables: BTreeMap<String, VariableDecl>,
    pub routes: Vec<(String, String)>,
    pub components: Vec<AppComponent>,
}

#[derive(Debug)]
pub struct AppComponent {
    pub id: String,
    pub source: PathBuf,
    pub variables: BTreeMap<String, Template>,
    pub environment: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub build: Option<BuildDecl>,
}

/// Reads and validates a manifest. Errors name the file and the field.
pub fn load(path: &Path) -> Result<App> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<App> {
    let shown = path.display();
    let manifest: Manifest =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{shown}: invalid manifest: {e}"))?;
    let base_dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    manifest
        .validate(base_dir, path.to_path_buf())
        .map_err(|e| anyhow::anyhow!("{shown}: {e:#}"))
}

impl Manifest {
    fn validate(self, base_dir: PathBuf, manifest_path: PathBuf) -> Result<App> {
        if self.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version: {} is not supported (only 2)",
                self.spin_manifest_version
            );
        }
        for name in self.variables.keys() {
            validate_variable_name(name).with_context(|| format!("variables.{name}"))?;
        }
        for (name, decl) in &self.variables {
            if decl.required && decl.default.is_some() {
                bail!(
                    "variables.{name}: a variable cannot be both `required` and have a `default`"
                );
            }
        }
        if let Some(kind) = self.trigger.other.keys().next() {
            bail!("trigger.{kind}: only http triggers are supported by keygate-host");
        }

        let mut routes = Vec::new();
        for (index, trigger) in self.trigger.http.iter().enumerate() {
            let at = format!("trigger.http[{index}]");
            let component = match &trigger.component {
                toml::Value::String(id) => id.clone(),
                _ => bail!(
                    "{at}.component: must name a component (inline components are not supported)"
                ),
            };
            if !self.component.contains_key(&component) {
                bail!("{at}.component: no component `{component}` in this manifest");
            }
            if let Some(executor) = &trigger.executor {
                match executor.get("type").and_then(|t| t.as_str()) {
                    Some("spin") | Some("http") => {}
                    other => {
                        bail!("{at}.executor: type {other:?} is not supported (only \"spin\")")
                    }
                }
            }
            match &trigger.route {
                RouteDecl::Path(route) => routes.push((route.clone(), component)),
                RouteDecl::Private { private: true } => {}
                RouteDecl::Private { private: false } => {
                    bail!("{at}.route: must be a path or `{{ private = true }}`")
                }
            }
        }

        let mut components = Vec::new();
        for (id, decl) in self.component {
            let at = format!("component.{id}");
            let source = match &decl.source {
                toml::Value::String(s) => base_dir.join(s),
                _ => bail!(
                    "{at}.source: only a local file path is supported (not a URL or registry reference)"
                ),
            };
            if !decl.files.is_empty() {
                bail!("{at}.files: mounting files is not supported by keygate-host");
            }
            if !decl.ai_models.is_empty() {
                bail!("{at}.ai_models: not supported by keygate-host");
            }
            if decl.dependencies.as_ref().is_some_and(|d| !d.is_empty()) {
                bail!(
                    "{at}.dependencies: component dependencies are not supported by keygate-host"
                );
            }
            let mut variables = BTreeMap::new();
            for (name, text) in &decl.variables {
                validate_variable_name(name).with_context(|| format!("{at}.variables.{name}"))?;
                let template =
                    Template::parse(text).with_context(|| format!("{at}.variables.{name}"))?;
                for reference in template.references() {
                    if !self.variables.contains_key(reference) {
                        bail!(
                            "{at}.variables.{name}: refers to `{reference}`, which is not declared in [variables]"
                        );
                    }
                }
                variables.insert(name.clone(), template);
            }
            components.push(AppComponent {
                id,
                source,
                variables,
                environment: decl.environment,
                allowed_outbound_hosts: decl.allowed_outbound_hosts,
                key_value_stores: decl.key_value_stores,
                sqlite_databases: decl.sqlite_databases,
                build: decl.build,
            });
        }

        Ok(App {
            name: self.application.name,
            base_dir,
            manifest_path,
            variables: self.variables,
            routes,
            components,
        })
    }
}

impl App {
    pub fn component(&self, id: &str) -> Option<&AppComponent> {
        self.components.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<App> {
        parse(text, Path::new("app/spin.toml"))
    }

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
admin_token = { required = true, secret = true }
log_level = { default = "info" }
[[trigger.http]]
route = "/api/health"
component = "health"
[[trigger.http]]
route = { private = true }
component = "health"
[component.health]
source = "target/health.wasm"
key_value_stores = ["default"]
sqlite_databases = ["default"]
allowed_outbound_hosts = []
[component.health.variables]
token = "{{ admin_token }}"
banner = "level={{log_level}}!"
[component.health.build]
command = "cargo build --target wasm32-wasip2 --release"
workdir = "components/health"
watch = ["src/**/*.rs"]
"#;

    #[test]
    fn parses_a_complete_manifest() {
        let app = parse_str(MINIMAL).unwrap();
        assert_eq!(app.name, "demo");
        assert_eq!(app.base_dir, Path::new("app"));
        assert_eq!(
            app.routes,
            vec![("/api/health".to_string(), "health".to_string())]
        );
        let health = app.component("health").unwrap();
        assert_eq!(health.source, Path::new("app/target/health.wasm"));
        assert_eq!(health.key_value_stores, ["default"]);
        assert_eq!(health.sqlite_databases, ["default"]);
        assert_eq!(
            health.variables["token"].references().collect::<Vec<_>>(),
            ["admin_token"]
        );
        assert!(app.variables["admin_token"].secret);
        assert_eq!(app.variables["log_level"].default.as_deref(), Some("info"));
        let build = health.build.as_ref().unwrap();
        assert_eq!(
            build.command.commands(),
            ["cargo build --target wasm32-wasip2 --release"]
        );
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", parse_str(text).unwrap_err())
    }

    #[test]
    fn malformed_toml_names_the_file_and_position() {
        let e = error_of("spin_manifest_version = 2\n[application\n");
        assert!(e.starts_with("app/spin.toml: invalid manifest"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let e = error_of(&MINIMAL.replace("key_value_stores", "key_value_storez"));
        assert!(e.contains("key_value_storez"), "{e}");
    }

    #[test]
    fn version_one_is_rejected() {
        let e =
            error_of(&MINIMAL.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
        assert!(e.contains("spin_manifest_version"), "{e}");
    }

    #[test]
    fn trigger_must_name_an_existing_component() {
        let e = error_of(&MINIMAL.replace(
            "component = \"health\"\n[[trigger",
            "component = \"nope\"\n[[trigger",
        ));
        assert!(
            e.contains("trigger.http[0].component") && e.contains("nope"),
            "{e}"
        );
    }

    #[test]
    fn template_must_refer_to_declared_variable() {
        let e = error_of(&MINIMAL.replace("{{ admin_token }}", "{{ missing }}"));
        assert!(
            e.contains("component.health.variables.token") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn required_with_default_is_rejected() {
        let e = error_of(&MINIMAL.replace(
            "admin_token = { required = true, secret = true }",
            "admin_token = { required = true, default = \"x\" }",
        ));
        assert!(e.contains("variables.admin_token"), "{e}");
    }

    #[test]
    fn invalid_variable_names_are_rejected() {
        let e = error_of(
            &MINIMAL
                .replace("log_level = {", "Log_Level = {")
                .replace("{{log_level}}", "x"),
        );
        assert!(e.contains("variables.Log_Level"), "{e}");
    }

    #[test]
    fn other_trigger_types_and_remote_sources_are_rejected() {
        let e = error_of(&format!(
            "{MINIMAL}\n[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"health\"\n"
        ));
        assert!(e.contains("trigger.redis"), "{e}");
        let e = error_of(&MINIMAL.replace(
            "source = \"target/health.wasm\"",
            "source = { url = \"https://example.com/x.wasm\", digest = \"sha256:00\" }",
        ));
        assert!(e.contains("component.health.source"), "{e}");
    }

    #[test]
    fn public_private_false_route_is_rejected() {
        let e =
            error_of(&MINIMAL.replace("route = { private = true }", "route = { private = false }"));
        assert!(e.contains("trigger.http[1].route"), "{e}");
    }
}
