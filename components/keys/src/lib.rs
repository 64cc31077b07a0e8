//! Key management: `/api/keys`, `/api/keys/{id}`, `/api/audit`,
//! `/api/openapi.json`, and `404 not_found` for every other path the app
//! does not route elsewhere.
//!
//! Each handler reads top to bottom: authenticate, validate, act through
//! [`KeyService`], respond.

use keygate::validate::{check_json_body, parse_audit_query, parse_create_body, parse_list_query};
use keygate::{ActingUser, Error, KeyService, auth, timestamp};
use keygate_spin::{SpinKeyValue, SpinSql, header, json, problem, read_request, variable};
use spin_sdk::http::{IncomingRequest, Method, Request, Response};
use spin_sdk::http_component;

const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The body is read by [`read_request`], never past 64 KiB.
#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    match read_request(req).await {
        Ok(req) => route(&req),
        Err(e) => problem(&e),
    }
}

fn route(req: &Request) -> Response {
    let path = req.path().to_owned();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let result = match (segments.as_slice(), req.method()) {
        (["api", "keys"], Method::Post) => create(req),
        (["api", "keys"], Method::Get) => list(req),
        (["api", "keys"], _) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (["api", "keys", id], Method::Get) => get(req, id),
        (["api", "keys", id], Method::Delete) => delete(req, id),
        (["api", "keys", _], _) => Err(Error::MethodNotAllowed {
            allow: "GET, DELETE",
        }),
        (["api", "audit"], Method::Get) => audit(req),
        (["api", "audit"], _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (["api", "openapi.json"], Method::Get) => Ok(openapi()),
        (["api", "openapi.json"], _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        _ => Err(Error::NotFound),
    };
    result.unwrap_or_else(|e| problem(&e))
}

/// The admin token, then `X-Acting-User` (removed users are refused by the
/// service, which can see storage).
fn authenticate(req: &Request) -> Result<ActingUser, Error> {
    auth::authenticate(
        header(req, "authorization"),
        variable("admin_token").as_deref(),
        header(req, "x-acting-user"),
    )
}

/// Opens the two stores and hands the service to `act`.
fn with_service<T>(act: impl FnOnce(KeyService<'_>) -> Result<T, Error>) -> Result<T, Error> {
    let kv = SpinKeyValue::open_default()?;
    let sql = SpinSql::open_default()?;
    act(KeyService::new(&kv, &sql))
}

fn create(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req)?;
    check_json_body(header(req, "content-type"), req.body().len())?;
    let now = timestamp::now();
    let new = parse_create_body(req.body(), now)?;
    let created = with_service(|keys| keys.create_key(&user, new, now))?;
    let location = format!("/api/keys/{}", created.key.id);
    let mut response = json(201, &created);
    response.set_header("location", location);
    Ok(response)
}

fn list(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req)?;
    let query = parse_list_query(req.query())?;
    let page = with_service(|keys| keys.list_keys(&user, &query, timestamp::now()))?;
    Ok(json(200, &page))
}

fn get(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req)?;
    let key = with_service(|keys| keys.get_key(&user, id, timestamp::now()))?;
    Ok(json(200, &key))
}

fn delete(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req)?;
    with_service(|keys| keys.delete_key(&user, id, timestamp::now()))?;
    Ok(Response::new(204, ()))
}

fn audit(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req)?;
    let query = parse_audit_query(req.query())?;
    let page = with_service(|keys| keys.list_audit(&user, &query))?;
    Ok(json(200, &page))
}

fn openapi() -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(OPENAPI)
        .build()
}
