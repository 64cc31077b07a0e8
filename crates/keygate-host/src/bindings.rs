//! Host-side bindings for the Spin interfaces in `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "keygate:host/spin-imports",
    // Storage calls may trap: that is how `--crash-after` (crate::faults) ends
    // a request. They are async: a SQLite write may wait for the group commit
    // (see `sqlite`), a Redis or libSQL call for its server, without holding
    // a runtime worker thread.
    imports: {
        "fermyon:spin/key-value.[static]store.open": async,
        "fermyon:spin/key-value.[method]store.get": async | trappable,
        "fermyon:spin/key-value.[method]store.set": async | trappable,
        "fermyon:spin/key-value.[method]store.delete": async | trappable,
        "fermyon:spin/key-value.[method]store.exists": async | trappable,
        "fermyon:spin/key-value.[method]store.get-keys": async | trappable,
        "fermyon:spin/sqlite.[method]connection.execute": async | trappable,
        "spin:sqlite/sqlite.[method]connection.execute": async | trappable,
    },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::OpenConnection,
        "spin:sqlite/sqlite.connection": crate::sqlite::OpenConnection,
    },
});
