//! Management API authentication: who is acting, from the identity
//! provider's JWT (OIDC mode) or from a trusted portal's admin token plus
//! `X-Acting-User` (admin-token mode). Either mode, both, or neither
//! (`503 management_not_configured`) may be on.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::model::ActingUser;
use crate::oidc::{self, HttpGet, OidcConfig};
use crate::store::KeyValue;
use crate::validate::parse_acting_user;

/// Shorter configured tokens are treated as no token: a guessable admin
/// token must not unlock key creation. (The health check reports it.)
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Checks `Authorization: Bearer <token>` against the configured admin token.
///
/// Both sides are hashed before the constant-time comparison, so neither the
/// content nor the length of the token leaks through timing.
pub fn check_admin_token(
    authorization: Option<&str>,
    admin_token: Option<&str>,
) -> Result<(), Error> {
    let configured = admin_token.filter(|t| t.len() >= MIN_ADMIN_TOKEN_LEN);
    let presented = authorization.and_then(bearer_token);
    match (presented, configured) {
        (Some(presented), Some(configured)) => {
            let a = Sha256::digest(presented.as_bytes());
            let b = Sha256::digest(configured.as_bytes());
            if bool::from(a.ct_eq(&b)) {
                Ok(())
            } else {
                Err(Error::Unauthenticated)
            }
        }
        _ => Err(Error::Unauthenticated),
    }
}

/// The configured admin token, if it is long enough to count as one.
pub fn admin_token_mode(admin_token: Option<&str>) -> Option<&str> {
    admin_token.filter(|t| t.len() >= MIN_ADMIN_TOKEN_LEN)
}

/// What one management call presents.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub acting_user: Option<&'a str>,
}

/// The whole authentication of a management call. A bearer credential
/// shaped like a JWT goes to the OIDC mode when it is on (and is never
/// compared with the admin token); anything else to the admin-token mode.
/// With a JWT, `X-Acting-User` may only repeat the token's user. Whether
/// the user was removed is checked by each operation, against storage.
pub async fn sign_in(
    credentials: Credentials<'_>,
    admin_token: Option<&str>,
    oidc: Result<Option<OidcConfig>, Error>,
    kv: &dyn KeyValue,
    http: &impl HttpGet,
    now: i64,
) -> Result<ActingUser, Error> {
    let admin_token = admin_token_mode(admin_token);
    let oidc_on = !matches!(oidc, Ok(None));
    if admin_token.is_none() && !oidc_on {
        return Err(Error::ManagementNotConfigured);
    }
    let presented = credentials
        .authorization
        .and_then(bearer_token)
        .ok_or(Error::Unauthenticated)?;
    if oidc_on && oidc::token::looks_like_jwt(presented) {
        let config = oidc?.expect("the OIDC mode is on");
        let user = oidc::authenticate(presented, &config, kv, http, now).await?;
        return match credentials.acting_user {
            Some(named) if !user.is(named) => Err(Error::ActingUserMismatch),
            _ => Ok(user),
        };
    }
    if admin_token.is_none() {
        return Err(Error::InvalidToken(
            "the bearer token is not a JWT from the identity provider (the admin token is off)"
                .into(),
        ));
    }
    authenticate(
        credentials.authorization,
        admin_token,
        credentials.acting_user,
    )
}

/// The admin-token mode: token first (an unauthenticated caller learns
/// nothing about acting users), then the `X-Acting-User` header.
pub fn authenticate(
    authorization: Option<&str>,
    admin_token: Option<&str>,
    acting_user: Option<&str>,
) -> Result<ActingUser, Error> {
    check_admin_token(authorization, admin_token)?;
    parse_acting_user(acting_user)
}

/// The credentials of `Bearer <credentials>`; the scheme is case-insensitive
/// (RFC 9110). Empty credentials count as none.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-admin";

    #[test]
    fn the_right_bearer_token_and_a_valid_acting_user_authenticate() {
        let user = authenticate(
            Some(&format!("Bearer {TOKEN}")),
            Some(TOKEN),
            Some("floris"),
        )
        .unwrap();
        assert_eq!(user.as_str(), "floris");
        assert!(check_admin_token(Some(&format!("bearer  {TOKEN} ")), Some(TOKEN)).is_ok());
    }

    #[test]
    fn wrong_missing_or_unusable_tokens_are_unauthenticated() {
        let cases: [(Option<&str>, Option<&str>); 8] = [
            (None, Some(TOKEN)),
            (Some(""), Some(TOKEN)),
            (Some("Bearer"), Some(TOKEN)),
            (Some("Bearer "), Some(TOKEN)),
            (Some("Basic MDEyMzQ1Njc4OWFiY2RlZi1hZG1pbg=="), Some(TOKEN)),
            (Some("Bearer 0123456789abcdef-admiN"), Some(TOKEN)),
            (Some("Bearer short"), Some("short")),
            (Some("Bearer "), None),
        ];
        for (header, configured) in cases {
            assert!(
                matches!(
                    check_admin_token(header, configured),
                    Err(Error::Unauthenticated)
                ),
                "{header:?} vs {configured:?}"
            );
        }
    }

    #[test]
    fn the_token_is_checked_before_the_acting_user() {
        assert!(matches!(
            authenticate(None, Some(TOKEN), None),
            Err(Error::Unauthenticated)
        ));
        let header = format!("Bearer {TOKEN}");
        assert!(matches!(
            authenticate(Some(&header), Some(TOKEN), None),
            Err(Error::ActingUserRequired)
        ));
    }

    #[test]
    fn an_api_key_is_not_an_admin_token() {
        let key = crate::ApiKey::generate().unwrap();
        let header = format!("Bearer {}", key.expose_secret());
        assert!(check_admin_token(Some(&header), Some(TOKEN)).is_err());
    }
}
