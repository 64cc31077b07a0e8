//! A User as keygate keeps it: the attributes the identity provider sent
//! (checked against the published schema where it has them, kept as sent
//! where it does not), plus what the server adds (`id`, `meta`, `schemas`).

use serde_json::{Map, Value, json};

use super::discovery::{self, Attribute, ENTERPRISE_URN, Type, USER_URN};
use super::error::ScimError;
use crate::validate::is_user_id;

/// Attributes the server owns: ignored in a body, refused as a PATCH target.
pub const SERVER_OWNED: &[&str] = &["id", "meta", "schemas"];
/// Never kept: keygate has no use for a password and must not hold one
/// (Okta sends it when "Sync password" is on), nor for group memberships.
pub const DROPPED: &[&str] = &["password", "groups"];

/// A checked User body (POST, PUT, or the result of a PATCH): attribute
/// names in the schema's spelling, `null`s left out, `active` a boolean.
pub fn check_user(body: &Value) -> Result<Map<String, Value>, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object (a User)"))?;
    if let Some(schemas) = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    {
        let urns = schemas
            .as_array()
            .ok_or_else(|| ScimError::invalid_value("schemas must be an array of schema URNs"))?;
        if !urns
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(USER_URN)))
        {
            return Err(ScimError::invalid_value(format!(
                "schemas must contain {USER_URN}"
            )));
        }
    }
    let mut out = Map::new();
    for (key, value) in object {
        if value.is_null()
            || SERVER_OWNED.iter().any(|s| s.eq_ignore_ascii_case(key))
            || DROPPED.iter().any(|s| s.eq_ignore_ascii_case(key))
        {
            continue;
        }
        if let Some(attr) = discovery::attribute(key) {
            out.insert(attr.name.to_owned(), check_value(attr, value, attr.name)?);
        } else if key.eq_ignore_ascii_case("externalId") {
            let id = value
                .as_str()
                .ok_or_else(|| ScimError::invalid_value("externalId must be a string"))?;
            out.insert("externalId".into(), json!(id));
        } else if key.len() > 4 && key[..4].eq_ignore_ascii_case("urn:") {
            if !value.is_object() {
                return Err(ScimError::invalid_value(format!(
                    "the extension {key} must be an object"
                )));
            }
            let urn = if key.eq_ignore_ascii_case(ENTERPRISE_URN) {
                ENTERPRISE_URN
            } else {
                key
            };
            out.insert(urn.to_owned(), value.clone());
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    let user_name = out
        .get("userName")
        .and_then(Value::as_str)
        .ok_or_else(|| ScimError::invalid_value("userName (the keygate user id) is required"))?;
    if !is_user_id(user_name) {
        return Err(ScimError::invalid_value(
            "userName must be 1–200 printable characters (it is the keygate user id)",
        ));
    }
    Ok(out)
}

fn check_value(attr: &Attribute, value: &Value, path: &str) -> Result<Value, ScimError> {
    if attr.multi {
        let items = match value {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        let items = items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| check_single(attr, v, path))
            .collect::<Result<Vec<_>, _>>()?;
        let primaries = items
            .iter()
            .filter(|i| i.get("primary") == Some(&Value::Bool(true)))
            .count();
        if primaries > 1 {
            return Err(ScimError::invalid_value(format!(
                "at most one of {path} may be primary"
            )));
        }
        Ok(Value::Array(items))
    } else {
        check_single(attr, value, path)
    }
}

fn check_single(attr: &Attribute, value: &Value, path: &str) -> Result<Value, ScimError> {
    let wrong = |what: &str| ScimError::invalid_value(format!("{path} must be {what}"));
    match attr.ty {
        Type::String => value
            .is_string()
            .then(|| value.clone())
            .ok_or_else(|| wrong("a string")),
        Type::Boolean => boolean(value)
            .map(Value::Bool)
            .ok_or_else(|| wrong("a boolean")),
        Type::Complex => {
            let object = value.as_object().ok_or_else(|| wrong("an object"))?;
            let mut out = Map::new();
            for (key, v) in object {
                if v.is_null() {
                    continue;
                }
                match attr.sub_attribute(key) {
                    Some(sub) => {
                        let path = format!("{path}.{}", sub.name);
                        out.insert(sub.name.to_owned(), check_single(sub, v, &path)?);
                    }
                    None => {
                        out.insert(key.clone(), v.clone());
                    }
                }
            }
            Ok(Value::Object(out))
        }
    }
}

/// `true`/`false`, or the strings `"True"`/`"False"` in any case (Entra ID
/// sends `"active": "False"`).
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A stored user, as one row holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredUser {
    pub id: String,
    pub attributes: Map<String, Value>,
    /// The user ids this resource had before a rename, oldest first: their
    /// keys are the same person's, so deprovisioning removes them too.
    pub former_user_names: Vec<String>,
    pub version: i64,
    pub created_at: i64,
    pub modified_at: i64,
}

impl StoredUser {
    pub fn user_name(&self) -> &str {
        self.attributes
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Absent `active` (never sent, or removed by PATCH) counts as active.
    pub fn active(&self) -> bool {
        is_active(&self.attributes)
    }

    pub fn etag(&self) -> String {
        etag(self.version)
    }

    /// Every user id of this person: the current one first, then the former.
    pub fn user_names(&self) -> Vec<String> {
        std::iter::once(self.user_name().to_owned())
            .chain(self.former_user_names.iter().cloned())
            .collect()
    }

    /// The User as SCIM shows it.
    pub fn render(&self, base: &str) -> Value {
        let mut out = self.attributes.clone();
        let mut schemas = vec![json!(USER_URN)];
        for (key, value) in &self.attributes {
            if key.starts_with("urn:") && value.is_object() {
                schemas.push(json!(key));
            }
        }
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), json!(self.id));
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": crate::timestamp::format_rfc3339(self.created_at),
                "lastModified": crate::timestamp::format_rfc3339(self.modified_at),
                "location": format!("{base}/Users/{}", self.id),
                "version": self.etag(),
            }),
        );
        Value::Object(out)
    }
}

pub fn is_active(attributes: &Map<String, Value>) -> bool {
    attributes.get("active").and_then(boolean).unwrap_or(true)
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5), comma-separated
/// attribute paths; `id`, `schemas` and `meta` are always returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(strip_core_urn)
                    .collect()
            })
            .unwrap_or_default()
        };
        Projection {
            attributes: split(attributes),
            excluded: split(excluded),
        }
    }

    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(object) = resource else {
            return resource;
        };
        let always = |k: &str| SERVER_OWNED.iter().any(|s| s.eq_ignore_ascii_case(k));
        let mut out = Map::new();
        for (key, value) in object {
            if always(&key) {
                out.insert(key, value);
                continue;
            }
            let keep = if self.attributes.is_empty() {
                Some(value)
            } else {
                select(&key, value, &self.attributes)
            };
            let keep = keep.and_then(|v| exclude(&key, v, &self.excluded));
            if let Some(v) = keep {
                out.insert(key, v);
            }
        }
        Value::Object(out)
    }
}

fn strip_core_urn(path: &str) -> String {
    match path.get(..USER_URN.len() + 1) {
        Some(prefix) if prefix.eq_ignore_ascii_case(&format!("{USER_URN}:")) => {
            path[USER_URN.len() + 1..].to_owned()
        }
        _ => path.to_owned(),
    }
}

/// `key`'s value restricted to what `paths` ask for (`None`: nothing).
fn select(key: &str, value: Value, paths: &[String]) -> Option<Value> {
    let mut subs = Vec::new();
    for path in paths {
        if path.eq_ignore_ascii_case(key) {
            return Some(value);
        }
        if let Some(rest) = sub_path(path, key) {
            subs.push(rest);
        }
    }
    if subs.is_empty() {
        return None;
    }
    Some(map_objects(value, |object| {
        object
            .into_iter()
            .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .collect()
    }))
}

fn exclude(key: &str, value: Value, paths: &[String]) -> Option<Value> {
    let mut subs = Vec::new();
    for path in paths {
        if path.eq_ignore_ascii_case(key) {
            return None;
        }
        if let Some(rest) = sub_path(path, key) {
            subs.push(rest);
        }
    }
    if subs.is_empty() {
        return Some(value);
    }
    Some(map_objects(value, |object| {
        object
            .into_iter()
            .filter(|(k, _)| !subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .collect()
    }))
}

/// `givenName` of `name.givenName` for `name`; `department` of
/// `urn:…:User:department` for the extension `urn:…:User`.
fn sub_path<'p>(path: &'p str, key: &str) -> Option<&'p str> {
    let head = path.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    let sep = if key.starts_with("urn:") { ':' } else { '.' };
    path[key.len()..].strip_prefix(sep)
}

fn map_objects(value: Value, f: impl Fn(Map<String, Value>) -> Map<String, Value>) -> Value {
    match value {
        Value::Object(o) => Value::Object(f(o)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::Object(o) => Value::Object(f(o)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}
