//! `POST /webhooks/user-removed`: the identity system says a user is gone;
//! every key of that user is revoked. Signed per Standard Webhooks,
//! idempotent by `webhook-id`.

use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use keygate::validate::check_json_body;
use keygate::webhook::{WebhookHeaders, WebhookSecret, parse_user_removed, verify_signature};
use keygate::{Error, KeyService, timestamp};
use keygate_spin::{
    SpinKeyValue, SpinSql, header, http_method, json, problem, read_request, variable,
};
use spin_sdk::http::{IncomingRequest, Request, Response};
use spin_sdk::http_component;

/// The body is read by [`read_request`], never past 64 KiB.
#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let result = match http_method(req.method()) {
        Method::POST => match read_request(req).await {
            Ok(req) => user_removed(&req),
            Err(e) => Err(e),
        },
        _ => Err(Error::MethodNotAllowed { allow: "POST" }),
    };
    result.unwrap_or_else(|e| problem(&e))
}

fn user_removed(req: &Request) -> Result<Response, Error> {
    let secret = WebhookSecret::parse(variable("webhook_secret").as_deref())?;
    let now = timestamp::now();
    let headers = WebhookHeaders {
        id: header(req, "webhook-id"),
        timestamp: header(req, "webhook-timestamp"),
        signature: header(req, "webhook-signature"),
    };
    // The signature before anything else: an unsigned caller learns nothing.
    let webhook_id = verify_signature(&secret, &headers, req.body(), now)?;
    check_json_body(header(req, CONTENT_TYPE), req.body().len())?;
    let event = parse_user_removed(req.body())?;

    let kv = SpinKeyValue::open_default()?;
    let sql = SpinSql::open_default()?;
    let removed = KeyService::new(&kv, &sql).remove_user(&event.user_id, &webhook_id, now)?;
    Ok(json(StatusCode::OK, &removed))
}
