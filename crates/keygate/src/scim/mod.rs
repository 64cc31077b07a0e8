//! SCIM 2.0 provisioning (RFC 7643, RFC 7644) at `/scim/v2`: how Entra ID,
//! Okta, OneLogin and JumpCloud create, update, deactivate and delete the
//! users of keygate. A User's `userName` is the keygate user id.
//!
//! - **Authentication**: `Authorization: Bearer <scim_token>` (the Spin
//!   variable), compared whole and in constant time (SHA-256 + `subtle`, as
//!   the admin token). Unset, blank or shorter than 16 characters: SCIM is
//!   off and every route answers `404`. A wrong or missing token: `401` in
//!   SCIM's error format, before the body is read.
//! - **Storage**: `scim_users` in SQLite (schema v10): the attributes the
//!   identity provider sent, as sent (checked against the published schema
//!   where it has them; `password` and `groups` are never kept), a version
//!   (the ETag `W/"<n>"`) and times.
//! - **`active`**: false (or `"False"`, as Entra ID sends it), or `DELETE`,
//!   removes the user like every other channel, through
//!   [`KeyService::remove_user`](crate::KeyService::remove_user), under the
//!   delivery id `scim:<resource id>:<version the change creates>`; true
//!   again readmits them (`user.reactivated`); see [`store::Users::settle`]
//!   for exactly when, and for the order of writes.
//! - **Choices**: `userName` may change (Entra ID renames a user whose UPN
//!   changed); the ids a resource had before stay recorded and are removed
//!   with the current one on deprovisioning, since their keys are the same
//!   person's; absent `active` counts as active; list filters are `eq` on
//!   `userName` (case-insensitively), `externalId` or `id`; at most
//!   [`discovery::MAX_RESULTS`] resources per page; unknown query parameters
//!   are ignored (sortBy and sortOrder too: sorting is not supported).

pub mod discovery;
pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod store;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::ScimError;
use resource::{Projection, StoredUser, check_user};
use store::Users;

use crate::Error;
use crate::store::{KeyValue, Sql};
use crate::validate::{MAX_BODY_BYTES, check_json_body, decode_query};

pub const CONTENT_TYPE: &str = "application/scim+json";
/// Shorter configured tokens are no token (as for the admin token).
pub const MIN_TOKEN_LEN: usize = 16;
/// How often a write that lost a race with another write is tried again.
const MAX_ATTEMPTS: usize = 5;

/// One SCIM request, as the component read it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path after `/scim/v2` (`/Users/…`), without the query.
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub body: &'a [u8],
    /// `https://host/scim/v2`: what `meta.location` starts with.
    pub base: &'a str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Self {
        Response {
            status,
            headers: vec![("content-type", CONTENT_TYPE.into())],
            body: Some(serde_json::to_vec(body).expect("serialisable")),
        }
    }

    fn resource(status: u16, user: &StoredUser, req: &Request<'_>) -> Result<Self, ScimError> {
        let projection = projection(req)?;
        let mut response = Response::json(status, &projection.apply(user.render(req.base)));
        response.headers.push(("etag", user.etag()));
        if status == 201 {
            response
                .headers
                .push(("location", format!("{}/Users/{}", req.base, user.id)));
        }
        Ok(response)
    }

    pub fn error(e: &ScimError) -> Self {
        let mut response = Response::json(e.status, &e.to_json());
        if let Some(allow) = e.allow {
            response.headers.push(("allow", allow.into()));
        }
        if e.status == 401 {
            response
                .headers
                .push(("www-authenticate", "Bearer realm=\"keygate-scim\"".into()));
        }
        response
    }

    fn empty(status: u16) -> Self {
        Response {
            status,
            headers: vec![],
            body: None,
        }
    }
}

/// The Spin variable `scim_token`: the bearer token identity providers send.
#[derive(Clone)]
pub struct ScimToken(String);

impl std::fmt::Debug for ScimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScimToken([redacted])")
    }
}

impl ScimToken {
    /// `404` (SCIM off) when unset, blank or too short to be a secret.
    pub fn from_variable(configured: Option<&str>) -> Result<Self, ScimError> {
        configured
            .map(str::trim)
            .filter(|t| t.len() >= MIN_TOKEN_LEN)
            .map(|t| ScimToken(t.to_owned()))
            .ok_or_else(|| ScimError::not_found("not found"))
    }

    /// `Authorization: Bearer <token>`; both sides hashed, then compared in
    /// constant time, so neither content nor length leaks through timing.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), ScimError> {
        let presented = authorization
            .and_then(crate::auth::bearer_token)
            .unwrap_or_default();
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(self.0.as_bytes());
        if !presented.is_empty() && bool::from(a.ct_eq(&b)) {
            Ok(())
        } else {
            Err(ScimError::unauthorized())
        }
    }
}

/// Whether the route reads a body (the component reads it only then).
pub fn takes_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// Answers one authenticated request.
pub fn handle(kv: &dyn KeyValue, sql: &dyn Sql, req: &Request<'_>, now: i64) -> Response {
    match route(&Users::new(kv, sql), req, now) {
        Ok(response) => response,
        Err(e) => Response::error(&e),
    }
}

fn route(users: &Users<'_>, req: &Request<'_>, now: i64) -> Result<Response, ScimError> {
    let path = req.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method;
    let only = |allow: &'static str| -> Result<(), ScimError> {
        if allow.split(", ").any(|m| m == method) {
            Ok(())
        } else {
            Err(ScimError::method_not_allowed(allow))
        }
    };
    match segments.as_slice() {
        ["ServiceProviderConfig"] => {
            only("GET")?;
            Ok(Response::json(
                200,
                &discovery::service_provider_config(req.base),
            ))
        }
        ["ResourceTypes"] => {
            only("GET")?;
            Ok(Response::json(
                200,
                &discovery::list_of(vec![discovery::user_resource_type(req.base)]),
            ))
        }
        ["ResourceTypes", "User"] => {
            only("GET")?;
            Ok(Response::json(
                200,
                &discovery::user_resource_type(req.base),
            ))
        }
        ["Schemas"] => {
            only("GET")?;
            Ok(Response::json(
                200,
                &discovery::list_of(vec![discovery::user_schema(req.base)]),
            ))
        }
        ["Schemas", urn] if urn.eq_ignore_ascii_case(discovery::USER_URN) => {
            only("GET")?;
            Ok(Response::json(200, &discovery::user_schema(req.base)))
        }
        ["Users"] => {
            only("GET, POST")?;
            users.migrate()?;
            if method == "GET" {
                let params = query_params(req.query)?;
                list(users, req, &params)
            } else {
                create(users, req, now)
            }
        }
        ["Users", ".search"] | [".search"] => {
            only("POST")?;
            users.migrate()?;
            search(users, req)
        }
        ["Users", id] => {
            only("GET, PUT, PATCH, DELETE")?;
            users.migrate()?;
            match method {
                "GET" => get(users, req, id),
                "DELETE" => delete(users, req, id, now),
                _ => update(users, req, id, now),
            }
        }
        ["Bulk"] | ["Me"] => Err(ScimError::new(
            501,
            None,
            format!("/{} is not supported", segments[0]),
        )),
        _ => Err(ScimError::not_found(format!(
            "no SCIM endpoint at {}: keygate serves /Users, /ServiceProviderConfig, \
             /ResourceTypes and /Schemas",
            req.path
        ))),
    }
}

fn query_params(raw: &str) -> Result<Vec<(String, String)>, ScimError> {
    decode_query(raw).map_err(|_| ScimError::invalid_value("the query is not valid UTF-8"))
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn projection(req: &Request<'_>) -> Result<Projection, ScimError> {
    let params = query_params(req.query)?;
    Ok(Projection::parse(
        param(&params, "attributes"),
        param(&params, "excludedAttributes"),
    ))
}

/// The body as JSON, after its media type was checked: `application/scim+json`,
/// `application/json` (any `+json`), or none at all (Okta's documented
/// requests show none); anything else is `415`.
fn body_json(req: &Request<'_>) -> Result<Value, ScimError> {
    match req.content_type {
        Some(_) => check_json_body(req.content_type, req.body.len())?,
        None if req.body.len() > MAX_BODY_BYTES => return Err(Error::PayloadTooLarge.into()),
        None => {}
    }
    serde_json::from_slice(req.body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))
}

/// `If-Match`: `*` or one of the listed ETags (weak or strong alike).
fn check_if_match(req: &Request<'_>, user: &StoredUser) -> Result<(), ScimError> {
    match req.if_match {
        None => Ok(()),
        Some(header) if etag_matches(header, user.version) => Ok(()),
        Some(_) => Err(ScimError::new(
            412,
            None,
            format!(
                "If-Match does not match the current version {}",
                user.etag()
            ),
        )),
    }
}

fn etag_matches(header: &str, version: i64) -> bool {
    let current = version.to_string();
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == current.as_str())
}

fn list(
    users: &Users<'_>,
    req: &Request<'_>,
    params: &[(String, String)],
) -> Result<Response, ScimError> {
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        param(params, name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
            })
            .transpose()
    };
    page(
        users,
        req,
        param(params, "filter"),
        int("startIndex")?,
        int("count")?,
    )
}

fn search(users: &Users<'_>, req: &Request<'_>) -> Result<Response, ScimError> {
    let body = body_json(req)?;
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a SearchRequest object"))?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        field(name)
            .filter(|v| !v.is_null())
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer")))
            })
            .transpose()
    };
    let list = |name: &str| -> Option<String> {
        field(name).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    let (attributes, excluded) = (list("attributes"), list("excludedAttributes"));
    let projection = Projection::parse(attributes.as_deref(), excluded.as_deref());
    let filter = field("filter").and_then(Value::as_str);
    page_with(
        users,
        req,
        filter,
        int("startIndex")?,
        int("count")?,
        &projection,
    )
}

fn page(
    users: &Users<'_>,
    req: &Request<'_>,
    filter: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
) -> Result<Response, ScimError> {
    page_with(users, req, filter, start, count, &projection(req)?)
}

/// A ListResponse: `startIndex` below 1 counts as 1, a negative `count` as
/// 0, and more than [`discovery::MAX_RESULTS`] as that many.
fn page_with(
    users: &Users<'_>,
    req: &Request<'_>,
    filter: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
    projection: &Projection,
) -> Result<Response, ScimError> {
    let filter = filter
        .filter(|f| !f.trim().is_empty())
        .map(filter::parse_list_filter)
        .transpose()?;
    let start = start.unwrap_or(1).max(1);
    let count = count
        .unwrap_or(discovery::MAX_RESULTS as i64)
        .clamp(0, discovery::MAX_RESULTS as i64) as usize;
    let (total, found) = users.list(filter.as_ref(), (start - 1) as usize, count)?;
    let resources: Vec<Value> = found
        .iter()
        .map(|u| projection.apply(u.render(req.base)))
        .collect();
    Ok(Response::json(
        200,
        &json!({
            "schemas": [discovery::LIST_URN],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    ))
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no User with id {id:?}"))
}

fn get(users: &Users<'_>, req: &Request<'_>, id: &str) -> Result<Response, ScimError> {
    let user = users.get(id)?.ok_or_else(|| not_found(id))?;
    if let Some(header) = req.if_none_match
        && etag_matches(header, user.version)
    {
        let mut response = Response::empty(304);
        response.headers.push(("etag", user.etag()));
        return Ok(response);
    }
    Response::resource(200, &user, req)
}

fn taken(user_name: &str) -> ScimError {
    ScimError::new(
        409,
        Some("uniqueness"),
        format!("userName {user_name:?} is taken (user ids match case-insensitively)"),
    )
}

fn create(users: &Users<'_>, req: &Request<'_>, now: i64) -> Result<Response, ScimError> {
    let attributes = check_user(&body_json(req)?)?;
    let user_name = attributes["userName"].as_str().expect("checked").to_owned();
    if users.by_user_name(&user_name)?.is_some() {
        return Err(taken(&user_name));
    }
    let user = StoredUser {
        id: new_id()?,
        version: 1,
        created_at: now,
        modified_at: now,
        attributes,
        former_user_names: Vec::new(),
    };
    users.settle(&user.id, &user.user_names(), user.active(), None, 1, now)?;
    if !users.insert(&user)? {
        return Err(taken(&user_name));
    }
    Response::resource(201, &user, req)
}

/// PUT and PATCH: the new attributes from the stored ones, keygate settled
/// (removal or readmission), then the row written if it is still at the
/// version read (else read again, or `412` under `If-Match`).
fn update(users: &Users<'_>, req: &Request<'_>, id: &str, now: i64) -> Result<Response, ScimError> {
    let body = body_json(req)?;
    let ops = if req.method == "PATCH" {
        Some(patch::parse(&body)?)
    } else {
        None
    };
    for _ in 0..MAX_ATTEMPTS {
        let current = users.get(id)?.ok_or_else(|| not_found(id))?;
        check_if_match(req, &current)?;
        let attributes = match &ops {
            Some(ops) => {
                let patched = patch::apply(&current.attributes, ops)?;
                check_user(&Value::Object(patched))?
            }
            None => check_user(&body)?,
        };
        let new_name = attributes["userName"].as_str().expect("checked");
        let mut former_user_names = current.former_user_names.clone();
        if !new_name.eq_ignore_ascii_case(current.user_name()) {
            // A rename (Entra ID sends one when a UPN changes): the new id
            // must be free; the old one is kept, as its keys are this
            // person's and go when the person is deprovisioned.
            if users
                .by_user_name(new_name)?
                .is_some_and(|other| other.id != current.id)
            {
                return Err(taken(new_name));
            }
            former_user_names.retain(|n| !n.eq_ignore_ascii_case(new_name));
            if !former_user_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(current.user_name()))
            {
                former_user_names.push(current.user_name().to_owned());
            }
        }
        let user = StoredUser {
            attributes,
            former_user_names,
            version: current.version + 1,
            modified_at: now,
            ..current.clone()
        };
        let settled = users.settle(
            id,
            &user.user_names(),
            user.active(),
            Some(current.active()),
            user.version,
            now,
        )?;
        if user.attributes == current.attributes
            && user.former_user_names == current.former_user_names
            && !settled
        {
            // Nothing to change: the same answer as before, no new version.
            return Response::resource(200, &current, req);
        }
        match users.update(&user, current.version) {
            Ok(true) => return Response::resource(200, &user, req),
            Ok(false) => {}
            // A rename racing another resource's create of the same id.
            Err(e) if e.message().contains("UNIQUE constraint failed") => {
                return Err(taken(user.user_name()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ScimError::new(
        409,
        None,
        "the user is being changed by other requests; try again",
    ))
}

fn delete(users: &Users<'_>, req: &Request<'_>, id: &str, now: i64) -> Result<Response, ScimError> {
    for _ in 0..MAX_ATTEMPTS {
        let current = users.get(id)?.ok_or_else(|| not_found(id))?;
        check_if_match(req, &current)?;
        users.settle(
            id,
            &current.user_names(),
            false,
            Some(current.active()),
            current.version + 1,
            now,
        )?;
        if users.delete(id, current.version)? {
            return Ok(Response::empty(204));
        }
    }
    Err(ScimError::new(
        409,
        None,
        "the user is being changed by other requests; try again",
    ))
}

/// A random (version 4) UUID: what identity providers expect an id to look like.
fn new_id() -> Result<String, ScimError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| ScimError::new(503, None, "no randomness for an id"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests;
