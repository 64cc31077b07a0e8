//! SCIM's error response (RFC 7644 §3.12): `{"schemas": [Error URN],
//! "status": "400", "scimType": "…", "detail": "…"}`, `status` a string.

use serde_json::{Value, json};

use crate::error::Error;

pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// One SCIM error: the HTTP status, RFC 7644's `scimType` where it has one
/// for the case, and a detail for whoever reads the IdP's provisioning log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// `Allow` for a 405.
    pub allow: Option<&'static str>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            allow: None,
        }
    }

    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad("invalidValue", detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad("invalidSyntax", detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad("invalidFilter", detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad("invalidPath", detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad("noTarget", detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad("mutability", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            None,
            "Authorization: Bearer <token> is missing or is not the configured scim_token",
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        ScimError {
            allow: Some(allow),
            ..Self::new(405, None, format!("this endpoint allows {allow}"))
        }
    }

    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_URN],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body
    }
}

/// keygate's own errors (storage, body limits) in SCIM's format.
impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        match e {
            Error::PayloadTooLarge => {
                ScimError::new(413, None, "the request body is larger than 64 KiB")
            }
            Error::UnsupportedMediaType => ScimError::new(
                415,
                None,
                "the body must be application/scim+json (or application/json)",
            ),
            Error::InvalidRequest(detail) => ScimError::invalid_syntax(detail),
            Error::NotFound => ScimError::not_found("SCIM provisioning is not configured"),
            Error::Storage(ref s) => {
                eprintln!("keygate: scim: storage failure: {}", s.message());
                ScimError::new(503, None, "storage is unavailable; try again")
            }
            other => {
                let p = other.to_problem();
                ScimError::new(p.status, None, p.detail)
            }
        }
    }
}

impl From<crate::store::StoreError> for ScimError {
    fn from(e: crate::store::StoreError) -> Self {
        Error::Storage(e).into()
    }
}
