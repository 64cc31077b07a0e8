//! The runner as a service: failures stay with their request, concurrency,
//! logging, shutdown, the compile cache.

use keygate_tests::RunnerConfig;

#[test]
fn trapping_component_gets_500_and_the_next_request_succeeds() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let reply = runner.get("/probe/trap");
    assert_eq!(reply.status, 500);
    assert_eq!(runner.get("/probe/request").status, 200);
    let log = runner.wait_for_log("GET /probe/trap probe 500");
    assert!(
        log.contains("probe asked to trap"),
        "the trap's cause is logged: {log}"
    );
    // Many traps in a row do not wear the runner down.
    for _ in 0..20 {
        assert_eq!(runner.get("/probe/trap").status, 500);
    }
    assert_eq!(runner.put("/probe/kv/default/after", b"ok").status, 204);
    assert_eq!(runner.get("/probe/kv/default/after").body, b"ok");
}

#[test]
fn a_hundred_concurrent_requests_are_all_answered() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let results: Vec<(usize, u16, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let runner = &runner;
                scope.spawn(move || {
                    let path = format!("/probe/kv/default/key-{i}");
                    let put = runner.put(&path, format!("value-{i}").as_bytes());
                    assert_eq!(put.status, 204);
                    let reply = runner.get(&path);
                    (i, reply.status, reply.body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.len(), 100);
    for (i, status, body) in results {
        assert_eq!(status, 200);
        assert_eq!(body, format!("value-{i}").as_bytes());
    }
    let keys = runner.get("/probe/kv/default").json()["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(keys, 100);
}

#[test]
fn one_log_line_per_request_without_query_or_secrets() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let reply = runner
        .agent()
        .get(runner.url("/probe/request/x?token=kg_supersecretquery"))
        .header("authorization", "Bearer header-secret-value")
        .call()
        .unwrap();
    assert_eq!(reply.status(), 200);
    runner.get("/probe/var/combined");
    let (status, log) = runner.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" /probe/")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("keygate-host: GET /probe/request/x probe 200 "),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("ms"), "duration: {}", lines[0]);
    assert!(
        !log.contains("Wasm instructions"),
        "counted only when asked: {log}"
    );
    for secret in [
        "kg_supersecretquery",
        "header-secret-value",
        "s3cret-probe-value",
        "token=",
    ] {
        assert!(!log.contains(secret), "log leaks {secret}: {log}");
    }
}

#[test]
fn count_instructions_logs_what_each_guest_ran() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state)
        .arg("--count-instructions")
        .start();
    for i in 0..200 {
        let path = format!("/probe/kv/default/key-{i}");
        assert_eq!(runner.put(&path, b"v").status, 204);
    }
    // Lists the 200 keys as JSON: far more work than storing one.
    assert_eq!(runner.get("/probe/kv/default").status, 200);
    let (status, log) = runner.terminate();
    assert!(status.success());
    let counts: Vec<u64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("keygate-host: probe ran "))
        .map(|n| {
            n.strip_suffix(" Wasm instructions")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(counts.len(), 201, "one count per request: {log}");
    let (fewest, most) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(*fewest > 0, "{log}");
    assert!(most > &(2 * fewest), "the listing counts more: {counts:?}");
}

#[test]
fn sigterm_stops_the_runner_cleanly() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    assert_eq!(runner.get("/probe/request").status, 200);
    let url = runner.url("/probe/request");
    let (status, log) = runner.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        ureq::get(&url).call().is_err(),
        "nothing listens after shutdown"
    );
}

#[test]
fn compile_cache_is_written_and_reused() {
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("cache");
    let config = RunnerConfig::probe(&state)
        .arg("--cache-dir")
        .arg(cache.to_str().unwrap());
    let modified = |paths: &[std::path::PathBuf]| -> Vec<_> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .collect()
    };

    let runner = config.start();
    assert_eq!(runner.get("/probe/request").status, 200);
    drop(runner);
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // probe.wasm (behind two components) and noop.wasm
    assert_eq!(
        entries.len(),
        2,
        "one entry per distinct .wasm: {entries:?}"
    );
    let written = modified(&entries);

    let runner = config.start();
    assert_eq!(runner.get("/probe/request").status, 200);
    assert_eq!(modified(&entries), written, "reused, not rewritten");
    drop(runner);

    // A damaged cache entry is ignored and replaced, not fatal.
    for entry in &entries {
        std::fs::write(entry, b"garbage").unwrap();
    }
    let runner = config.start();
    assert_eq!(runner.get("/probe/request").status, 200);
    assert_eq!(runner.get("/noop").status, 200);
    runner.wait_for_log("ignoring unusable cache entry");
}
