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

/// A client sending its body at a byte every 100 ms (a slow-loris) holds its
/// instance slot no longer than the limit: `408` with a problem body, the
/// connection closed, the next request served.
#[test]
fn a_body_sent_too_slowly_is_answered_408_at_the_time_limit() {
    use std::io::{Read, Write};
    let app = keygate_tests::api::App::start_with(|c| c.arg("--request-timeout").arg("1"));
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST /api/verify HTTP/1.1\r\nhost: keygate\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n",
        )
        .unwrap();
    let started = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        // The pace is the behaviour under test, not a wait for something.
        for _ in 0..100 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    trickle.join().unwrap();
    assert_eq!(app.get("/api/health").status, 200);
}
