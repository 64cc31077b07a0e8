//! `/ssf/events`: OpenID Shared Signals push delivery (RFC 8935). The
//! transmitter `ssf_issuer` POSTs one Security Event Token per request
//! (`Content-Type: application/secevent+jwt`); RISC `account-disabled` and
//! `account-purged` remove the user the SET names (every key revoked),
//! idempotently per `jti`; other events are acknowledged. `202` with no
//! body when accepted, RFC 8935's `400 {"err", "description"}` when
//! refused. Off (`404` for everything) while `ssf_issuer` is unset. The
//! rules are in `keygate::ssf`.

use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use keygate::ssf::{self, Action, SsfConfig, SsfError};
use keygate::{Error, KeyService, timestamp};
use keygate_spin::{
    LeanRequest, SpinHttpGet, SpinKeyValue, SpinSql, json, problem, problem_response, variable,
};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let mut req = LeanRequest::new(req);
    match receive(&mut req).await {
        Ok(()) => Response::builder().status(StatusCode::ACCEPTED).build(),
        Err(SsfError::Refused(refusal)) => {
            // The description never contains the token or a claim's value.
            eprintln!(
                "keygate: ssf: SET refused ({}): {}",
                refusal.err.as_str(),
                refusal.description
            );
            json(StatusCode::BAD_REQUEST, &refusal)
        }
        Err(SsfError::Keygate(e)) => problem(&e),
        Err(e) => {
            if let SsfError::NotConfigured(detail) | SsfError::TransmitterUnavailable(detail) = &e {
                eprintln!("keygate: ssf: {detail}");
            }
            // The receiver's own `503`s: problems built here, not from an `Error`.
            problem_response(&e.to_problem().expect("not a refusal"))
        }
    }
}

async fn receive(req: &mut LeanRequest) -> Result<(), SsfError> {
    // Unset: the route does not exist, whatever the method.
    let config = SsfConfig::from_variables(
        variable("ssf_issuer").as_deref(),
        variable("ssf_audience").as_deref(),
        variable("oidc_issuer").as_deref(),
        variable("oidc_user_claim").as_deref(),
    )?;
    if *req.method() != Method::POST {
        return Err(Error::MethodNotAllowed { allow: "POST" }.into());
    }
    // At most 64 KiB is read (413 beyond).
    let body = req.take_body().await?;
    let now = timestamp::now();
    // Opened when the key-set cache is first read: a SET refused on its
    // shape never touches storage.
    let kv = SpinKeyValue::lazy_default();
    let set = ssf::check(
        req.header(CONTENT_TYPE),
        &body,
        &config,
        &kv,
        &SpinHttpGet,
        now,
    )
    .await?;
    if set.action == Action::Acknowledge {
        return Ok(());
    }
    let sql = SpinSql::open_default()?;
    ssf::apply(&KeyService::new(&kv, &sql), &set, now)?;
    Ok(())
}
