//! Routing and the `spin-*` request headers, as a component sees them.

use keygate_tests::{Json, RunnerConfig};

fn request_info(runner: &keygate_tests::Runner, path: &str) -> Json {
    let reply = runner.get(path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

#[test]
fn exact_route_gets_spin_headers() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let info = request_info(&runner, "/probe/request?x=1&y=two");
    let h = &info["headers"];
    let authority = runner.base_url.trim_start_matches("http://");
    assert_eq!(
        h["spin-full-url"],
        format!("http://{authority}/probe/request?x=1&y=two")
    );
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-matched-route"], "/probe/request");
    assert_eq!(h["spin-component-route"], "/probe/request");
    assert_eq!(h["spin-raw-component-route"], "/probe/request");
    assert_eq!(h["spin-base-path"], "/");
    let client = h["spin-client-addr"].as_str().unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{client}");
    assert_eq!(
        info["uri"],
        format!("http://{authority}/probe/request?x=1&y=two")
    );
    assert_eq!(info["method"], "GET");
}

#[test]
fn wildcard_route_reports_path_info_and_keeps_trailing_slash() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let info = request_info(&runner, "/probe/request/a/b/");
    let h = &info["headers"];
    assert_eq!(h["spin-matched-route"], "/probe/request/...");
    assert_eq!(h["spin-component-route"], "/probe/request");
    assert_eq!(h["spin-raw-component-route"], "/probe/request/...");
    assert_eq!(h["spin-path-info"], "/a/b/");
}

#[test]
fn most_specific_route_wins() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    // Exact beats the wildcards around it, also with a trailing slash.
    for path in ["/probe/request", "/probe/request/"] {
        assert_eq!(
            request_info(&runner, path)["headers"]["spin-matched-route"],
            "/probe/request",
            "{path}"
        );
    }
    // The longer wildcard prefix beats `/probe/...`.
    assert_eq!(
        request_info(&runner, "/probe/request/x")["headers"]["spin-matched-route"],
        "/probe/request/..."
    );
    // A named segment route beats the wildcard and captures.
    let info = request_info(&runner, "/probe/request/42/exact");
    assert_eq!(
        info["headers"]["spin-matched-route"],
        "/probe/request/:id/exact"
    );
    assert_eq!(info["headers"]["spin-path-match-id"], "42");
    // Everything else under /probe goes to the shorter wildcard.
    let reply = runner.get("/probe/unknown-probe");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json()["error"],
        "no such probe",
        "answered by the component, not the runner"
    );
}

#[test]
fn unmatched_path_is_404_from_the_runner() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    for path in ["/", "/nothing", "/probes", "/api/health"] {
        let reply = runner.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.is_empty(), "{path}: Spin's 404 has no body");
    }
    runner.wait_for_log("GET /nothing - 404");
}

#[test]
fn client_cannot_forge_spin_headers() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::probe(&state).start();
    let reply = runner
        .agent()
        .get(runner.url("/probe/request/real"))
        .header("spin-path-info", "/forged")
        .header("spin-client-addr", "10.0.0.1:1")
        .header("spin-path-match-id", "forged")
        .header("x-custom", "kept")
        .call()
        .unwrap();
    let info: Json = serde_json::from_reader(reply.into_body().into_reader()).unwrap();
    let h = &info["headers"];
    assert_eq!(h["spin-path-info"], "/real");
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(h.get("spin-path-match-id").is_none());
    assert_eq!(h["x-custom"], "kept");
}

#[test]
fn request_bodies_reach_the_component_whole() {
    let state = tempfile::tempdir().unwrap();
    // 3 MB: past the runner's default --max-request-body, so raised here.
    let runner = RunnerConfig::probe(&state)
        .arg("--max-request-body")
        .arg("4000000")
        .start();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = body
        .iter()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(*b as u64));
    let reply = runner.put("/probe/request", &body);
    assert_eq!(reply.status, 200);
    let info = reply.json();
    assert_eq!(info["method"], "PUT");
    assert_eq!(info["body_len"], body.len());
    assert_eq!(info["body_sha"], expected);
}
