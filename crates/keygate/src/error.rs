//! Every way a keygate request can fail, and the one place each becomes an
//! RFC 9457 problem.

use std::fmt;

use serde::Serialize;

use crate::key::MalformedKey;
use crate::store::StoreError;

/// One field's problem in a `validation_failed` (or `invalid_query`) answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The error of every keygate operation. `code()` is stable API.
///
/// No variant carries a secret; details are written for the caller, storage
/// internals stay in [`StoreError`] for logs.
#[derive(Debug)]
pub enum Error {
    /// No credentials, or a wrong admin token.
    Unauthenticated,
    /// A bearer JWT that failed a check; the detail says which.
    InvalidToken(String),
    /// A JWT names one user and `X-Acting-User` another.
    ActingUserMismatch,
    /// The issuer's keys cannot be had (and none are cached), or the OIDC
    /// variables cannot work; the detail says which.
    IdentityProviderUnavailable(String),
    /// Neither `admin_token` nor `oidc_issuer` is set.
    ManagementNotConfigured,
    /// `X-Acting-User` missing or not 1–200 printable characters.
    ActingUserRequired,
    UserRemoved,
    /// Unparseable JSON, unknown or repeated fields, wrong shape.
    InvalidRequest(String),
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed(Vec<FieldError>),
    NameTaken,
    KeyNotFound,
    /// A change to a key its owner's removal (or deletion) revoked.
    KeyRevoked,
    /// Another roll of the key finished first.
    RollConflict,
    ServiceAccountNotFound,
    /// `name_taken` for a service account's name.
    ServiceAccountNameTaken,
    InvalidQuery(FieldError),
    NotFound,
    /// `allow` is the `Allow` header value, e.g. `"GET, POST"`.
    MethodNotAllowed {
        allow: &'static str,
    },
    MissingKey,
    MalformedKey(MalformedKey),
    UnknownKey,
    ExpiredKey,
    RevokedKey,
    /// Missing webhook headers, or no signature matched.
    InvalidSignature,
    TimestampOutOfTolerance,
    WebhookNotConfigured,
    Storage(StoreError),
    /// The OS random source failed; no key or id can be made.
    RandomnessUnavailable,
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidToken(_) => "invalid_token",
            Error::ActingUserMismatch => "acting_user_mismatch",
            Error::IdentityProviderUnavailable(_) => "identity_provider_unavailable",
            Error::ManagementNotConfigured => "management_not_configured",
            Error::ActingUserRequired => "acting_user_required",
            Error::UserRemoved => "user_removed",
            Error::InvalidRequest(_) => "invalid_request",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::PayloadTooLarge => "payload_too_large",
            Error::ValidationFailed(_) => "validation_failed",
            Error::NameTaken | Error::ServiceAccountNameTaken => "name_taken",
            Error::KeyNotFound => "key_not_found",
            Error::KeyRevoked => "key_revoked",
            Error::RollConflict => "roll_conflict",
            Error::ServiceAccountNotFound => "service_account_not_found",
            Error::InvalidQuery(_) => "invalid_query",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::MissingKey => "missing_key",
            Error::MalformedKey(_) => "malformed_key",
            Error::UnknownKey => "unknown_key",
            Error::ExpiredKey => "expired_key",
            Error::RevokedKey => "revoked_key",
            Error::InvalidSignature => "invalid_signature",
            Error::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Error::WebhookNotConfigured => "webhook_not_configured",
            Error::Storage(_) => "storage_unavailable",
            Error::RandomnessUnavailable => "randomness_unavailable",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthenticated
            | Error::InvalidToken(_)
            | Error::MissingKey
            | Error::MalformedKey(_)
            | Error::UnknownKey
            | Error::ExpiredKey
            | Error::RevokedKey
            | Error::InvalidSignature
            | Error::TimestampOutOfTolerance => 401,
            Error::ActingUserRequired | Error::InvalidRequest(_) | Error::InvalidQuery(_) => 400,
            Error::UserRemoved | Error::ActingUserMismatch => 403,
            Error::KeyNotFound | Error::NotFound | Error::ServiceAccountNotFound => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::NameTaken
            | Error::ServiceAccountNameTaken
            | Error::KeyRevoked
            | Error::RollConflict => 409,
            Error::PayloadTooLarge => 413,
            Error::UnsupportedMediaType => 415,
            Error::ValidationFailed(_) => 422,
            Error::WebhookNotConfigured
            | Error::IdentityProviderUnavailable(_)
            | Error::ManagementNotConfigured
            | Error::Storage(_)
            | Error::RandomnessUnavailable => 503,
        }
    }

    /// Whether this is one of verify's "the key does not work" answers, which
    /// carry `"valid": false`.
    pub fn is_key_rejection(&self) -> bool {
        matches!(
            self,
            Error::MissingKey
                | Error::MalformedKey(_)
                | Error::UnknownKey
                | Error::ExpiredKey
                | Error::RevokedKey
        )
    }

    fn detail(&self) -> String {
        match self {
            Error::Unauthenticated => {
                "sign in first: Authorization: Bearer <token from the identity provider, or the admin token>".into()
            }
            Error::InvalidToken(detail) => detail.clone(),
            Error::ActingUserMismatch => {
                "X-Acting-User names another user than the token; leave it out or name the same user".into()
            }
            Error::IdentityProviderUnavailable(detail) => detail.clone(),
            Error::ManagementNotConfigured => {
                "management is not configured: set oidc_issuer (sign-in) or admin_token (trusted portals)".into()
            }
            Error::ActingUserRequired => {
                "X-Acting-User must name the user (1–200 printable characters)".into()
            }
            Error::UserRemoved => "the acting user has been removed and can no longer act".into(),
            Error::InvalidRequest(detail) => detail.clone(),
            Error::UnsupportedMediaType => {
                "the body must be JSON (Content-Type: application/json)".into()
            }
            Error::PayloadTooLarge => "the body is larger than 64 KiB".into(),
            Error::ValidationFailed(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            Error::NameTaken => "an active key with this name already exists".into(),
            Error::KeyNotFound => "no key with this id".into(),
            Error::KeyRevoked => {
                "the key was revoked (its owner was removed or deleted) and cannot be changed"
                    .into()
            }
            Error::RollConflict => {
                "another roll of this key finished first; its new secret is the key's secret now"
                    .into()
            }
            Error::ServiceAccountNotFound => "no service account with this id".into(),
            Error::ServiceAccountNameTaken => {
                "a service account with this name already exists".into()
            }
            Error::InvalidQuery(e) => format!("query parameter `{}` {}", e.field, e.message),
            Error::NotFound => "no such route".into(),
            Error::MethodNotAllowed { allow } => format!("allowed methods: {allow}"),
            Error::MissingKey => {
                "no key presented (Authorization: Bearer, X-API-Key or the body's `key`)".into()
            }
            Error::MalformedKey(reason) => reason.describe().into(),
            Error::UnknownKey => "the key does not exist".into(),
            Error::ExpiredKey => "the key has expired".into(),
            Error::RevokedKey => "the key has been revoked".into(),
            Error::InvalidSignature => "the webhook signature is missing or does not match".into(),
            Error::TimestampOutOfTolerance => {
                "webhook-timestamp is more than 5 minutes away from now".into()
            }
            Error::WebhookNotConfigured => "webhook_secret is not configured".into(),
            Error::Storage(_) => "storage is unavailable; try again".into(),
            Error::RandomnessUnavailable => "no secure randomness is available; try again".into(),
        }
    }

    /// The HTTP answer for this error.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let mut headers = Vec::new();
        match self {
            Error::Unauthenticated => headers.push(("www-authenticate", "Bearer".to_owned())),
            Error::MethodNotAllowed { allow } => headers.push(("allow", (*allow).to_owned())),
            e if e.is_key_rejection() || matches!(e, Error::InvalidToken(_)) => {
                headers.push((
                    "www-authenticate",
                    r#"Bearer error="invalid_token""#.to_owned(),
                ));
            }
            _ => {}
        }
        let errors = match self {
            Error::ValidationFailed(errors) => errors.clone(),
            Error::InvalidQuery(e) => vec![e.clone()],
            _ => Vec::new(),
        };
        Problem {
            status,
            code: self.code(),
            title: reason_phrase(status),
            detail: self.detail(),
            errors,
            valid: self.is_key_rejection().then_some(false),
            headers,
        }
    }
}

impl fmt::Display for Error {
    /// For logs: the code, the detail, and for storage failures the internal
    /// message (which never contains a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.detail())?;
        if let Error::Storage(e) = self {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Storage(e)
    }
}

/// An RFC 9457 problem. `type` is always `about:blank` (so `title` is the
/// status's reason phrase, as RFC 9457 asks); `code` tells problems apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Per-field problems; omitted from the body when empty.
    pub errors: Vec<FieldError>,
    /// `Some(false)` on verify's key rejections; omitted when `None`.
    pub valid: Option<bool>,
    /// Headers to send besides `content-type` (lower-case names).
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    /// The body, serialised straight from [`ProblemBody`]: no map is built.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&ProblemBody {
            code: self.code,
            detail: &self.detail,
            errors: &self.errors,
            status: self.status,
            title: self.title,
            kind: "about:blank",
            valid: self.valid,
        })
        .expect("a problem body serialises")
    }
}

/// A problem's JSON body; members in the order a `serde_json` map gives them.
#[derive(Serialize)]
struct ProblemBody<'a> {
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    status: u16,
    title: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid: Option<bool>,
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn all() -> Vec<(Error, &'static str, u16)> {
        vec![
            (Error::Unauthenticated, "unauthenticated", 401),
            (Error::InvalidToken("x".into()), "invalid_token", 401),
            (Error::ActingUserMismatch, "acting_user_mismatch", 403),
            (
                Error::IdentityProviderUnavailable("x".into()),
                "identity_provider_unavailable",
                503,
            ),
            (
                Error::ManagementNotConfigured,
                "management_not_configured",
                503,
            ),
            (Error::ActingUserRequired, "acting_user_required", 400),
            (Error::UserRemoved, "user_removed", 403),
            (Error::InvalidRequest("x".into()), "invalid_request", 400),
            (Error::UnsupportedMediaType, "unsupported_media_type", 415),
            (Error::PayloadTooLarge, "payload_too_large", 413),
            (
                Error::ValidationFailed(vec![FieldError::new("name", "is required")]),
                "validation_failed",
                422,
            ),
            (Error::NameTaken, "name_taken", 409),
            (Error::KeyNotFound, "key_not_found", 404),
            (Error::KeyRevoked, "key_revoked", 409),
            (Error::RollConflict, "roll_conflict", 409),
            (
                Error::ServiceAccountNotFound,
                "service_account_not_found",
                404,
            ),
            (Error::ServiceAccountNameTaken, "name_taken", 409),
            (
                Error::InvalidQuery(FieldError::new("per_page", "must be between 1 and 100")),
                "invalid_query",
                400,
            ),
            (Error::NotFound, "not_found", 404),
            (
                Error::MethodNotAllowed { allow: "GET, POST" },
                "method_not_allowed",
                405,
            ),
            (Error::MissingKey, "missing_key", 401),
            (
                Error::MalformedKey(MalformedKey::Checksum),
                "malformed_key",
                401,
            ),
            (Error::UnknownKey, "unknown_key", 401),
            (Error::ExpiredKey, "expired_key", 401),
            (Error::RevokedKey, "revoked_key", 401),
            (Error::InvalidSignature, "invalid_signature", 401),
            (
                Error::TimestampOutOfTolerance,
                "timestamp_out_of_tolerance",
                401,
            ),
            (Error::WebhookNotConfigured, "webhook_not_configured", 503),
            (
                Error::Storage(StoreError::new("disk I/O error at /var/db")),
                "storage_unavailable",
                503,
            ),
            (Error::RandomnessUnavailable, "randomness_unavailable", 503),
        ]
    }

    /// The body as sent.
    fn sent(p: &Problem) -> Value {
        serde_json::from_str(&p.to_json()).unwrap()
    }

    #[test]
    fn every_error_maps_to_its_code_status_and_problem_body() {
        for (error, code, status) in all() {
            let p = error.to_problem();
            assert_eq!((p.code, p.status), (code, status), "{error:?}");
            let body = sent(&p);
            assert_eq!(body["type"], "about:blank");
            assert_eq!(body["code"], code);
            assert_eq!(body["status"], status);
            assert!(
                body["title"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty() && t != "Error")
            );
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }
    }

    #[test]
    fn verify_rejections_say_invalid_token_and_valid_false() {
        for (error, code, _) in all() {
            let p = error.to_problem();
            let body = sent(&p);
            let key_codes = [
                "missing_key",
                "malformed_key",
                "unknown_key",
                "expired_key",
                "revoked_key",
            ];
            if key_codes.contains(&code) {
                assert_eq!(body["valid"], false, "{code}");
                assert_eq!(
                    p.headers,
                    vec![(
                        "www-authenticate",
                        r#"Bearer error="invalid_token""#.to_owned()
                    )]
                );
            } else {
                assert!(body.get("valid").is_none(), "{code}");
            }
        }
    }

    #[test]
    fn unauthenticated_challenges_and_405_lists_allowed_methods() {
        assert_eq!(
            Error::Unauthenticated.to_problem().headers,
            vec![("www-authenticate", "Bearer".to_owned())]
        );
        assert_eq!(
            Error::MethodNotAllowed {
                allow: "GET, DELETE"
            }
            .to_problem()
            .headers,
            vec![("allow", "GET, DELETE".to_owned())]
        );
        // A refused JWT challenges like a refused API key (RFC 6750 3.1).
        assert_eq!(
            Error::InvalidToken("the token has expired (`exp`)".into())
                .to_problem()
                .headers,
            vec![(
                "www-authenticate",
                r#"Bearer error="invalid_token""#.to_owned()
            )]
        );
        for (error, code, _) in all() {
            if !["unauthenticated", "method_not_allowed", "invalid_token"].contains(&code)
                && !error.is_key_rejection()
            {
                assert!(error.to_problem().headers.is_empty(), "{code}");
            }
        }
    }

    #[test]
    fn field_errors_are_listed() {
        let e = Error::ValidationFailed(vec![
            FieldError::new("name", "is required"),
            FieldError::new("expires_at", "must be in the future"),
        ]);
        let body = sent(&e.to_problem());
        assert_eq!(
            body["errors"],
            json!([
                {"field": "name", "message": "is required"},
                {"field": "expires_at", "message": "must be in the future"}
            ])
        );
        let q = Error::InvalidQuery(FieldError::new(
            "sort",
            "must be one of name, created_by, created_at, last_used_at",
        ));
        let body = sent(&q.to_problem());
        assert_eq!(body["errors"][0]["field"], "sort");
        assert!(body["detail"].as_str().unwrap().contains("`sort`"));
        assert!(sent(&Error::NameTaken.to_problem()).get("errors").is_none());
    }

    #[test]
    fn storage_internals_stay_out_of_the_response_but_reach_the_log() {
        let e = Error::Storage(StoreError::new("disk I/O error at /var/db"));
        assert!(!e.to_problem().to_json().contains("/var/db"));
        assert!(e.to_string().contains("/var/db"));
    }
}
