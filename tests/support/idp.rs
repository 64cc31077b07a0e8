//! An OpenID Provider's two public documents (discovery and JWKS) served on
//! 127.0.0.1 from the test keys of `tests/fixtures/oidc`, and tokens signed
//! with those keys: for every refusal case the real provider
//! (`oidc-provider`, in the browser tests) cannot be made to issue. Tests
//! rotate its keys, take it down, and count the requests it served.
//!
//! The same server plays an OpenID Shared Signals transmitter: it also
//! serves `/.well-known/ssf-configuration` (naming the same JWKS), and
//! [`TestKey::sign_set`] signs Security Event Tokens.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::{Json, json, workspace_root};

/// The public client id the tests' deployments use.
pub const CLIENT_ID: &str = "keygate-console";

/// A test signing key: its `kid` names its files in `tests/fixtures/oidc`.
#[derive(Clone, Copy, Debug)]
pub enum TestKey {
    RsaA,
    RsaB,
    EcA,
}

impl TestKey {
    pub fn kid(self) -> &'static str {
        match self {
            TestKey::RsaA => "rsa-a",
            TestKey::RsaB => "rsa-b",
            TestKey::EcA => "ec-a",
        }
    }

    fn file(self, suffix: &str) -> String {
        let path = workspace_root().join(format!("tests/fixtures/oidc/{}{suffix}", self.kid()));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn jwk(self) -> Json {
        serde_json::from_str(&self.file(".jwk.json")).expect("JWK fixture")
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            TestKey::RsaA | TestKey::RsaB => Algorithm::RS256,
            TestKey::EcA => Algorithm::ES256,
        }
    }

    fn encoding_key(self) -> EncodingKey {
        let pem = self.file(".pem");
        match self {
            TestKey::RsaA | TestKey::RsaB => EncodingKey::from_rsa_pem(pem.as_bytes()),
            TestKey::EcA => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("PEM fixture")
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(self, claims: &Json) -> String {
        let mut header = Header::new(self.algorithm());
        header.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).expect("sign")
    }

    /// `claims` signed with this key as a Security Event Token: its `kid`
    /// and SSF 1.0's explicit type `secevent+jwt` in the header.
    pub fn sign_set(self, claims: &Json) -> String {
        let mut header = Header::new(self.algorithm());
        header.kid = Some(self.kid().to_owned());
        header.typ = Some("secevent+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).expect("sign")
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[derive(Default)]
struct State {
    keys: Mutex<Vec<Json>>,
    down: AtomicBool,
    discovery_requests: AtomicU32,
    ssf_configuration_requests: AtomicU32,
    jwks_requests: AtomicU32,
}

/// The provider; it serves until the test ends.
pub struct TestIdp {
    pub issuer: String,
    state: Arc<State>,
}

impl TestIdp {
    /// Serving `keys` as its JWKS.
    pub fn start(keys: &[TestKey]) -> TestIdp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        *state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
        let (served, base) = (state.clone(), issuer.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, base) = (served.clone(), base.clone());
                thread::spawn(move || serve(stream, &state, &base));
            }
        });
        TestIdp { issuer, state }
    }

    /// The keys it serves from now on (a rotation).
    pub fn set_keys(&self, keys: &[TestKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    /// Down: every connection is closed without an answer.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_requests(&self) -> u32 {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    pub fn discovery_requests(&self) -> u32 {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// Requests for `/.well-known/ssf-configuration` (as a transmitter).
    pub fn ssf_configuration_requests(&self) -> u32 {
        self.state.ssf_configuration_requests.load(Ordering::SeqCst)
    }

    /// Claims of a good token for `user` (as `email`), valid for an hour;
    /// each with its own `jti`, so no two tokens are the same.
    pub fn claims(&self, user: &str) -> Json {
        static ISSUED: AtomicU32 = AtomicU32::new(0);
        let now = unix_now();
        json!({
            "jti": format!("test-{}", ISSUED.fetch_add(1, Ordering::SeqCst)),
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": format!("sub-{user}"),
            "email": user,
            "email_verified": true,
            "name": "Test User",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        })
    }

    /// A good token for `user`, signed with `key`.
    pub fn token(&self, key: TestKey, user: &str) -> String {
        key.sign(&self.claims(user))
    }
}

fn serve(mut stream: TcpStream, state: &State, issuer: &str) {
    if state.down.load(Ordering::SeqCst) {
        return;
    }
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Headers up to the blank line; the requests have no body.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match path {
        "/.well-known/openid-configuration" => {
            state.discovery_requests.fetch_add(1, Ordering::SeqCst);
            (
                "200 OK",
                json!({
                    "issuer": issuer,
                    "jwks_uri": format!("{issuer}/jwks"),
                    "authorization_endpoint": format!("{issuer}/auth"),
                    "token_endpoint": format!("{issuer}/token"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }),
            )
        }
        "/.well-known/ssf-configuration" => {
            state
                .ssf_configuration_requests
                .fetch_add(1, Ordering::SeqCst);
            (
                "200 OK",
                json!({
                    "spec_version": "1_0",
                    "issuer": issuer,
                    "jwks_uri": format!("{issuer}/jwks"),
                    "delivery_methods_supported": ["urn:ietf:rfc:8935"],
                }),
            )
        }
        "/jwks" => {
            state.jwks_requests.fetch_add(1, Ordering::SeqCst);
            ("200 OK", json!({"keys": *state.keys.lock().unwrap()}))
        }
        _ => ("404 Not Found", json!({"error": "not_found"})),
    };
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}
