//! Tokens already verified, remembered per user in the key-value store, so a
//! person's next calls with the same token skip the signature check.
//!
//! Why: the console sends one token for its whole lifetime (an hour, often),
//! and an RSA-2048 signature check with the pure-Rust `rsa` crate costs ~75 µs
//! natively and several hundred in Wasm — most of a management call. A hit
//! costs one key-value read and a SHA-256 of the token.
//!
//! What is kept: per user (the claim as the token states it, lower-cased),
//! the SHA-256 of at most [`PER_USER`] tokens with their expiry and when they
//! were verified — never a token. An entry is written only after a token
//! passed every check, so forged tokens cannot fill the store, and the store
//! holds at most one entry per person who signed in. A remembered token is
//! honoured for [`super::jwks::FRESH_SECONDS`] after its check (the time a
//! key the provider withdrew stays in the key-set cache anyway) and never
//! past its `exp` (with the usual leeway). Removal is checked per call
//! against storage, as for every caller.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::OidcConfig;
use super::jwks::FRESH_SECONDS;
use super::token::LEEWAY_SECONDS;
use crate::store::KeyValue;

/// Tokens remembered per user: a person with a few tabs or devices open.
pub const PER_USER: usize = 4;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Remembered {
    issuer: String,
    audience: String,
    user: String,
    tokens: Vec<TokenSeen>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TokenSeen {
    /// Hex SHA-256 of the whole token.
    sha256: String,
    exp: i64,
    verified_at: i64,
}

fn entry_key(user: &str) -> String {
    format!("oidc:verified:{}", user.to_ascii_lowercase())
}

fn digest(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user claim as the token's payload states it, read without checking
/// anything: only to find the entry; nothing is trusted until the hash of
/// the whole token matches one a full check accepted.
fn claimed_user(token: &str, claim: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get(claim)?.as_str().map(str::to_owned)
}

fn read(kv: &dyn KeyValue, key: &str) -> Option<Remembered> {
    let bytes = kv.get(key).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// The user of a token a full check accepted within the last ten minutes and
/// that has not expired; `None` means check it in full. A store that cannot
/// be read is a miss, not an error: the full check decides.
pub fn recall(kv: &dyn KeyValue, config: &OidcConfig, token: &str, now: i64) -> Option<String> {
    let user = claimed_user(token, &config.user_claim)?;
    let remembered = read(kv, &entry_key(&user))?;
    if remembered.issuer != config.issuer || remembered.audience != config.audience {
        return None;
    }
    let sha256 = digest(token);
    let seen = remembered
        .tokens
        .iter()
        .find(|t| bool::from(t.sha256.as_bytes().ct_eq(sha256.as_bytes())))?;
    let fresh = now - seen.verified_at < FRESH_SECONDS && now >= seen.verified_at - LEEWAY_SECONDS;
    (fresh && now < seen.exp.saturating_add(LEEWAY_SECONDS)).then_some(remembered.user)
}

/// Remembers a token that passed every check. Best effort: a failed write
/// only means the next call checks the token in full again.
pub fn remember(
    kv: &dyn KeyValue,
    config: &OidcConfig,
    token: &str,
    user: &str,
    exp: i64,
    now: i64,
) {
    let key = entry_key(user);
    let mut remembered = read(kv, &key)
        .filter(|r| r.issuer == config.issuer && r.audience == config.audience)
        .unwrap_or_default();
    let sha256 = digest(token);
    remembered.tokens.retain(|t| {
        t.sha256 != sha256 && now - t.verified_at < FRESH_SECONDS && now < t.exp + LEEWAY_SECONDS
    });
    remembered.tokens.push(TokenSeen {
        sha256,
        exp,
        verified_at: now,
    });
    let excess = remembered.tokens.len().saturating_sub(PER_USER);
    remembered.tokens.drain(..excess);
    remembered.issuer = config.issuer.clone();
    remembered.audience = config.audience.clone();
    remembered.user = user.to_owned();
    let bytes = serde_json::to_vec(&remembered).expect("serialisable");
    let _ = kv.set(&key, &bytes);
}
