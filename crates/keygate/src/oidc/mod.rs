//! Who is acting, from the organisation's identity provider: a management
//! call's `Authorization: Bearer <JWT>` issued by `oidc_issuer` names the
//! acting user in its `oidc_user_claim`. [`jwks`] finds and caches the
//! issuer's keys, [`token`] checks a token against one.

pub mod jwks;
pub mod token;
pub mod verified;

use std::future::Future;

use crate::error::Error;
use crate::model::ActingUser;
use crate::store::KeyValue;

/// The Spin variables of the OIDC mode, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    /// Exactly as the tokens' `iss` must read.
    pub issuer: String,
    /// What the tokens' `aud` must contain: `oidc_audience`, or the console's
    /// client id when that is empty (the console sends its ID token).
    pub audience: String,
    pub client_id: String,
    pub user_claim: String,
}

/// The scopes the console asks for: the user's identifier and name.
pub const CONSOLE_SCOPES: &str = "openid profile email";

impl OidcConfig {
    /// `Ok(None)` when `oidc_issuer` is empty (the mode is off); an error
    /// (a `503` for every management call, and the health check says why)
    /// when the variables cannot work.
    pub fn from_variables(
        issuer: Option<&str>,
        audience: Option<&str>,
        client_id: Option<&str>,
        user_claim: Option<&str>,
    ) -> Result<Option<Self>, Error> {
        let value = |v: Option<&str>| v.map(str::trim).unwrap_or("").to_owned();
        let issuer = value(issuer);
        if issuer.is_empty() {
            return Ok(None);
        }
        let misconfigured = |detail: &str| Err(Error::IdentityProviderUnavailable(detail.into()));
        if !is_allowed_url(&issuer) {
            return misconfigured(
                "oidc_issuer must be an https:// URL (http:// only on 127.0.0.1 or localhost)",
            );
        }
        let client_id = value(client_id);
        let audience = match value(audience) {
            a if a.is_empty() => client_id.clone(),
            a => a,
        };
        if audience.is_empty() {
            return misconfigured("oidc_audience or oidc_client_id must be set with oidc_issuer");
        }
        let user_claim = match value(user_claim) {
            c if c.is_empty() => "email".to_owned(),
            c => c,
        };
        Ok(Some(Self {
            issuer,
            audience,
            client_id,
            user_claim,
        }))
    }

    /// Which token the console must send: its ID token when the audience is
    /// its own client id, else the access token issued for the audience.
    pub fn console_token(&self) -> &'static str {
        if self.audience == self.client_id {
            "id_token"
        } else {
            "access_token"
        }
    }
}

/// `https://…`, or `http://` on the loopback host names only (local tests).
pub fn is_allowed_url(url: &str) -> bool {
    let authority = |rest: &str| rest.split(['/', '?', '#']).next().unwrap_or("").to_owned();
    if let Some(rest) = url.strip_prefix("https://") {
        let host = authority(rest);
        return !host.is_empty() && !host.contains('@');
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let authority = authority(rest);
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority.as_str(),
        };
        return matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    }
    false
}

/// An HTTP `GET` the component's host allows (`allowed_outbound_hosts`).
/// Resolves to the body of a `200`; anything else is an error sentence for
/// logs and the `503` detail.
pub trait HttpGet {
    fn get(&self, url: &str) -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// Checks a JWT and returns the acting user it names. A token that passed
/// every check in the last ten minutes is recognised by its hash instead
/// ([`verified`]).
pub async fn authenticate(
    token: &str,
    config: &OidcConfig,
    kv: &dyn KeyValue,
    http: &impl HttpGet,
    now: i64,
) -> Result<ActingUser, Error> {
    let header = token::read_header(token)?;
    if let Some(user) = verified::recall(kv, config, token, now) {
        return Ok(ActingUser::signed_in(user.trim()));
    }
    let key = jwks::key_for(kv, http, config, header.kid.as_deref(), header.alg, now)
        .await?
        .ok_or_else(|| {
            Error::InvalidToken("the token's `kid` names no key of the issuer's JWKS".into())
        })?;
    let claims = token::verify(token, &header, &key, config, now)?;
    let user = claims
        .get(&config.user_claim)
        .and_then(|v| v.as_str())
        .expect("check_claims saw a string user claim");
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_f64())
        .expect("check_claims saw exp") as i64;
    verified::remember(kv, config, token, user, exp, now);
    Ok(ActingUser::signed_in(user.trim()))
}

#[cfg(test)]
mod tests;
