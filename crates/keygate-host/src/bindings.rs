//! Host-side bindings for the Spin interfaces in `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "keygate:host/spin-imports",
    // Storage calls may trap: that is how `--crash-after` (crate::faults) ends a request.
    imports: {
        "fermyon:spin/key-value.[method]store.get": trappable,
        "fermyon:spin/key-value.[method]store.set": trappable,
        "fermyon:spin/key-value.[method]store.delete": trappable,
        "fermyon:spin/key-value.[method]store.exists": trappable,
        "fermyon:spin/key-value.[method]store.get-keys": trappable,
        "fermyon:spin/sqlite.[method]connection.execute": trappable,
        "spin:sqlite/sqlite.[method]connection.execute": trappable,
    },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::OpenStore,
        "fermyon:spin/sqlite.connection": crate::sqlite::OpenConnection,
        "spin:sqlite/sqlite.connection": crate::sqlite::OpenConnection,
    },
});
