//! Application variables (`[variables]`) and component variables (templates
//! such as `"{{ admin_token }}"`), resolved as Spin does: `--variable` flags,
//! then `SPIN_VARIABLE_<NAME>` environment variables, then manifest defaults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::bindings::fermyon::spin::variables as wit;
use crate::manifest::{App, AppComponent};
use crate::state::RequestState;

/// Spin's rule for variable names: lowercase ASCII letters, digits and single
/// underscores, starting with a letter.
pub fn validate_variable_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("variable names must not be empty");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("invalid variable name `{name}`: must start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("invalid variable name `{name}`: only lowercase letters, digits and `_` are allowed");
    }
    if name.ends_with('_') || name.contains("__") {
        bail!("invalid variable name `{name}`: `_` must separate words");
    }
    Ok(())
}

/// A component variable's value: literal text and `{{ name }}` references.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unclosed `{{{{` in template {text:?}");
            };
            let name = after[..end].trim();
            validate_variable_name(name)?;
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            bail!("unmatched `}}}}` in template {text:?}");
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self(parts))
    }

    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// `None` when a referenced variable has no value.
    pub fn render(&self, values: &HashMap<String, String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(values.get(name)?),
            }
        }
        Some(out)
    }
}

/// Where application variable values come from, highest priority first.
#[derive(Debug, Default, Clone)]
pub struct VariableSources {
    /// `--variable name=value` from the command line.
    pub flags: HashMap<String, String>,
    /// The process environment (`SPIN_VARIABLE_<NAME>`).
    pub env: HashMap<String, String>,
}

impl VariableSources {
    pub fn from_process(flags: HashMap<String, String>) -> Self {
        Self {
            flags,
            env: std::env::vars().collect(),
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.flags.get(name) {
            return Some(v.clone());
        }
        self.env
            .get(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
            .cloned()
    }
}

/// Resolves every application variable. A required variable without a value
/// is a start-up error naming it and how to set it.
pub fn resolve_app_variables(
    app: &App,
    sources: &VariableSources,
) -> Result<HashMap<String, String>> {
    for name in sources.flags.keys() {
        if !app.variables.contains_key(name) {
            bail!(
                "--variable {name}: no such variable in [variables] of {}",
                app.manifest_path.display()
            );
        }
    }
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    for (name, decl) in &app.variables {
        match sources.lookup(name).or_else(|| decl.default.clone()) {
            Some(value) => {
                values.insert(name.clone(), value);
            }
            None if decl.required => missing.push(name.as_str()),
            None => {}
        }
    }
    if !missing.is_empty() {
        let how: Vec<String> = missing
            .iter()
            .map(|n| {
                format!(
                    "`{n}` (set SPIN_VARIABLE_{} or --variable {n}=...)",
                    n.to_ascii_uppercase()
                )
            })
            .collect();
        bail!(
            "{}: variables: required variable(s) without a value: {}",
            app.manifest_path.display(),
            how.join(", ")
        );
    }
    Ok(values)
}

/// The variables one component can read, rendered once at start-up.
#[derive(Debug, Default)]
pub struct ComponentVariables {
    values: HashMap<String, String>,
}

impl ComponentVariables {
    /// Renders the component's templates. A template that refers to an
    /// optional variable without a value stays undefined, as in Spin, where
    /// `get` then answers `undefined`.
    pub fn render(component: &AppComponent, app_values: &HashMap<String, String>) -> Self {
        let values = component
            .variables
            .iter()
            .filter_map(|(name, template)| Some((name.clone(), template.render(app_values)?)))
            .collect();
        Self { values }
    }

    pub fn get(&self, name: &str) -> Result<String, wit::Error> {
        if validate_variable_name(name).is_err() {
            return Err(wit::Error::InvalidName(name.to_string()));
        }
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| wit::Error::Undefined(format!("no variable for {name:?}")))
    }
}

impl wit::Host for RequestState {
    fn get(&mut self, name: String) -> Result<String, wit::Error> {
        self.component.variables.get(&name)
    }
}

/// Variables of every component, by component id.
pub fn render_all(
    app: &App,
    app_values: &HashMap<String, String>,
) -> BTreeMap<String, Arc<ComponentVariables>> {
    app.components
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                Arc::new(ComponentVariables::render(c, app_values)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest;
    use std::path::Path;

    const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
admin_token = { required = true, secret = true }
log_level = { default = "info" }
optional_thing = { }
[component.c]
source = "c.wasm"
[component.c.variables]
token = "{{ admin_token }}"
banner = "level={{log_level}}; token-len"
maybe = "x{{ optional_thing }}"
"#;

    fn app() -> App {
        manifest::parse(APP, Path::new("spin.toml")).unwrap()
    }

    fn sources(flags: &[(&str, &str)], env: &[(&str, &str)]) -> VariableSources {
        VariableSources {
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn names_follow_spin_rules() {
        for good in ["a", "admin_token", "a1_b2"] {
            validate_variable_name(good).unwrap();
        }
        for bad in ["", "1a", "_a", "A", "a-b", "a__b", "a_", "aé"] {
            assert!(validate_variable_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_parse_and_reject_broken_braces() {
        let t = Template::parse("a{{ x }}b{{y}}").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), ["x", "y"]);
        assert!(Template::parse("{{ x").is_err());
        assert!(Template::parse("x }}").is_err());
        assert!(Template::parse("{{ Bad }}").is_err());
    }

    #[test]
    fn env_overrides_default_and_flags_override_env() {
        let app = app();
        let v = resolve_app_variables(
            &app,
            &sources(
                &[],
                &[
                    ("SPIN_VARIABLE_ADMIN_TOKEN", "env-token"),
                    ("SPIN_VARIABLE_LOG_LEVEL", "debug"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(v["admin_token"], "env-token");
        assert_eq!(v["log_level"], "debug");

        let v = resolve_app_variables(
            &app,
            &sources(
                &[("admin_token", "flag-token")],
                &[("SPIN_VARIABLE_ADMIN_TOKEN", "env-token")],
            ),
        )
        .unwrap();
        assert_eq!(v["admin_token"], "flag-token");
        assert_eq!(
            v["log_level"], "info",
            "default applies when nothing is set"
        );
    }

    #[test]
    fn missing_required_variable_is_named() {
        let e = resolve_app_variables(&app(), &sources(&[], &[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("admin_token") && e.contains("SPIN_VARIABLE_ADMIN_TOKEN"),
            "{e}"
        );
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let e = resolve_app_variables(
            &app(),
            &sources(&[("nope", "1"), ("admin_token", "t")], &[]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--variable nope"), "{e}");
    }

    #[test]
    fn component_sees_rendered_templates_only() {
        let app = app();
        let values =
            resolve_app_variables(&app, &sources(&[("admin_token", "s3cret")], &[])).unwrap();
        let vars = ComponentVariables::render(app.component("c").unwrap(), &values);
        assert_eq!(vars.get("token").unwrap(), "s3cret");
        assert_eq!(vars.get("banner").unwrap(), "level=info; token-len");
        assert!(matches!(vars.get("maybe"), Err(wit::Error::Undefined(_))));
        assert!(matches!(
            vars.get("admin_token"),
            Err(wit::Error::Undefined(_))
        ));
        assert!(matches!(
            vars.get("Bad-Name"),
            Err(wit::Error::InvalidName(_))
        ));
    }
}
