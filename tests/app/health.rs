//! keygate's health route (`GET /api/health`) on the real manifest.

use keygate_tests::RunnerConfig;

#[test]
fn healthy_app_reports_each_dependency() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::app(&state, "an-admin-token-long-enough").start();
    let reply = runner.get("/api/health");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    for check in ["key_value", "sqlite", "sign_in"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{check}: {body}");
    }
    assert!(!reply.text().contains("an-admin-token-long-enough"));
}

#[test]
fn weak_admin_token_is_reported_without_revealing_it() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::app(&state, "short").start();
    let reply = runner.get("/api/health");
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["sign_in"]["status"], "failing");
    assert!(
        body["checks"]["sign_in"]["problem"]
            .as_str()
            .unwrap()
            .contains("admin_token is shorter")
    );
    assert_eq!(body["checks"]["sqlite"]["status"], "ok");
    assert!(!reply.text().contains("\"short\""));
}

#[test]
fn other_methods_are_405_problem_json() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::app(&state, "an-admin-token-long-enough").start();
    let reply = runner.post_json("/api/health", &keygate_tests::json!({}));
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.json()["code"], "method_not_allowed");
}

/// `admin_token` is optional since OIDC sign-in: with neither way to sign
/// in the app still serves verify, and health says what is missing.
#[test]
fn an_app_with_no_way_to_sign_in_starts_and_health_says_so() {
    let state = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::app(&state, "x");
    config.env.clear();
    let runner = config.start();
    let reply = runner.get("/api/health");
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(body["checks"]["sign_in"]["status"], "failing");
    let problem = body["checks"]["sign_in"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("neither oidc_issuer nor admin_token"),
        "{problem}"
    );
    assert_eq!(body["checks"]["sqlite"]["status"], "ok");
}

/// A removal channel set so that it cannot work (an Okta secret anyone
/// could guess, a SCIM token too short, an SSF transmitter not on https) is
/// reported by name, never by value; the others keep working.
#[test]
fn a_removal_channel_that_cannot_work_is_reported_without_its_secret() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::app(&state, "an-admin-token-long-enough")
        .env("SPIN_VARIABLE_OKTA_HOOK_SECRET", "okta-weak")
        .env("SPIN_VARIABLE_SCIM_TOKEN", "scim-weak")
        .env("SPIN_VARIABLE_SSF_ISSUER", "http://transmitter.example.com")
        .start();
    let reply = runner.get("/api/health");
    assert_eq!(reply.status, 503, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["checks"]["sign_in"]["status"], "ok");
    assert_eq!(body["checks"]["removal"]["status"], "failing");
    let problem = body["checks"]["removal"]["problem"].as_str().unwrap();
    for name in ["okta_hook_secret", "scim_token", "ssf_issuer"] {
        assert!(problem.contains(name), "{problem}");
    }
    for value in ["okta-weak", "scim-weak"] {
        assert!(!reply.text().contains(value), "{}", reply.text());
    }
    // The weak Okta secret is not accepted either: the route is off.
    let okta = runner.post_json("/webhooks/okta", &keygate_tests::json!({}));
    assert_eq!(okta.status, 404, "{}", okta.text());
}

#[test]
fn usable_removal_channels_are_healthy() {
    let state = tempfile::tempdir().unwrap();
    let runner = RunnerConfig::app(&state, "an-admin-token-long-enough")
        .env(
            "SPIN_VARIABLE_OKTA_HOOK_SECRET",
            "an-okta-hook-secret-long-enough",
        )
        .env("SPIN_VARIABLE_SCIM_TOKEN", "a-scim-token-long-enough")
        .start();
    let reply = runner.get("/api/health");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["checks"]["removal"]["status"], "ok");
}
