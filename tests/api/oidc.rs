//! Sign-in with the organisation's identity provider (api.md v2, "Who is
//! acting"): management calls with a JWT from `oidc_issuer`, against a test
//! provider serving discovery and a JWKS on 127.0.0.1 (tests/support/idp.rs).
//! Grouped by what the caller sees: 200, 401, 403, 503. The console's
//! sign-in through a real OpenID Provider is in tests/browser/signin.test.mjs.

use keygate_tests::api::*;
use keygate_tests::idp::{CLIENT_ID, TestIdp, TestKey, unix_now};
use keygate_tests::{Json, Reply, RunnerConfig, json};

/// keygate with OIDC pointed at `idp` (and the admin token too, unless
/// `admin_token` is false).
fn app_with(idp: &TestIdp, admin_token: bool) -> App {
    App::start_with(|config| oidc_config(config, idp, admin_token))
}

fn oidc_config(config: RunnerConfig, idp: &TestIdp, admin_token: bool) -> RunnerConfig {
    let mut config = config
        .env("SPIN_VARIABLE_OIDC_ISSUER", &idp.issuer)
        .env("SPIN_VARIABLE_OIDC_ORIGIN", &idp.issuer)
        .env("SPIN_VARIABLE_OIDC_CLIENT_ID", CLIENT_ID);
    if !admin_token {
        config
            .env
            .retain(|(name, _)| name != "SPIN_VARIABLE_ADMIN_TOKEN");
    }
    config
}

fn with_token<'a>(app: &'a App, method: &str, path: &str, token: &str) -> Call<'a> {
    app.call(method, path).bearer(token)
}

fn create_with_token(app: &App, token: &str, name: &str) -> Reply {
    with_token(app, "POST", "/api/keys", token)
        .json(&json!({"name": name}))
        .send()
}

fn claims_with(idp: &TestIdp, user: &str, change: impl FnOnce(&mut Json)) -> Json {
    let mut claims = idp.claims(user);
    change(&mut claims);
    claims
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// --- 200 -------------------------------------------------------------------

#[test]
fn a_token_from_the_issuer_acts_as_the_user_it_names_and_the_key_carries_that_identity() {
    let idp = TestIdp::start(&[TestKey::RsaA, TestKey::EcA]);
    let app = app_with(&idp, true);
    for (key, name) in [(TestKey::RsaA, "rs256-key"), (TestKey::EcA, "es256-key")] {
        let token = idp.token(key, "Alice@Example.com");
        let created = expect_json(&create_with_token(&app, &token, name), 201);
        assert_eq!(created["created_by"], "Alice@Example.com");
        // The key works and its uses are Alice's.
        expect_json(&app.verify(created["secret"].as_str().unwrap()), 200);
        let listed = expect_json(
            &with_token(
                &app,
                "GET",
                "/api/keys?created_by=Alice@Example.com",
                &token,
            )
            .send(),
            200,
        );
        assert!(
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["id"] == created["id"])
        );
    }
    let audit = app.audit("action=key.created");
    let entry = &audit["items"][0];
    assert_eq!(entry["user"], "Alice@Example.com");
    // Discovery and the JWKS were fetched once for both calls and both keys.
    assert_eq!((idp.discovery_requests(), idp.jwks_requests()), (1, 1));
}

#[test]
fn x_acting_user_may_repeat_the_tokens_user_in_any_case() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, true);
    let token = idp.token(TestKey::RsaA, "alice@example.com");
    let reply = with_token(&app, "GET", "/api/keys", &token)
        .acting("ALICE@example.com")
        .send();
    expect_json(&reply, 200);
}

#[test]
fn auth_config_tells_the_console_what_it_may_offer_without_authentication() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let both = app_with(&idp, true);
    let config = expect_json(&both.call("GET", "/api/auth-config").send(), 200);
    assert_eq!(
        config,
        json!({
            "oidc": {"issuer": idp.issuer, "client_id": CLIENT_ID, "scopes": "openid profile email", "token": "id_token"},
            "admin_token": true
        })
    );
    let oidc_only = app_with(&idp, false);
    let config = expect_json(&oidc_only.call("GET", "/api/auth-config").send(), 200);
    assert_eq!(config["admin_token"], false);
    let admin_only = App::start();
    let config = expect_json(&admin_only.call("GET", "/api/auth-config").send(), 200);
    assert_eq!(config, json!({"oidc": null, "admin_token": true}));
    assert_problem(
        &admin_only.call("POST", "/api/auth-config").send(),
        405,
        "method_not_allowed",
    );
}

#[test]
fn with_the_provider_down_a_cached_key_set_keeps_people_signed_in() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, false);
    let token = idp.token(TestKey::RsaA, "alice@example.com");
    expect_json(&with_token(&app, "GET", "/api/keys", &token).send(), 200);
    idp.set_down(true);
    expect_json(&with_token(&app, "GET", "/api/keys", &token).send(), 200);
    expect_json(&create_with_token(&app, &token, "while-idp-down"), 201);
}

#[test]
fn a_key_rotated_in_at_the_provider_is_picked_up_at_once() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, false);
    expect_json(
        &with_token(
            &app,
            "GET",
            "/api/keys",
            &idp.token(TestKey::RsaA, "alice@example.com"),
        )
        .send(),
        200,
    );
    idp.set_keys(&[TestKey::RsaB]);
    let rotated = idp.token(TestKey::RsaB, "alice@example.com");
    expect_json(&with_token(&app, "GET", "/api/keys", &rotated).send(), 200);
    assert_eq!(idp.jwks_requests(), 2);
    // The retired key no longer signs in (its set was replaced).
    let old = idp.token(TestKey::RsaA, "alice@example.com");
    let problem = assert_problem(
        &with_token(&app, "GET", "/api/keys", &old).send(),
        401,
        "invalid_token",
    );
    assert!(problem["detail"].as_str().unwrap().contains("kid"));
}

// --- 401 -------------------------------------------------------------------

#[test]
fn every_token_that_fails_a_check_is_401_invalid_token_naming_the_check_and_changes_nothing() {
    let idp = TestIdp::start(&[TestKey::RsaA, TestKey::RsaB]);
    let app = app_with(&idp, true);
    let user = "alice@example.com";
    let now = unix_now();
    let good = idp.token(TestKey::RsaA, user);
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(claims_with(&idp, "mallory@example.com", |_| {})
            .to_string()
            .as_bytes());
        parts.join(".")
    };
    let header = |alg: &str, kid: &str| {
        b64(json!({"alg": alg, "kid": kid, "typ": "JWT"})
            .to_string()
            .as_bytes())
    };
    let payload = b64(idp.claims(user).to_string().as_bytes());
    let hs256_with_public_key = {
        use hmac::{Hmac, Mac};
        let input = format!("{}.{payload}", header("HS256", "rsa-a"));
        let n = TestKey::RsaA.jwk()["n"].as_str().unwrap().to_owned();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(n.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| {
                c["exp"] = json!(now - 120);
                c["iat"] = json!(now - 4000);
            })),
            "expired",
        ),
        (
            "not yet valid",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| c["nbf"] = json!(now + 600))),
            "not valid yet",
        ),
        (
            "issued in the future",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| c["iat"] = json!(now + 600))),
            "future",
        ),
        (
            "wrong issuer",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| {
                c["iss"] = json!("https://evil.example.com")
            })),
            "issuer",
        ),
        (
            "wrong audience",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| {
                c["aud"] = json!("another-app")
            })),
            "audience",
        ),
        (
            "alg none",
            format!("{}.{payload}.", header("none", "rsa-a")),
            "not a signed JWT",
        ),
        (
            "alg none, any signature",
            format!("{}.{payload}.c2ln", header("none", "rsa-a")),
            "not allowed",
        ),
        (
            "HS256 with the public key",
            hs256_with_public_key,
            "not allowed",
        ),
        (
            "unknown kid",
            format!("{}.{payload}.c2ln", header("RS256", "no-such-key")),
            "kid",
        ),
        ("tampered payload", tampered, "signature"),
        (
            "missing user claim",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| {
                c.as_object_mut().unwrap().remove("email");
            })),
            "email",
        ),
        (
            "invalid user claim",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| {
                c["email"] = json!("x".repeat(201))
            })),
            "valid user id",
        ),
        (
            "unverified e-mail",
            TestKey::RsaA.sign(&claims_with(&idp, user, |c| {
                c["email_verified"] = json!(false)
            })),
            "not verified",
        ),
        (
            "signed by a key the issuer does not have",
            TestKey::EcA.sign(&idp.claims(user)),
            "kid",
        ),
    ];
    let before = app.snapshot();
    for (case, token, words) in &cases {
        for (method, path, body) in [
            (
                "POST",
                "/api/keys",
                Some(json!({"name": "should-not-exist"})),
            ),
            ("GET", "/api/keys", None),
            ("GET", "/api/audit", None),
        ] {
            let mut call = with_token(&app, method, path, token);
            if let Some(body) = &body {
                call = call.json(body);
            }
            let reply = call.send();
            let problem = assert_problem(&reply, 401, "invalid_token");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains(words),
                "{case}: {detail:?} should say {words:?}"
            );
            assert!(
                !detail.contains(token.as_str()),
                "{case}: the token is echoed"
            );
            assert_eq!(
                reply.header("www-authenticate"),
                Some(r#"Bearer error="invalid_token""#),
                "{case}"
            );
        }
    }
    assert_eq!(app.snapshot(), before, "a refused token changed something");
}

#[test]
fn without_the_admin_token_mode_a_bearer_that_is_not_a_jwt_is_refused() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, false);
    let reply = app.mgmt("GET", "/api/keys").send();
    let problem = assert_problem(&reply, 401, "invalid_token");
    assert!(!problem["detail"].as_str().unwrap().contains(ADMIN_TOKEN));
    assert_problem(&app.call("GET", "/api/keys").send(), 401, "unauthenticated");
}

#[test]
fn with_both_modes_the_admin_token_still_works_as_before() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, true);
    let (key, _) = app.create_key("portal-key");
    assert_eq!(key["created_by"], ALICE);
    assert_problem(
        &app.call("GET", "/api/keys").bearer(ADMIN_TOKEN).send(),
        400,
        "acting_user_required",
    );
    assert_eq!(
        idp.jwks_requests(),
        0,
        "the admin token never reaches the provider"
    );
}

// --- 403 -------------------------------------------------------------------

#[test]
fn x_acting_user_naming_someone_else_is_403_acting_user_mismatch() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, true);
    let token = idp.token(TestKey::RsaA, "alice@example.com");
    let before = app.snapshot();
    let reply = create_with_token(&app, &token, "x");
    assert_eq!(reply.status, 201);
    let before_second = app.snapshot();
    let reply = with_token(&app, "POST", "/api/keys", &token)
        .acting("bob@example.com")
        .json(&json!({"name": "as-bob"}))
        .send();
    assert_problem(&reply, 403, "acting_user_mismatch");
    assert_eq!(app.snapshot(), before_second);
    assert_ne!(before, before_second);
}

#[test]
fn a_removed_user_signing_in_with_a_valid_token_is_403_user_removed() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = app_with(&idp, true);
    let token = idp.token(TestKey::RsaA, "leaver@example.com");
    expect_json(&create_with_token(&app, &token, "leaver-key"), 201);
    app.remove_user("leaver@example.com");
    assert_problem(
        &create_with_token(&app, &token, "after-removal"),
        403,
        "user_removed",
    );
    assert_problem(
        &with_token(&app, "GET", "/api/keys", &token).send(),
        403,
        "user_removed",
    );
}

// --- 503 -------------------------------------------------------------------

#[test]
fn with_the_provider_down_and_nothing_cached_it_is_503_identity_provider_unavailable() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    idp.set_down(true);
    let app = app_with(&idp, true);
    let token = idp.token(TestKey::RsaA, "alice@example.com");
    let before = app.snapshot();
    let problem = assert_problem(
        &create_with_token(&app, &token, "x"),
        503,
        "identity_provider_unavailable",
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("could not be fetched")
    );
    assert_eq!(app.snapshot(), before);
    // The admin-token mode does not depend on the provider.
    app.create_key("portal-key");
    // Back up: the next call signs in.
    idp.set_down(false);
    expect_json(&create_with_token(&app, &token, "after-outage"), 201);
}

#[test]
fn an_issuer_the_manifest_does_not_allow_reaching_is_503_saying_so() {
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = App::start_with(|config| {
        oidc_config(config, &idp, true).env("SPIN_VARIABLE_OIDC_ORIGIN", "")
    });
    let token = idp.token(TestKey::RsaA, "alice@example.com");
    let problem = assert_problem(
        &with_token(&app, "GET", "/api/keys", &token).send(),
        503,
        "identity_provider_unavailable",
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("allowed_outbound_hosts"),
        "{problem}"
    );
    assert_eq!(idp.discovery_requests(), 0);
}

#[test]
fn neither_mode_configured_is_503_management_not_configured() {
    let app = App::start_with(|mut config| {
        config
            .env
            .retain(|(name, _)| name != "SPIN_VARIABLE_ADMIN_TOKEN");
        config
    });
    assert_problem(
        &app.call("GET", "/api/keys").bearer("anything").send(),
        503,
        "management_not_configured",
    );
    assert_problem(
        &app.call("GET", "/api/keys").send(),
        503,
        "management_not_configured",
    );
    let config = expect_json(&app.call("GET", "/api/auth-config").send(), 200);
    assert_eq!(config, json!({"oidc": null, "admin_token": false}));
    let health = app.call("GET", "/api/health").send_any_status();
    assert_eq!(health.status, 503);
    let body: Json = serde_json::from_str(&health.text()).unwrap();
    assert!(
        body["checks"]["sign_in"]["problem"]
            .as_str()
            .unwrap()
            .contains("neither")
    );
}

#[test]
fn an_http_issuer_that_is_not_loopback_is_refused_as_misconfigured() {
    let app = App::start_with(|config| {
        config
            .env("SPIN_VARIABLE_OIDC_ISSUER", "http://idp.example.com")
            .env("SPIN_VARIABLE_OIDC_CLIENT_ID", CLIENT_ID)
    });
    let token = TestKey::RsaA.sign(&json!({"iss": "http://idp.example.com", "aud": CLIENT_ID, "exp": unix_now() + 60, "email": "a@example.com"}));
    let problem = assert_problem(
        &app.call("GET", "/api/keys").bearer(&token).send(),
        503,
        "identity_provider_unavailable",
    );
    assert!(problem["detail"].as_str().unwrap().contains("https"));
    // The admin token keeps working beside it.
    expect_json(&app.mgmt("GET", "/api/keys").send(), 200);
}
