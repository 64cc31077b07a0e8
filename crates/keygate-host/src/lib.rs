//! keygate-host: runs a Spin app's HTTP components locally, on wasmtime, the
//! way `spin up` does for everything keygate's components can observe.
//!
//! Organised like Spin's factors: one module per capability
//! ([`key_value`], [`sqlite`], [`variables`], [`outbound`], [`http_trigger`]),
//! the [`manifest`] and [`runtime_config`] that configure them, and state in
//! layers: process ([`engine`]), app ([`app`]), request ([`state`]). [`faults`]
//! injects storage failures and crashes for reliability tests.

pub mod app;
pub mod bindings;
pub mod engine;
pub mod faults;
pub mod http_trigger;
pub mod key_value;
pub mod limits;
pub mod manifest;
pub mod outbound;
pub mod routes;
pub mod runtime_config;
pub mod sqlite;
pub mod state;
pub mod up;
pub mod variables;
