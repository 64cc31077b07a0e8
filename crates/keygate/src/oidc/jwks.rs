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
//!
//! The same rules serve the Shared Signals receiver ([`crate::ssf`]): a
//! [`KeySource`] says which issuer, which discovery document and which cache
//! entry; the functions taking an [`OidcConfig`] are the OIDC sign-in's.

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

/// How an issuer's discovery document is found from its identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryPath {
    /// OpenID Connect Discovery 1.0, 4: `<issuer>/.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// OpenID Shared Signals Framework 1.0, "Transmitter Configuration
    /// Request" (as RFC 8414): `/.well-known/ssf-configuration` inserted
    /// between the issuer's host and its path, if it has one
    /// (`https://tr.example.com/issuer1` →
    /// `https://tr.example.com/.well-known/ssf-configuration/issuer1`).
    SsfConfiguration,
}

impl DiscoveryPath {
    /// The discovery document's URL for `issuer` (any terminating `/` of
    /// the issuer removed first).
    pub fn url(self, issuer: &str) -> String {
        let issuer = issuer.trim_end_matches('/');
        match self {
            DiscoveryPath::OpenIdConfiguration => {
                format!("{issuer}/.well-known/openid-configuration")
            }
            DiscoveryPath::SsfConfiguration => {
                let after_scheme = issuer.find("://").map_or(0, |i| i + 3);
                let (origin, path) = match issuer[after_scheme..].find('/') {
                    Some(i) => issuer.split_at(after_scheme + i),
                    None => (issuer, ""),
                };
                format!("{origin}/.well-known/ssf-configuration{path}")
            }
        }
    }
}

/// Whose keys: the issuer, how its discovery document is found, the
/// key-value entry its copy is cached under, and the words its errors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySource<'a> {
    pub issuer: &'a str,
    pub discovery: DiscoveryPath,
    /// The cache entry is `<cache_prefix><issuer>`.
    pub cache_prefix: &'static str,
    /// Who serves the keys, for error sentences: "identity provider".
    pub party: &'static str,
    /// What the discovery document is called there: "discovery document".
    pub document: &'static str,
    /// The variable that names the issuer: "oidc_issuer".
    pub issuer_variable: &'static str,
}

impl<'a> KeySource<'a> {
    /// The OIDC sign-in's identity provider.
    pub fn oidc(issuer: &'a str) -> Self {
        Self {
            issuer,
            discovery: DiscoveryPath::OpenIdConfiguration,
            cache_prefix: "oidc:jwks:",
            party: "identity provider",
            document: "discovery document",
            issuer_variable: "oidc_issuer",
        }
    }

    pub fn cache_key(&self) -> String {
        format!("{}{}", self.cache_prefix, self.issuer)
    }
}

impl OidcConfig {
    /// Where this configuration's keys come from.
    pub fn key_source(&self) -> KeySource<'_> {
        KeySource::oidc(&self.issuer)
    }
}

/// The OIDC key set's cache entry.
pub fn cache_key(issuer: &str) -> String {
    KeySource::oidc(issuer).cache_key()
}

/// The cached copy, if readable and for this issuer. A damaged entry is
/// treated as none (it is fetched again and overwritten).
pub fn read_cache(kv: &dyn KeyValue, config: &OidcConfig) -> Result<Option<CachedJwks>, Error> {
    read_cache_from(kv, &config.key_source())
}

/// [`read_cache`] for any [`KeySource`].
pub fn read_cache_from(
    kv: &dyn KeyValue,
    source: &KeySource<'_>,
) -> Result<Option<CachedJwks>, Error> {
    let Some(bytes) = kv.get(&source.cache_key())? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<CachedJwks>(&bytes)
        .ok()
        .filter(|c| c.issuer == source.issuer))
}

fn write_cache(
    kv: &dyn KeyValue,
    source: &KeySource<'_>,
    cached: &CachedJwks,
) -> Result<(), Error> {
    let bytes = serde_json::to_vec(cached).expect("a key set serialises");
    Ok(kv.set(&source.cache_key(), &bytes)?)
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
    key_from(kv, http, &config.key_source(), kid, alg, now).await
}

/// [`key_for`] for any [`KeySource`]. With nothing usable cached and the
/// keys out of reach: [`Error::IdentityProviderUnavailable`], whose detail
/// names the source's party.
pub async fn key_from(
    kv: &dyn KeyValue,
    http: &impl HttpGet,
    source: &KeySource<'_>,
    kid: Option<&str>,
    alg: jsonwebtoken::Algorithm,
    now: i64,
) -> Result<Option<Jwk>, Error> {
    let cached = read_cache_from(kv, source)?;
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
            match fetch_from(http, source, now).await {
                Ok(mut fresh) => {
                    fresh.refetched_at = now;
                    write_cache(kv, source, &fresh)?;
                    Ok(fresh.find(kid, alg))
                }
                Err(_) => {
                    write_cache(
                        kv,
                        source,
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
            match fetch_from(http, source, now).await {
                Ok(fresh) => {
                    write_cache(kv, source, &fresh)?;
                    Ok(fresh.find(kid, alg))
                }
                Err(e) => match usable {
                    Some(c) => {
                        let key = c.find(kid, alg);
                        write_cache(
                            kv,
                            source,
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
    fetch_from(http, &config.key_source(), now).await
}

/// [`fetch`] for any [`KeySource`].
pub async fn fetch_from(
    http: &impl HttpGet,
    source: &KeySource<'_>,
    now: i64,
) -> Result<CachedJwks, String> {
    let KeySource {
        issuer,
        party,
        document,
        issuer_variable,
        ..
    } = *source;
    let discovery_url = source.discovery.url(issuer);
    let body = http
        .get(&discovery_url)
        .await
        .map_err(|e| format!("the {party}'s {document} could not be fetched ({e})"))?;
    let discovery: Discovery = serde_json::from_slice(&body).map_err(|_| {
        format!("the {party}'s {document} is not valid JSON with `issuer` and `jwks_uri`")
    })?;
    // OpenID Connect Discovery 1.0, 4.3 (and SSF 1.0 likewise): the
    // document must name the issuer it was fetched for, or its keys are
    // someone else's.
    if discovery.issuer != issuer {
        return Err(format!(
            "the {document} names the issuer {:?}, not {issuer_variable}",
            discovery.issuer
        ));
    }
    if !super::is_allowed_url(&discovery.jwks_uri) {
        return Err(format!("the {document}'s jwks_uri is not https"));
    }
    let body = http
        .get(&discovery.jwks_uri)
        .await
        .map_err(|e| format!("the {party}'s JWKS could not be fetched ({e})"))?;
    let set: KeySet = serde_json::from_slice(&body)
        .map_err(|_| format!("the {party}'s JWKS is not a JSON key set"))?;
    // Keys keygate cannot use (another `kty`, encryption keys) are dropped
    // here rather than failing the whole set.
    let keys = set
        .keys
        .into_iter()
        .filter(|k| serde_json::from_value::<Jwk>(k.clone()).is_ok())
        .collect();
    Ok(CachedJwks {
        issuer: issuer.to_owned(),
        jwks_uri: discovery.jwks_uri,
        fetched_at: now,
        refetched_at: 0,
        keys,
    })
}
