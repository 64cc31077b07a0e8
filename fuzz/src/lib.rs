//! What the fuzz targets share: cutting one input into fields, the
//! documented shapes of keys, and the checks every rejection must pass.

use keygate::Error;

/// Splits `data` at `0xFF` bytes into exactly `N` fields (missing ones empty,
/// extra separators stay in the last field), so one flat input drives
/// several arguments and libFuzzer's mutations still reach each of them.
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    let mut rest = data;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = rest;
            break;
        }
        match rest.iter().position(|&b| b == 0xFF) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                rest = &[];
            }
        }
    }
    out
}

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 6-character checksum as the contract defines it (CRC32, base62,
/// zero-padded), computed here independently of keygate's own code.
pub fn checksum(random: &[u8]) -> String {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// A well-formed key whose 32 random characters are taken from `seed`.
pub fn key_from(seed: &[u8]) -> String {
    let random: Vec<u8> = (0..32)
        .map(|i| BASE62[usize::from(seed.get(i).copied().unwrap_or(0)) % 62])
        .collect();
    format!(
        "kg_{}{}",
        std::str::from_utf8(&random).unwrap(),
        checksum(&random)
    )
}

/// Every error renders as a problem with its documented status and code,
/// whose body is JSON and never repeats `secret` (when there is one).
pub fn check_problem(error: &Error, secret: Option<&str>) {
    let problem = error.to_problem();
    assert_eq!(problem.status, error.status());
    assert_eq!(problem.code, error.code());
    assert!((400..600).contains(&problem.status));
    let body = problem.to_json();
    let parsed: serde_json::Value = serde_json::from_str(&body).expect("problem body is JSON");
    assert_eq!(parsed["code"], error.code());
    if let Some(secret) = secret.filter(|s| s.len() >= 8) {
        assert!(!body.contains(secret), "problem body repeats the secret");
        assert!(
            !error.to_string().contains(secret),
            "log line repeats the secret"
        );
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query string from (name, value) pairs, values percent-encoded.
pub fn query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}
