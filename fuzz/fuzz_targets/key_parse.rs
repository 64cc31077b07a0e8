//! `ApiKey::parse` on arbitrary input, and on well-formed keys with one change.
//!
//! - never panics; a key it accepts has the documented shape and checksum,
//!   formats back to exactly the input, and hints its last 4 characters;
//! - a rejection is `malformed_key` (401) for the first rule the input breaks;
//! - a well-formed key built from the input parses, and the same key with one
//!   character changed, two swapped or the end cut off does not.
#![no_main]

use keygate::{ApiKey, Error, MalformedKey};
use keygate_fuzz::{BASE62, check_problem, checksum, key_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);

    let key = key_from(data);
    let parsed = ApiKey::parse(&key).expect("a well-formed key parses");
    assert_eq!(parsed.expose_secret(), key);

    // One change chosen by the input's last bytes.
    let (&a, &b) = (data.last().unwrap_or(&0), data.first().unwrap_or(&1));
    let (i, j) = (3 + usize::from(a) % 38, 3 + usize::from(b) % 38);
    let mut changed = key.clone().into_bytes();
    let at = BASE62.iter().position(|&c| c == changed[i]).unwrap();
    changed[i] = BASE62[(at + 1 + usize::from(b) % 61) % 62];
    // One character changes the CRC (random part) or the checksum itself.
    assert_eq!(
        parse_bytes(&changed),
        Err(MalformedKey::Checksum),
        "substitution at {i}"
    );
    let mut swapped = key.clone().into_bytes();
    swapped.swap(i, j);
    // Within the 32 random characters CRC32 catches every swap (the error
    // is e(x)·x^k·(1 + x^8d), which the CRC polynomial never divides for
    // d < 32); within the checksum the string differs. A swap across the two
    // parts is only rejected with overwhelming probability: not asserted.
    if swapped[i] != swapped[j] && (i < 35) == (j < 35) {
        assert_eq!(
            parse_bytes(&swapped),
            Err(MalformedKey::Checksum),
            "swap {i} {j}"
        );
    }
    assert_eq!(
        parse_bytes(&key.as_bytes()[..i]),
        Err(expected_for(&key[..i]))
    );
});

fn parse_bytes(bytes: &[u8]) -> Result<ApiKey, MalformedKey> {
    ApiKey::parse(std::str::from_utf8(bytes).unwrap())
}

/// The documented order of the rules: prefix, length, alphabet, checksum.
fn expected_for(s: &str) -> MalformedKey {
    let b = s.as_bytes();
    if !b.starts_with(b"kg_") {
        MalformedKey::Prefix
    } else if b.len() != 41 {
        MalformedKey::Length
    } else if !b[3..].iter().all(u8::is_ascii_alphanumeric) {
        MalformedKey::Alphabet
    } else {
        MalformedKey::Checksum
    }
}

fn check(s: &str) {
    match ApiKey::parse(s) {
        Ok(key) => {
            assert_eq!(key.expose_secret(), s, "parse then format is the input");
            assert_eq!(s.len(), 41);
            assert!(s.starts_with("kg_"));
            assert!(s[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(checksum(&s.as_bytes()[3..35]), &s[35..], "checksum valid");
            assert_eq!(key.hint(), format!("kg_…{}", &s[37..]));
            assert!(!format!("{key:?}{key}").contains(&s[3..35]));
        }
        Err(reason) => {
            assert_eq!(reason, expected_for(s), "{s:?}");
            let error = Error::MalformedKey(reason);
            assert_eq!((error.status(), error.code()), (401, "malformed_key"));
            assert_eq!(error.to_problem().valid, Some(false));
            // The detail is one fixed sentence per rule: it never echoes the input.
            assert_eq!(error.to_problem().detail, reason.describe());
            check_problem(&error, None);
        }
    }
}
