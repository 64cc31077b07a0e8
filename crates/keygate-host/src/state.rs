//! State in layers, as Spin keeps it: the process (engine, stores), the app
//! (one [`ComponentContext`] per component, built at start-up) and the request
//! ([`RequestState`], the data of a fresh `Store` per request).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::faults::Faults;
use crate::key_value::KeyValueStore;
use crate::outbound::OutboundHttp;
use crate::sqlite::Database;
use crate::variables::ComponentVariables;

/// What one component may use, resolved once from the manifest and runtime
/// configuration. Only granted stores and databases are in the maps.
pub struct ComponentContext {
    pub id: String,
    pub key_value_stores: BTreeMap<String, Arc<dyn KeyValueStore>>,
    pub sqlite_databases: BTreeMap<String, Arc<dyn Database>>,
    pub variables: Arc<ComponentVariables>,
    pub environment: Vec<(String, String)>,
    pub outbound: OutboundHttp,
    /// Test-only fault rules (`--fail`, `--crash-after`); `None` in normal runs.
    pub faults: Option<Arc<Faults>>,
    /// `--trace-sql`: log each SQLite statement the component runs.
    pub trace_sql: bool,
}

/// The data of one request's `Store`.
pub struct RequestState {
    pub component: Arc<ComponentContext>,
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub outbound: OutboundHttp,
}

impl RequestState {
    pub fn new(component: Arc<ComponentContext>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout()
            .inherit_stderr()
            .envs(&component.environment);
        Self {
            outbound: component.outbound.clone(),
            component,
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
