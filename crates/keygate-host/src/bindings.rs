//! Host-side bindings for the Spin interfaces in `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "keygate:host/spin-imports",
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::OpenConnection,
        "spin:sqlite/sqlite.connection": crate::sqlite::OpenConnection,
    },
});
