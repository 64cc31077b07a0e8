//! Host-side bindings for the Spin interfaces in `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "keygate:host/spin-imports",
    // Storage calls may trap: that is how `--crash-after` (crate::faults) ends
    // a request. A SQLite write may wait for the group commit (see `sqlite`)
    // without holding a runtime worker thread.
    imports: {
        "fermyon:spin/key-value.[method]store.get": trappable,
        "fermyon:spin/key-value.[method]store.set": trappable,
        "fermyon:spin/key-value.[method]store.delete": trappable,
        "fermyon:spin/key-value.[method]store.exists": trappable,
        "fermyon:spin/key-value.[method]store.get-keys": trappable,
        "fermyon:spin/sqlite.[method]connection.execute": async | trappable,
        "spin:sqlite/sqlite.[method]connection.execute": async | trappable,
    },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::OpenConnection,
        "spin:sqlite/sqlite.connection": crate::sqlite::OpenConnection,
    },
});
