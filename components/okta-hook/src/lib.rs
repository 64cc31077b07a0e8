//! `/webhooks/okta`: Okta Event Hooks. `GET` answers Okta's one-time
//! verification; `POST` carries events, and a deactivated or deleted user is
//! removed (every key revoked), idempotently per event `uuid`. Off (`404`
//! for everything) while `okta_hook_secret` is unset. The rules are in
//! `keygate::okta`.

use keygate::error::Problem;
use keygate::okta::{self, HookSecret};
use keygate::validate::check_json_body;
use keygate::{Error, KeyService, timestamp};
use keygate_spin::{LeanRequest, SpinKeyValue, SpinSql, json, problem, variable};
use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let mut req = LeanRequest::new(req);
    match okta_hook(&mut req).await {
        Ok(response) => response,
        Err(Error::Unauthenticated) => problem_response(&okta::unauthenticated_problem()),
        Err(e) => problem(&e),
    }
}

async fn okta_hook(req: &mut LeanRequest) -> Result<Response, Error> {
    // Unset: the route does not exist, whatever the method.
    let secret = HookSecret::from_variable(variable("okta_hook_secret").as_deref())?;
    match req.method() {
        Method::Get => {
            let challenge = req.header("x-okta-verification-challenge");
            Ok(json(200, &okta::verification(challenge)?))
        }
        Method::Post => {
            // The secret before the body: an unauthenticated caller has
            // nothing read, parsed or stored.
            secret.check(req.header("authorization"))?;
            // At most 64 KiB is read (413 beyond).
            let body = req.take_body().await?;
            check_json_body(req.header("content-type"), body.len())?;
            // The whole delivery is checked before anything is removed.
            let events = okta::parse_delivery(&body)?;
            let kv = SpinKeyValue::open_default()?;
            let sql = SpinSql::open_default()?;
            let answer = okta::deliver(&KeyService::new(&kv, &sql), &events, timestamp::now())?;
            Ok(json(200, &answer))
        }
        _ => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
    }
}

/// A problem built here rather than from an [`Error`] (the 401 without a
/// bearer challenge), written as `keygate_spin::problem` writes the others.
fn problem_response(problem: &Problem) -> Response {
    let mut response = Response::builder();
    response
        .status(problem.status)
        .header("content-type", Problem::CONTENT_TYPE);
    for (name, value) in &problem.headers {
        response.header(*name, value.as_str());
    }
    response.body(problem.to_json()).build()
}
