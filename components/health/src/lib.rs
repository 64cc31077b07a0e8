//! `GET /api/health`: is keygate able to serve? Touches each dependency the
//! real components rely on (key-value store, SQLite database, the sign-in
//! variables, the removal channels' variables) and reports each one,
//! without revealing any value.

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, StatusCode};
use keygate::auth;
use keygate::channels::{ChannelVariables, check_removal_channels};
use keygate::oidc::OidcConfig;
use keygate_spin::http_method;
use serde_json::json;
use spin_sdk::http::{IncomingRequest, IntoResponse, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, sqlite3, variables};

/// Takes the `IncomingRequest` and never reads its body (the route has
/// none): spin-sdk's `Request` would read any body whole into memory first.
#[http_component]
fn handle(req: IncomingRequest) -> Response {
    let method = http_method(req.method());
    if method != Method::GET && method != Method::HEAD {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(ALLOW.as_str(), "GET, HEAD")
            .header(CONTENT_TYPE.as_str(), "application/problem+json")
            .body(
                json!({
                    "type": "about:blank",
                    "title": "Method Not Allowed",
                    "status": 405,
                    "detail": "GET /api/health only",
                    "code": "method_not_allowed"
                })
                .to_string(),
            )
            .build();
    }
    let checks = [
        ("key_value", check_key_value()),
        ("sqlite", check_sqlite()),
        ("sign_in", check_sign_in()),
        ("removal", check_removal()),
    ];
    let healthy = checks.iter().all(|(_, r)| r.is_ok());
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "checks": checks
            .iter()
            .map(|(name, result)| {
                let value = match result {
                    Ok(()) => json!({"status": "ok"}),
                    Err(problem) => json!({"status": "failing", "problem": problem}),
                };
                (name.to_string(), value)
            })
            .collect::<serde_json::Map<_, _>>(),
    });
    Response::builder()
        .status(if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        })
        .header(CONTENT_TYPE.as_str(), "application/json")
        .header(CACHE_CONTROL.as_str(), "no-store")
        .body(body.to_string())
        .build()
        .into_response()
}

fn check_key_value() -> Result<(), String> {
    let store = key_value::Store::open_default().map_err(|e| format!("cannot open store: {e}"))?;
    store
        .exists("health")
        .map(drop)
        .map_err(|e| format!("cannot read: {e}"))
}

fn check_sqlite() -> Result<(), String> {
    let db =
        sqlite3::Connection::open_default().map_err(|e| format!("cannot open database: {e}"))?;
    let result = db
        .execute("SELECT 1", &[])
        .map_err(|e| format!("cannot query: {e}"))?;
    match result.rows.first().and_then(|r| r.values.first()) {
        Some(sqlite3::Value::Integer(1)) => Ok(()),
        _ => Err("unexpected answer to SELECT 1".to_string()),
    }
}

/// The identity-system channels that can remove users: each one set must be
/// able to work. None set is not a failure (removal is then only by hand),
/// and the check never shows a value.
fn check_removal() -> Result<(), String> {
    let var = |name: &str| variables::get(name).ok();
    let (webhook, scim, okta, ssf_issuer, ssf_audience, oidc_issuer, claim) = (
        var("webhook_secret"),
        var("scim_token"),
        var("okta_hook_secret"),
        var("ssf_issuer"),
        var("ssf_audience"),
        var("oidc_issuer"),
        var("oidc_user_claim"),
    );
    check_removal_channels(ChannelVariables {
        webhook_secret: webhook.as_deref(),
        scim_token: scim.as_deref(),
        okta_hook_secret: okta.as_deref(),
        ssf_issuer: ssf_issuer.as_deref(),
        ssf_audience: ssf_audience.as_deref(),
        oidc_issuer: oidc_issuer.as_deref(),
        oidc_user_claim: claim.as_deref(),
    })
    .map(drop)
}

/// At least one way to sign in, and none configured wrongly.
fn check_sign_in() -> Result<(), String> {
    let var = |name: &str| variables::get(name).ok().filter(|v| !v.is_empty());
    let admin_token = var("admin_token");
    if admin_token
        .as_ref()
        .is_some_and(|t| auth::admin_token_mode(Some(t)).is_none())
    {
        return Err("admin_token is shorter than 16 characters".to_string());
    }
    let oidc = OidcConfig::from_variables(
        var("oidc_issuer").as_deref(),
        var("oidc_audience").as_deref(),
        var("oidc_client_id").as_deref(),
        var("oidc_user_claim").as_deref(),
    )
    .map_err(|e| e.to_problem().detail)?;
    if admin_token.is_none() && oidc.is_none() {
        return Err(
            "neither oidc_issuer nor admin_token is set: management calls answer 503".to_string(),
        );
    }
    Ok(())
}
