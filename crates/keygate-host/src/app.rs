//! The app layer: a manifest turned into compiled, pre-instantiated components
//! with their grants, variables and routes, checked before serving anything.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::engine::load_component;
use crate::faults::Faults;
use crate::key_value::{self, KeyValueStore};
use crate::manifest;
use crate::outbound::OutboundHttp;
use crate::routes::Router;
use crate::runtime_config::RuntimeConfig;
use crate::sqlite::{self, Database};
use crate::state::{ComponentContext, RequestState};
use crate::variables::{self, VariableSources};

pub struct LoadOptions {
    pub state_dir: PathBuf,
    pub runtime_config_file: Option<PathBuf>,
    pub variables: VariableSources,
    /// Where compiled components are kept between runs; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Fault rules for tests ([`crate::faults`]); `None` normally.
    pub faults: Option<Arc<Faults>>,
    /// Log every SQLite statement a guest runs ([`crate::sqlite`]).
    pub trace_sql: bool,
}

pub struct LoadedApp {
    pub name: String,
    pub router: Router,
    pub components: HashMap<String, LoadedComponent>,
    /// Warnings to show at start-up (duplicate routes).
    pub warnings: Vec<String>,
}

pub struct LoadedComponent {
    pub pre: ProxyPre<RequestState>,
    pub context: Arc<ComponentContext>,
}

pub fn load(
    engine: &Engine,
    linker: &Linker<RequestState>,
    app: &manifest::App,
    options: &LoadOptions,
) -> Result<LoadedApp> {
    let manifest_file = app.manifest_path.display().to_string();
    let runtime_config =
        RuntimeConfig::load(&options.state_dir, options.runtime_config_file.as_deref())?;

    for component in &app.components {
        for label in &component.key_value_stores {
            if !runtime_config.key_value_stores.contains_key(label) {
                bail!(
                    "{manifest_file}: component.{}.key_value_stores: no store labelled `{label}` \
                     (`default` always exists; define others in a runtime config file)",
                    component.id
                );
            }
        }
        for label in &component.sqlite_databases {
            if !runtime_config.sqlite_databases.contains_key(label) {
                bail!(
                    "{manifest_file}: component.{}.sqlite_databases: no database labelled `{label}` \
                     (`default` always exists; define others in a runtime config file)",
                    component.id
                );
            }
        }
        if !component.source.is_file() {
            let hint = match &component.build {
                Some(_) => " (build it first, or start with --build)",
                None => "",
            };
            bail!(
                "{manifest_file}: component.{}.source: file not found: {}{hint}",
                component.id,
                component.source.display()
            );
        }
    }

    let app_values = variables::resolve_app_variables(app, &options.variables)?;
    let component_variables = variables::render_all(app, &app_values);

    // Open only what some component is granted: an unused store creates no file.
    let used = |granted: fn(&manifest::AppComponent) -> &Vec<String>| {
        app.components
            .iter()
            .flat_map(granted)
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    let kv_used = used(|c| &c.key_value_stores);
    let db_used = used(|c| &c.sqlite_databases);
    let kv_stores: BTreeMap<String, Arc<dyn KeyValueStore>> = key_value::open_stores(
        &runtime_config
            .key_value_stores
            .into_iter()
            .filter(|(l, _)| kv_used.contains(l))
            .collect(),
    )?;
    let databases: BTreeMap<String, Arc<dyn Database>> = sqlite::open_databases(
        &runtime_config
            .sqlite_databases
            .into_iter()
            .filter(|(l, _)| db_used.contains(l))
            .collect(),
    )?;

    let mut components = HashMap::new();
    for component in &app.components {
        let at = format!("{manifest_file}: component.{}", component.id);
        let outbound = OutboundHttp::new(&component.allowed_outbound_hosts, &app_values)
            .with_context(|| format!("{at}.allowed_outbound_hosts"))?;
        let context = Arc::new(ComponentContext {
            id: component.id.clone(),
            key_value_stores: component
                .key_value_stores
                .iter()
                .map(|l| (l.clone(), kv_stores[l].clone()))
                .collect(),
            sqlite_databases: component
                .sqlite_databases
                .iter()
                .map(|l| (l.clone(), databases[l].clone()))
                .collect(),
            variables: component_variables[&component.id].clone(),
            environment: component.environment.clone().into_iter().collect(),
            outbound,
            faults: options.faults.clone(),
            trace_sql: options.trace_sql,
        });
        let compiled = load_component(engine, &component.source, options.cache_dir.as_deref())
            .with_context(|| format!("{at}.source"))?;
        let instance_pre = linker
            .instantiate_pre(&compiled)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{at}: imports an interface keygate-host does not provide"))?;
        let pre = ProxyPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{at}: not an HTTP component (no wasi:http/incoming-handler export)")
            })?;
        components.insert(component.id.clone(), LoadedComponent { pre, context });
    }

    let (router, warnings) =
        Router::build(&app.routes).with_context(|| format!("{manifest_file}: trigger.http"))?;
    Ok(LoadedApp {
        name: app.name.clone(),
        router,
        components,
        warnings,
    })
}
