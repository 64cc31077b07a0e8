//! The OIDC checks against tokens signed here with the test keys of
//! `tests/fixtures/oidc`, a provider played by [`FakeProvider`], and a clock
//! the tests own.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::jwks::{FRESH_SECONDS, KID_REFETCH_SECONDS, STALE_LIMIT_SECONDS};
use super::*;
use crate::model::SignIn;
use crate::testing::MemoryKeyValue;

const ISSUER: &str = "https://idp.example.com/tenant";
const CLIENT: &str = "keygate-console";
const NOW: i64 = 1_800_000_000;

const RSA_A: &str = include_str!("../../../../tests/fixtures/oidc/rsa-a.pem");
const RSA_B: &str = include_str!("../../../../tests/fixtures/oidc/rsa-b.pem");
const EC_A: &str = include_str!("../../../../tests/fixtures/oidc/ec-a.pem");

fn jwk(name: &str) -> Value {
    let text = match name {
        "rsa-a" => include_str!("../../../../tests/fixtures/oidc/rsa-a.jwk.json"),
        "rsa-b" => include_str!("../../../../tests/fixtures/oidc/rsa-b.jwk.json"),
        "ec-a" => include_str!("../../../../tests/fixtures/oidc/ec-a.jwk.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

/// Polls a future that never waits (the fake provider answers at once).
fn run<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the test future waited"),
    }
}

fn config() -> OidcConfig {
    OidcConfig::from_variables(Some(ISSUER), None, Some(CLIENT), None)
        .unwrap()
        .unwrap()
}

/// The identity provider: discovery and a JWKS that tests change, a switch
/// that takes it down, and a count of the requests it served.
struct FakeProvider {
    keys: RefCell<Vec<Value>>,
    down: Cell<bool>,
    requests: Cell<u32>,
}

impl FakeProvider {
    fn with(keys: &[&str]) -> Self {
        Self {
            keys: RefCell::new(keys.iter().map(|k| jwk(k)).collect()),
            down: Cell::new(false),
            requests: Cell::new(0),
        }
    }
}

impl HttpGet for FakeProvider {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>> {
        self.requests.set(self.requests.get() + 1);
        let answer = if self.down.get() {
            Err("connection refused".to_owned())
        } else if url == format!("{ISSUER}/.well-known/openid-configuration") {
            Ok(
                json!({"issuer": ISSUER, "jwks_uri": format!("{ISSUER}/keys")})
                    .to_string()
                    .into_bytes(),
            )
        } else if url == format!("{ISSUER}/keys") {
            Ok(json!({"keys": *self.keys.borrow()})
                .to_string()
                .into_bytes())
        } else {
            Err(format!("404 for {url}"))
        };
        std::future::ready(answer)
    }
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "00u1",
        "email": "Floris@Example.com",
        "email_verified": true,
        "iat": NOW - 10,
        "exp": NOW + 3600,
    })
}

fn sign(kid: &str, claims: &Value) -> String {
    let (alg, key) = match kid {
        "rsa-a" => (
            jsonwebtoken::Algorithm::RS256,
            EncodingKey::from_rsa_pem(RSA_A.as_bytes()),
        ),
        "rsa-b" => (
            jsonwebtoken::Algorithm::RS256,
            EncodingKey::from_rsa_pem(RSA_B.as_bytes()),
        ),
        "ec-a" => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_pem(EC_A.as_bytes()),
        ),
        _ => unreachable!(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.unwrap()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a header and payload of the test's choosing, signed (or not)
/// with raw bytes: for the forgeries a JOSE library refuses to make.
fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn check(
    token: &str,
    idp: &FakeProvider,
    kv: &MemoryKeyValue,
    now: i64,
) -> Result<ActingUser, Error> {
    run(authenticate(token, &config(), kv, idp, now))
}

fn refused_because(result: Result<ActingUser, Error>, words: &str) {
    match result {
        Err(Error::InvalidToken(detail)) => {
            assert!(detail.contains(words), "{detail:?} should say {words:?}")
        }
        other => panic!("expected invalid_token ({words}), got {other:?}"),
    }
}

#[test]
fn a_token_signed_by_the_issuer_names_the_acting_user_rs256_and_es256() {
    let idp = FakeProvider::with(&["rsa-a", "ec-a"]);
    let kv = MemoryKeyValue::new();
    for kid in ["rsa-a", "ec-a"] {
        let user = check(&sign(kid, &claims()), &idp, &kv, NOW).unwrap();
        assert_eq!(user.as_str(), "Floris@Example.com");
        assert_eq!(user.signed_in_with(), SignIn::Oidc);
    }
    assert_eq!(
        idp.requests.get(),
        2,
        "discovery and JWKS once, then the cache"
    );
}

#[test]
fn the_audience_may_be_one_of_several_and_the_user_claim_is_configurable() {
    let idp = FakeProvider::with(&["rsa-a"]);
    let kv = MemoryKeyValue::new();
    let config = OidcConfig::from_variables(
        Some(ISSUER),
        Some("api://keygate"),
        Some(CLIENT),
        Some("preferred_username"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(config.console_token(), "access_token");
    let mut c = claims();
    c["aud"] = json!(["other", "api://keygate"]);
    c["preferred_username"] = json!("floris");
    let user = run(authenticate(&sign("rsa-a", &c), &config, &kv, &idp, NOW)).unwrap();
    assert_eq!(user.as_str(), "floris");
}

#[test]
fn every_claim_check_refuses_with_a_detail_that_names_it() {
    let idp = FakeProvider::with(&["rsa-a"]);
    let kv = MemoryKeyValue::new();
    let with = |field: &str, value: Value| {
        let mut c = claims();
        c[field] = value;
        c
    };
    let without = |field: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(field);
        c
    };
    let cases = [
        (with("exp", json!(NOW - 61)), "expired"),
        (without("exp"), "no expiry"),
        (with("nbf", json!(NOW + 61)), "not valid yet"),
        (with("iat", json!(NOW + 61)), "issued in the future"),
        (
            with("iss", json!("https://idp.example.com/other")),
            "issuer",
        ),
        (with("iss", json!(format!("{ISSUER}/"))), "issuer"),
        (with("aud", json!("someone-else")), "audience"),
        (with("aud", json!(["a", "b"])), "audience"),
        (without("email"), "no `email` claim"),
        (with("email", json!("")), "not a valid user id"),
        (with("email", json!(42)), "not a valid user id"),
        (with("email", json!("a\u{7}b")), "not a valid user id"),
        (with("email_verified", json!(false)), "not verified"),
        (with("email_verified", json!("false")), "not verified"),
    ];
    for (claims, words) in cases {
        refused_because(check(&sign("rsa-a", &claims), &idp, &kv, NOW), words);
    }
    // Inside the 60 s leeway both ways.
    for c in [
        with("exp", json!(NOW - 59)),
        with("nbf", json!(NOW + 59)),
        with("iat", json!(NOW + 59)),
    ] {
        check(&sign("rsa-a", &c), &idp, &kv, NOW).unwrap();
    }
    // `email_verified` absent (Entra ID sends none) is not a refusal.
    check(&sign("rsa-a", &without("email_verified")), &idp, &kv, NOW).unwrap();
}

#[test]
fn forged_tokens_are_refused_none_hs256_with_the_public_key_tampered_and_wrong_key() {
    let idp = FakeProvider::with(&["rsa-a", "rsa-b"]);
    let kv = MemoryKeyValue::new();
    let good = sign("rsa-a", &claims());
    check(&good, &idp, &kv, NOW).unwrap();

    let none = forge(&json!({"alg": "none", "kid": "rsa-a"}), &claims(), b"");
    refused_because(check(&none, &idp, &kv, NOW), "not a signed JWT");
    let none = forge(&json!({"alg": "none", "kid": "rsa-a"}), &claims(), b"x");
    refused_because(check(&none, &idp, &kv, NOW), "\"none\" is not allowed");

    // HS256 keyed with the RSA key's public modulus: the classic confusion.
    use hmac::{Hmac, Mac};
    let header = json!({"alg": "HS256", "kid": "rsa-a"});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(jwk("rsa-a")["n"].as_str().unwrap().as_bytes())
            .unwrap();
    mac.update(signing_input.as_bytes());
    let hs = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
    refused_because(check(&hs, &idp, &kv, NOW), "\"HS256\" is not allowed");

    // The payload changed after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut c = claims();
    c["email"] = json!("mallory@example.com");
    parts[1] = b64(c.to_string().as_bytes());
    refused_because(
        check(&parts.join("."), &idp, &kv, NOW),
        "signature does not verify",
    );

    // Signed by key B but naming key A.
    let b = sign("rsa-b", &claims());
    let mut parts: Vec<String> = b.split('.').map(str::to_owned).collect();
    parts[0] = b64(json!({"alg": "RS256", "kid": "rsa-a", "typ": "JWT"})
        .to_string()
        .as_bytes());
    refused_because(
        check(&parts.join("."), &idp, &kv, NOW),
        "signature does not verify",
    );

    // An RSA key used with ES256 (the key's `alg` and type say RS256).
    let es_on_rsa = forge(
        &json!({"alg": "ES256", "kid": "rsa-a"}),
        &claims(),
        &[0; 64],
    );
    refused_because(check(&es_on_rsa, &idp, &kv, NOW), "does not suit the key");

    refused_because(
        check("eyJhbGciOiJSUzI1NiJ9.e30", &idp, &kv, NOW),
        "not a JWT",
    );
    refused_because(
        check("eyJub3QganNvbg.e30.e30", &idp, &kv, NOW),
        "not base64url-encoded JSON",
    );
    let crit = forge(
        &json!({"alg": "RS256", "kid": "rsa-a", "crit": ["exp"]}),
        &claims(),
        b"x",
    );
    refused_because(check(&crit, &idp, &kv, NOW), "critical");
}

#[test]
fn a_key_rotated_in_at_the_provider_is_fetched_once_and_made_up_kids_cost_one_fetch_a_minute() {
    let idp = FakeProvider::with(&["rsa-a"]);
    let kv = MemoryKeyValue::new();
    check(&sign("rsa-a", &claims()), &idp, &kv, NOW).unwrap();
    assert_eq!(idp.requests.get(), 2);

    // The provider rotates: B is its key now.
    *idp.keys.borrow_mut() = vec![jwk("rsa-b")];
    let user = check(&sign("rsa-b", &claims()), &idp, &kv, NOW + 1).unwrap();
    assert_eq!(user.as_str(), "Floris@Example.com");
    assert_eq!(idp.requests.get(), 4, "one refetch for the new kid");
    // The retired key is gone from the cache with the set it came in: a new
    // token signed with it is refused (the one checked before rotation is
    // still recognised by its hash, for at most ten minutes: `verified`).
    let mut after = claims();
    after["jti"] = json!("signed-after-rotation");
    refused_because(
        check(&sign("rsa-a", &after), &idp, &kv, NOW + 2),
        "names no key",
    );
    assert_eq!(idp.requests.get(), 4, "no second refetch within the minute");

    // A flood of tokens naming unknown kids: no request to the provider
    // within the minute, then one.
    for i in 0..50 {
        let forged = forge(
            &json!({"alg": "RS256", "kid": format!("made-up-{i}")}),
            &claims(),
            b"sig",
        );
        refused_because(check(&forged, &idp, &kv, NOW + 3), "names no key");
    }
    assert_eq!(idp.requests.get(), 4);
    let forged = forge(
        &json!({"alg": "RS256", "kid": "made-up"}),
        &claims(),
        b"sig",
    );
    refused_because(
        check(&forged, &idp, &kv, NOW + 1 + KID_REFETCH_SECONDS),
        "names no key",
    );
    assert_eq!(idp.requests.get(), 6);
}

#[test]
fn the_cache_is_fresh_for_ten_minutes_then_fetched_again() {
    let idp = FakeProvider::with(&["rsa-a"]);
    let kv = MemoryKeyValue::new();
    check(&sign("rsa-a", &claims()), &idp, &kv, NOW).unwrap();
    check(
        &sign("rsa-a", &claims()),
        &idp,
        &kv,
        NOW + FRESH_SECONDS - 1,
    )
    .unwrap();
    assert_eq!(idp.requests.get(), 2);
    let mut c = claims();
    c["exp"] = json!(NOW + 2 * FRESH_SECONDS);
    check(&sign("rsa-a", &c), &idp, &kv, NOW + FRESH_SECONDS).unwrap();
    assert_eq!(idp.requests.get(), 4);
}

#[test]
fn with_the_provider_down_a_cached_key_set_keeps_serving_and_without_one_it_is_503() {
    let idp = FakeProvider::with(&["rsa-a"]);
    let kv = MemoryKeyValue::new();
    idp.down.set(true);
    match check(&sign("rsa-a", &claims()), &idp, &kv, NOW) {
        Err(Error::IdentityProviderUnavailable(detail)) => {
            assert!(
                detail.contains("discovery document could not be fetched"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    idp.down.set(false);
    check(&sign("rsa-a", &claims()), &idp, &kv, NOW).unwrap();
    idp.down.set(true);
    // Stale (past ten minutes) and the provider down: the copy serves, and
    // the provider is asked again at most once a minute.
    let later = NOW + FRESH_SECONDS + 5;
    let mut c = claims();
    c["exp"] = json!(NOW + STALE_LIMIT_SECONDS + 3600);
    let before = idp.requests.get();
    for t in 0..10 {
        check(&sign("rsa-a", &c), &idp, &kv, later + t).unwrap();
    }
    assert_eq!(idp.requests.get(), before + 1);
    // A day later the stale copy is no longer trusted.
    assert!(matches!(
        check(&sign("rsa-a", &c), &idp, &kv, NOW + STALE_LIMIT_SECONDS),
        Err(Error::IdentityProviderUnavailable(_))
    ));
}

#[test]
fn a_discovery_document_for_another_issuer_or_with_an_http_jwks_uri_is_not_trusted() {
    struct Lying(&'static str);
    impl HttpGet for Lying {
        fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>> {
            let answer = if url.ends_with("openid-configuration") {
                Ok(self.0.as_bytes().to_vec())
            } else {
                Ok(json!({"keys": [jwk("rsa-a")]}).to_string().into_bytes())
            };
            std::future::ready(answer)
        }
    }
    for (document, words) in [
        (
            r#"{"issuer": "https://evil.example.com", "jwks_uri": "https://idp.example.com/tenant/keys"}"#,
            "names the issuer",
        ),
        (
            r#"{"issuer": "https://idp.example.com/tenant", "jwks_uri": "http://idp.example.com/keys"}"#,
            "not https",
        ),
        ("not json", "not valid JSON"),
    ] {
        let kv = MemoryKeyValue::new();
        match run(authenticate(
            &sign("rsa-a", &claims()),
            &config(),
            &kv,
            &Lying(document),
            NOW,
        )) {
            Err(Error::IdentityProviderUnavailable(detail)) => {
                assert!(detail.contains(words), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn issuer_urls_must_be_https_except_on_loopback() {
    for good in [
        "https://login.example.com/t/v2.0",
        "http://127.0.0.1:8080",
        "http://localhost:3000/x",
    ] {
        assert!(
            OidcConfig::from_variables(Some(good), None, Some(CLIENT), None)
                .unwrap()
                .is_some(),
            "{good}"
        );
    }
    for bad in [
        "http://idp.example.com",
        "http://127.0.0.1.evil.com",
        "ftp://x",
        "https://",
        "idp.example.com",
    ] {
        assert!(
            matches!(
                OidcConfig::from_variables(Some(bad), None, Some(CLIENT), None),
                Err(Error::IdentityProviderUnavailable(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(
        OidcConfig::from_variables(Some(""), None, None, None).unwrap(),
        None
    );
    assert!(
        OidcConfig::from_variables(Some(ISSUER), None, None, None).is_err(),
        "no audience at all"
    );
}

/// A provider whose every request fails the test: the call must be served
/// from what the key-value store remembers.
struct Unreachable;

impl HttpGet for Unreachable {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>> {
        panic!("no request expected, got {url}");
        #[allow(unreachable_code)]
        std::future::ready(Err(String::new()))
    }
}

#[test]
fn a_token_verified_once_is_recognised_by_its_hash_for_ten_minutes_and_never_past_its_expiry() {
    let idp = FakeProvider::with(&["rsa-a"]);
    let kv = MemoryKeyValue::new();
    let mut c = claims();
    c["exp"] = json!(NOW + 300);
    let token = sign("rsa-a", &c);
    check(&token, &idp, &kv, NOW).unwrap();
    // The key set is gone from the store: only the remembered hash can sign this in.
    kv.delete(&jwks::cache_key(ISSUER)).unwrap();
    let again = run(authenticate(&token, &config(), &kv, &Unreachable, NOW + 10)).unwrap();
    assert_eq!(again.as_str(), "Floris@Example.com");
    let stored =
        String::from_utf8(kv.get("oidc:verified:floris@example.com").unwrap().unwrap()).unwrap();
    assert!(
        !stored.contains(&token) && !stored.contains(token.split('.').nth(2).unwrap()),
        "only a hash is kept"
    );
    // Past `exp` (and the leeway) the remembered token is checked in full, and refused.
    refused_because(check(&token, &idp, &kv, NOW + 300 + 60), "expired");

    // Ten minutes after its check a remembered token is checked in full again.
    let (idp, kv) = (FakeProvider::with(&["rsa-a"]), MemoryKeyValue::new());
    let mut c = claims();
    c["exp"] = json!(NOW + 7200);
    let long = sign("rsa-a", &c);
    check(&long, &idp, &kv, NOW).unwrap();
    let before = idp.requests.get();
    check(&long, &idp, &kv, NOW + FRESH_SECONDS).unwrap();
    assert!(
        idp.requests.get() > before,
        "checked in full (the key set was refetched)"
    );
}

#[test]
fn a_token_that_only_claims_to_be_a_remembered_users_is_checked_in_full() {
    let idp = FakeProvider::with(&["rsa-a", "rsa-b"]);
    let kv = MemoryKeyValue::new();
    check(&sign("rsa-a", &claims()), &idp, &kv, NOW).unwrap();
    // Same user claim, other content: a different hash, so the signature decides.
    let mut c = claims();
    c["email_verified"] = json!(false);
    refused_because(check(&sign("rsa-a", &c), &idp, &kv, NOW), "not verified");
    let forged = forge(
        &json!({"alg": "RS256", "kid": "rsa-a"}),
        &claims(),
        b"not a signature",
    );
    refused_because(check(&forged, &idp, &kv, NOW), "signature does not verify");
    // Another deployment (audience) does not share what this one remembers.
    let other = OidcConfig::from_variables(Some(ISSUER), Some("other-app"), Some(CLIENT), None)
        .unwrap()
        .unwrap();
    assert!(verified::recall(&kv, &other, &sign("rsa-a", &claims()), NOW).is_none());
}
