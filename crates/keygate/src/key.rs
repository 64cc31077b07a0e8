//! API keys and key ids: generation, offline parsing, hashing, hints.
//!
//! A key is `kg_` + 32 random base62 characters + 6 base62 characters of the
//! CRC32 of those 32. The checksum lets [`ApiKey::parse`] turn away mistyped or
//! invented keys before any storage is touched; the 32 random characters carry
//! 190 bits, so the checksum costs no security.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;

/// Digits first, so a zero-padded checksum pads with `0`.
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub const KEY_PREFIX: &str = "kg_";
pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;
/// Length in bytes (all characters are ASCII).
pub const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

pub const KEY_ID_PREFIX: &str = "key_";
/// 22 base62 characters: 131 bits, so ids can be neither guessed nor collide.
pub const KEY_ID_RANDOM_LEN: usize = 22;

/// Why a presented key was rejected without a storage lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MalformedKey {
    Prefix,
    Length,
    Alphabet,
    Checksum,
}

impl MalformedKey {
    /// A sentence for the problem `detail`; never contains the key.
    pub fn describe(self) -> &'static str {
        match self {
            MalformedKey::Prefix => "the key does not start with kg_",
            MalformedKey::Length => "the key does not have the length of a keygate key",
            MalformedKey::Alphabet => "the key contains characters a keygate key never has",
            MalformedKey::Checksum => "the key's checksum does not match (mistyped or truncated?)",
        }
    }
}

/// An API key secret. `Debug` and `Display` show only the hint, so the secret
/// cannot leak through logging or `{:?}` in an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let random = random_base62(RANDOM_LEN)?;
        let checksum = checksum(random.as_bytes());
        Ok(Self(format!(
            "{KEY_PREFIX}{random}{}",
            std::str::from_utf8(&checksum).expect("base62 is ASCII")
        )))
    }

    /// Checks the format and checksum only; says nothing about whether the key exists.
    pub fn parse(presented: &str) -> Result<Self, MalformedKey> {
        let bytes = presented.as_bytes();
        let prefix = KEY_PREFIX.as_bytes();
        if !bytes.starts_with(prefix) {
            return Err(MalformedKey::Prefix);
        }
        if bytes.len() != KEY_LEN {
            return Err(MalformedKey::Length);
        }
        let body = &bytes[prefix.len()..];
        if !body.iter().all(|b| b.is_ascii_alphanumeric()) {
            return Err(MalformedKey::Alphabet);
        }
        let (random, given) = body.split_at(RANDOM_LEN);
        if !bool::from(checksum(random).ct_eq(given)) {
            return Err(MalformedKey::Checksum);
        }
        Ok(Self(presented.to_owned()))
    }

    /// The secret itself: only for the one create response that shows it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// What is stored instead of the key.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// `kg_…` + the last 4 characters, as lists show it.
    pub fn hint(&self) -> String {
        format!("{KEY_PREFIX}…{}", &self.0[KEY_LEN - 4..])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKey").field(&self.hint()).finish()
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint())
    }
}

/// SHA-256 of a whole key. Not a secret (a key cannot be recovered from it),
/// so it may be logged and used as a storage key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Lower-case hex, through the digest's own `LowerHex` (one pass over a
    /// buffer, not a formatting call per byte).
    pub fn to_hex(&self) -> String {
        format!("{:x}", self.digest())
    }

    /// The key-value store key of the verify index entry.
    pub fn kv_key(&self) -> String {
        format!("key:{:x}", self.digest())
    }

    fn digest(&self) -> sha2::digest::Output<Sha256> {
        self.0.into()
    }
}

/// A new key id: `key_` + 22 random base62 characters.
pub fn new_key_id() -> Result<String, Error> {
    Ok(format!(
        "{KEY_ID_PREFIX}{}",
        random_base62(KEY_ID_RANDOM_LEN)?
    ))
}

/// Service account ids: `sa_` + 22 base62 characters, like key ids.
pub const SERVICE_ACCOUNT_ID_PREFIX: &str = "sa_";

pub fn new_service_account_id() -> Result<String, Error> {
    Ok(format!(
        "{SERVICE_ACCOUNT_ID_PREFIX}{}",
        random_base62(KEY_ID_RANDOM_LEN)?
    ))
}

/// Whether `id` has the shape of a service account id.
pub fn is_service_account_id(id: &str) -> bool {
    id.strip_prefix(SERVICE_ACCOUNT_ID_PREFIX)
        .is_some_and(|rest| {
            rest.len() == KEY_ID_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Whether `id` has the shape of a key id, so lookups of junk need no storage.
pub fn is_key_id(id: &str) -> bool {
    id.strip_prefix(KEY_ID_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_ID_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Uniform base62 by rejection sampling: bytes ≥ 248 (= 4 × 62) are dropped,
/// so `b % 62` favours no character.
fn random_base62(len: usize) -> Result<String, Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|_| Error::RandomnessUnavailable)?;
        for &b in buf.iter().filter(|&&b| b < 248).take(len - out.len()) {
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    Ok(out)
}

/// CRC32 of `random` in 6 base62 digits, most significant first, zero-padded
/// (62^6 > 2^32, so every CRC fits).
fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32fast::hash(random));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_key() -> ApiKey {
        ApiKey::generate().unwrap()
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_parse_back() {
        for _ in 0..200 {
            let key = valid_key();
            let s = key.expose_secret();
            assert_eq!(s.len(), 41);
            assert!(s.starts_with("kg_"));
            assert!(s[3..].bytes().all(|b| BASE62.contains(&b)));
            assert_eq!(ApiKey::parse(s).unwrap(), key);
        }
    }

    #[test]
    fn generated_keys_differ() {
        let keys: std::collections::HashSet<String> = (0..1000)
            .map(|_| valid_key().expose_secret().to_owned())
            .collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn random_characters_cover_the_whole_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            seen.extend(valid_key().expose_secret()[3..35].bytes());
        }
        assert_eq!(seen.len(), 62, "every base62 character occurs");
    }

    #[test]
    fn checksum_is_zero_padded_base62_of_crc32() {
        // The CRC-32 check value: CRC32("123456789") = 0xCBF43926.
        assert_eq!(&checksum(b"123456789"), &base62_digits(0xCBF4_3926));
        assert_eq!(&base62_digits(0xCBF4_3926), b"3jZRME");
        // Small values keep their leading zeros.
        assert_eq!(&base62_digits(61), b"00000z");
        let random = "0".repeat(32);
        let sum = base62_digits(u64::from(crc32fast::hash(random.as_bytes())));
        let key = format!("kg_{random}{}", std::str::from_utf8(&sum).unwrap());
        assert!(ApiKey::parse(&key).is_ok());
    }

    fn base62_digits(mut value: u64) -> [u8; 6] {
        let mut out = [b'0'; 6];
        for slot in out.iter_mut().rev() {
            *slot = BASE62[(value % 62) as usize];
            value /= 62;
        }
        out
    }

    #[test]
    fn each_malformed_class_is_reported() {
        let key = valid_key();
        let s = key.expose_secret();
        let cases: Vec<(String, MalformedKey)> = vec![
            (String::new(), MalformedKey::Prefix),
            ("kg".into(), MalformedKey::Prefix),
            (s.replacen("kg_", "KG_", 1), MalformedKey::Prefix),
            (s.replacen("kg_", "sk_", 1), MalformedKey::Prefix),
            (format!(" {s}"), MalformedKey::Prefix),
            ("kg_".into(), MalformedKey::Length),
            (s[..40].to_owned(), MalformedKey::Length),
            (format!("{s}A"), MalformedKey::Length),
            (format!("{s}\n"), MalformedKey::Length),
            (
                format!("kg_{}-{}", &s[3..20], &s[21..]),
                MalformedKey::Alphabet,
            ),
            (
                format!("kg_{}é{}", &s[3..20], &s[22..]),
                MalformedKey::Alphabet,
            ),
            (
                format!("kg_{}_{}", &s[3..35], &s[36..]),
                MalformedKey::Alphabet,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ApiKey::parse(&input), Err(want), "{input:?}");
        }
        let mut chars: Vec<char> = s.chars().collect();
        chars.swap(3, 4);
        if chars[3] != chars[4] {
            let swapped: String = chars.into_iter().collect();
            assert_eq!(ApiKey::parse(&swapped), Err(MalformedKey::Checksum));
        }
    }

    #[test]
    fn checksum_catches_every_single_character_change() {
        for _ in 0..3 {
            let key = valid_key();
            let original = key.expose_secret().as_bytes().to_vec();
            for pos in 3..KEY_LEN {
                for &c in BASE62 {
                    if c == original[pos] {
                        continue;
                    }
                    let mut changed = original.clone();
                    changed[pos] = c;
                    let changed = String::from_utf8(changed).unwrap();
                    assert_eq!(
                        ApiKey::parse(&changed),
                        Err(MalformedKey::Checksum),
                        "position {pos} changed to {}",
                        c as char
                    );
                }
            }
            for pos in 0..3 {
                for &c in BASE62.iter().chain(b"_-") {
                    if c == original[pos] {
                        continue;
                    }
                    let mut changed = original.clone();
                    changed[pos] = c;
                    let changed = String::from_utf8(changed).unwrap();
                    assert_eq!(ApiKey::parse(&changed), Err(MalformedKey::Prefix));
                }
            }
        }
    }

    #[test]
    fn hint_is_prefix_ellipsis_and_last_four() {
        let sum = checksum(&[b'0'; 32]);
        let key = ApiKey::parse(&format!(
            "kg_{}{}",
            "0".repeat(32),
            std::str::from_utf8(&sum).unwrap()
        ))
        .unwrap();
        let s = key.expose_secret();
        assert_eq!(key.hint(), format!("kg_…{}", &s[37..]));
        assert_eq!(key.hint().chars().count(), 8);
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let key = valid_key();
        let secret = key.expose_secret();
        for shown in [
            format!("{key:?}"),
            format!("{key}"),
            format!("{:?}", Some(&key)),
        ] {
            assert!(!shown.contains(&secret[3..35]), "{shown}");
            assert!(shown.contains(&key.hint()));
        }
    }

    #[test]
    fn hash_is_sha256_of_the_whole_key_in_hex() {
        let key = valid_key();
        let want: String = Sha256::digest(key.expose_secret().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(key.hash().to_hex(), want);
        assert_eq!(key.hash().kv_key(), format!("key:{want}"));
        assert_ne!(valid_key().hash(), key.hash());
    }

    #[test]
    fn key_ids_are_recognisable_and_distinct() {
        let a = new_key_id().unwrap();
        let b = new_key_id().unwrap();
        assert_ne!(a, b);
        assert!(is_key_id(&a) && a.len() == 26);
        for junk in [
            "",
            "key_",
            "key_abc",
            "kex_0123456789012345678901",
            "key_012345678901234567890!",
        ] {
            assert!(!is_key_id(junk), "{junk}");
        }
    }
}
