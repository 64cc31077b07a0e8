//! A broken setup is a clear error at start-up naming the file and field.

use std::path::Path;

use keygate_tests::{RunnerConfig, wasm};

/// A manifest in its own folder, with the probe's `.wasm` copied beside it.
fn manifest(dir: &Path, text: &str) -> std::path::PathBuf {
    std::fs::copy(wasm("probe"), dir.join("probe.wasm")).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "probe.wasm"
key_value_stores = ["default"]
"#;

fn fails_with(state: &tempfile::TempDir, text: &str, args: &[&str]) -> String {
    let mut config = RunnerConfig::probe(state);
    config.manifest = manifest(state.path(), text);
    config.args = args.iter().map(|a| a.to_string()).collect();
    let (status, stderr) = config.fail_to_start();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn the_good_manifest_starts() {
    let state = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::probe(&state);
    config.manifest = manifest(state.path(), GOOD);
    config.args.clear();
    let runner = config.start();
    assert_eq!(runner.put("/kv/default/k", b"v").status, 204);
    assert_eq!(runner.get("/kv/default/k").body, b"v");
    // The route list follows the `Serving` line the runner counts as started.
    runner.wait_for_stdout("probe: http://127.0.0.1:");
}

#[test]
fn malformed_toml() {
    let state = tempfile::tempdir().unwrap();
    let e = fails_with(
        &state,
        "spin_manifest_version = 2\n[application\nname = 1",
        &[],
    );
    assert!(
        e.contains("spin.toml: invalid manifest") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn unknown_field() {
    let state = tempfile::tempdir().unwrap();
    let e = fails_with(
        &state,
        &GOOD.replace("key_value_stores", "key_value_stors"),
        &[],
    );
    assert!(
        e.contains("spin.toml") && e.contains("key_value_stors"),
        "{e}"
    );
}

#[test]
fn missing_wasm() {
    let state = tempfile::tempdir().unwrap();
    let e = fails_with(&state, &GOOD.replace("probe.wasm", "nowhere.wasm"), &[]);
    assert!(
        e.contains("component.probe.source") && e.contains("nowhere.wasm"),
        "{e}"
    );
}

#[test]
fn not_a_component() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("junk.wasm"), b"\0asm junk").unwrap();
    let e = fails_with(&state, &GOOD.replace("probe.wasm", "junk.wasm"), &[]);
    assert!(
        e.contains("component.probe.source") && e.contains("cannot compile"),
        "{e}"
    );
}

#[test]
fn unknown_store_label() {
    let state = tempfile::tempdir().unwrap();
    let e = fails_with(
        &state,
        &GOOD.replace("[\"default\"]", "[\"default\", \"cache\"]"),
        &[],
    );
    assert!(
        e.contains("component.probe.key_value_stores") && e.contains("`cache`"),
        "{e}"
    );
    let e = fails_with(
        &state,
        &format!("{GOOD}sqlite_databases = [\"audit\"]\n"),
        &[],
    );
    assert!(
        e.contains("component.probe.sqlite_databases") && e.contains("`audit`"),
        "{e}"
    );
}

#[test]
fn unsupported_runtime_config_kind() {
    let state = tempfile::tempdir().unwrap();
    let rc = state.path().join("rc.toml");
    std::fs::write(
        &rc,
        "[key_value_store.default]\ntype = \"azure_cosmos\"\naccount = \"a\"\n",
    )
    .unwrap();
    let e = fails_with(
        &state,
        GOOD,
        &["--runtime-config-file", rc.to_str().unwrap()],
    );
    assert!(
        e.contains("rc.toml")
            && e.contains("key_value_store.default")
            && e.contains("azure_cosmos"),
        "{e}"
    );
}

/// A Redis store is connected at start-up: an address where nothing
/// answers stops the runner with the label and the address.
#[test]
fn unreachable_redis_store() {
    let state = tempfile::tempdir().unwrap();
    let port = keygate_tests::servers::free_port();
    let rc = state.path().join("rc.toml");
    std::fs::write(
        &rc,
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://:hunter2@127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let e = fails_with(
        &state,
        GOOD,
        &["--runtime-config-file", rc.to_str().unwrap()],
    );
    assert!(
        e.contains("key-value store `default`")
            && e.contains(&format!("127.0.0.1:{port}"))
            && e.contains("cannot connect to Redis"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the password stays out: {e}");
}

/// The runner has no TLS: an https:// libSQL URL is refused with the reason.
#[test]
fn https_libsql_database() {
    let state = tempfile::tempdir().unwrap();
    let rc = state.path().join("rc.toml");
    std::fs::write(
        &rc,
        "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"https://db.example.turso.io\"\n\
         token = \"not-shown\"\n",
    )
    .unwrap();
    let manifest = format!("{GOOD}sqlite_databases = [\"default\"]\n");
    let e = fails_with(
        &state,
        &manifest,
        &["--runtime-config-file", rc.to_str().unwrap()],
    );
    assert!(
        e.contains("sqlite_database.default") && e.contains("plain HTTP only"),
        "{e}"
    );
    assert!(!e.contains("not-shown"), "{e}");
}

#[test]
fn port_in_use() {
    let state = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // A later --listen overrides the harness's own.
    let e = fails_with(&state, GOOD, &["--listen", &addr]);
    assert!(e.contains(&format!("--listen {addr}")), "{e}");
}
