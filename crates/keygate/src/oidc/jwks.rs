//! The issuer's signing keys, found through OpenID Connect Discovery and kept
//! in the key-value store, which every instance shares (Redis in a scaled-out
//! deployment), so the identity provider sees a few requests an hour, not one
//! per management call.
//!
//! - A copy is *fresh* for [`FRESH_SECONDS`] (the contract's 10 minutes);
//!   after that the next call fetches again.
//! - A `kid` the copy does not have (the provider rotated its keys) fetches
//!   again at once, but at most once per [`KID_REFETCH_SECONDS`]: a flood of
//!   tokens with made-up `kid`s costs the provider one request a minute.
//! - When the provider cannot be reached, a stale copy keeps serving for up
//!   to [`STALE_LIMIT_SECONDS`] (a provider outage must not lock everyone
//!   out), trying again at most once per [`KID_REFETCH_SECONDS`]; with no
//!   copy at all, management calls answer `503 identity_provider_unavailable`.

use jsonwebtoken::jwk::Jwk;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{HttpGet, OidcConfig};
use crate::error::Error;
use crate::store::KeyValue;

pub const FRESH_SECONDS: i64 = 600;
pub const KID_REFETCH_SECONDS: i64 = 60;
pub const STALE_LIMIT_SECONDS: i64 = 24 * 3600;

/// Discovery documents and key sets larger than this are refused.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// What the key-value store keeps per issuer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedJwks {
    pub issuer: String,
    pub jwks_uri: String,
    /// When the keys were fetched (Unix seconds).
    pub fetched_at: i64,
    /// The last fetch for an unknown `kid` or after a failure.
    #[serde(default)]
    pub refetched_at: i64,
    pub keys: Vec<Value>,
}

impl CachedJwks {
    fn parsed(&self) -> impl Iterator<Item = Jwk> + '_ {
        self.keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
    }

    /// The key a token names by `kid`; without a `kid`, the only key that
    /// suits the token's algorithm, if exactly one does.
    pub fn find(&self, kid: Option<&str>, alg: jsonwebtoken::Algorithm) -> Option<Jwk> {
        match kid {
            Some(kid) => self
                .parsed()
                .find(|k| k.common.key_id.as_deref() == Some(kid)),
            None => {
                let mut suitable = self.parsed().filter(|k| super::token::key_suits(k, alg));
                let first = suitable.next()?;
                suitable.next().is_none().then_some(first)
            }
        }
    }
}

pub fn cache_key(issuer: &str) -> String {
    format!("oidc:jwks:{issuer}")
}

/// The cached copy, if readable and for this issuer. A damaged entry is
/// treated as none (it is fetched again and overwritten).
pub fn read_cache(kv: &dyn KeyValue, config: &OidcConfig) -> Result<Option<CachedJwks>, Error> {
    let Some(bytes) = kv.get(&cache_key(&config.issuer))? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<CachedJwks>(&bytes)
        .ok()
        .filter(|c| c.issuer == config.issuer))
}

fn write_cache(kv: &dyn KeyValue, cached: &CachedJwks) -> Result<(), Error> {
    let bytes = serde_json::to_vec(cached).expect("a key set serialises");
    Ok(kv.set(&cache_key(&cached.issuer), &bytes)?)
}

/// The key for a token's `kid` and algorithm, fetching the key set as the
/// rules above allow. `Ok(None)`: the issuer has no such key.
pub async fn key_for(
    kv: &dyn KeyValue,
    http: &impl HttpGet,
    config: &OidcConfig,
    kid: Option<&str>,
    alg: jsonwebtoken::Algorithm,
    now: i64,
) -> Result<Option<Jwk>, Error> {
    let cached = read_cache(kv, config)?;
    // Only fetches for an unknown `kid` or after a failure count: the regular
    // fetch must not delay picking up a key the provider just rotated in.
    let may_refetch = |c: &CachedJwks| now - c.refetched_at >= KID_REFETCH_SECONDS;
    match cached {
        Some(c) if now - c.fetched_at < FRESH_SECONDS => {
            if let Some(key) = c.find(kid, alg) {
                return Ok(Some(key));
            }
            if !may_refetch(&c) {
                return Ok(None);
            }
            match fetch(http, config, now).await {
                Ok(mut fresh) => {
                    fresh.refetched_at = now;
                    write_cache(kv, &fresh)?;
                    Ok(fresh.find(kid, alg))
                }
                Err(_) => {
                    write_cache(
                        kv,
                        &CachedJwks {
                            refetched_at: now,
                            ..c
                        },
                    )?;
                    Ok(None)
                }
            }
        }
        stale => {
            let usable = stale.filter(|c| now - c.fetched_at < STALE_LIMIT_SECONDS);
            if let Some(c) = usable.as_ref().filter(|c| !may_refetch(c)) {
                return Ok(c.find(kid, alg));
            }
            match fetch(http, config, now).await {
                Ok(fresh) => {
                    write_cache(kv, &fresh)?;
                    Ok(fresh.find(kid, alg))
                }
                Err(e) => match usable {
                    Some(c) => {
                        let key = c.find(kid, alg);
                        write_cache(
                            kv,
                            &CachedJwks {
                                refetched_at: now,
                                ..c
                            },
                        )?;
                        Ok(key)
                    }
                    None => Err(Error::IdentityProviderUnavailable(e)),
                },
            }
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Value>,
}

/// Discovery, then the key set. The error is a sentence for the `503`'s
/// detail and the log: what could not be had, never a token.
pub async fn fetch(
    http: &impl HttpGet,
    config: &OidcConfig,
    now: i64,
) -> Result<CachedJwks, String> {
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let body = http.get(&discovery_url).await.map_err(|e| {
        format!("the identity provider's discovery document could not be fetched ({e})")
    })?;
    let discovery: Discovery = serde_json::from_slice(&body)
        .map_err(|_| "the identity provider's discovery document is not valid JSON with `issuer` and `jwks_uri`".to_owned())?;
    // OpenID Connect Discovery 1.0, 4.3: the document must name the issuer
    // it was fetched for, or its keys are someone else's.
    if discovery.issuer != config.issuer {
        return Err(format!(
            "the discovery document names the issuer {:?}, not oidc_issuer",
            discovery.issuer
        ));
    }
    if !super::is_allowed_url(&discovery.jwks_uri) {
        return Err("the discovery document's jwks_uri is not https".to_owned());
    }
    let body = http
        .get(&discovery.jwks_uri)
        .await
        .map_err(|e| format!("the identity provider's JWKS could not be fetched ({e})"))?;
    let set: KeySet = serde_json::from_slice(&body)
        .map_err(|_| "the identity provider's JWKS is not a JSON key set".to_owned())?;
    // Keys keygate cannot use (another `kty`, encryption keys) are dropped
    // here rather than failing the whole set.
    let keys = set
        .keys
        .into_iter()
        .filter(|k| serde_json::from_value::<Jwk>(k.clone()).is_ok())
        .collect();
    Ok(CachedJwks {
        issuer: config.issuer.clone(),
        jwks_uri: discovery.jwks_uri,
        fetched_at: now,
        refetched_at: 0,
        keys,
    })
}
