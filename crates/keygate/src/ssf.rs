//! OpenID Shared Signals (SSF 1.0), push delivery: the organisation's
//! identity system (the *transmitter*, `ssf_issuer`) POSTs Security Event
//! Tokens (SETs, RFC 8417) to `/ssf/events` as RFC 8935 describes, and a
//! RISC `account-disabled` or `account-purged` event removes the user it
//! names, like every other removal channel ([`KeyService::remove_user`]).
//!
//! # What is checked, in this order
//!
//! Every refusal is RFC 8935's `400` with `{"err", "description"}` (the
//! transmitter does not retry it), and nothing is changed. The description
//! says which check failed and never repeats the token or a claim's value.
//!
//! 1. `Content-Type: application/secevent+jwt` (parameters ignored):
//!    `invalid_request`.
//! 2. The body is one JWS compact serialisation (surrounding whitespace
//!    ignored; an encrypted SET, five parts, is refused): `invalid_request`.
//! 3. The header, as for OIDC sign-in ([`crate::oidc::token`]): `alg` on
//!    the asymmetric allow-list (`none`, HS* and the rest:
//!    `authentication_failed`, as such a SET cannot authenticate the
//!    transmitter), no `crit`, `kid` a string; and `typ`, when present,
//!    `secevent+jwt` (SSF's explicit typing; `application/secevent+jwt`
//!    too), so that another kind of JWT from the same issuer is not taken
//!    for a SET: `invalid_request`. A SET without `typ` is accepted (older
//!    RISC transmitters).
//! 4. `iss` equals `ssf_issuer` exactly: `invalid_issuer`. Read from the
//!    payload before the signature, so a stranger's SET costs no key
//!    lookup; nothing is acted on before the signature verifies.
//! 5. The key: chosen by `kid` from the transmitter's JWKS (its
//!    `/.well-known/ssf-configuration`, whose `issuer` must be `ssf_issuer`,
//!    names `jwks_uri`), cached in the key-value store exactly like the
//!    OIDC key set ([`crate::oidc::jwks`]: fresh 10 minutes, an unknown
//!    `kid` refetched at most once a minute, a stale copy used for up to a
//!    day while the transmitter is down) under `ssf:jwks:<issuer>`. No such
//!    key, or one not meant for the SET's algorithm: `invalid_key`. With
//!    no key set to be had and none cached: `503 transmitter_unavailable`
//!    (problem+json), which the transmitter retries.
//! 6. The signature: `authentication_failed`.
//! 7. `aud` (a string or an array) contains `ssf_audience`:
//!    `invalid_audience`.
//! 8. `iat` present and not in the future, `exp` (which SSF SETs should not
//!    carry) not passed, both with 60 s leeway; `jti` 1–200 printable
//!    characters; `events` a non-empty object whose members are objects;
//!    the subject of each removal event maps to one user id:
//!    `invalid_request`.
//!
//! # Events
//!
//! - RISC `account-disabled` (whatever its `reason`) and `account-purged`
//!   remove the user named by the subject: one [`KeyService::remove_user`]
//!   under the delivery id `ssf:<jti>`. So a SET delivered again (RFC
//!   8935's retry after a lost answer) answers `202` and revokes nothing
//!   more, and a storage failure part-way (`503`, retried by the
//!   transmitter) is finished by the retry.
//! - CAEP `session-revoked` is acknowledged only: keygate holds no
//!   sessions, and API keys outlive sign-in sessions by design.
//! - Every other event type (the SSF `verification` event among them) is
//!   acknowledged and ignored, whatever its subject.
//! - Several removal events in one SET (RFC 8417 allows alternative URIs
//!   of one event) must name the same user; otherwise `invalid_request`.
//!
//! # Subjects
//!
//! SSF 1.0 puts the subject in the top-level `sub_id` claim; RISC and CAEP
//! events may also carry it as the event's `subject` member. Both are read;
//! when both name a user they must name the same one (ASCII
//! case-insensitively, as user ids match everywhere). Formats (RFC 9493):
//!
//! - `email` (`{"format": "email", "email": "…"}`): the address is the user
//!   id.
//! - `opaque` (`{"format": "opaque", "id": "…"}`): the id is the user id.
//! - `iss_sub` (`{"format": "iss_sub", "iss": "…", "sub": "…"}`): `sub` is
//!   the user id only when keygate's user ids *are* that issuer's subjects:
//!   `iss` is `oidc_issuer` (a trailing `/` aside) and `oidc_user_claim` is
//!   `sub`. Otherwise `sub` is some other system's identifier, and the SET
//!   is refused (`invalid_request`) rather than acknowledged, so the failed
//!   removal shows in the transmitter's delivery log instead of leaving the
//!   user's keys working unnoticed.
//! - `complex` (`{"format": "complex", "user": {…}}`, or without `format`
//!   as in earlier drafts): its `user` member, one of the above.
//! - Earlier RISC drafts' `subject_type` is read as `format`, and their
//!   `iss-sub` as `iss_sub`.
//!
//! Any other format, in a removal event, is `invalid_request` for the same
//! reason as an unmappable `iss_sub`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Problem};
use crate::model::UserRemovedResponse;
use crate::oidc::jwks::{self, DiscoveryPath, KeySource};
use crate::oidc::token::{self, HeaderError, LEEWAY_SECONDS, SignatureError};
use crate::oidc::{HttpGet, is_allowed_url};
use crate::service::KeyService;
use crate::store::KeyValue;
use crate::validate::is_user_id;

/// RFC 8935 2.: the one media type a push delivery carries.
pub const CONTENT_TYPE: &str = "application/secevent+jwt";
/// RISC: the account was disabled (`reason` `hijacking` or `bulk-account`).
pub const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC: the account was deleted.
pub const ACCOUNT_PURGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-purged";
/// CAEP: a session ended. Acknowledged, nothing changed.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// The event types that remove the subject's user.
pub const REMOVAL_EVENT_TYPES: [&str; 2] = [ACCOUNT_DISABLED, ACCOUNT_PURGED];
/// Delivery ids of this channel are `ssf:<jti>`.
pub const DELIVERY_ID_PREFIX: &str = crate::model::RemovalChannel::SharedSignals.delivery_prefix();
/// The longest `jti` taken.
pub const MAX_JTI_CHARS: usize = 200;
/// Where the transmitter's key set is cached: `ssf:jwks:<ssf_issuer>`.
pub const JWKS_CACHE_PREFIX: &str = "ssf:jwks:";

/// The Spin variables of the receiver, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsfConfig {
    /// Exactly as the SETs' `iss` must read.
    pub issuer: String,
    /// What the SETs' `aud` must contain.
    pub audience: String,
    /// The issuer whose `iss_sub` subjects are keygate user ids: the OIDC
    /// issuer, when `oidc_user_claim` is `sub`.
    pub iss_sub_issuer: Option<String>,
}

impl SsfConfig {
    /// `ssf_issuer` empty or unset: the receiver is off (`404` for every
    /// request, [`SsfError::Off`]). Variables that cannot work (an issuer
    /// that is not `https://`, no audience) are
    /// `503 ssf_not_configured`, so the transmitter keeps the SETs and
    /// retries until the deployment is fixed.
    pub fn from_variables(
        issuer: Option<&str>,
        audience: Option<&str>,
        oidc_issuer: Option<&str>,
        oidc_user_claim: Option<&str>,
    ) -> Result<Self, SsfError> {
        let value = |v: Option<&str>| v.map(str::trim).unwrap_or("").to_owned();
        let issuer = value(issuer);
        if issuer.is_empty() {
            return Err(SsfError::Off);
        }
        if !is_allowed_url(&issuer) {
            return Err(SsfError::NotConfigured(
                "ssf_issuer must be an https:// URL (http:// only on 127.0.0.1 or localhost)"
                    .into(),
            ));
        }
        let audience = value(audience);
        if audience.is_empty() {
            return Err(SsfError::NotConfigured(
                "ssf_audience must be set with ssf_issuer (the `aud` the transmitter's stream sends)"
                    .into(),
            ));
        }
        let oidc_issuer = value(oidc_issuer);
        let user_claim = match value(oidc_user_claim) {
            c if c.is_empty() => "email".to_owned(),
            c => c,
        };
        let iss_sub_issuer =
            (!oidc_issuer.is_empty() && user_claim == "sub").then_some(oidc_issuer);
        Ok(Self {
            issuer,
            audience,
            iss_sub_issuer,
        })
    }

    /// Where the transmitter's keys come from.
    pub fn key_source(&self) -> KeySource<'_> {
        KeySource {
            issuer: &self.issuer,
            discovery: DiscoveryPath::SsfConfiguration,
            cache_prefix: JWKS_CACHE_PREFIX,
            party: "transmitter",
            document: "ssf-configuration document",
            issuer_variable: "ssf_issuer",
        }
    }
}

/// RFC 8935 2.4's error codes that keygate answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrCode {
    /// Not a SET keygate can read, or an event it cannot carry out.
    InvalidRequest,
    /// No key of the transmitter's JWKS for this SET, or not for its algorithm.
    InvalidKey,
    /// `iss` is not `ssf_issuer`.
    InvalidIssuer,
    /// `aud` does not contain `ssf_audience`.
    InvalidAudience,
    /// Unsigned, signed with an algorithm keygate refuses, or a signature
    /// that does not verify.
    AuthenticationFailed,
}

impl ErrCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrCode::InvalidRequest => "invalid_request",
            ErrCode::InvalidKey => "invalid_key",
            ErrCode::InvalidIssuer => "invalid_issuer",
            ErrCode::InvalidAudience => "invalid_audience",
            ErrCode::AuthenticationFailed => "authentication_failed",
        }
    }
}

/// The `400` body of RFC 8935 2.3: `{"err": "…", "description": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub err: ErrCode,
    pub description: String,
}

/// Why a delivery was not accepted.
#[derive(Debug)]
pub enum SsfError {
    /// `ssf_issuer` unset: `404 not_found`.
    Off,
    /// A SET refused: `400` with [`Refusal`] (`application/json`).
    Refused(Refusal),
    /// The variables cannot work: `503 ssf_not_configured`.
    NotConfigured(String),
    /// The transmitter's keys cannot be had and none are cached:
    /// `503 transmitter_unavailable`.
    TransmitterUnavailable(String),
    /// Answered as everywhere else: `405`, `413`, `503 storage_unavailable`.
    Keygate(Error),
}

impl SsfError {
    pub fn status(&self) -> u16 {
        match self {
            SsfError::Off => 404,
            SsfError::Refused(_) => 400,
            SsfError::NotConfigured(_) | SsfError::TransmitterUnavailable(_) => 503,
            SsfError::Keygate(e) => e.status(),
        }
    }

    /// The problem+json of everything but a refusal (`None` for that).
    pub fn to_problem(&self) -> Option<Problem> {
        let (code, detail) = match self {
            SsfError::Refused(_) => return None,
            SsfError::Off => return Some(Error::NotFound.to_problem()),
            SsfError::Keygate(e) => return Some(e.to_problem()),
            SsfError::NotConfigured(d) => ("ssf_not_configured", d),
            SsfError::TransmitterUnavailable(d) => ("transmitter_unavailable", d),
        };
        let mut problem = Error::IdentityProviderUnavailable(detail.clone()).to_problem();
        problem.code = code;
        Some(problem)
    }
}

impl From<Error> for SsfError {
    fn from(e: Error) -> Self {
        SsfError::Keygate(e)
    }
}

fn refuse(err: ErrCode, description: impl Into<String>) -> SsfError {
    SsfError::Refused(Refusal {
        err,
        description: description.into(),
    })
}

fn bad_request(description: impl Into<String>) -> SsfError {
    refuse(ErrCode::InvalidRequest, description)
}

/// What a SET that passed every check asks of keygate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove this user (from a RISC `account-disabled` / `account-purged`).
    Remove { user_id: String },
    /// Nothing: `session-revoked`, and every event type keygate does not act on.
    Acknowledge,
}

/// A SET that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedSet {
    pub jti: String,
    pub action: Action,
}

impl CheckedSet {
    /// The delivery id [`KeyService::remove_user`] stores the answer under.
    pub fn delivery_id(&self) -> String {
        format!("{DELIVERY_ID_PREFIX}{}", self.jti)
    }
}

/// Checks a pushed SET (its `Content-Type` and the body), fetching the
/// transmitter's keys when the cache has none fresh. Changes nothing but
/// the key-set cache.
pub async fn check(
    content_type: Option<&str>,
    body: &[u8],
    config: &SsfConfig,
    kv: &dyn KeyValue,
    http: &impl HttpGet,
    now: i64,
) -> Result<CheckedSet, SsfError> {
    let media_type = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media_type.eq_ignore_ascii_case(CONTENT_TYPE) {
        return Err(bad_request(
            "a SET is delivered with Content-Type: application/secevent+jwt",
        ));
    }
    let token = std::str::from_utf8(body)
        .map(str::trim)
        .map_err(|_| bad_request("the body is not a SET (a JWT in compact serialisation)"))?;
    if token.split('.').count() == 5 {
        return Err(bad_request(
            "encrypted SETs (JWE) are not supported: keygate takes signed SETs",
        ));
    }
    let header = token::parse_header(token).map_err(header_refusal)?;
    if let Some(typ) = &header.typ
        && !typ.eq_ignore_ascii_case("secevent+jwt")
        && !typ.eq_ignore_ascii_case(CONTENT_TYPE)
    {
        return Err(bad_request(
            "the token's `typ` is not secevent+jwt: it is another kind of JWT, not a SET",
        ));
    }
    let unverified = token::unverified_claims(token)
        .ok_or_else(|| bad_request("the SET's payload is not base64url-encoded JSON object"))?;
    check_issuer(&unverified, config)?;

    let key = jwks::key_from(
        kv,
        http,
        &config.key_source(),
        header.kid.as_deref(),
        header.alg,
        now,
    )
    .await
    .map_err(|e| match e {
        Error::IdentityProviderUnavailable(detail) => SsfError::TransmitterUnavailable(detail),
        other => SsfError::Keygate(other),
    })?
    .ok_or_else(|| {
        refuse(
            ErrCode::InvalidKey,
            match header.kid {
                Some(_) => "the SET's `kid` names no key of the transmitter's JWKS",
                None => "the SET has no `kid`, and not exactly one key of the transmitter's JWKS suits its algorithm",
            },
        )
    })?;
    let claims = token::check_signature(token, &header, &key).map_err(|e| match e {
        SignatureError::KeyUnsuitable => refuse(
            ErrCode::InvalidKey,
            "the SET's algorithm does not suit the key its `kid` names",
        ),
        SignatureError::KeyUnusable => refuse(
            ErrCode::InvalidKey,
            "the transmitter's key for this `kid` is unusable",
        ),
        SignatureError::BadSignature => refuse(
            ErrCode::AuthenticationFailed,
            "the SET's signature does not verify with the transmitter's key",
        ),
        SignatureError::Undecodable => bad_request("the SET could not be decoded"),
    })?;
    check_claims(&claims, config, now)
}

fn header_refusal(e: HeaderError) -> SsfError {
    match e {
        HeaderError::AlgorithmNotAllowed(alg) if alg == "none" => refuse(
            ErrCode::AuthenticationFailed,
            "the SET is unsigned (`alg` none): it cannot authenticate the transmitter",
        ),
        HeaderError::AlgorithmNotAllowed(_) => refuse(
            ErrCode::AuthenticationFailed,
            "the SET's algorithm is not allowed (asymmetric signatures only: RS*, PS*, ES256, ES384, EdDSA)",
        ),
        HeaderError::NotJwt | HeaderError::NotSigned => {
            bad_request("the body is not a SET (a signed JWT: header.payload.signature)")
        }
        HeaderError::HeaderNotJson => bad_request("the SET's header is not base64url-encoded JSON"),
        HeaderError::Critical => {
            bad_request("the SET's header has critical extensions keygate does not support")
        }
        HeaderError::KidNotString => bad_request("the SET's `kid` is not a string"),
    }
}

fn check_issuer(claims: &Map<String, Value>, config: &SsfConfig) -> Result<(), SsfError> {
    if claims.get("iss").and_then(Value::as_str) == Some(config.issuer.as_str()) {
        Ok(())
    } else {
        Err(refuse(
            ErrCode::InvalidIssuer,
            "the SET's issuer (`iss`) is not the configured ssf_issuer",
        ))
    }
}

/// The claims of a SET whose signature verified.
fn check_claims(
    claims: &Map<String, Value>,
    config: &SsfConfig,
    now: i64,
) -> Result<CheckedSet, SsfError> {
    check_issuer(claims, config)?;
    let audience_matches = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == config.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&config.audience)),
        _ => false,
    };
    if !audience_matches {
        return Err(refuse(
            ErrCode::InvalidAudience,
            "the SET's audience (`aud`) does not include ssf_audience",
        ));
    }
    let time = |name: &str| {
        crate::oidc::token::numeric_date(claims, name).map_err(|crate::oidc::token::NotANumber| {
            bad_request(format!("the SET's `{name}` is not a number"))
        })
    };
    let iat = time("iat")?.ok_or_else(|| bad_request("the SET has no `iat`"))?;
    if iat > now.saturating_add(LEEWAY_SECONDS) {
        return Err(bad_request("the SET was issued in the future (`iat`)"));
    }
    if time("exp")?.is_some_and(|exp| now >= exp.saturating_add(LEEWAY_SECONDS)) {
        return Err(bad_request("the SET has expired (`exp`)"));
    }
    let jti = match claims.get("jti") {
        Some(Value::String(jti))
            if !jti.trim().is_empty()
                && jti.chars().count() <= MAX_JTI_CHARS
                && !jti.chars().any(char::is_control) =>
        {
            jti.clone()
        }
        Some(_) => {
            return Err(bad_request(format!(
                "the SET's `jti` must be 1–{MAX_JTI_CHARS} printable characters"
            )));
        }
        None => return Err(bad_request("the SET has no `jti`")),
    };
    let events = match claims.get("events") {
        Some(Value::Object(events)) if !events.is_empty() => events,
        _ => {
            return Err(bad_request(
                "the SET has no `events` object with at least one event",
            ));
        }
    };
    let mut removed: Option<String> = None;
    for (event_type, event) in events {
        if !event.is_object() {
            return Err(bad_request(
                "each member of the SET's `events` must be a JSON object",
            ));
        }
        if !REMOVAL_EVENT_TYPES.contains(&event_type.as_str()) {
            continue;
        }
        let name = event_type.rsplit('/').next().unwrap_or_default();
        let user = removal_subject(claims, event, config)
            .map_err(|why| bad_request(format!("the {name} event's subject: {why}")))?;
        match &removed {
            Some(earlier) if !earlier.eq_ignore_ascii_case(&user) => {
                return Err(bad_request("the SET's removal events name different users"));
            }
            Some(_) => {}
            None => removed = Some(user),
        }
    }
    let action = match removed {
        Some(user_id) => Action::Remove { user_id },
        None => Action::Acknowledge,
    };
    Ok(CheckedSet { jti, action })
}

/// The user a removal event is about: from the top-level `sub_id` and the
/// event's `subject`, whichever name a user (the same one, if both do).
fn removal_subject(
    claims: &Map<String, Value>,
    event: &Value,
    config: &SsfConfig,
) -> Result<String, String> {
    let subjects = [
        ("`sub_id`", claims.get("sub_id")),
        ("`subject`", event.get("subject")),
    ];
    let mut found: Option<String> = None;
    let mut first_problem: Option<String> = None;
    for (name, subject) in subjects {
        let Some(subject) = subject else { continue };
        match subject_user(subject, config, true) {
            Ok(user) => match &found {
                Some(earlier) if !earlier.eq_ignore_ascii_case(&user) => {
                    return Err("`sub_id` and the event's `subject` name different users".into());
                }
                Some(_) => {}
                None => found = Some(user),
            },
            Err(why) => {
                first_problem.get_or_insert(format!("{name} {why}"));
            }
        }
    }
    found.ok_or_else(|| {
        first_problem.unwrap_or_else(|| "there is none (`sub_id`, or the event's `subject`)".into())
    })
}

/// The keygate user id a Subject Identifier names; the error completes a
/// sentence that begins with the member's name.
fn subject_user(
    subject: &Value,
    config: &SsfConfig,
    complex_allowed: bool,
) -> Result<String, String> {
    let Some(subject) = subject.as_object() else {
        return Err("is not a JSON object".into());
    };
    let member = |name: &str| subject.get(name).and_then(Value::as_str);
    let format = member("format").or_else(|| member("subject_type"));
    let user = match format {
        Some("email") => member("email").ok_or("has no `email` string")?,
        Some("opaque") => member("id").ok_or("has no `id` string")?,
        Some("iss_sub" | "iss-sub") => {
            let (Some(iss), Some(sub)) = (member("iss"), member("sub")) else {
                return Err("has no `iss` and `sub` strings".into());
            };
            let trimmed = |s: &str| s.trim_end_matches('/').to_owned();
            match &config.iss_sub_issuer {
                Some(issuer) if trimmed(issuer) == trimmed(iss) => sub,
                _ => {
                    return Err("is an iss_sub identifier, which names a keygate user only when its `iss` is oidc_issuer and oidc_user_claim is `sub` (use the email or opaque format)".into());
                }
            }
        }
        Some("complex") | None if complex_allowed => {
            return match subject.get("user") {
                Some(user) => {
                    subject_user(user, config, false).map_err(|why| format!("(its `user`) {why}"))
                }
                None => Err("names no user (a complex subject needs a `user` member)".into()),
            };
        }
        _ => {
            return Err("has a format keygate does not map to a user (email, opaque, iss_sub, complex with `user`)".into());
        }
    };
    if !is_user_id(user) {
        return Err("does not name a valid user id (1–200 printable characters)".into());
    }
    Ok(user.trim().to_owned())
}

/// Carries out a checked SET: a removal through [`KeyService::remove_user`]
/// under `ssf:<jti>` (so a replay answers from storage and revokes nothing
/// more), anything else nothing. A storage error is the transmitter's cue
/// to retry.
pub fn apply(
    service: &KeyService<'_>,
    set: &CheckedSet,
    now: i64,
) -> Result<Option<UserRemovedResponse>, Error> {
    match &set.action {
        Action::Remove { user_id } => service
            .remove_user(user_id, &set.delivery_id(), now)
            .map(Some),
        Action::Acknowledge => Ok(None),
    }
}

#[cfg(test)]
mod tests;
