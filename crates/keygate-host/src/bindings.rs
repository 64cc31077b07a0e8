//! Host-side bindings for the Spin interfaces in `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "keygate:host/spin-imports",
    // A write may wait for the group commit (see `sqlite`) without holding a
    // runtime worker thread.
    imports: {
        "spin:sqlite/sqlite.[method]connection.execute": async,
        "fermyon:spin/sqlite.[method]connection.execute": async,
    },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::OpenConnection,
        "spin:sqlite/sqlite.connection": crate::sqlite::OpenConnection,
    },
});
