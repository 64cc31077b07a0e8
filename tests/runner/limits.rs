//! What bounds a request's cost in the runner: `--request-timeout` ends a
//! guest that never returns — it answers `500` with a problem body and its
//! instance slot is freed — while other requests go on being served.

use std::thread;
use std::time::{Duration, Instant};

use keygate_tests::RunnerConfig;

#[test]
fn a_guest_that_never_returns_is_ended_at_the_time_limit_and_frees_its_slot() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state)
        .arg("--request-timeout")
        .arg("1")
        .start();
    let started = Instant::now();
    // More loops at once than the machine has cores: each is ended in time,
    // and a normal request is served while they spin.
    thread::scope(|s| {
        let loops: Vec<_> = (0..4)
            .map(|_| s.spawn(|| runner.get("/probe/loop")))
            .collect();
        let normal = runner.get("/probe/var/secret_thing");
        assert_ne!(normal.status, 500, "{}", normal.text());
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "a normal request waited for the loops: {:?}",
            started.elapsed()
        );
        for handle in loops {
            let reply = handle.join().unwrap();
            assert_eq!(reply.status, 500, "{}", reply.text());
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json")
            );
            assert!(reply.text().contains("longer than 1 s"), "{}", reply.text());
        }
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the loops were ended after {took:?}"
    );
    runner.wait_for_log("ran past --request-timeout");
    assert_ne!(runner.get("/probe/var/secret_thing").status, 500);
}
