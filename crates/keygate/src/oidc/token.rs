//! One JWT checked against one key of the issuer's JWKS, per the contract
//! and RFC 8725: the algorithm comes from an allow-list and must suit the key
//! (`none`, HS* and a key used with another algorithm are refused), the
//! signature is verified by `jsonwebtoken` (RustCrypto), then `iss`, `aud`,
//! `exp`/`nbf`/`iat` (60 s leeway) and the user claim are checked here, with
//! the caller's clock so tests own the time.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::OidcConfig;
use crate::error::Error;
use crate::validate::is_user_id;

/// Clock skew allowed between keygate and the identity provider.
pub const LEEWAY_SECONDS: i64 = 60;

/// Asymmetric algorithms only: a symmetric one would let anyone holding the
/// (public) JWKS sign tokens.
const ALLOWED: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// The parts of the protected header keygate acts on, read before any key
/// is looked up.
#[derive(Debug)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The explicit type (RFC 8725 3.11), when it is a string; checked by
    /// the Shared Signals receiver (`secevent+jwt`), not by sign-in.
    pub typ: Option<String>,
}

/// Why a header was refused ([`parse_header`]), for callers that answer
/// each reason differently (RFC 8935's error codes); [`read_header`] turns
/// it into `invalid_token` with [`HeaderError::detail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Not three dot-separated parts.
    NotJwt,
    /// An empty payload or signature.
    NotSigned,
    HeaderNotJson,
    /// `crit` is present (no extension is understood).
    Critical,
    /// `none`, HS* or anything else off the asymmetric allow-list.
    AlgorithmNotAllowed(String),
    KidNotString,
}

impl HeaderError {
    pub fn detail(&self) -> String {
        match self {
            HeaderError::NotJwt => "the token is not a JWT (header.payload.signature)".into(),
            HeaderError::NotSigned => "the token is not a signed JWT".into(),
            HeaderError::HeaderNotJson => "the token's header is not base64url-encoded JSON".into(),
            HeaderError::Critical => {
                "the token's header has critical extensions keygate does not support".into()
            }
            HeaderError::AlgorithmNotAllowed(alg) => format!(
                "the token's algorithm {alg:?} is not allowed (asymmetric signatures only: RS*, PS*, ES256, ES384, EdDSA)"
            ),
            HeaderError::KidNotString => "the token's `kid` is not a string".into(),
        }
    }
}

/// Why a signature check failed ([`check_signature`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The key named by `kid` is not for this algorithm (type, curve, use
    /// or its own `alg`).
    KeyUnsuitable,
    /// The JWK could not be turned into a verification key.
    KeyUnusable,
    /// The signature does not verify with the key.
    BadSignature,
    /// Anything else `jsonwebtoken` refused (a payload that is not a JSON
    /// object, a header it cannot read).
    Undecodable,
}

impl SignatureError {
    pub fn detail(self) -> &'static str {
        match self {
            SignatureError::KeyUnsuitable => {
                "the token's algorithm does not suit the key its `kid` names"
            }
            SignatureError::KeyUnusable => "the issuer's key for this `kid` is unusable",
            SignatureError::BadSignature => "the token's signature does not verify",
            SignatureError::Undecodable => "the token could not be decoded",
        }
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::InvalidToken(detail.into())
}

/// Whether `credentials` have a JWS compact serialisation's shape (three
/// dot-separated parts, a JSON header). Anything else is not a JWT, so an
/// admin token is never parsed as one.
pub fn looks_like_jwt(credentials: &str) -> bool {
    credentials.starts_with("eyJ") && credentials.split('.').count() == 3
}

/// Reads the header: the algorithm must be on the allow-list, and a `crit`
/// extension keygate does not know makes the token unusable (RFC 7515 4.1.11).
pub fn read_header(token: &str) -> Result<TokenHeader, Error> {
    parse_header(token).map_err(|e| invalid(e.detail()))
}

/// [`read_header`] with the reason as a [`HeaderError`].
pub fn parse_header(token: &str) -> Result<TokenHeader, HeaderError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(HeaderError::NotJwt);
    };
    if payload.is_empty() || signature.is_empty() {
        return Err(HeaderError::NotSigned);
    }
    let header: Map<String, Value> = decode_part(header).ok_or(HeaderError::HeaderNotJson)?;
    if header.contains_key("crit") {
        return Err(HeaderError::Critical);
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let Some((_, alg)) = ALLOWED.iter().find(|(name, _)| *name == alg) else {
        return Err(HeaderError::AlgorithmNotAllowed(alg.to_owned()));
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(HeaderError::KidNotString),
    };
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    Ok(TokenHeader {
        alg: *alg,
        kid,
        typ,
    })
}

/// The payload of a token with a JWT's shape, as a JSON object, *before*
/// its signature is checked: for choosing how to refuse a token early
/// (an issuer that is not the configured one needs no key), never for
/// acting on. `None` when it is not base64url-encoded JSON object.
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    decode_part(token.split('.').nth(1)?)
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `jwk` may verify a signature made with `alg`: its type and curve
/// fit the algorithm, it is a signing key, and its own `alg`, if it names
/// one, is this one (RFC 8725 3.1: no algorithm the key was not meant for).
pub fn key_suits(jwk: &Jwk, alg: Algorithm) -> bool {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return false;
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && !matches!(key_algorithm(key_alg), Some(a) if a == alg)
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

fn key_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The signature by `jwk`, then every claim check. Returns the claims.
pub fn verify(
    token: &str,
    header: &TokenHeader,
    jwk: &Jwk,
    config: &OidcConfig,
    now: i64,
) -> Result<Map<String, Value>, Error> {
    let claims = check_signature(token, header, jwk).map_err(|e| invalid(e.detail()))?;
    check_claims(&claims, config, now)?;
    Ok(claims)
}

/// The signature by `jwk` alone (the key must suit the header's algorithm);
/// no claim is checked. Returns the claims, now authentic.
pub fn check_signature(
    token: &str,
    header: &TokenHeader,
    jwk: &Jwk,
) -> Result<Map<String, Value>, SignatureError> {
    if !key_suits(jwk, header.alg) {
        return Err(SignatureError::KeyUnsuitable);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| SignatureError::KeyUnusable)?;
    // jsonwebtoken checks the signature and that the algorithm suits the
    // key's family; the claims are the caller's to check, against its clock.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => SignatureError::BadSignature,
            _ => SignatureError::Undecodable,
        })
}

/// A NumericDate claim (RFC 7519 2) in whole seconds: `Ok(None)` when
/// absent, [`NotANumber`] when it is not a finite number. Shared by OIDC
/// tokens and Shared Signals' SETs.
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, NotANumber> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite())
            .map(|t| Some(t.floor() as i64))
            .ok_or(NotANumber),
    }
}

/// A time claim that is not a finite number.
#[derive(Debug)]
pub struct NotANumber;

/// `iss`, `aud`, times and the user claim; the token itself is never echoed.
pub fn check_claims(
    claims: &Map<String, Value>,
    config: &OidcConfig,
    now: i64,
) -> Result<(), Error> {
    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(invalid(
            "the token's issuer (`iss`) is not the configured oidc_issuer",
        ));
    }
    let audience_matches = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&config.audience)),
        _ => false,
    };
    if !audience_matches {
        return Err(invalid(
            "the token's audience (`aud`) does not include oidc_audience",
        ));
    }
    let time = |name: &str| {
        numeric_date(claims, name)
            .map_err(|NotANumber| invalid(format!("the token's `{name}` is not a number")))
    };
    let exp = time("exp")?.ok_or_else(|| invalid("the token has no expiry (`exp`)"))?;
    if now >= exp.saturating_add(LEEWAY_SECONDS) {
        return Err(invalid("the token has expired (`exp`)"));
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(invalid("the token is not valid yet (`nbf`)"));
    }
    if time("iat")?.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(invalid("the token was issued in the future (`iat`)"));
    }
    let claim = &config.user_claim;
    match claims.get(claim.as_str()) {
        Some(Value::String(user)) if is_user_id(user) => {}
        Some(_) => {
            return Err(invalid(format!(
                "the token's `{claim}` claim is not a valid user id (1–200 printable characters)"
            )));
        }
        None => return Err(invalid(format!("the token has no `{claim}` claim"))),
    }
    if claim == "email" {
        let verified = claims.get("email_verified");
        if matches!(verified, Some(Value::Bool(false)))
            || matches!(verified, Some(Value::String(s)) if s.eq_ignore_ascii_case("false"))
        {
            return Err(invalid(
                "the token's e-mail address is not verified (`email_verified`)",
            ));
        }
    }
    Ok(())
}
