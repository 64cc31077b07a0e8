//! Key management: `/api/keys`, `/api/keys/{id}` (with `/transfer` and
//! `/roll`), `/api/service-accounts`, `/api/users/{id}`, `/api/audit`,
//! `/api/auth-config`, `/api/openapi.json`, and `404 not_found` for every
//! other path the app does not route elsewhere.
//!
//! Each handler reads top to bottom: authenticate, validate, act through
//! [`KeyService`], respond.

use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use keygate::oidc::{CONSOLE_SCOPES, OidcConfig};
use keygate::validate::{
    check_json_body, parse_audit_query, parse_create_body, parse_list_query, parse_page_query,
    parse_patch_body, parse_roll_body, parse_service_account_body, parse_transfer_body,
    parse_user_path,
};
use keygate::{ActingUser, Error, KeyService, auth, timestamp};
use keygate_spin::{
    SpinHttpGet, SpinKeyValue, SpinSql, header, http_method, json, problem, read_request, variable,
};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, Request, Response};
use spin_sdk::http_component;

const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The body is read by [`read_request`], never past 64 KiB.
#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    match read_request(req).await {
        Ok(req) => route(&req).await,
        Err(e) => problem(&e),
    }
}

async fn route(req: &Request) -> Response {
    let path = req.path().to_owned();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let result = match (segments.as_slice(), http_method(req.method().clone())) {
        (["api", "keys"], Method::POST) => create(req).await,
        (["api", "keys"], Method::GET) => list(req).await,
        (["api", "keys"], _) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (["api", "keys", id], Method::GET) => get(req, id).await,
        (["api", "keys", id], Method::PATCH) => update(req, id).await,
        (["api", "keys", id], Method::DELETE) => delete(req, id).await,
        (["api", "keys", _], _) => Err(Error::MethodNotAllowed {
            allow: "GET, PATCH, DELETE",
        }),
        (["api", "keys", id, "transfer"], Method::POST) => transfer(req, id).await,
        (["api", "keys", id, "roll"], Method::POST) => roll(req, id).await,
        (["api", "keys", _, "transfer" | "roll"], _) => {
            Err(Error::MethodNotAllowed { allow: "POST" })
        }
        (["api", "service-accounts"], Method::POST) => create_service_account(req).await,
        (["api", "service-accounts"], Method::GET) => list_service_accounts(req).await,
        (["api", "service-accounts"], _) => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
        (["api", "service-accounts", id], Method::DELETE) => delete_service_account(req, id).await,
        (["api", "service-accounts", _], _) => Err(Error::MethodNotAllowed { allow: "DELETE" }),
        (["api", "users", user_id], Method::GET) => user_summary(req, user_id).await,
        (["api", "users", _], _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (["api", "audit"], Method::GET) => audit(req).await,
        (["api", "audit"], _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (["api", "auth-config"], Method::GET) => Ok(auth_config()),
        (["api", "auth-config"], _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (["api", "openapi.json"], Method::GET) => Ok(openapi()),
        (["api", "openapi.json"], _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        _ => Err(Error::NotFound),
    };
    result.unwrap_or_else(|e| problem(&e))
}

/// The OIDC variables, checked (an error: they cannot work as set).
fn oidc_config() -> Result<Option<OidcConfig>, Error> {
    OidcConfig::from_variables(
        variable("oidc_issuer").as_deref(),
        variable("oidc_audience").as_deref(),
        variable("oidc_client_id").as_deref(),
        variable("oidc_user_claim").as_deref(),
    )
}

/// Who is acting: the identity provider's JWT, or the admin token plus
/// `X-Acting-User` (removed users are refused by the service, which can see
/// storage).
async fn authenticate(req: &Request) -> Result<ActingUser, Error> {
    let credentials = auth::Credentials {
        authorization: header(req, AUTHORIZATION),
        acting_user: header(req, "x-acting-user"),
    };
    auth::sign_in(
        credentials,
        variable("admin_token").as_deref(),
        oidc_config(),
        // Opened only for a JWT: the issuer's keys are cached there.
        &SpinKeyValue::lazy_default(),
        &SpinHttpGet,
        timestamp::now(),
    )
    .await
}

/// `GET /api/auth-config`: what the console offers. No authentication, and
/// nothing secret: the issuer and the public client id are public.
fn auth_config() -> Response {
    let admin_token = auth::admin_token_mode(variable("admin_token").as_deref()).is_some();
    let oidc = match oidc_config() {
        Ok(Some(c)) => json!({
            "issuer": c.issuer,
            "client_id": c.client_id,
            "scopes": CONSOLE_SCOPES,
            "token": c.console_token(),
        }),
        _ => serde_json::Value::Null,
    };
    json(
        StatusCode::OK,
        &json!({"oidc": oidc, "admin_token": admin_token}),
    )
}

/// Opens the two stores and hands the service to `act`.
fn with_service<T>(act: impl FnOnce(KeyService<'_>) -> Result<T, Error>) -> Result<T, Error> {
    let kv = SpinKeyValue::open_default()?;
    let sql = SpinSql::open_default()?;
    act(KeyService::new(&kv, &sql))
}

async fn create(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    check_json_body(header(req, CONTENT_TYPE), req.body().len())?;
    let now = timestamp::now();
    let new = parse_create_body(req.body(), now)?;
    let created = with_service(|keys| keys.create_key(&user, new, now))?;
    let location = format!("/api/keys/{}", created.key.id);
    let mut response = json(StatusCode::CREATED, &created);
    response.set_header(LOCATION.as_str(), location);
    Ok(response)
}

async fn list(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    let query = parse_list_query(req.query())?;
    let page = with_service(|keys| keys.list_keys(&user, &query, timestamp::now()))?;
    Ok(json(StatusCode::OK, &page))
}

async fn get(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    let key = with_service(|keys| keys.get_key(&user, id, timestamp::now()))?;
    Ok(json(StatusCode::OK, &key))
}

/// `PATCH /api/keys/{id}`: JSON Merge Patch of name, description, expiry.
async fn update(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    check_json_body(header(req, CONTENT_TYPE), req.body().len())?;
    let now = timestamp::now();
    let changes = parse_patch_body(req.body(), now)?;
    let key = with_service(|keys| keys.update_key(&user, id, changes, now))?;
    Ok(json(StatusCode::OK, &key))
}

/// `POST /api/keys/{id}/transfer`: same secret, new owner.
async fn transfer(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    check_json_body(header(req, CONTENT_TYPE), req.body().len())?;
    let owner = parse_transfer_body(req.body())?;
    let key = with_service(|keys| keys.transfer_key(&user, id, owner, timestamp::now()))?;
    Ok(json(StatusCode::OK, &key))
}

/// `POST /api/keys/{id}/roll`: a new secret, shown once; the body (the
/// previous secret's grace) is optional.
async fn roll(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    if !req.body().iter().all(u8::is_ascii_whitespace) {
        check_json_body(header(req, CONTENT_TYPE), req.body().len())?;
    }
    let grace = parse_roll_body(req.body())?;
    let rolled = with_service(|keys| keys.roll_key(&user, id, grace, timestamp::now()))?;
    Ok(json(StatusCode::CREATED, &rolled))
}

async fn create_service_account(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    check_json_body(header(req, CONTENT_TYPE), req.body().len())?;
    let new = parse_service_account_body(req.body())?;
    let account = with_service(|keys| keys.create_service_account(&user, new, timestamp::now()))?;
    Ok(json(StatusCode::CREATED, &account))
}

async fn list_service_accounts(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    let (page, per_page) = parse_page_query(req.query())?;
    let accounts = with_service(|keys| keys.list_service_accounts(&user, page, per_page))?;
    Ok(json(StatusCode::OK, &accounts))
}

/// `DELETE /api/service-accounts/{id}`: revokes its keys.
async fn delete_service_account(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    with_service(|keys| keys.delete_service_account(&user, id, timestamp::now()))?;
    Ok(Response::new(StatusCode::NO_CONTENT, ()))
}

/// `GET /api/users/{user_id}`: what removing the user would break.
async fn user_summary(req: &Request, user_id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    let user_id = parse_user_path(user_id)?;
    let summary = with_service(|keys| keys.user_summary(&user, &user_id, timestamp::now()))?;
    Ok(json(StatusCode::OK, &summary))
}

async fn delete(req: &Request, id: &str) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    with_service(|keys| keys.delete_key(&user, id, timestamp::now()))?;
    Ok(Response::new(StatusCode::NO_CONTENT, ()))
}

async fn audit(req: &Request) -> Result<Response, Error> {
    let user = authenticate(req).await?;
    let query = parse_audit_query(req.query())?;
    let page = with_service(|keys| keys.list_audit(&user, &query))?;
    Ok(json(StatusCode::OK, &page))
}

fn openapi() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE.as_str(), "application/json")
        .body(OPENAPI)
        .build()
}
