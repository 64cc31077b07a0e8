//! `/scim/v2/...`: SCIM 2.0 provisioning for Entra ID, Okta, OneLogin and
//! JumpCloud. The token is checked before the body is read (at most 64 KiB);
//! everything else is `keygate::scim`. Off (`404` for every route) while
//! `scim_token` is unset.

use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, IF_MATCH, IF_NONE_MATCH};
use keygate::scim::{self, Request, Response as ScimResponse, ScimError, ScimToken};
use keygate::timestamp;
use keygate_spin::{SpinKeyValue, SpinSql, http_method, read_body, variable};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

/// Where the route is mounted (spin.toml).
const MOUNT: &str = "/scim/v2";

#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    to_spin(match scim_request(req).await {
        Ok(response) => response,
        Err(e) => ScimResponse::error(&e),
    })
}

async fn scim_request(req: IncomingRequest) -> Result<ScimResponse, ScimError> {
    let token = ScimToken::from_variable(variable("scim_token").as_deref())?;
    let headers = req.headers().entries();
    let header = |name: &str| {
        headers
            .iter()
            .rfind(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    // The token before anything else: an unauthenticated caller has nothing
    // read, parsed or stored.
    token.check(header(AUTHORIZATION.as_str()))?;
    // An extension method in any case, as the standard ones are written
    // (`patch` is PATCH): keygate::scim matches on the upper-case name.
    let method = http_method(req.method()).as_str().to_ascii_uppercase();
    let path_with_query = req.path_with_query().unwrap_or_default();
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((&path_with_query, ""));
    let path = path.strip_prefix(MOUNT).unwrap_or(path);
    let base = base_url(header("spin-full-url"), header(HOST.as_str()));
    let body = if scim::takes_body(&method) {
        read_body(req).await?
    } else {
        Vec::new()
    };
    let request = Request {
        method: &method,
        path,
        query,
        content_type: header(CONTENT_TYPE.as_str()),
        if_match: header(IF_MATCH.as_str()),
        if_none_match: header(IF_NONE_MATCH.as_str()),
        body: &body,
        base: &base,
    };
    let kv = SpinKeyValue::lazy_default();
    let sql = SpinSql::open_default()?;
    Ok(scim::handle(&kv, &sql, &request, timestamp::now()))
}

/// `scheme://authority/scim/v2`, from Spin's `spin-full-url` (else `Host`).
fn base_url(full_url: Option<&str>, host: Option<&str>) -> String {
    let origin = full_url
        .and_then(|u| {
            let (scheme, rest) = u.split_once("://")?;
            let authority = rest.split('/').next()?;
            Some(format!("{scheme}://{authority}"))
        })
        .or_else(|| host.map(|h| format!("http://{h}")))
        .unwrap_or_default();
    format!("{origin}{MOUNT}")
}

fn to_spin(response: ScimResponse) -> Response {
    let mut builder = Response::builder();
    builder.status(response.status);
    for (name, value) in &response.headers {
        builder.header(*name, value.as_str());
    }
    builder.header(CACHE_CONTROL.as_str(), "no-store");
    match response.body {
        Some(body) => builder.body(body).build(),
        None => builder.build(),
    }
}
