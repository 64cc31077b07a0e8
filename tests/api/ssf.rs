//! `/ssf/events`: OpenID Shared Signals push delivery (RFC 8935) of Security
//! Event Tokens (RFC 8417), as the transmitter and the removed user's
//! automations see it. The transmitter is the tests' identity provider
//! (tests/support/idp.rs) on 127.0.0.1: its `/.well-known/ssf-configuration`
//! names its JWKS, and SETs are signed with the keys of tests/fixtures/oidc.
//! Grouped by what the transmitter sees: 202, 400, 404/405, 413, 503.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use keygate_tests::api::*;
use keygate_tests::idp::{CLIENT_ID, TestIdp, TestKey, unix_now};
use keygate_tests::{Json, Reply, RunnerConfig, json};

const EVENTS: &str = "/ssf/events";
const AUDIENCE: &str = "https://keygate.example.com/ssf";
const DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The variables that point keygate at `transmitter`.
fn ssf_config(config: RunnerConfig, transmitter: &TestIdp) -> RunnerConfig {
    config
        .env("SPIN_VARIABLE_SSF_ISSUER", &transmitter.issuer)
        .env("SPIN_VARIABLE_SSF_AUDIENCE", AUDIENCE)
        .env("SPIN_VARIABLE_SSF_ORIGIN", &transmitter.issuer)
}

fn ssf_app(transmitter: &TestIdp) -> App {
    App::start_with(|c| ssf_config(c, transmitter))
}

/// A transmitter publishing RSA key A and EC key A.
fn transmitter() -> TestIdp {
    TestIdp::start(&[TestKey::RsaA, TestKey::EcA])
}

fn new_jti() -> String {
    static SENT: AtomicU32 = AtomicU32::new(0);
    format!(
        "set-{}-{}",
        std::process::id(),
        SENT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A SET as SSF 1.0 shapes it: `sub_id` at the top, one event.
fn set_claims(transmitter: &TestIdp, event_type: &str, sub_id: Json) -> Json {
    json!({
        "iss": transmitter.issuer,
        "aud": AUDIENCE,
        "jti": new_jti(),
        "iat": unix_now(),
        "txn": "8675309",
        "sub_id": sub_id,
        "events": {event_type: {}},
    })
}

fn email(address: &str) -> Json {
    json!({"format": "email", "email": address})
}

/// A RISC account-disabled SET for `user`, signed with RSA key A.
fn disabled(transmitter: &TestIdp, user: &str) -> String {
    let mut claims = set_claims(transmitter, DISABLED, email(user));
    claims["events"][DISABLED] = json!({"reason": "hijacking"});
    TestKey::RsaA.sign_set(&claims)
}

fn push_call<'a>(app: &'a App, token: &str) -> Call<'a> {
    app.call("POST", EVENTS)
        .body("application/secevent+jwt", token.to_owned())
}

/// The push, as RFC 8935 makes it.
fn push(app: &App, token: &str) -> Reply {
    push_call(app, token).send()
}

#[track_caller]
fn assert_accepted(reply: &Reply) {
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert!(reply.body.is_empty(), "202 has no body: {}", reply.text());
}

/// RFC 8935's 400: `{"err", "description"}` as `application/json`, the
/// token nowhere in it.
#[track_caller]
fn assert_refused(reply: &Reply, err: &str, token: &str) -> String {
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(
        reply.header("content-type").map(media_type).as_deref(),
        Some("application/json")
    );
    let body = reply.json();
    let fields: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(fields, ["description", "err"], "{body}");
    assert_eq!(body["err"], err, "{body}");
    let description = body["description"].as_str().expect("a description");
    assert!(!description.is_empty());
    if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 8) {
        assert!(!reply.text().contains(signature), "the token was echoed");
    }
    description.to_owned()
}

struct Keys {
    /// Alice's, in two spellings of her id.
    alice: Vec<String>,
    others: Vec<String>,
}

fn with_keys(app: &App) -> Keys {
    let alice = vec![
        app.create_key_as(ALICE, "alice-1").1,
        app.create_key_as("Alice@Example.com", "alice-2").1,
    ];
    let others = vec![
        app.create_key_as(BOB, "bob-1").1,
        app.create_key_as(CAROL, "carol-1").1,
    ];
    Keys { alice, others }
}

#[track_caller]
fn assert_all_verify(app: &App, secrets: &[String]) {
    for secret in secrets {
        expect_json(&app.verify(secret), 200);
    }
}

#[track_caller]
fn assert_all_revoked(app: &App, secrets: &[String]) {
    for secret in secrets {
        assert_key_rejected(&app.verify(secret), "revoked_key");
    }
}

/// Alice removed: her keys refused, the others working, the trail saying so.
#[track_caller]
fn assert_alice_removed(app: &App, keys: &Keys) {
    assert_all_revoked(app, &keys.alice);
    assert_all_verify(app, &keys.others);
    let removed = app.audit("action=user.removed");
    assert_eq!(removed["total"], 1);
    assert!(
        removed["items"][0]["user"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(ALICE)
    );
    assert_eq!(removed["items"][0]["details"]["channel"], "ssf");
    let revoked = app.audit_all("action=key.revoked");
    assert_eq!(revoked.len(), keys.alice.len());
    assert_eq!(app.list("status=revoked")["total"], keys.alice.len());
}

/// A refused request changed nothing: the same overview and trail, and
/// every key still verifies.
#[track_caller]
fn assert_unchanged(app: &App, before: &(Vec<Json>, Vec<Json>), keys: &Keys) {
    assert_eq!(&app.snapshot(), before, "a refused request changed state");
    // (After the comparison: a verification adds a key.used entry.)
    assert_all_verify(app, &keys.alice);
    assert_all_verify(app, &keys.others);
}

// ---- 202 -------------------------------------------------------------------

#[test]
fn account_disabled_removes_the_user_named_in_each_subject_format() {
    let tx = transmitter();
    // iss_sub names a keygate user when user ids are the OIDC issuer's `sub`.
    let idp = TestIdp::start(&[TestKey::RsaA]);
    let app = App::start_with(|c| {
        ssf_config(c, &tx)
            .env("SPIN_VARIABLE_OIDC_ISSUER", &idp.issuer)
            .env("SPIN_VARIABLE_OIDC_ORIGIN", &idp.issuer)
            .env("SPIN_VARIABLE_OIDC_CLIENT_ID", CLIENT_ID)
            .env("SPIN_VARIABLE_OIDC_USER_CLAIM", "sub")
    });
    let subjects = [
        ("dora@example.com", email("Dora@Example.com")),
        ("00u-ed", json!({"format": "opaque", "id": "00u-ed"})),
        (
            "00u-fay",
            json!({"format": "iss_sub", "iss": idp.issuer, "sub": "00u-fay"}),
        ),
        (
            "gus@example.com",
            json!({"format": "complex", "user": email("gus@example.com"),
                   "tenant": {"format": "opaque", "id": "t-1"}}),
        ),
    ];
    let keys: Vec<Vec<String>> = subjects
        .iter()
        .map(|(user, _)| {
            vec![
                app.create_key_as(user, &format!("{user}-1")).1,
                app.create_key_as(user, &format!("{user}-2")).1,
            ]
        })
        .collect();
    let bystander = app.create_key_as(BOB, "bob").1;
    for (i, (user, subject)) in subjects.iter().enumerate() {
        let set = TestKey::RsaA.sign_set(&set_claims(&tx, DISABLED, subject.clone()));
        assert_accepted(&push(&app, &set));
        assert_all_revoked(&app, &keys[i]);
        for later in &keys[i + 1..] {
            assert_all_verify(&app, later);
        }
        let trail = app.audit(&format!("user={}", percent_encode(user)));
        let actions: Vec<&str> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .filter(|a| matches!(*a, "user.removed" | "key.revoked"))
            .collect();
        assert_eq!(actions, ["user.removed", "key.revoked", "key.revoked"]);
    }
    assert_all_verify(&app, std::slice::from_ref(&bystander));
    // The removed user can no longer act.
    assert_problem(
        &app.create("gus@example.com", &json!({"name": "after"})),
        403,
        "user_removed",
    );
    // The transmitter's keys were fetched once for the four SETs.
    assert_eq!(
        (tx.ssf_configuration_requests(), tx.jwks_requests()),
        (1, 1)
    );
    assert_eq!(tx.discovery_requests(), 0);
}

#[test]
fn account_purged_removes_the_user_also_when_the_event_carries_the_subject() {
    let tx = transmitter();
    let app = ssf_app(&tx);
    let keys = with_keys(&app);
    // RISC as first defined: the subject inside the event, no `sub_id`; signed with the EC key.
    let mut claims = set_claims(&tx, PURGED, Json::Null);
    claims.as_object_mut().unwrap().remove("sub_id");
    claims["events"][PURGED] = json!({"subject": email(ALICE)});
    assert_accepted(&push(&app, &TestKey::EcA.sign_set(&claims)));
    assert_alice_removed(&app, &keys);
}

#[test]
fn a_set_delivered_again_is_accepted_and_revokes_nothing_more() {
    let tx = transmitter();
    let app = ssf_app(&tx);
    let keys = with_keys(&app);
    let set = disabled(&tx, ALICE);
    assert_accepted(&push(&app, &set));
    assert_alice_removed(&app, &keys);
    let before = app.snapshot();
    for _ in 0..2 {
        assert_accepted(&push(&app, &set));
    }
    // Another SET for the same user (another jti, another spelling) too.
    assert_accepted(&push(&app, &disabled(&tx, "ALICE@example.com")));
    assert_eq!(app.snapshot(), before);
    assert_alice_removed(&app, &keys);
}

#[test]
fn session_revoked_and_other_events_are_acknowledged_and_change_nothing() {
    let tx = transmitter();
    let app = ssf_app(&tx);
    let keys = with_keys(&app);
    let before = app.snapshot();
    let session = json!({"format": "complex", "user": email(ALICE),
                         "session": {"format": "opaque", "id": "s-1"}});
    for event_type in [
        SESSION_REVOKED,
        VERIFICATION,
        "https://schemas.openid.net/secevent/risc/event-type/account-enabled",
        "https://schemas.openid.net/secevent/caep/event-type/credential-change",
    ] {
        let set = TestKey::RsaA.sign_set(&set_claims(&tx, event_type, session.clone()));
        assert_accepted(&push(&app, &set));
    }
    assert_unchanged(&app, &before, &keys);
}

// ---- 400 -------------------------------------------------------------------

/// Each refusal, with the `err` RFC 8935 assigns it; none changes anything.
#[test]
fn sets_that_fail_a_check_are_refused_with_rfc_8935s_err_and_change_nothing() {
    let tx = transmitter();
    let app = ssf_app(&tx);
    let keys = with_keys(&app);
    let before = app.snapshot();
    let claims = {
        let mut c = set_claims(&tx, DISABLED, email(ALICE));
        c["jti"] = json!("refused-1");
        c
    };
    let with = |change: &dyn Fn(&mut Json)| {
        let mut c = claims.clone();
        change(&mut c);
        TestKey::RsaA.sign_set(&c)
    };
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let forge = |header: Json, payload: &Json, signature: &[u8]| {
        format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes()),
            b64(signature)
        )
    };
    let good = TestKey::RsaA.sign_set(&claims);
    // The payload changed after signing: Bob named instead of Alice.
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut c = claims.clone();
        c["sub_id"] = email(BOB);
        parts[1] = b64(c.to_string().as_bytes());
        parts.join(".")
    };
    // HS256 keyed with the RSA key's public modulus: the classic confusion.
    let hs256 = {
        use hmac::{Hmac, Mac};
        let header = json!({"alg": "HS256", "kid": "rsa-a", "typ": "secevent+jwt"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let modulus = TestKey::RsaA.jwk()["n"].as_str().unwrap().to_owned();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(modulus.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        // Not a SET keygate can read.
        ("not a JWT", "hello".into(), "invalid_request"),
        ("empty", String::new(), "invalid_request"),
        ("a JSON body", r#"{"events": {}}"#.into(), "invalid_request"),
        (
            "typ JWT",
            forge(
                json!({"alg": "RS256", "kid": "rsa-a", "typ": "JWT"}),
                &claims,
                b"x",
            ),
            "invalid_request",
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "invalid_request",
        ),
        (
            "no events",
            with(&|c| {
                c.as_object_mut().unwrap().remove("events");
            }),
            "invalid_request",
        ),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(unix_now() + 3600)),
            "invalid_request",
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(unix_now() - 3600)),
            "invalid_request",
        ),
        (
            "an iss_sub keygate cannot map",
            with(&|c| c["sub_id"] = json!({"format": "iss_sub", "iss": tx.issuer, "sub": "x"})),
            "invalid_request",
        ),
        (
            "a phone number",
            with(&|c| c["sub_id"] = json!({"format": "phone_number", "phone_number": "+1"})),
            "invalid_request",
        ),
        // Not from the transmitter, or not for keygate.
        (
            "another issuer",
            with(&|c| c["iss"] = json!("https://evil.example.com")),
            "invalid_issuer",
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!(["https://other.example.com"])),
            "invalid_audience",
        ),
        // Keys and signatures.
        (
            "a key the transmitter does not publish",
            TestKey::RsaB.sign_set(&claims),
            "invalid_key",
        ),
        (
            "an RSA key named for ES256",
            forge(
                json!({"alg": "ES256", "kid": "rsa-a", "typ": "secevent+jwt"}),
                &claims,
                &[0; 64],
            ),
            "invalid_key",
        ),
        ("tampered", tampered, "authentication_failed"),
        (
            "alg none",
            forge(json!({"alg": "none", "typ": "secevent+jwt"}), &claims, b"x"),
            "authentication_failed",
        ),
        ("HS256 with the public key", hs256, "authentication_failed"),
    ];
    for (what, token, err) in &cases {
        let description = assert_refused(&push(&app, token), err, token);
        eprintln!("{what}: {err}: {description}");
    }
    // The right SET with the wrong media type, or none.
    for content_type in ["application/json", "application/jwt", "text/plain"] {
        let reply = app
            .call("POST", EVENTS)
            .body(content_type, good.clone())
            .send();
        assert_refused(&reply, "invalid_request", &good);
    }
    let reply = app.call("POST", EVENTS).raw_body(good.clone()).send();
    assert_refused(&reply, "invalid_request", &good);
    assert_unchanged(&app, &before, &keys);

    // No token (nor its signature) in the runner's log.
    let log = app.stderr();
    assert!(
        log.contains("keygate: ssf: SET refused (invalid_key)"),
        "{log}"
    );
    for (_, token, _) in &cases {
        if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 8) {
            assert!(!log.contains(signature), "a token in the log");
        }
    }
    // And the same SET, correctly sent, still works afterwards.
    assert_accepted(&push(&app, &good));
    assert_alice_removed(&app, &keys);
}

// ---- 404 / 405 --------------------------------------------------------------

#[test]
fn without_ssf_issuer_the_route_does_not_exist_and_other_methods_are_405() {
    let tx = transmitter();
    let off = App::start();
    let keys = with_keys(&off);
    let before = off.snapshot();
    assert_problem(&push(&off, &disabled(&tx, ALICE)), 404, "not_found");
    for method in ["GET", "PUT", "DELETE"] {
        assert_problem(&off.call(method, EVENTS).send(), 404, "not_found");
    }
    assert_unchanged(&off, &before, &keys);

    let on = ssf_app(&tx);
    for method in ["GET", "PUT", "DELETE"] {
        let reply = on.call(method, EVENTS).send();
        assert_problem(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("POST"));
    }
    // Only the exact route is the receiver's.
    assert_problem(&on.call("POST", "/ssf/events/x").send(), 404, "not_found");
}

// ---- 413 --------------------------------------------------------------------

#[test]
fn a_body_over_64_kib_is_413_and_changes_nothing() {
    let tx = transmitter();
    let app = ssf_app(&tx);
    let keys = with_keys(&app);
    let before = app.snapshot();
    // A signed SET that is too big (a long `txn`), sent whole and chunked.
    let mut claims = set_claims(&tx, DISABLED, email(ALICE));
    claims["txn"] = json!("t".repeat(64 * 1024));
    let big = TestKey::RsaA.sign_set(&claims);
    assert_problem(&push(&app, &big), 413, "payload_too_large");
    assert_problem(
        &push_call(&app, &big).chunked().send(),
        413,
        "payload_too_large",
    );
    assert_unchanged(&app, &before, &keys);
    assert_eq!(tx.jwks_requests(), 0, "nothing fetched for a refused body");
}

// ---- 503 --------------------------------------------------------------------

#[test]
fn with_the_transmitter_unreachable_and_nothing_cached_it_is_503_until_the_retry() {
    let tx = transmitter();
    let app = ssf_app(&tx);
    let keys = with_keys(&app);
    let before = app.snapshot();
    let set = disabled(&tx, ALICE);
    tx.set_down(true);
    let reply = push(&app, &set);
    let problem = assert_problem(&reply, 503, "transmitter_unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("ssf-configuration"),
        "{problem}"
    );
    assert_unchanged(&app, &before, &keys);
    // The transmitter retries once it is back.
    tx.set_down(false);
    assert_accepted(&push(&app, &set));
    assert_alice_removed(&app, &keys);
    // Down again: the cached key set keeps SETs flowing.
    tx.set_down(true);
    assert_accepted(&push(&app, &disabled(&tx, BOB)));
}

#[test]
fn an_issuer_that_cannot_work_is_503_ssf_not_configured() {
    let tx = transmitter();
    // No audience.
    let app = App::start_with(|c| {
        c.env("SPIN_VARIABLE_SSF_ISSUER", &tx.issuer)
            .env("SPIN_VARIABLE_SSF_ORIGIN", &tx.issuer)
    });
    let problem = assert_problem(
        &push(&app, &disabled(&tx, ALICE)),
        503,
        "ssf_not_configured",
    );
    assert!(problem["detail"].as_str().unwrap().contains("ssf_audience"));
    // Plain http:// off loopback.
    let app = App::start_with(|c| {
        c.env("SPIN_VARIABLE_SSF_ISSUER", "http://transmitter.example.com")
            .env("SPIN_VARIABLE_SSF_AUDIENCE", AUDIENCE)
    });
    assert_problem(
        &push(&app, &disabled(&tx, ALICE)),
        503,
        "ssf_not_configured",
    );
    // keygate may not fetch from the transmitter (no ssf_origin): 503, the detail says why.
    let app = App::start_with(|c| {
        c.env("SPIN_VARIABLE_SSF_ISSUER", &tx.issuer)
            .env("SPIN_VARIABLE_SSF_AUDIENCE", AUDIENCE)
    });
    let problem = assert_problem(
        &push(&app, &disabled(&tx, ALICE)),
        503,
        "transmitter_unavailable",
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("allowed_outbound_hosts"),
        "{problem}"
    );
    assert_eq!(tx.ssf_configuration_requests(), 0);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Fail,
    Crash,
}

/// One account-disabled SET with a fault on the 1st, 2nd, … storage call
/// (until a run in which it never fires); after each, the transmitter's
/// retry of the same SET must finish the removal. Returns the storage calls
/// seen.
fn sweep(fault: Fault) -> usize {
    let flag = match fault {
        Fault::Fail => "--fail",
        Fault::Crash => "--crash-after",
    };
    let tx = transmitter();
    let set = disabled(&tx, ALICE);
    for step in 1.. {
        let app = ssf_app(&tx);
        let keys = with_keys(&app);
        let app = app.restart_with(|c| ssf_config(c, &tx).arg(flag).arg(&format!("*:{step}")));
        let reply = push_call(&app, &set).send_any_status();
        let log = app.wait_for_log(&format!("POST {EVENTS} "));
        if !log.contains("fault injected") {
            // (No more storage calls here: the rule would fire on one of them.)
            assert_accepted(&reply);
            return step - 1;
        }
        let when = format!("{flag} at step {step}");
        match fault {
            Fault::Fail => {
                assert_problem(&reply, 503, "storage_unavailable");
            }
            Fault::Crash => assert_eq!(reply.status, 500, "{when}: {}", reply.text()),
        }
        assert_all_verify(&app, &keys.others);

        assert_accepted(&push(&app, &set));
        assert_alice_removed(&app, &keys);
        // And a later redelivery changes nothing.
        let before = app.snapshot();
        assert_accepted(&push(&app, &set));
        assert_eq!(app.snapshot(), before, "{when}");
    }
    unreachable!()
}

#[test]
fn a_storage_failure_at_any_point_is_finished_by_the_transmitters_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Fail);
    eprintln!("the SSF removal of 2 keys: {calls} storage calls, each failed in turn");
    assert!(calls >= 8, "{calls} storage calls?");
}

#[test]
fn a_crash_at_any_point_is_finished_by_the_transmitters_retry() {
    if keygate_tests::no_fault_injection() {
        return;
    }
    let calls = sweep(Fault::Crash);
    eprintln!("the SSF removal of 2 keys: {calls} storage calls, a crash after each in turn");
    assert!(calls >= 8, "{calls} storage calls?");
}

// ---- Measurements (not run by default) --------------------------------------

/// Creates `n` keys for `user` through the API (4 at a time); their secrets.
fn create_many(app: &App, user: &str, n: usize) -> Vec<String> {
    let threads = 4;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .map(|i| app.create_key_as(user, &format!("bench-{i}")).1)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// How many of `secrets` verify (200) and how many are refused as revoked.
fn verify_all(app: &App, secrets: &[String]) -> (usize, usize) {
    let threads = 4;
    let chunk = secrets.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = secrets
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().fold((0, 0), |(ok, revoked), secret| {
                        let reply = app.verify(secret);
                        match reply.status {
                            200 => (ok + 1, revoked),
                            401 if problem_code(&reply).as_deref() == Some("revoked_key") => {
                                (ok, revoked + 1)
                            }
                            _ => panic!("verify: {} {}", reply.status, reply.text()),
                        }
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    })
}

/// `cargo test --release -p keygate-tests --test api_ssf -- --ignored --nocapture`
/// (SSF_BENCH_SIZES, default `1,100,10000`).
#[test]
#[ignore = "a measurement: minutes, prints numbers"]
fn removal_time_through_shared_signals() {
    let sizes: Vec<usize> = std::env::var("SSF_BENCH_SIZES")
        .unwrap_or_else(|_| "1,100,10000".into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let tx = transmitter();
    println!(
        "| keys | create (s) | SET answered (first, key set fetched) | replay | all refused after (s) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let app = ssf_app(&tx);
        let user = format!("bench-{n}@example.com");
        let started = Instant::now();
        let secrets = create_many(&app, &user, n);
        let created = started.elapsed();
        let set = disabled(&tx, &user);
        let started = Instant::now();
        let reply = push(&app, &set);
        let took = started.elapsed();
        assert_accepted(&reply);
        let started = Instant::now();
        assert_accepted(&push(&app, &set));
        let replay = started.elapsed();
        let started = Instant::now();
        assert_eq!(verify_all(&app, &secrets), (0, n));
        println!(
            "| {n} | {:.1} | {:.0} ms | {:.0} ms | {:.1} |",
            created.as_secs_f64(),
            took.as_secs_f64() * 1e3,
            replay.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64()
        );
        assert_eq!(app.list("status=revoked&per_page=1")["total"], n);
        for line in app
            .stderr()
            .lines()
            .filter(|l| l.contains("POST /ssf/events"))
        {
            println!("  runner: {line}");
        }
    }
}
