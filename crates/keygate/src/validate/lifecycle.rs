//! The bodies of v2's routes: `PATCH /api/keys/{id}`, `POST
//! /api/keys/{id}/roll`, `POST /api/keys/{id}/transfer` and `POST
//! /api/service-accounts`. As strict as create's: malformed JSON, a
//! non-object, unknown or repeated fields → `invalid_request`; otherwise
//! every bad field is reported at once (`validation_failed`).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{collect, description, expires_at, key_name, owner, parse_json_object};
use crate::error::{Error, FieldError};
use crate::model::{KeyChanges, NewServiceAccount, Owner};

/// The longest grace a rolled key's previous secret may have: 7 days.
pub const MAX_ROLL_GRACE_SECONDS: i64 = 604_800;

/// A field that is present, `null` included (`Some(Value::Null)`); absent
/// fields stay `None`. JSON Merge Patch (RFC 7396) tells the two apart.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatch {
    #[serde(default, deserialize_with = "present")]
    name: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Value>,
}

/// `PATCH /api/keys/{id}` (`application/merge-patch+json` or JSON): `name`,
/// `description` (`null` removes it), `expires_at` (`null`: never), each
/// validated as on create.
pub fn parse_patch_body(body: &[u8], now: i64) -> Result<KeyChanges, Error> {
    let raw: RawPatch = parse_json_object(body)?;
    let mut errors = Vec::new();
    let name = match raw.name {
        None => None,
        Some(Value::Null) => {
            errors.push(FieldError::new(
                "name",
                "cannot be removed; a key needs a name",
            ));
            None
        }
        Some(v) => collect(&mut errors, key_name(v)),
    };
    let description = match raw.description {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => collect(&mut errors, description(v)),
    };
    let expires_at = match raw.expires_at {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => collect(&mut errors, expires_at(v, now)).map(Some),
    };
    if errors.is_empty() {
        Ok(KeyChanges {
            name,
            description,
            expires_at,
        })
    } else {
        Err(Error::ValidationFailed(errors))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoll {
    #[serde(default)]
    expires_previous_in: Option<Value>,
}

/// `POST /api/keys/{id}/roll`: `{"expires_previous_in": seconds}`, 0 …
/// 604800, default 0. An empty body is the default.
pub fn parse_roll_body(body: &[u8]) -> Result<i64, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    let raw: RawRoll = parse_json_object(body)?;
    match raw.expires_previous_in {
        None => Ok(0),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(s) if (0..=MAX_ROLL_GRACE_SECONDS).contains(&s) => Ok(s),
            _ => Err(roll_grace_error()),
        },
        Some(_) => Err(roll_grace_error()),
    }
}

fn roll_grace_error() -> Error {
    Error::ValidationFailed(vec![FieldError::new(
        "expires_previous_in",
        format!("must be a whole number of seconds from 0 to {MAX_ROLL_GRACE_SECONDS}"),
    )])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    #[serde(default)]
    owner: Option<Value>,
}

/// `POST /api/keys/{id}/transfer`: `{"owner": "<user id or sa_…>"}`.
pub fn parse_transfer_body(body: &[u8]) -> Result<Owner, Error> {
    let raw: RawTransfer = parse_json_object(body)?;
    let owner = match raw.owner {
        None => Err(FieldError::new("owner", "is required")),
        Some(v) => owner(v),
    };
    owner.map_err(|e| Error::ValidationFailed(vec![e]))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceAccount {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    description: Option<Value>,
}

/// `POST /api/service-accounts`: `{"name", "description"}`, validated as a
/// key's name and description are.
pub fn parse_service_account_body(body: &[u8]) -> Result<NewServiceAccount, Error> {
    let raw: RawServiceAccount = parse_json_object(body)?;
    let mut errors = Vec::new();
    let name = match raw.name {
        None => {
            errors.push(FieldError::new("name", "is required"));
            None
        }
        Some(v) => collect(&mut errors, key_name(v)),
    };
    let description = raw
        .description
        .and_then(|v| collect(&mut errors, description(v)))
        .flatten();
    match name {
        Some(name) if errors.is_empty() => Ok(NewServiceAccount { name, description }),
        _ => Err(Error::ValidationFailed(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::ValidationFailed(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_merge_patch_tells_absent_from_null() {
        assert_eq!(parse_patch_body(b"{}", NOW).unwrap(), KeyChanges::default());
        let c = parse_patch_body(
            br#"{"name":" renamed ","description":null,"expires_at":null}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("renamed"));
        assert_eq!(c.description, Some(None));
        assert_eq!(c.expires_at, Some(None));
        let c = parse_patch_body(br#"{"expires_at":"2030-01-01T00:00:00Z"}"#, NOW).unwrap();
        assert_eq!(c.expires_at, Some(Some(1_893_456_000)));
    }

    #[test]
    fn a_patch_is_validated_like_a_create() {
        let e = parse_patch_body(
            br#"{"name":null,"description":7,"expires_at":"2020-01-01T00:00:00Z"}"#,
            NOW,
        )
        .unwrap_err();
        assert_eq!(fields(e), ["name", "description", "expires_at"]);
        assert!(matches!(
            parse_patch_body(br#"{"secret":"x"}"#, NOW),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_patch_body(br#"{"name":"a","name":"b"}"#, NOW),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_roll_grace_is_0_to_7_days() {
        assert_eq!(parse_roll_body(b"").unwrap(), 0);
        assert_eq!(parse_roll_body(b"{}").unwrap(), 0);
        assert_eq!(
            parse_roll_body(br#"{"expires_previous_in":604800}"#).unwrap(),
            604_800
        );
        for bad in [
            &br#"{"expires_previous_in":604801}"#[..],
            br#"{"expires_previous_in":-1}"#,
            br#"{"expires_previous_in":1.5}"#,
            br#"{"expires_previous_in":"60"}"#,
        ] {
            assert_eq!(
                fields(parse_roll_body(bad).unwrap_err()),
                ["expires_previous_in"]
            );
        }
    }

    #[test]
    fn a_transfer_names_a_user_or_a_service_account() {
        assert_eq!(
            parse_transfer_body(br#"{"owner":"ops@example.com"}"#).unwrap(),
            Owner::User("ops@example.com".into())
        );
        assert_eq!(
            parse_transfer_body(br#"{"owner":"sa_0123456789abcdefghijkl"}"#).unwrap(),
            Owner::ServiceAccount("sa_0123456789abcdefghijkl".into())
        );
        for bad in [
            &br#"{}"#[..],
            br#"{"owner":""}"#,
            br#"{"owner":"sa_short"}"#,
            br#"{"owner":5}"#,
        ] {
            assert_eq!(fields(parse_transfer_body(bad).unwrap_err()), ["owner"]);
        }
    }

    #[test]
    fn a_service_account_needs_a_name() {
        let sa =
            parse_service_account_body(br#"{"name":" nightly ","description":"ETL"}"#).unwrap();
        assert_eq!(sa.name, "nightly");
        assert_eq!(sa.description.as_deref(), Some("ETL"));
        assert_eq!(
            fields(parse_service_account_body(br#"{"description":"x"}"#).unwrap_err()),
            ["name"]
        );
    }
}
