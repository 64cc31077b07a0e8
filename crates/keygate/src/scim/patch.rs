//! PATCH (RFC 7644 §3.5.2) over a stored User's attributes: `add`,
//! `replace`, `remove` in any case (Entra ID sends `"Replace"`), with a
//! `path` (`attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, any of
//! them behind a schema URN) or, for add and replace, a value object without
//! one (whose keys may themselves be paths, as Entra ID sends
//! `"name.givenName"`). The result is checked like a PUT body afterwards.

use serde_json::{Map, Value};

use super::discovery::{self, PATCH_URN, USER_URN};
use super::error::ScimError;
use super::filter::{self, Filter, Op};
use super::resource::SERVER_OWNED;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Add,
    Replace,
    Remove,
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub kind: Kind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// The operations of a PatchOp body, checked before any is applied.
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a PatchOp object"))?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    if let Some(schemas) = field("schemas") {
        let ok = schemas.as_array().is_some_and(|urns| {
            urns.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_URN))
            })
        });
        if !ok {
            return Err(ScimError::invalid_value(format!(
                "schemas must be [\"{PATCH_URN}\"]"
            )));
        }
    }
    let operations = field("Operations")
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| ScimError::invalid_value("Operations must be a non-empty array"))?;
    operations.iter().map(operation).collect()
}

fn operation(op: &Value) -> Result<Operation, ScimError> {
    let object = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be an object"))?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let kind = match field("op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => Kind::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => Kind::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => Kind::Remove,
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "unknown operation {other:?}: add, replace or remove"
            )));
        }
        None => return Err(ScimError::invalid_value("an operation without op")),
    };
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        Some(_) => return Err(ScimError::invalid_path("path must be a non-empty string")),
    };
    let value = field("value").cloned();
    match (kind, &path, &value) {
        (Kind::Remove, None, _) => Err(ScimError::no_target("remove needs a path")),
        (Kind::Add | Kind::Replace, None, Some(Value::Object(_))) => Ok(()),
        (Kind::Add | Kind::Replace, None, _) => Err(ScimError::invalid_value(
            "add and replace without a path need a value object",
        )),
        (Kind::Add | Kind::Replace, Some(_), None) => {
            Err(ScimError::invalid_value("add and replace need a value"))
        }
        _ => Ok(()),
    }?;
    Ok(Operation { kind, path, value })
}

/// A parsed path: attribute (its key in the resource), optional value
/// filter, optional sub-attribute.
#[derive(Debug)]
struct Path {
    /// The extension object the attribute lives in, if any.
    extension: Option<String>,
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn parse_path(raw: &str) -> Result<Path, ScimError> {
    let invalid = || ScimError::invalid_path(format!("cannot read the path {raw:?}"));
    // A schema URN in front: the core one is dropped; an extension's names
    // the object its attribute is in.
    let (extension, rest) = if raw.len() > 4 && raw[..4].eq_ignore_ascii_case("urn:") {
        let before_filter = raw.find('[').unwrap_or(raw.len());
        match raw[..before_filter].rfind(':') {
            Some(colon) => {
                let urn = &raw[..colon];
                if urn.eq_ignore_ascii_case(USER_URN) {
                    (None, &raw[colon + 1..])
                } else {
                    let urn = if urn.eq_ignore_ascii_case(discovery::ENTERPRISE_URN) {
                        discovery::ENTERPRISE_URN.to_owned()
                    } else {
                        urn.to_owned()
                    };
                    (Some(urn), &raw[colon + 1..])
                }
            }
            None => return Err(invalid()),
        }
    } else {
        (None, raw)
    };
    let (attr, filter, after) = match rest.find('[') {
        Some(open) => {
            let close = rest.rfind(']').filter(|c| *c > open).ok_or_else(invalid)?;
            let filter = filter::parse(&rest[open + 1..close])
                .map_err(|e| ScimError::invalid_path(e.detail))?;
            (&rest[..open], Some(filter), &rest[close + 1..])
        }
        None => match rest.find('.') {
            Some(dot) => (&rest[..dot], None, &rest[dot..]),
            None => (rest, None, ""),
        },
    };
    let sub = match after {
        "" => None,
        s => Some(
            s.strip_prefix('.')
                .filter(|s| is_name(s))
                .ok_or_else(invalid)?,
        ),
    };
    if !is_name(attr) {
        return Err(invalid());
    }
    Ok(Path {
        extension,
        attr: attr.to_owned(),
        filter,
        sub: sub.map(str::to_owned),
    })
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

/// Applies `ops` in order to a copy of `attributes`.
pub fn apply(
    attributes: &Map<String, Value>,
    ops: &[Operation],
) -> Result<Map<String, Value>, ScimError> {
    let mut out = attributes.clone();
    for op in ops {
        match &op.path {
            Some(path) => apply_path(&mut out, op.kind, path, op.value.as_ref())?,
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    unreachable!("checked by parse");
                };
                for (key, value) in values {
                    apply_path(&mut out, op.kind, key, Some(value))?;
                }
            }
        }
    }
    Ok(out)
}

fn apply_path(
    resource: &mut Map<String, Value>,
    kind: Kind,
    raw: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let path = parse_path(raw)?;
    if path.extension.is_none()
        && SERVER_OWNED
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&path.attr))
    {
        return Err(ScimError::mutability(format!(
            "{} is set by the server and cannot be changed",
            path.attr
        )));
    }
    // The object the attribute lives in: the resource, or an extension's object.
    let container: &mut Map<String, Value> = match &path.extension {
        None => resource,
        Some(urn) => {
            let key = key_of(resource, urn).unwrap_or_else(|| urn.clone());
            let slot = resource
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut().expect("an object")
        }
    };
    let schema = path
        .extension
        .is_none()
        .then(|| discovery::attribute(&path.attr))
        .flatten();
    let key = key_of(container, &path.attr)
        .unwrap_or_else(|| schema.map_or(path.attr.clone(), |a| a.name.to_owned()));
    let multi = schema.is_some_and(|a| a.multi)
        || container.get(&key).is_some_and(Value::is_array)
        || (kind == Kind::Add && value.is_some_and(Value::is_array));

    match (&path.filter, &path.sub) {
        (None, None) => match kind {
            Kind::Remove => {
                match (container.get_mut(&key), value) {
                    // `remove` with a value on a multi-valued attribute:
                    // those values go (Entra ID removes members so).
                    (Some(Value::Array(items)), Some(v)) => {
                        let gone: Vec<Value> = match v {
                            Value::Array(v) => v.clone(),
                            one => vec![one.clone()],
                        };
                        items.retain(|i| !gone.iter().any(|g| same_value(i, g)));
                        if items.is_empty() {
                            container.remove(&key);
                        }
                    }
                    _ => {
                        container.remove(&key);
                    }
                }
            }
            Kind::Add if multi => {
                let new = as_items(value.expect("checked"));
                let items = array_slot(container, &key);
                for item in new {
                    if !items.iter().any(|i| i == &item) {
                        items.push(item);
                    }
                }
                demote_other_primaries(items);
            }
            Kind::Replace if multi => {
                let mut items = as_items(value.expect("checked"));
                demote_other_primaries(&mut items);
                container.insert(key, Value::Array(items));
            }
            _ => {
                let value = value.expect("checked").clone();
                match (container.get_mut(&key), value) {
                    (Some(Value::Object(existing)), Value::Object(new)) => {
                        merge(existing, new);
                    }
                    (_, Value::Null) => {
                        container.remove(&key);
                    }
                    (_, new) => {
                        container.insert(key, new);
                    }
                }
            }
        },
        (None, Some(sub)) => {
            let sub_key_for = |o: &Map<String, Value>| {
                key_of(o, sub).unwrap_or_else(|| {
                    schema
                        .and_then(|a| a.sub_attribute(sub))
                        .map_or(sub.clone(), |s| s.name.to_owned())
                })
            };
            match container.get_mut(&key) {
                Some(Value::Array(_)) => {
                    return Err(ScimError::invalid_path(format!(
                        "{raw}: {key} has several values; name one with a filter, \
                         e.g. {key}[type eq \"work\"].{sub}"
                    )));
                }
                Some(Value::Object(object)) => {
                    let sub_key = sub_key_for(object);
                    match (kind, value) {
                        (Kind::Remove, _) | (_, Some(Value::Null)) => {
                            object.remove(&sub_key);
                        }
                        (_, Some(v)) => {
                            object.insert(sub_key, v.clone());
                        }
                        (_, None) => unreachable!("checked by parse"),
                    }
                    if object.is_empty() {
                        container.remove(&key);
                    }
                }
                _ if kind == Kind::Remove => {}
                _ => {
                    let v = value.expect("checked").clone();
                    if !v.is_null() {
                        let mut object = Map::new();
                        object.insert(sub_key_for(&Map::new()), v);
                        container.insert(key, Value::Object(object));
                    }
                }
            }
        }
        (Some(filter), sub) => {
            let matched: Vec<usize> = match container.get(&key) {
                Some(Value::Array(items)) => (0..items.len())
                    .filter(|i| filter.matches(&items[*i]))
                    .collect(),
                _ => Vec::new(),
            };
            if matched.is_empty() {
                match (kind, sub, creatable(filter)) {
                    (Kind::Remove, _, _) => return Ok(()),
                    // Entra ID sets `emails[type eq "work"].value` on a
                    // user without a work address: the value is created.
                    (_, Some(sub), Some((fattr, fvalue))) => {
                        let mut object = Map::new();
                        object.insert(fattr, fvalue);
                        let v = value.expect("checked").clone();
                        if v.is_null() {
                            return Ok(());
                        }
                        object.insert(sub.clone(), v);
                        array_slot(container, &key).push(Value::Object(object));
                        return Ok(());
                    }
                    _ => {
                        return Err(ScimError::no_target(format!(
                            "{raw}: no value of {key} matches the filter"
                        )));
                    }
                }
            }
            let items = array_slot(container, &key);
            match (kind, sub) {
                (Kind::Remove, None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        i += 1;
                        !matched.contains(&(i - 1))
                    });
                }
                (Kind::Remove, Some(sub)) => {
                    for i in &matched {
                        if let Some(o) = items[*i].as_object_mut() {
                            let k = key_of(o, sub).unwrap_or_else(|| sub.clone());
                            o.remove(&k);
                        }
                    }
                }
                (_, Some(sub)) => {
                    let v = value.expect("checked").clone();
                    for i in &matched {
                        if let Some(o) = items[*i].as_object_mut() {
                            let k = key_of(o, sub).unwrap_or_else(|| sub.clone());
                            if v.is_null() {
                                o.remove(&k);
                            } else {
                                o.insert(k, v.clone());
                            }
                        }
                    }
                    if sub.eq_ignore_ascii_case("primary") && v == Value::Bool(true) {
                        let last = *matched.last().expect("not empty");
                        for (i, item) in items.iter_mut().enumerate() {
                            if i != last
                                && let Some(o) = item.as_object_mut()
                            {
                                o.remove("primary");
                            }
                        }
                    }
                }
                (Kind::Add, None) => {
                    let Some(Value::Object(new)) = value else {
                        return Err(ScimError::invalid_value(format!(
                            "{raw}: the value must be an object"
                        )));
                    };
                    for i in &matched {
                        if let Some(o) = items[*i].as_object_mut() {
                            merge(o, new.clone());
                        }
                    }
                }
                (Kind::Replace, None) => {
                    let new = value.expect("checked").clone();
                    if !new.is_object() {
                        return Err(ScimError::invalid_value(format!(
                            "{raw}: the value must be an object"
                        )));
                    }
                    for i in &matched {
                        items[*i] = new.clone();
                    }
                }
            }
            if items.is_empty() {
                container.remove(&key);
            }
        }
    }
    Ok(())
}

/// The key in `object` that names `name` case-insensitively.
fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

fn array_slot<'m>(container: &'m mut Map<String, Value>, key: &str) -> &'m mut Vec<Value> {
    let slot = container
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        let old = slot.take();
        *slot = Value::Array(if old.is_null() { vec![] } else { vec![old] });
    }
    slot.as_array_mut().expect("an array")
}

fn as_items(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).cloned().collect(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

/// RFC 7644 §3.5.2: setting a value primary makes the others not primary;
/// of several marked primary the last one wins.
fn demote_other_primaries(items: &mut [Value]) {
    let is_primary = |v: &Value| {
        v.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("primary")))
            .and_then(|(_, v)| super::resource::boolean(v))
            == Some(true)
    };
    if let Some(last) = items.iter().rposition(is_primary) {
        for (i, item) in items.iter_mut().enumerate() {
            if i != last
                && is_primary(item)
                && let Some(o) = item.as_object_mut()
            {
                o.retain(|k, _| !k.eq_ignore_ascii_case("primary"));
            }
        }
    }
}

fn merge(existing: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        let key = key_of(existing, &k).unwrap_or(k);
        if v.is_null() {
            existing.remove(&key);
        } else {
            existing.insert(key, v);
        }
    }
}

/// Two values of a multi-valued attribute are the same value when their
/// `value` sub-attributes are equal (or, without one, when they are equal).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `type eq "work"`: the one comparison a missing value can be created from.
fn creatable(filter: &Filter) -> Option<(String, Value)> {
    match filter.0.as_slice() {
        [all] => match all.as_slice() {
            [c] if c.op == Op::Eq => Some((c.attr.clone(), c.value.clone()?)),
            _ => None,
        },
        _ => None,
    }
}
