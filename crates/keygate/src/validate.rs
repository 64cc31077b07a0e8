//! Turning request parts into validated values, or into the error the contract
//! names. Nothing here touches storage.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::model::{
    ActingUser, AuditAction, AuditQuery, KeyStatus, ListQuery, NewKey, Owner, SortField, SortOrder,
};

mod lifecycle;
use crate::timestamp::{Bound, parse_bound, parse_rfc3339};
pub use lifecycle::{
    MAX_ROLL_GRACE_SECONDS, parse_patch_body, parse_roll_body, parse_service_account_body,
    parse_transfer_body,
};

/// Request bodies above this are refused with `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// User ids (`X-Acting-User`, the webhook's `user_id`) and text filters.
pub const MAX_USER_CHARS: usize = 200;
pub const MAX_PER_PAGE: u32 = 100;

/// Size first (a huge body is refused whatever it claims to be), then the
/// media type: `application/json` or any `+json` type, parameters allowed.
pub fn check_json_body(content_type: Option<&str>, body_len: usize) -> Result<(), Error> {
    if body_len > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge);
    }
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = essence == "application/json"
        || essence
            .split_once('/')
            .is_some_and(|(ty, sub)| !ty.is_empty() && sub.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType)
    }
}

/// `X-Acting-User`: 1–200 printable characters after trimming.
pub fn parse_acting_user(header: Option<&str>) -> Result<ActingUser, Error> {
    header
        .map(str::trim)
        .filter(|u| is_user_id(u))
        .map(ActingUser::named_by_portal)
        .ok_or(Error::ActingUserRequired)
}

/// 1–200 characters, none of them control characters.
pub(crate) fn is_user_id(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_USER_CHARS && !s.chars().any(char::is_control)
}

/// The form names are compared and searched in. Full Unicode lower-casing
/// (SQLite's `lower()` only folds ASCII), so "ÄPI" and "äpi" collide too.
pub(crate) fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreate {
    // `Value`, not `String`: a wrong type is a field problem (422), which a
    // typed field would turn into a parse error (400). `null` reads as absent.
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    description: Option<Value>,
    #[serde(default)]
    expires_at: Option<Value>,
    #[serde(default)]
    owner: Option<Value>,
}

/// Keeps a field's value, or its problem for the `validation_failed` answer.
pub(crate) fn collect<T>(errors: &mut Vec<FieldError>, field: Result<T, FieldError>) -> Option<T> {
    field.map_err(|e| errors.push(e)).ok()
}

/// A key's (or service account's) name: trimmed, 1–100 characters, no
/// control characters.
pub(crate) fn key_name(value: Value) -> Result<String, FieldError> {
    let Value::String(name) = value else {
        return Err(FieldError::new("name", "must be a string"));
    };
    let name = name.trim();
    if name.is_empty() {
        Err(FieldError::new("name", "must not be empty"))
    } else if name.chars().count() > MAX_NAME_CHARS {
        Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ))
    } else if name.chars().any(char::is_control) {
        Err(FieldError::new(
            "name",
            "must not contain control characters",
        ))
    } else {
        Ok(name.to_owned())
    }
}

/// At most 500 characters; a blank description is no description (`None`).
pub(crate) fn description(value: Value) -> Result<Option<String>, FieldError> {
    match value {
        Value::String(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        Value::String(d) => Ok(Some(d).filter(|d| !d.trim().is_empty())),
        _ => Err(FieldError::new("description", "must be a string")),
    }
}

/// An RFC 3339 time in the future.
pub(crate) fn expires_at(value: Value, now: i64) -> Result<i64, FieldError> {
    let Value::String(s) = value else {
        return Err(FieldError::new(
            "expires_at",
            "must be an RFC 3339 timestamp string",
        ));
    };
    match parse_rfc3339(&s) {
        Some(t) if t > now => Ok(t),
        Some(_) => Err(FieldError::new("expires_at", "must be in the future")),
        None => Err(FieldError::new(
            "expires_at",
            "must be an RFC 3339 timestamp, e.g. 2026-11-26T17:00:00Z",
        )),
    }
}

/// Whom a key acts as: a user id, or a service account's id (`sa_…`).
pub(crate) fn owner(value: Value) -> Result<Owner, FieldError> {
    match value {
        Value::String(s) => Owner::parse(s.trim()).ok_or_else(|| {
            FieldError::new(
                "owner",
                "must be a user id (1–200 printable characters) or a service account id (sa_…)",
            )
        }),
        _ => Err(FieldError::new("owner", "must be a string")),
    }
}

/// `POST /api/keys` body. Malformed JSON, a non-object, unknown or repeated
/// fields → `invalid_request`; otherwise every bad field is reported at once.
pub fn parse_create_body(body: &[u8], now: i64) -> Result<NewKey, Error> {
    let raw: RawCreate = parse_json_object(body)?;
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
    let expires_at = raw
        .expires_at
        .and_then(|v| collect(&mut errors, expires_at(v, now)));
    let owner = raw.owner.and_then(|v| collect(&mut errors, owner(v)));

    match name {
        Some(name) if errors.is_empty() => Ok(NewKey {
            name,
            description,
            expires_at,
            owner,
        }),
        _ => Err(Error::ValidationFailed(errors)),
    }
}

/// Parses a JSON object into `T`, mapping every failure to an
/// `invalid_request` detail that never echoes a value from the body.
pub(crate) fn parse_json_object<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Error> {
    // serde's derived structs also accept arrays; the contract wants objects.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    match first {
        None => {
            return Err(Error::InvalidRequest(
                "the body is empty; expected a JSON object".into(),
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(Error::InvalidRequest(
                "the body must be a JSON object".into(),
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| Error::InvalidRequest(json_error_detail(&e)))
}

/// An `invalid_request` detail for a JSON error: where the syntax broke, or
/// which field is unknown or repeated (as [`shown_name`] allows); never a value.
pub(crate) fn json_error_detail(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        }
        Category::Data => {
            let message = e.to_string();
            let field = message.split('`').nth(1).map(shown_name);
            match field {
                Some(f) if message.starts_with("unknown field") => {
                    format!("unknown field `{f}`")
                }
                Some(f) if message.starts_with("duplicate field") => {
                    format!("field `{f}` appears more than once")
                }
                Some(f) if message.starts_with("missing field") => {
                    format!("field `{f}` is missing")
                }
                _ => "a field has the wrong type".to_owned(),
            }
        }
    }
}

/// Splits a query string (with or without the leading `?`) into decoded
/// pairs: `+` is a space, `%XX` a byte, and the result must be UTF-8.
pub fn decode_query(raw: &str) -> Result<Vec<(String, String)>, Error> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    let mut pairs = Vec::new();
    for segment in raw.split('&').filter(|s| !s.is_empty()) {
        let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
        let name = percent_decode(name).ok_or_else(|| {
            Error::InvalidQuery(FieldError::new(
                shown_name(name),
                "has a name that is not correctly percent-encoded UTF-8",
            ))
        })?;
        let value = percent_decode(value).ok_or_else(|| {
            Error::InvalidQuery(FieldError::new(
                shown_name(&name),
                "is not correctly percent-encoded UTF-8",
            ))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                let (hi, lo) = (hex(bytes.get(i + 1))?, hex(bytes.get(i + 2))?);
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// What errors show of a name taken from a request (a query parameter, a
/// JSON field): the name itself when it looks like one (at most 40 ASCII
/// letters, digits, `_`, `-`, `.`, `[`, `]`), else [`NAME_NOT_SHOWN`]. A key
/// pasted in the wrong place (41 characters) or a token is a secret, and
/// error bodies end up in logs.
pub fn shown_name(name: &str) -> String {
    let name_like = name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b));
    if name_like {
        name.to_owned()
    } else {
        NAME_NOT_SHOWN.to_owned()
    }
}

/// Stands for a name [`shown_name`] does not repeat.
pub const NAME_NOT_SHOWN: &str = "(name not shown)";

/// The decoded parameters of one request, each allowed at most once.
struct Params(BTreeMap<&'static str, String>);

impl Params {
    /// Unknown parameters are refused rather than ignored: a typo such as
    /// `creatd_by` would otherwise silently widen the result.
    fn parse(raw: &str, known: &[&'static str]) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (name, value) in decode_query(raw)? {
            let Some(&known_name) = known.iter().find(|k| **k == name) else {
                return Err(invalid(&shown_name(&name), "is not a known parameter"));
            };
            if value.is_empty() {
                return Err(invalid(known_name, "must not be empty"));
            }
            if map.insert(known_name, value).is_some() {
                return Err(invalid(known_name, "must not be repeated"));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, name: &'static str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn one_of<T: Copy>(
        &self,
        name: &'static str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, Error> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(s, _)| *s == value)
            .map(|(_, v)| Some(*v))
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(s, _)| *s).collect();
                invalid(name, &format!("must be one of {}", names.join(", ")))
            })
    }

    fn text(&self, name: &'static str) -> Result<Option<String>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.chars().count() > MAX_USER_CHARS => Err(invalid(
                name,
                &format!("must be at most {MAX_USER_CHARS} characters"),
            )),
            Some(v) if v.chars().any(char::is_control) => {
                Err(invalid(name, "must not contain control characters"))
            }
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    fn time(&self, name: &'static str, bound: Bound) -> Result<Option<i64>, Error> {
        self.get(name)
            .map(|v| {
                parse_bound(v, bound).ok_or_else(|| {
                    invalid(name, "must be a date (2026-11-26) or an RFC 3339 timestamp")
                })
            })
            .transpose()
    }

    fn number(&self, name: &'static str, min: u32, max: u32, default: u32) -> Result<u32, Error> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        v.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u32>().ok())
            .flatten()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| invalid(name, &format!("must be a whole number from {min} to {max}")))
    }

    /// `from` after `to` can only be a mistake; say so instead of answering "nothing".
    fn range(
        &self,
        from_name: &'static str,
        to_name: &'static str,
    ) -> Result<(Option<i64>, Option<i64>), Error> {
        let from = self.time(from_name, Bound::Start)?;
        let to = self.time(to_name, Bound::End)?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(invalid(to_name, &format!("must not be before {from_name}")));
        }
        Ok((from, to))
    }
}

fn invalid(name: &str, message: &str) -> Error {
    Error::InvalidQuery(FieldError::new(name, message))
}

/// Pages beyond this would only ever be empty; the bound keeps the offset
/// arithmetic far from overflow.
const MAX_PAGE: u32 = 1_000_000;

/// `GET /api/keys` query string.
pub fn parse_list_query(raw: &str) -> Result<ListQuery, Error> {
    let p = Params::parse(
        raw,
        &[
            "sort",
            "order",
            "name",
            "created_by",
            "owner",
            "created_from",
            "created_to",
            "status",
            "unused_since",
            "page",
            "per_page",
        ],
    )?;
    let defaults = ListQuery::default();
    let (created_from, created_to) = p.range("created_from", "created_to")?;
    Ok(ListQuery {
        sort: p
            .one_of(
                "sort",
                &[
                    ("name", SortField::Name),
                    ("created_by", SortField::CreatedBy),
                    ("owner", SortField::Owner),
                    ("created_at", SortField::CreatedAt),
                    ("last_used_at", SortField::LastUsedAt),
                ],
            )?
            .unwrap_or(defaults.sort),
        order: p
            .one_of(
                "order",
                &[("asc", SortOrder::Asc), ("desc", SortOrder::Desc)],
            )?
            .unwrap_or(defaults.order),
        name: p.text("name")?,
        created_by: p.text("created_by")?,
        owner: p.text("owner")?,
        created_from,
        created_to,
        status: p.one_of(
            "status",
            &[
                ("active", KeyStatus::Active),
                ("expired", KeyStatus::Expired),
                ("revoked", KeyStatus::Revoked),
            ],
        )?,
        unused_since: p.time("unused_since", Bound::Start)?,
        page: p.number("page", 1, MAX_PAGE, defaults.page)?,
        per_page: p.number("per_page", 1, MAX_PER_PAGE, defaults.per_page)?,
    })
}

/// `GET /api/service-accounts` query string: `page`, `per_page`.
pub fn parse_page_query(raw: &str) -> Result<(u32, u32), Error> {
    let p = Params::parse(raw, &["page", "per_page"])?;
    let defaults = ListQuery::default();
    Ok((
        p.number("page", 1, MAX_PAGE, defaults.page)?,
        p.number("per_page", 1, MAX_PER_PAGE, defaults.per_page)?,
    ))
}

/// A user id in a path (`/api/users/{user_id}`): percent-decoded (`+` is a
/// plus), UTF-8, and a valid user id.
pub fn parse_user_path(segment: &str) -> Result<String, Error> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(bad_user_path());
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .ok()
        .filter(|u| is_user_id(u) && u.trim() == u)
        .ok_or_else(bad_user_path)
}

fn bad_user_path() -> Error {
    Error::InvalidRequest(
        "the user id in the path must be 1–200 printable characters, percent-encoded".into(),
    )
}

/// `GET /api/audit` query string.
pub fn parse_audit_query(raw: &str) -> Result<AuditQuery, Error> {
    let p = Params::parse(
        raw,
        &["user", "key_id", "action", "from", "to", "page", "per_page"],
    )?;
    let defaults = AuditQuery::default();
    let actions: Vec<(&str, AuditAction)> =
        AuditAction::ALL.iter().map(|a| (a.as_str(), *a)).collect();
    let (from, to) = p.range("from", "to")?;
    Ok(AuditQuery {
        user: p.text("user")?,
        key_id: p.text("key_id")?,
        action: p.one_of("action", &actions)?,
        from,
        to,
        page: p.number("page", 1, MAX_PAGE, defaults.page)?,
        per_page: p.number("per_page", 1, MAX_PER_PAGE, defaults.per_page)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_712_400; // 2026-11-26T17:00:00Z

    fn field_errors(body: &str) -> Vec<(String, String)> {
        match parse_create_body(body.as_bytes(), NOW) {
            Err(Error::ValidationFailed(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("{body}: expected validation_failed, got {other:?}"),
        }
    }

    fn invalid_request(body: &str) -> String {
        match parse_create_body(body.as_bytes(), NOW) {
            Err(Error::InvalidRequest(detail)) => detail,
            other => panic!("{body}: expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_and_a_full_create_body_are_accepted() {
        assert_eq!(
            parse_create_body(br#"{"name":"  orders-sync "}"#, NOW).unwrap(),
            NewKey {
                name: "orders-sync".into(),
                description: None,
                expires_at: None,
                owner: None,
            }
        );
        let full = br#"{"name":"n","description":"Nightly export","expires_at":"2026-11-27T00:00:00+01:00"}"#;
        assert_eq!(
            parse_create_body(full, NOW).unwrap(),
            NewKey {
                name: "n".into(),
                description: Some("Nightly export".into()),
                expires_at: Some(NOW + 6 * 3600),
                owner: None,
            }
        );
        let nulls = br#"{"name":"n","description":null,"expires_at":null}"#;
        assert_eq!(parse_create_body(nulls, NOW).unwrap().expires_at, None);
        let blank = br#"{"name":"n","description":"   "}"#;
        assert_eq!(parse_create_body(blank, NOW).unwrap().description, None);
    }

    #[test]
    fn name_rules() {
        let cases = [
            (r#"{}"#, "is required"),
            (r#"{"name":null}"#, "is required"),
            (r#"{"name":""}"#, "must not be empty"),
            (r#"{"name":"   "}"#, "must not be empty"),
            (r#"{"name":5}"#, "must be a string"),
            (r#"{"name":["a"]}"#, "must be a string"),
            (
                r#"{"name":"a\u0007b"}"#,
                "must not contain control characters",
            ),
            (r#"{"name":"a\nb"}"#, "must not contain control characters"),
        ];
        for (body, message) in cases {
            assert_eq!(
                field_errors(body),
                vec![("name".into(), message.into())],
                "{body}"
            );
        }
        let long = format!(r#"{{"name":"{}"}}"#, "é".repeat(101));
        assert_eq!(field_errors(&long)[0].1, "must be at most 100 characters");
        let exactly = format!(r#"{{"name":"  {}  "}}"#, "é".repeat(100));
        assert_eq!(
            parse_create_body(exactly.as_bytes(), NOW)
                .unwrap()
                .name
                .chars()
                .count(),
            100
        );
    }

    #[test]
    fn description_rules() {
        let long = format!(r#"{{"name":"n","description":"{}"}}"#, "x".repeat(501));
        assert_eq!(
            field_errors(&long),
            vec![(
                "description".into(),
                "must be at most 500 characters".into()
            )]
        );
        let ok = format!(r#"{{"name":"n","description":"{}"}}"#, "ü".repeat(500));
        assert!(parse_create_body(ok.as_bytes(), NOW).is_ok());
        assert_eq!(
            field_errors(r#"{"name":"n","description":1}"#)[0].1,
            "must be a string"
        );
    }

    #[test]
    fn expires_at_rules() {
        let past = r#"{"name":"n","expires_at":"2026-11-26T16:59:59Z"}"#;
        assert_eq!(field_errors(past)[0].1, "must be in the future");
        let now = r#"{"name":"n","expires_at":"2026-11-26T17:00:00Z"}"#;
        assert_eq!(field_errors(now)[0].1, "must be in the future");
        for bad in [r#""2026-12-01""#, r#""next week""#, "1795712500", "true"] {
            let body = format!(r#"{{"name":"n","expires_at":{bad}}}"#);
            let errors = field_errors(&body);
            assert_eq!(errors[0].0, "expires_at");
            assert!(errors[0].1.contains("RFC 3339"), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_is_reported_together() {
        let body = r#"{"name":"","description":7,"expires_at":"2000-01-01T00:00:00Z"}"#;
        let fields: Vec<String> = field_errors(body).into_iter().map(|e| e.0).collect();
        assert_eq!(fields, ["name", "description", "expires_at"]);
    }

    #[test]
    fn bodies_that_are_not_the_right_json_are_invalid_requests() {
        assert!(invalid_request("").contains("empty"));
        assert!(invalid_request("{").contains("not valid JSON"));
        assert!(invalid_request(r#"{"name":"a",}"#).contains("not valid JSON"));
        assert!(invalid_request(r#"["name"]"#).contains("JSON object"));
        assert!(invalid_request(r#""name""#).contains("JSON object"));
        assert_eq!(
            invalid_request(r#"{"name":"a","secret":"x"}"#),
            "unknown field `secret`"
        );
        assert_eq!(
            invalid_request(r#"{"name":"a","name":"b"}"#),
            "field `name` appears more than once"
        );
        // The detail never echoes values from the body, nor names that may be secrets.
        assert!(!invalid_request(r#"{"name":"kg_secret" x}"#).contains("kg_secret"));
        let key = format!("kg_{}", "A".repeat(38));
        let detail = invalid_request(&format!(r#"{{"name":"a","{key}":1}}"#));
        assert_eq!(detail, "unknown field `(name not shown)`");
    }

    #[test]
    fn json_bodies_are_checked_for_size_then_media_type() {
        for ct in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(check_json_body(Some(ct), 10).is_ok(), "{ct}");
        }
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("json"),
        ] {
            assert!(
                matches!(check_json_body(ct, 10), Err(Error::UnsupportedMediaType)),
                "{ct:?}"
            );
        }
        assert!(check_json_body(Some("application/json"), MAX_BODY_BYTES).is_ok());
        assert!(matches!(
            check_json_body(Some("text/plain"), MAX_BODY_BYTES + 1),
            Err(Error::PayloadTooLarge)
        ));
    }

    #[test]
    fn acting_user_is_one_to_two_hundred_printable_characters() {
        assert_eq!(
            parse_acting_user(Some(" floris@example.com "))
                .unwrap()
                .as_str(),
            "floris@example.com"
        );
        assert!(parse_acting_user(Some(&"u".repeat(200))).is_ok());
        for bad in [None, Some(""), Some("   "), Some("a\tb"), Some("a\u{7f}")] {
            assert!(
                matches!(parse_acting_user(bad), Err(Error::ActingUserRequired)),
                "{bad:?}"
            );
        }
        assert!(parse_acting_user(Some(&"u".repeat(201))).is_err());
    }

    #[test]
    fn query_strings_are_percent_decoded() {
        assert_eq!(
            decode_query("?name=orders+sync&created_by=floris%40example.com&x=%C3%A9&&flag")
                .unwrap(),
            vec![
                ("name".into(), "orders sync".into()),
                ("created_by".into(), "floris@example.com".into()),
                ("x".into(), "é".into()),
                ("flag".into(), "".into()),
            ]
        );
        assert_eq!(
            decode_query("a=%2B%25").unwrap(),
            vec![("a".into(), "+%".into())]
        );
        for bad in ["name=%", "name=%4", "name=%zz", "name=%C3"] {
            let Err(Error::InvalidQuery(e)) = decode_query(bad) else {
                panic!("{bad}")
            };
            assert_eq!(e.field, "name", "{bad}");
        }
    }

    fn query_error(raw: &str) -> FieldError {
        match parse_list_query(raw) {
            Err(Error::InvalidQuery(e)) => e,
            other => panic!("{raw}: expected invalid_query, got {other:?}"),
        }
    }

    #[test]
    fn list_query_defaults() {
        assert_eq!(parse_list_query("").unwrap(), ListQuery::default());
        let q = parse_list_query("").unwrap();
        assert_eq!(
            (q.sort, q.order, q.page, q.per_page),
            (SortField::CreatedAt, SortOrder::Desc, 1, 25)
        );
    }

    #[test]
    fn list_query_accepts_every_parameter() {
        let q = parse_list_query(
            "sort=last_used_at&order=asc&name=Sync&created_by=floris%40example.com\
             &created_from=2026-11-01&created_to=2026-11-26&status=expired\
             &unused_since=2026-11-20T12:00:00%2B01:00&page=3&per_page=100",
        )
        .unwrap();
        assert_eq!(
            q,
            ListQuery {
                sort: SortField::LastUsedAt,
                order: SortOrder::Asc,
                name: Some("Sync".into()),
                created_by: Some("floris@example.com".into()),
                owner: None,
                created_from: parse_bound("2026-11-01", Bound::Start),
                created_to: Some(NOW - 17 * 3600 + 86_399),
                status: Some(KeyStatus::Expired),
                unused_since: parse_rfc3339("2026-11-20T11:00:00Z"),
                page: 3,
                per_page: 100,
            }
        );
        for (raw, sort) in [
            ("name", SortField::Name),
            ("created_by", SortField::CreatedBy),
            ("created_at", SortField::CreatedAt),
        ] {
            assert_eq!(parse_list_query(&format!("sort={raw}")).unwrap().sort, sort);
        }
        for status in ["active", "revoked"] {
            assert!(parse_list_query(&format!("status={status}")).is_ok());
        }
    }

    #[test]
    fn list_query_names_the_bad_parameter() {
        let cases = [
            ("sort=size", "sort"),
            ("sort=Name", "sort"),
            ("order=up", "order"),
            ("status=deleted", "status"),
            ("page=0", "page"),
            ("page=-1", "page"),
            ("page=1.5", "page"),
            ("page=+2", "page"),
            ("page=99999999999", "page"),
            ("per_page=0", "per_page"),
            ("per_page=101", "per_page"),
            ("per_page=ten", "per_page"),
            ("created_from=yesterday", "created_from"),
            ("created_to=2026-11-31", "created_to"),
            ("unused_since=2026-11-26T25:00:00Z", "unused_since"),
            (
                "created_from=2026-11-27&created_to=2026-11-26",
                "created_to",
            ),
            ("name=", "name"),
            ("created_by=a%00b", "created_by"),
            ("page=1&page=2", "page"),
            ("sort=name&sort=name", "sort"),
            ("creatd_by=x", "creatd_by"),
            ("limit=5", "limit"),
        ];
        for (raw, param) in cases {
            assert_eq!(query_error(raw).field, param, "{raw}");
        }
        let long = format!("name={}", "a".repeat(201));
        assert_eq!(query_error(&long).field, "name");
        // Names that may be secrets are not repeated.
        let key = format!("kg_{}", "A".repeat(38));
        for raw in [
            key.clone(),
            format!("{key}=1"),
            format!("{key}=%zz"),
            "a%20b=1".into(),
        ] {
            assert_eq!(query_error(&raw).field, NAME_NOT_SHOWN, "{raw}");
        }
        assert_eq!(query_error(&"x".repeat(40)).field, "x".repeat(40));
    }

    #[test]
    fn audit_query_parses_and_names_bad_parameters() {
        let q = parse_audit_query(
            "user=u1&key_id=key_x&action=key.used&from=2026-11-26&to=2026-11-26&page=2&per_page=10",
        )
        .unwrap();
        assert_eq!(
            q,
            AuditQuery {
                user: Some("u1".into()),
                key_id: Some("key_x".into()),
                action: Some(AuditAction::KeyUsed),
                from: Some(NOW - 17 * 3600),
                to: Some(NOW - 17 * 3600 + 86_399),
                page: 2,
                per_page: 10,
            }
        );
        assert_eq!(parse_audit_query("").unwrap(), AuditQuery::default());
        for action in AuditAction::ALL {
            assert_eq!(
                parse_audit_query(&format!("action={action}"))
                    .unwrap()
                    .action,
                Some(action)
            );
        }
        for (raw, param) in [
            ("action=key.renamed", "action"),
            ("from=soon", "from"),
            ("to=2026-11-25&from=2026-11-26", "to"),
            ("per_page=500", "per_page"),
            ("sort=at", "sort"),
            ("user=a&user=b", "user"),
        ] {
            let Err(Error::InvalidQuery(e)) = parse_audit_query(raw) else {
                panic!("{raw}")
            };
            assert_eq!(e.field, param, "{raw}");
        }
    }
}
