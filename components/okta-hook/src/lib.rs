//! `/webhooks/okta`: Okta Event Hooks. `GET` answers Okta's one-time
//! verification; `POST` carries events, and a deactivated or deleted user is
//! removed (every key revoked), idempotently per event `uuid`. Off (`404`
//! for everything) while `okta_hook_secret` is unset. The rules are in
//! `keygate::okta`.

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use keygate::okta::{self, HookSecret};
use keygate::validate::check_json_body;
use keygate::{Error, KeyService, timestamp};
use keygate_spin::{LeanRequest, SpinKeyValue, SpinSql, json, problem, problem_response, variable};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let mut req = LeanRequest::new(req);
    match okta_hook(&mut req).await {
        Ok(response) => response,
        // Built here rather than from the `Error`: the 401 without a bearer challenge.
        Err(Error::Unauthenticated) => problem_response(&okta::unauthenticated_problem()),
        Err(e) => problem(&e),
    }
}

async fn okta_hook(req: &mut LeanRequest) -> Result<Response, Error> {
    // Unset: the route does not exist, whatever the method.
    let secret = HookSecret::from_variable(variable("okta_hook_secret").as_deref())?;
    match *req.method() {
        Method::GET => {
            let challenge = req.header("x-okta-verification-challenge");
            Ok(json(StatusCode::OK, &okta::verification(challenge)?))
        }
        Method::POST => {
            // The secret before the body: an unauthenticated caller has
            // nothing read, parsed or stored.
            secret.check(req.header(AUTHORIZATION))?;
            // At most 64 KiB is read (413 beyond).
            let body = req.take_body().await?;
            check_json_body(req.header(CONTENT_TYPE), body.len())?;
            // The whole delivery is checked before anything is removed.
            let events = okta::parse_delivery(&body)?;
            let kv = SpinKeyValue::open_default()?;
            let sql = SpinSql::open_default()?;
            let answer = okta::deliver(&KeyService::new(&kv, &sql), &events, timestamp::now())?;
            Ok(json(StatusCode::OK, &answer))
        }
        _ => Err(Error::MethodNotAllowed { allow: "GET, POST" }),
    }
}
