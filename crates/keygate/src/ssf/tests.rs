//! The SSF receiver's checks and removals, against SETs signed here with the
//! test keys of `tests/fixtures/oidc`, a transmitter played by
//! [`FakeTransmitter`], SQLite in memory and a clock the tests own.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::model::{ActingUser, VerifyContext};
use crate::oidc::OidcConfig;
use crate::oidc::jwks::{FRESH_SECONDS, KID_REFETCH_SECONDS};
use crate::testing::{FailingKeyValue, FailingSql, KvOp, MemoryKeyValue, SqliteSql};
use crate::validate::{parse_audit_query, parse_create_body};

/// With a path, so the ssf-configuration's URL is the inserted form.
const ISSUER: &str = "https://tr.example.com/tenant-1";
const CONFIG_URL: &str = "https://tr.example.com/.well-known/ssf-configuration/tenant-1";
const JWKS_URL: &str = "https://tr.example.com/tenant-1/jwks";
const AUDIENCE: &str = "https://keygate.example.com/ssf";
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

/// Polls a future that never waits (the fake transmitter answers at once).
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

fn config() -> SsfConfig {
    SsfConfig::from_variables(Some(ISSUER), Some(AUDIENCE), None, None).unwrap()
}

/// The transmitter: its ssf-configuration and JWKS (which tests change), a
/// switch that takes it down, and the URLs it was asked for.
struct FakeTransmitter {
    keys: RefCell<Vec<Value>>,
    config_issuer: RefCell<String>,
    down: Cell<bool>,
    requests: RefCell<Vec<String>>,
}

impl FakeTransmitter {
    fn with(keys: &[&str]) -> Self {
        Self {
            keys: RefCell::new(keys.iter().map(|k| jwk(k)).collect()),
            config_issuer: RefCell::new(ISSUER.to_owned()),
            down: Cell::new(false),
            requests: RefCell::default(),
        }
    }

    fn request_count(&self) -> usize {
        self.requests.borrow().len()
    }
}

impl HttpGet for FakeTransmitter {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>> {
        self.requests.borrow_mut().push(url.to_owned());
        let answer = if self.down.get() {
            Err("connection refused".to_owned())
        } else if url == CONFIG_URL {
            Ok(json!({
                "spec_version": "1_0",
                "issuer": *self.config_issuer.borrow(),
                "jwks_uri": JWKS_URL,
                "delivery_methods_supported": ["urn:ietf:rfc:8935"],
            })
            .to_string()
            .into_bytes())
        } else if url == JWKS_URL {
            Ok(json!({"keys": *self.keys.borrow()})
                .to_string()
                .into_bytes())
        } else {
            Err(format!("404 for {url}"))
        };
        std::future::ready(answer)
    }
}

/// A SET as SSF 1.0 shapes it: `sub_id` at the top, one event.
fn set_claims(jti: &str, event_type: &str, sub_id: Value) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": jti,
        "iat": NOW - 5,
        "txn": "8675309",
        "sub_id": sub_id,
        "events": {event_type: {}},
    })
}

fn email(address: &str) -> Value {
    json!({"format": "email", "email": address})
}

fn disabled(jti: &str, user: &str) -> Value {
    let mut claims = set_claims(jti, ACCOUNT_DISABLED, email(user));
    claims["events"][ACCOUNT_DISABLED] = json!({"reason": "hijacking"});
    claims
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
    header.typ = Some("secevent+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, &key.unwrap()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a header and payload of the test's choosing and a raw
/// signature: for the forgeries a JOSE library refuses to make.
fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// keygate's stores, the transmitter, and the receiver's configuration.
struct World {
    kv: FailingKeyValue<MemoryKeyValue>,
    sql: FailingSql<SqliteSql>,
    transmitter: FakeTransmitter,
    config: SsfConfig,
}

impl World {
    fn new() -> Self {
        Self {
            kv: FailingKeyValue::new(MemoryKeyValue::new()),
            sql: FailingSql::new(SqliteSql::new()),
            transmitter: FakeTransmitter::with(&["rsa-a", "ec-a"]),
            config: config(),
        }
    }

    fn service(&self) -> KeyService<'_> {
        KeyService::new(&self.kv, &self.sql)
    }

    fn create(&self, owner: &str, name: &str) -> String {
        let new = parse_create_body(json!({ "name": name }).to_string().as_bytes(), NOW).unwrap();
        let created = self
            .service()
            .create_key(&ActingUser::named_by_portal(owner), new, NOW)
            .unwrap();
        created.secret.expose_secret().to_owned()
    }

    fn verify(&self, secret: &str) -> Result<(), Error> {
        self.service()
            .verify(Some(secret), &VerifyContext::default(), NOW)
            .map(|_| ())
    }

    fn audit(&self, action: &str) -> usize {
        let q = parse_audit_query(&format!("action={action}&per_page=100")).unwrap();
        let admin = ActingUser::named_by_portal("admin");
        self.service().list_audit(&admin, &q).unwrap().items.len()
    }

    fn check_as(&self, content_type: &str, body: &str) -> Result<CheckedSet, SsfError> {
        run(check(
            Some(content_type),
            body.as_bytes(),
            &self.config,
            &self.kv,
            &self.transmitter,
            NOW,
        ))
    }

    fn check(&self, token: &str) -> Result<CheckedSet, SsfError> {
        self.check_as(CONTENT_TYPE, token)
    }

    /// What the component does: check, then apply.
    fn push(&self, token: &str) -> Result<Option<UserRemovedResponse>, SsfError> {
        let set = self.check(token)?;
        Ok(apply(&self.service(), &set, NOW)?)
    }
}

#[track_caller]
fn refused(result: Result<CheckedSet, SsfError>, err: ErrCode, words: &str) {
    match result {
        Err(SsfError::Refused(refusal)) => {
            assert_eq!(refusal.err, err, "{refusal:?}");
            assert!(
                refusal.description.contains(words),
                "{:?} should say {words:?}",
                refusal.description
            );
        }
        other => panic!("expected {err:?} ({words}), got {other:?}"),
    }
}

fn removes(user: &str) -> Action {
    Action::Remove {
        user_id: user.to_owned(),
    }
}

// --- configuration -----------------------------------------------------------

#[test]
fn the_variables_turn_the_receiver_on_and_must_be_able_to_work() {
    for issuer in [None, Some(""), Some("  ")] {
        assert!(matches!(
            SsfConfig::from_variables(issuer, Some(AUDIENCE), None, None),
            Err(SsfError::Off)
        ));
    }
    let err = SsfConfig::from_variables(Some("http://tr.example.com"), Some(AUDIENCE), None, None)
        .unwrap_err();
    assert!(matches!(&err, SsfError::NotConfigured(d) if d.contains("https://")));
    assert_eq!(err.status(), 503);
    assert_eq!(err.to_problem().unwrap().code, "ssf_not_configured");
    let err = SsfConfig::from_variables(Some(ISSUER), Some(" "), None, None).unwrap_err();
    assert!(matches!(&err, SsfError::NotConfigured(d) if d.contains("ssf_audience")));
    // http:// on loopback, for local tests.
    SsfConfig::from_variables(Some("http://127.0.0.1:8080"), Some("kg"), None, None).unwrap();

    // iss_sub subjects map only when keygate's user ids are the OIDC `sub`.
    let idp = "https://idp.example.com";
    let with = |claim| {
        SsfConfig::from_variables(Some(ISSUER), Some(AUDIENCE), Some(idp), claim)
            .unwrap()
            .iss_sub_issuer
    };
    assert_eq!(with(Some("sub")), Some(idp.to_owned()));
    assert_eq!(with(None), None, "the default user claim is email");
    assert_eq!(with(Some("preferred_username")), None);
    let no_oidc = SsfConfig::from_variables(Some(ISSUER), Some(AUDIENCE), None, Some("sub"));
    assert_eq!(no_oidc.unwrap().iss_sub_issuer, None);
}

#[test]
fn the_transmitter_configuration_is_found_as_ssf_1_0_says_and_oidc_discovery_is_unchanged() {
    let ssf = DiscoveryPath::SsfConfiguration;
    assert_eq!(
        ssf.url("https://tr.example.com"),
        "https://tr.example.com/.well-known/ssf-configuration"
    );
    assert_eq!(
        ssf.url("https://tr.example.com/"),
        "https://tr.example.com/.well-known/ssf-configuration"
    );
    assert_eq!(
        ssf.url("https://tr.example.com/issuer1/"),
        "https://tr.example.com/.well-known/ssf-configuration/issuer1"
    );
    assert_eq!(
        ssf.url("http://127.0.0.1:4000/a/b"),
        "http://127.0.0.1:4000/.well-known/ssf-configuration/a/b"
    );
    let oidc = DiscoveryPath::OpenIdConfiguration;
    assert_eq!(
        oidc.url("https://idp.example.com/tenant/"),
        "https://idp.example.com/tenant/.well-known/openid-configuration"
    );
    let oidc_config = OidcConfig::from_variables(Some(ISSUER), None, Some("c"), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        oidc_config.key_source().cache_key(),
        jwks::cache_key(ISSUER)
    );
    assert_eq!(jwks::cache_key(ISSUER), format!("oidc:jwks:{ISSUER}"));
    assert_eq!(
        config().key_source().cache_key(),
        format!("ssf:jwks:{ISSUER}")
    );
}

// --- 202: removals -------------------------------------------------------------

#[test]
fn account_disabled_removes_the_user_its_sub_id_names_once_per_jti() {
    let w = World::new();
    let floris = [
        w.create("floris@example.com", "a"),
        w.create("Floris@Example.com", "b"),
    ];
    let other = w.create("jane@example.com", "c");

    let set = sign("rsa-a", &disabled("set-1", "FLORIS@example.com"));
    let checked = w.check(&set).unwrap();
    assert_eq!(checked.action, removes("FLORIS@example.com"));
    assert_eq!(checked.delivery_id(), "ssf:set-1");
    let removed = w.push(&set).unwrap().unwrap();
    assert_eq!(removed.revoked_keys, 2);
    for secret in &floris {
        assert!(matches!(w.verify(secret), Err(Error::RevokedKey)));
    }
    w.verify(&other).unwrap();
    assert_eq!((w.audit("user.removed"), w.audit("key.revoked")), (1, 2));

    // The same SET again (the transmitter's retry): the stored answer, nothing more.
    assert_eq!(w.push(&set).unwrap().unwrap(), removed);
    // Another SET for the same user: nothing more to revoke.
    let again = w.push(&sign("ec-a", &disabled("set-2", "floris@example.com")));
    assert_eq!(again.unwrap().unwrap().revoked_keys, 0);
    assert_eq!((w.audit("user.removed"), w.audit("key.revoked")), (1, 2));
}

#[test]
fn account_purged_and_every_subject_format_name_the_user() {
    let idp = "https://idp.example.com";
    let mut w = World::new();
    w.config =
        SsfConfig::from_variables(Some(ISSUER), Some(AUDIENCE), Some(idp), Some("sub")).unwrap();
    let cases = [
        (email("a@example.com"), "a@example.com"),
        (json!({"format": "opaque", "id": " 00u1abc "}), "00u1abc"),
        (
            json!({"format": "iss_sub", "iss": format!("{idp}/"), "sub": "00u2def"}),
            "00u2def",
        ),
        (
            json!({"format": "complex", "user": email("b@example.com"),
                   "tenant": {"format": "opaque", "id": "t-1"}}),
            "b@example.com",
        ),
        // Earlier drafts: a complex subject without `format`, `subject_type`, `iss-sub`.
        (json!({"user": email("c@example.com")}), "c@example.com"),
        (
            json!({"subject_type": "iss-sub", "iss": idp, "sub": "00u3ghi"}),
            "00u3ghi",
        ),
    ];
    for (i, (subject, user)) in cases.iter().enumerate() {
        for event_type in REMOVAL_EVENT_TYPES {
            // In `sub_id`, or in the event's `subject` (RISC as first defined).
            let top = set_claims(&format!("t-{i}"), event_type, subject.clone());
            let mut inner = set_claims(&format!("i-{i}"), event_type, Value::Null);
            inner.as_object_mut().unwrap().remove("sub_id");
            inner["events"][event_type]["subject"] = subject.clone();
            for claims in [top, inner] {
                let checked = w.check(&sign("rsa-a", &claims)).unwrap();
                assert_eq!(checked.action, removes(user), "{subject}");
            }
        }
    }
    // Both present and naming the same user in other cases: fine.
    let mut both = disabled("both", "d@example.com");
    both["events"][ACCOUNT_DISABLED]["subject"] = email("D@EXAMPLE.com");
    assert_eq!(
        w.check(&sign("rsa-a", &both)).unwrap().action,
        removes("d@example.com")
    );
    // One that cannot be mapped beside one that can: the one that can.
    let mut mixed = set_claims(
        "mixed",
        ACCOUNT_PURGED,
        json!({"format": "phone_number", "phone_number": "+1"}),
    );
    mixed["events"][ACCOUNT_PURGED]["subject"] = email("e@example.com");
    assert_eq!(
        w.check(&sign("rsa-a", &mixed)).unwrap().action,
        removes("e@example.com")
    );
}

#[test]
fn session_revoked_verification_and_unknown_events_are_acknowledged_and_change_nothing() {
    let w = World::new();
    let secret = w.create("floris@example.com", "a");
    let session = json!({"format": "complex", "user": email("floris@example.com"),
                         "session": {"format": "opaque", "id": "s-1"}});
    for (i, event_type) in [
        SESSION_REVOKED,
        "https://schemas.openid.net/secevent/ssf/event-type/verification",
        "https://schemas.openid.net/secevent/risc/event-type/account-enabled",
        "https://example.com/unknown",
    ]
    .into_iter()
    .enumerate()
    {
        let set = sign(
            "rsa-a",
            &set_claims(&format!("ack-{i}"), event_type, session.clone()),
        );
        assert_eq!(w.check(&set).unwrap().action, Action::Acknowledge);
        assert_eq!(w.push(&set).unwrap(), None);
    }
    // Whatever their subject: an unknown event's is never read.
    let odd = set_claims("ack-odd", SESSION_REVOKED, json!("not a subject"));
    assert_eq!(
        w.check(&sign("rsa-a", &odd)).unwrap().action,
        Action::Acknowledge
    );
    w.verify(&secret).unwrap();
    assert_eq!(w.audit("user.removed"), 0);
}

// --- 400 -----------------------------------------------------------------------

#[test]
fn what_is_not_a_signed_set_is_invalid_request() {
    let w = World::new();
    let good = sign("rsa-a", &disabled("x", "a@example.com"));
    w.check(&format!("\n {good}\r\n")).unwrap();
    w.check_as("Application/SecEvent+JWT; charset=utf-8", &good)
        .unwrap();
    for content_type in ["application/json", "application/jwt", "text/plain", ""] {
        refused(
            w.check_as(content_type, &good),
            ErrCode::InvalidRequest,
            "Content-Type: application/secevent+jwt",
        );
    }
    refused(
        run(check(
            None,
            good.as_bytes(),
            &w.config,
            &w.kv,
            &w.transmitter,
            NOW,
        )),
        ErrCode::InvalidRequest,
        "Content-Type",
    );
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "not a SET"),
        ("{\"events\": {}}".into(), "not a SET"),
        ("eyJhbGciOiJSUzI1NiJ9.e30".into(), "not a SET"),
        (format!("{good}."), "not a SET"),
        ("a.b.c.d.e".into(), "encrypted SETs"),
        ("eyJub3QganNvbg.e30.e30".into(), "header is not base64url"),
        (
            forge(
                &json!({"alg": "RS256", "kid": "rsa-a", "crit": ["exp"]}),
                &json!({}),
                b"x",
            ),
            "critical",
        ),
        (
            forge(&json!({"alg": "RS256", "kid": 7}), &json!({}), b"x"),
            "`kid` is not a string",
        ),
        (
            forge(
                &json!({"alg": "RS256", "kid": "rsa-a", "typ": "JWT"}),
                &json!({}),
                b"x",
            ),
            "`typ` is not secevent+jwt",
        ),
        (
            forge(
                &json!({"alg": "RS256", "kid": "rsa-a", "typ": "at+jwt"}),
                &json!({}),
                b"x",
            ),
            "`typ` is not secevent+jwt",
        ),
        (
            format!(
                "{}.bm90IGpzb24.eA",
                b64(br#"{"alg":"RS256","kid":"rsa-a"}"#)
            ),
            "payload is not base64url-encoded JSON",
        ),
    ];
    for (token, words) in cases {
        refused(w.check(&token), ErrCode::InvalidRequest, words);
    }
    let mut not_utf8 = b"eyJhbGciOiJSUzI1NiJ9.".to_vec();
    not_utf8.push(0xff);
    refused(
        run(check(
            Some(CONTENT_TYPE),
            &not_utf8,
            &w.config,
            &w.kv,
            &w.transmitter,
            NOW,
        )),
        ErrCode::InvalidRequest,
        "not a SET",
    );
    // Explicitly typed the long way, or not typed: accepted.
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-a".into());
    for typ in [None, Some("application/secevent+jwt")] {
        header.typ = typ.map(str::to_owned);
        let key = EncodingKey::from_rsa_pem(RSA_A.as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &disabled("typ", "a@example.com"), &key).unwrap();
        w.check(&token).unwrap();
    }
    // Nothing was fetched for any of the refusals before the issuer check.
    assert_eq!(w.transmitter.request_count(), 2);
}

#[test]
fn forged_and_unsigned_sets_fail_authentication_and_unknown_keys_are_invalid_key() {
    let w = World::new();
    let claims = disabled("f-1", "a@example.com");
    let good = sign("rsa-a", &claims);
    w.check(&good).unwrap();

    for signature in [b"".as_slice(), b"x"] {
        let none = forge(
            &json!({"alg": "none", "typ": "secevent+jwt"}),
            &claims,
            signature,
        );
        let expected = if signature.is_empty() {
            (ErrCode::InvalidRequest, "not a SET")
        } else {
            (ErrCode::AuthenticationFailed, "unsigned")
        };
        refused(w.check(&none), expected.0, expected.1);
    }

    // HS256 keyed with the RSA key's public modulus: the classic confusion.
    use hmac::{Hmac, Mac};
    let header = json!({"alg": "HS256", "kid": "rsa-a", "typ": "secevent+jwt"});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(jwk("rsa-a")["n"].as_str().unwrap().as_bytes())
            .unwrap();
    mac.update(signing_input.as_bytes());
    let hs = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
    refused(
        w.check(&hs),
        ErrCode::AuthenticationFailed,
        "algorithm is not allowed",
    );

    // The payload changed after signing (another user named).
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = b64(disabled("f-1", "mallory@example.com")
        .to_string()
        .as_bytes());
    refused(
        w.check(&parts.join(".")),
        ErrCode::AuthenticationFailed,
        "signature does not verify",
    );
    // Signed by key B, which the transmitter does not publish, naming key A.
    let mut parts: Vec<String> = sign("rsa-b", &claims)
        .split('.')
        .map(str::to_owned)
        .collect();
    parts[0] = b64(json!({"alg": "RS256", "kid": "rsa-a"})
        .to_string()
        .as_bytes());
    refused(
        w.check(&parts.join(".")),
        ErrCode::AuthenticationFailed,
        "signature does not verify",
    );
    // A key the transmitter does not have.
    refused(
        w.check(&sign("rsa-b", &claims)),
        ErrCode::InvalidKey,
        "names no key",
    );
    // An RSA key named for ES256.
    let es_on_rsa = forge(&json!({"alg": "ES256", "kid": "rsa-a"}), &claims, &[0; 64]);
    refused(
        w.check(&es_on_rsa),
        ErrCode::InvalidKey,
        "does not suit the key",
    );
    // No `kid` and two keys: which one?
    let no_kid = forge(&json!({"alg": "RS256"}), &claims, b"x");
    w.transmitter.keys.borrow_mut().push(jwk("rsa-b"));
    w.kv.inner()
        .delete(&config().key_source().cache_key())
        .unwrap();
    refused(w.check(&no_kid), ErrCode::InvalidKey, "no `kid`");
}

#[test]
fn each_claim_check_refuses_with_its_code_and_says_which() {
    let w = World::new();
    let base = disabled("c-1", "a@example.com");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = base.clone();
        change(&mut claims);
        sign("rsa-a", &claims)
    };
    let drop = |name: &'static str| {
        move |c: &mut Value| {
            c.as_object_mut().unwrap().remove(name);
        }
    };
    type Case<'a> = (Box<dyn Fn(&mut Value) + 'a>, ErrCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            Box::new(|c| c["iss"] = json!("https://evil.example.com")),
            ErrCode::InvalidIssuer,
            "ssf_issuer",
        ),
        (
            Box::new(|c| c["iss"] = json!(format!("{ISSUER}/"))),
            ErrCode::InvalidIssuer,
            "ssf_issuer",
        ),
        (Box::new(drop("iss")), ErrCode::InvalidIssuer, "`iss`"),
        (
            Box::new(|c| c["aud"] = json!("https://other.example.com")),
            ErrCode::InvalidAudience,
            "ssf_audience",
        ),
        (
            Box::new(|c| c["aud"] = json!(["x", "y"])),
            ErrCode::InvalidAudience,
            "ssf_audience",
        ),
        (Box::new(drop("aud")), ErrCode::InvalidAudience, "`aud`"),
        (Box::new(drop("iat")), ErrCode::InvalidRequest, "no `iat`"),
        (
            Box::new(|c| c["iat"] = json!("yesterday")),
            ErrCode::InvalidRequest,
            "`iat` is not a number",
        ),
        (
            Box::new(|c| c["iat"] = json!(NOW + 61)),
            ErrCode::InvalidRequest,
            "in the future",
        ),
        (
            Box::new(|c| c["exp"] = json!(NOW - 61)),
            ErrCode::InvalidRequest,
            "expired",
        ),
        (Box::new(drop("jti")), ErrCode::InvalidRequest, "no `jti`"),
        (
            Box::new(|c| c["jti"] = json!("")),
            ErrCode::InvalidRequest,
            "`jti` must be",
        ),
        (
            Box::new(|c| c["jti"] = json!(42)),
            ErrCode::InvalidRequest,
            "`jti` must be",
        ),
        (
            Box::new(|c| c["jti"] = json!("j".repeat(201))),
            ErrCode::InvalidRequest,
            "`jti` must be",
        ),
        (
            Box::new(|c| c["jti"] = json!("a\nb")),
            ErrCode::InvalidRequest,
            "`jti` must be",
        ),
        (
            Box::new(drop("events")),
            ErrCode::InvalidRequest,
            "`events`",
        ),
        (
            Box::new(|c| c["events"] = json!({})),
            ErrCode::InvalidRequest,
            "`events`",
        ),
        (
            Box::new(|c| c["events"] = json!([ACCOUNT_DISABLED])),
            ErrCode::InvalidRequest,
            "`events`",
        ),
        (
            Box::new(|c| c["events"][ACCOUNT_DISABLED] = json!(true)),
            ErrCode::InvalidRequest,
            "JSON object",
        ),
        (
            Box::new(drop("sub_id")),
            ErrCode::InvalidRequest,
            "account-disabled event's subject: there is none",
        ),
        (
            Box::new(|c| c["sub_id"] = json!("a@example.com")),
            ErrCode::InvalidRequest,
            "`sub_id` is not a JSON object",
        ),
        (
            Box::new(|c| c["sub_id"] = json!({"format": "email"})),
            ErrCode::InvalidRequest,
            "no `email`",
        ),
        (
            Box::new(|c| c["sub_id"] = json!({"format": "opaque", "id": 7})),
            ErrCode::InvalidRequest,
            "no `id`",
        ),
        (
            Box::new(|c| c["sub_id"] = email("")),
            ErrCode::InvalidRequest,
            "valid user id",
        ),
        (
            Box::new(|c| c["sub_id"] = email(&"u".repeat(201))),
            ErrCode::InvalidRequest,
            "valid user id",
        ),
        (
            Box::new(|c| c["sub_id"] = json!({"format": "phone_number", "phone_number": "+1"})),
            ErrCode::InvalidRequest,
            "does not map",
        ),
        (
            Box::new(|c| {
                c["sub_id"] =
                    json!({"format": "iss_sub", "iss": "https://idp.example.com", "sub": "00u1"})
            }),
            ErrCode::InvalidRequest,
            "oidc_user_claim is `sub`",
        ),
        (
            Box::new(|c| {
                c["sub_id"] = json!({"format": "complex", "tenant": email("t@example.com")})
            }),
            ErrCode::InvalidRequest,
            "needs a `user`",
        ),
        (
            Box::new(
                |c| c["sub_id"] = json!({"format": "complex", "user": {"format": "complex", "user": email("a@example.com")}}),
            ),
            ErrCode::InvalidRequest,
            "does not map",
        ),
        (
            Box::new(|c| c["events"][ACCOUNT_DISABLED]["subject"] = email("b@example.com")),
            ErrCode::InvalidRequest,
            "name different users",
        ),
        (
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("sub_id");
                c["events"][ACCOUNT_DISABLED]["subject"] = email("a@example.com");
                c["events"][ACCOUNT_PURGED] = json!({"subject": email("b@example.com")});
            }),
            ErrCode::InvalidRequest,
            "removal events name different users",
        ),
    ];
    for (i, (change, err, words)) in cases.into_iter().enumerate() {
        let result = w.check(&with(&*change));
        match &result {
            Err(SsfError::Refused(r)) if r.err == err && r.description.contains(words) => {}
            other => panic!("case {i}: expected {err:?} ({words}), got {other:?}"),
        }
    }
    // Within the leeway, and `exp` in the future: accepted.
    w.check(&with(&|c| c["iat"] = json!(NOW + 60))).unwrap();
    w.check(&with(&|c| c["exp"] = json!(NOW - 59))).unwrap();
    w.check(&with(&|c| c["aud"] = json!(["x", AUDIENCE])))
        .unwrap();
    // Two removal events naming the same user (alternative URIs of one event).
    let both = with(&|c| c["events"][ACCOUNT_PURGED] = json!({"subject": email("A@example.com")}));
    assert_eq!(w.check(&both).unwrap().action, removes("a@example.com"));
}

#[test]
fn refusals_answer_rfc_8935s_body_and_the_rest_problems() {
    let refusal = Refusal {
        err: ErrCode::InvalidKey,
        description: "the SET's `kid` names no key of the transmitter's JWKS".into(),
    };
    assert_eq!(
        serde_json::to_value(&refusal).unwrap(),
        json!({"err": "invalid_key", "description": refusal.description})
    );
    for (code, name) in [
        (ErrCode::InvalidRequest, "invalid_request"),
        (ErrCode::InvalidKey, "invalid_key"),
        (ErrCode::InvalidIssuer, "invalid_issuer"),
        (ErrCode::InvalidAudience, "invalid_audience"),
        (ErrCode::AuthenticationFailed, "authentication_failed"),
    ] {
        assert_eq!(code.as_str(), name);
        assert_eq!(serde_json::to_value(code).unwrap(), json!(name));
    }
    let refused = SsfError::Refused(refusal);
    assert_eq!((refused.status(), refused.to_problem()), (400, None));
    let problem = |e: SsfError| {
        let p = e.to_problem().unwrap();
        (e.status(), p.status, p.code)
    };
    assert_eq!(problem(SsfError::Off), (404, 404, "not_found"));
    assert_eq!(
        problem(SsfError::TransmitterUnavailable("down".into())),
        (503, 503, "transmitter_unavailable")
    );
    assert_eq!(
        problem(SsfError::Keygate(Error::PayloadTooLarge)),
        (413, 413, "payload_too_large")
    );
}

// --- the transmitter's keys ------------------------------------------------------

#[test]
fn the_key_set_is_cached_apart_from_the_oidc_one_and_refetched_as_the_oidc_rules_say() {
    let w = World::new();
    let set = |jti: &str, kid: &str| sign(kid, &disabled(jti, "a@example.com"));
    w.check(&set("k-1", "rsa-a")).unwrap();
    w.check(&set("k-2", "ec-a")).unwrap();
    assert_eq!(*w.transmitter.requests.borrow(), [CONFIG_URL, JWKS_URL]);
    let cache = format!("ssf:jwks:{ISSUER}");
    assert!(w.kv.inner().keys().contains(&cache));
    assert!(!w.kv.inner().keys().iter().any(|k| k.starts_with("oidc:")));

    // A key rotated in: fetched at once, then made-up kids cost a fetch a minute.
    w.transmitter.keys.borrow_mut().push(jwk("rsa-b"));
    let at = |now: i64, token: &str| {
        run(check(
            Some(CONTENT_TYPE),
            token.as_bytes(),
            &w.config,
            &w.kv,
            &w.transmitter,
            now,
        ))
    };
    at(NOW, &set("k-3", "rsa-b")).unwrap();
    assert_eq!(w.transmitter.request_count(), 4);
    let made_up = forge(
        &json!({"alg": "RS256", "kid": "made-up"}),
        &disabled("k-4", "a@example.com"),
        b"x",
    );
    refused(at(NOW + 1, &made_up), ErrCode::InvalidKey, "names no key");
    refused(at(NOW + 2, &made_up), ErrCode::InvalidKey, "names no key");
    assert_eq!(w.transmitter.request_count(), 4);
    refused(
        at(NOW + KID_REFETCH_SECONDS, &made_up),
        ErrCode::InvalidKey,
        "names no key",
    );
    assert_eq!(w.transmitter.request_count(), 6);
    // Stale after ten minutes: fetched again.
    at(
        NOW + KID_REFETCH_SECONDS + FRESH_SECONDS,
        &set("k-5", "rsa-a"),
    )
    .unwrap();
    assert_eq!(w.transmitter.request_count(), 8);
}

#[test]
fn without_the_transmitters_keys_the_answer_is_503_and_a_cached_copy_keeps_serving() {
    let w = World::new();
    let set = sign("rsa-a", &disabled("d-1", "a@example.com"));
    w.transmitter.down.set(true);
    match w.check(&set) {
        Err(e @ SsfError::TransmitterUnavailable(_)) => {
            let problem = e.to_problem().unwrap();
            assert_eq!(
                (problem.status, problem.code),
                (503, "transmitter_unavailable")
            );
            assert!(
                problem
                    .detail
                    .contains("the transmitter's ssf-configuration document could not be fetched"),
                "{}",
                problem.detail
            );
        }
        other => panic!("{other:?}"),
    }
    w.transmitter.down.set(false);
    w.check(&set).unwrap();
    w.transmitter.down.set(true);
    let later = |now: i64| {
        run(check(
            Some(CONTENT_TYPE),
            set.as_bytes(),
            &w.config,
            &w.kv,
            &w.transmitter,
            now,
        ))
    };
    later(NOW + FRESH_SECONDS + 1).unwrap();

    // A configuration document for another issuer is not trusted.
    let w = World::new();
    *w.transmitter.config_issuer.borrow_mut() = "https://tr.example.com/tenant-2".into();
    match w.check(&set) {
        Err(SsfError::TransmitterUnavailable(d)) => {
            assert!(d.contains("not ssf_issuer"), "{d}")
        }
        other => panic!("{other:?}"),
    }
    // A storage failure reading the cache is a storage failure.
    let w = World::new();
    w.kv.fail_nth(KvOp::Get, 1);
    assert!(matches!(
        w.check(&set),
        Err(SsfError::Keygate(Error::Storage(_)))
    ));
}

// --- a failure part-way ------------------------------------------------------------

#[test]
fn a_storage_failure_part_way_is_finished_by_the_transmitters_retry() {
    // Each of the removal's statements and KV writes failed in turn.
    let patterns = ["removed_users", "UPDATE api_keys", "webhook_deliveries"];
    for (pattern, nth) in patterns.iter().flat_map(|p| [(p, 1), (p, 2)]) {
        let w = World::new();
        let keys = [
            w.create("a@example.com", "1"),
            w.create("a@example.com", "2"),
        ];
        let other = w.create("b@example.com", "3");
        let set = sign("rsa-a", &disabled("retry", "a@example.com"));
        w.check(&set).unwrap();
        w.sql.fail_nth_matching(pattern, nth);
        let first = w.push(&set);
        if let Err(e) = &first {
            assert!(matches!(e, SsfError::Keygate(Error::Storage(_))), "{e:?}");
        }
        let retried = w.push(&set).unwrap().unwrap();
        assert_eq!(retried.revoked_keys, 2, "{pattern} #{nth}");
        for secret in &keys {
            assert!(matches!(w.verify(secret), Err(Error::RevokedKey)));
        }
        w.verify(&other).unwrap();
        assert_eq!((w.audit("user.removed"), w.audit("key.revoked")), (1, 2));
    }
    for nth in 1..=2 {
        let w = World::new();
        let keys = [
            w.create("a@example.com", "1"),
            w.create("a@example.com", "2"),
        ];
        let set = sign("rsa-a", &disabled("retry-kv", "a@example.com"));
        w.check(&set).unwrap();
        w.kv.fail_nth(KvOp::Set, nth);
        assert!(w.push(&set).is_err());
        assert_eq!(w.push(&set).unwrap().unwrap().revoked_keys, 2);
        for secret in &keys {
            assert!(matches!(w.verify(secret), Err(Error::RevokedKey)));
        }
    }
}
