//! `fermyon:spin/key-value@2.0.0` as a component sees it.

use keygate_tests::RunnerConfig;

#[test]
fn set_get_delete_and_list() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    assert_eq!(runner.get("/probe/kv/default/greeting").status, 404);
    assert_eq!(
        runner.put("/probe/kv/default/greeting", b"hello").status,
        204
    );
    assert_eq!(
        runner.put("/probe/kv/default/binary", &[0, 255, 1]).status,
        204
    );
    let reply = runner.get("/probe/kv/default/greeting");
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(runner.get("/probe/kv/default/binary").body, [0, 255, 1]);
    assert_eq!(
        runner.put("/probe/kv/default/greeting", b"replaced").status,
        204
    );
    assert_eq!(runner.get("/probe/kv/default/greeting").body, b"replaced");
    assert_eq!(
        runner.get("/probe/kv/default").json()["keys"],
        keygate_tests::json!(["binary", "greeting"])
    );
    assert_eq!(runner.delete("/probe/kv/default/greeting").status, 204);
    assert_eq!(runner.get("/probe/kv/default/greeting").status, 404);
    assert_eq!(
        runner.delete("/probe/kv/default/greeting").status,
        204,
        "deleting a missing key is fine"
    );
}

#[test]
fn data_survives_a_restart_in_the_state_dir() {
    let state = tempfile::tempdir().unwrap();
    let config = RunnerConfig::probe(&state);
    let runner = config.start();
    assert_eq!(runner.put("/probe/kv/default/kept", b"v1").status, 204);
    assert_eq!(runner.put("/probe/kv/other/kept-too", b"v2").status, 204);
    assert_eq!(runner.put("/probe/kv/default/removed", b"x").status, 204);
    assert_eq!(runner.delete("/probe/kv/default/removed").status, 204);
    let (status, _) = runner.terminate();
    assert!(status.success());
    assert!(
        config.state_dir.join("sqlite_key_value.db").is_file(),
        "Spin's default file name"
    );

    let runner = config.start();
    assert_eq!(runner.get("/probe/kv/default/kept").body, b"v1");
    assert_eq!(runner.get("/probe/kv/other/kept-too").body, b"v2");
    assert_eq!(runner.get("/probe/kv/default/removed").status, 404);
}

#[test]
fn labels_are_separate_stores() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    assert_eq!(runner.put("/probe/kv/other/k", b"in other").status, 204);
    assert_eq!(runner.get("/probe/kv/default/k").status, 404);
    assert!(
        state.path().join("other_kv.db").is_file(),
        "path relative to the runtime config file"
    );
}

#[test]
fn ungranted_store_is_access_denied() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let reply = runner.get("/probe/kv/secret-store/k");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"], "access-denied");
    // The `ungranted` component runs the same code without any grant.
    let reply = runner.get("/ungranted/kv/default/k");
    assert_eq!(reply.json()["error"], "access-denied");
    let reply = runner.put("/ungranted/kv/default/k", b"x");
    assert_eq!(reply.json()["error"], "access-denied");
    assert_eq!(
        runner.get("/probe/kv/default/k").status,
        404,
        "the denied write changed nothing"
    );
}
