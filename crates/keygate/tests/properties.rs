//! Property tests (proptest) of the key format and of query parsing, through
//! the crate's public API. The fuzz targets in `fuzz/` check the same rules
//! on unstructured input; these generate structured input, so they reach
//! every rule quickly and run with `cargo test` in a few seconds.

use keygate::model::{AuditAction, KeyStatus, SortField, SortOrder};
use keygate::timestamp::{Bound, format_rfc3339, parse_bound};
use keygate::validate::{decode_query, parse_audit_query, parse_list_query, shown_name};
use keygate::{ApiKey, AuditQuery, Error, ListQuery, MalformedKey};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::sample::{Index, select};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CASES: u32 = 512;

/// The contract's checksum, written here independently of keygate's code.
fn checksum(random: &[u8]) -> String {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// Well-formed keys: 32 random base62 characters and their checksum.
fn well_formed_key() -> impl Strategy<Value = String> {
    proptest::collection::vec(select(BASE62.as_slice()), 32).prop_map(|random| {
        format!(
            "kg_{}{}",
            String::from_utf8(random.clone()).unwrap(),
            checksum(&random)
        )
    })
}

/// The documented order of the rules: prefix, length, alphabet, checksum.
fn expected_rejection(s: &str) -> MalformedKey {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn generated_keys_always_parse(_round in 0u8..4) {
        let key = ApiKey::generate().unwrap();
        let s = key.expose_secret();
        prop_assert_eq!(ApiKey::parse(s).unwrap(), key.clone());
        prop_assert_eq!(&checksum(&s.as_bytes()[3..35]), &s[35..]);
    }

    #[test]
    fn well_formed_keys_parse_and_format_back(key in well_formed_key()) {
        let parsed = ApiKey::parse(&key).unwrap();
        prop_assert_eq!(parsed.expose_secret(), key.as_str());
        prop_assert_eq!(parsed.hint(), format!("kg_…{}", &key[37..]));
    }

    #[test]
    fn any_single_substitution_is_rejected(
        key in well_formed_key(),
        at in 0usize..41,
        by in any::<char>(),
    ) {
        let mut chars: Vec<char> = key.chars().collect();
        prop_assume!(chars[at] != by);
        chars[at] = by;
        let changed: String = chars.into_iter().collect();
        prop_assert_eq!(ApiKey::parse(&changed), Err(expected_rejection(&changed)));
    }

    #[test]
    fn any_adjacent_transposition_is_rejected(key in well_formed_key(), at in 0usize..40) {
        let mut bytes = key.clone().into_bytes();
        prop_assume!(bytes[at] != bytes[at + 1]);
        bytes.swap(at, at + 1);
        let swapped = String::from_utf8(bytes).unwrap();
        let want = if at < 3 { MalformedKey::Prefix } else { MalformedKey::Checksum };
        prop_assert_eq!(ApiKey::parse(&swapped), Err(want));
    }

    #[test]
    fn any_truncation_or_extension_is_rejected(
        key in well_formed_key(),
        keep in 0usize..41,
        extra in "[A-Za-z0-9_ ]{1,8}",
    ) {
        let cut = &key[..keep];
        prop_assert_eq!(ApiKey::parse(cut), Err(expected_rejection(cut)));
        let longer = format!("{key}{extra}");
        prop_assert_eq!(ApiKey::parse(&longer), Err(MalformedKey::Length));
    }

    #[test]
    fn arbitrary_strings_never_panic_the_parser(s in any::<String>()) {
        match ApiKey::parse(&s) {
            Ok(key) => {
                prop_assert_eq!(key.expose_secret(), s.as_str());
                prop_assert_eq!(&checksum(&s.as_bytes()[3..35]), &s[35..]);
            }
            Err(reason) => prop_assert_eq!(reason, expected_rejection(&s)),
        }
    }

    #[test]
    fn key_like_strings_never_panic_the_parser(s in "kg_[A-Za-z0-9_é-]{30,40}") {
        match ApiKey::parse(&s) {
            Ok(_) => prop_assert_eq!(&checksum(&s.as_bytes()[3..35]), &s[35..]),
            Err(reason) => prop_assert_eq!(reason, expected_rejection(&s)),
        }
    }
}

// ---- query parsing ----

const LIST_PARAMS: [&str; 10] = [
    "sort",
    "order",
    "name",
    "created_by",
    "created_from",
    "created_to",
    "status",
    "unused_since",
    "page",
    "per_page",
];
const AUDIT_PARAMS: [&str; 7] = ["user", "key_id", "action", "from", "to", "page", "per_page"];

/// Query strings made of parameter-ish pieces: known and unknown names,
/// `&`, `=`, `+`, `%` escapes (good and broken), dates and numbers.
fn query_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        select(LIST_PARAMS.as_slice()).prop_map(str::to_owned),
        select(AUDIT_PARAMS.as_slice()).prop_map(str::to_owned),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("+".to_owned()),
        Just("?".to_owned()),
        "%[0-9A-Fa-fxz]{0,2}",
        "[a-z_.]{1,12}",
        "-?[0-9]{1,12}",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9](T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](Z|[+-][0-2][0-9]:[0-5][0-9]))?",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// A rejection is `invalid_query` naming a parameter of the query, as
/// written or decoded (a name that may be a secret is `(name not shown)`).
fn assert_names_a_parameter(raw: &str, e: &Error) -> Result<(), TestCaseError> {
    let Error::InvalidQuery(field) = e else {
        return Err(TestCaseError::fail(format!("{raw:?}: {e:?}")));
    };
    prop_assert_eq!(e.status(), 400);
    let names: Vec<String> = raw
        .strip_prefix('?')
        .unwrap_or(raw)
        .split('&')
        .map(|seg| seg.split_once('=').map_or(seg, |(n, _)| n))
        .flat_map(|n| {
            let decoded = decode_query(&format!("?{n}"))
                .ok()
                .and_then(|p| p.into_iter().next());
            [Some(shown_name(n)), decoded.map(|(n, _)| shown_name(&n))]
        })
        .flatten()
        .collect();
    prop_assert!(
        names.contains(&field.field),
        "{:?} names {:?}",
        raw,
        field.field
    );
    Ok(())
}

/// Everything but RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Filter text: 1–200 characters, none of them control characters.
fn text() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{1,200}"
}

/// A time as a filter may give it: a date or an RFC 3339 timestamp with an
/// offset; with the value keygate must read from it for `bound`.
fn time(bound: Bound) -> impl Strategy<Value = (String, i64)> {
    // 1970 to 2100.
    (0i64..4_102_444_800, prop::bool::ANY, -14i64 * 60..=14 * 60).prop_map(
        move |(t, as_date, offset_min)| {
            if as_date {
                let date = format_rfc3339(t)[..10].to_owned();
                let start = parse_bound(&date, Bound::Start).unwrap();
                let want = if bound == Bound::Start {
                    start
                } else {
                    start + 86_399
                };
                (date, want)
            } else {
                // The same instant written in another offset.
                let local = format_rfc3339(t + offset_min * 60);
                let sign = if offset_min < 0 { '-' } else { '+' };
                let off = offset_min.abs();
                let text = format!("{}{sign}{:02}:{:02}", &local[..19], off / 60, off % 60);
                (text, t)
            }
        },
    )
}

/// Parameters in any order: shuffles by sorting on generated ranks.
fn shuffled(mut pairs: Vec<(String, String, usize)>) -> String {
    pairs.sort_by_key(|p| p.2);
    pairs
        .iter()
        .map(|(n, v, _)| format!("{n}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_queries_parse_or_name_a_parameter(raw in query_like()) {
        if let Err(e) = parse_list_query(&raw) {
            assert_names_a_parameter(&raw, &e)?;
        }
        if let Err(e) = parse_audit_query(&raw) {
            assert_names_a_parameter(&raw, &e)?;
        }
    }

    #[test]
    fn arbitrary_strings_as_queries_never_panic(raw in any::<String>()) {
        if let Err(e) = parse_list_query(&raw) {
            assert_names_a_parameter(&raw, &e)?;
        }
        if let Err(e) = parse_audit_query(&raw) {
            assert_names_a_parameter(&raw, &e)?;
        }
    }

    #[test]
    fn valid_list_queries_round_trip(
        sort in prop::option::of(select(vec![
            ("name", SortField::Name), ("created_by", SortField::CreatedBy),
            ("created_at", SortField::CreatedAt), ("last_used_at", SortField::LastUsedAt),
        ])),
        order in prop::option::of(select(vec![("asc", SortOrder::Asc), ("desc", SortOrder::Desc)])),
        name in prop::option::of(text()),
        created_by in prop::option::of(text()),
        from in prop::option::of(time(Bound::Start)),
        to in prop::option::of(time(Bound::End)),
        status in prop::option::of(select(vec![
            ("active", KeyStatus::Active), ("expired", KeyStatus::Expired), ("revoked", KeyStatus::Revoked),
        ])),
        unused_since in prop::option::of(time(Bound::Start)),
        page in prop::option::of(1u32..=1_000_000),
        per_page in prop::option::of(1u32..=100),
        ranks in proptest::collection::vec(any::<Index>(), 10),
    ) {
        // Bounds in the right order, else `created_to` is (rightly) refused.
        prop_assume!(match (&from, &to) { (Some(f), Some(t)) => f.1 <= t.1, _ => true });
        let mut pairs = Vec::new();
        let mut add = |n: &str, v: Option<String>| {
            if let Some(v) = v {
                let rank = ranks[pairs.len()].index(1000);
                pairs.push((n.to_owned(), v, rank));
            }
        };
        add("sort", sort.map(|s| s.0.to_owned()));
        add("order", order.map(|s| s.0.to_owned()));
        add("name", name.clone());
        add("created_by", created_by.clone());
        add("created_from", from.as_ref().map(|t| t.0.clone()));
        add("created_to", to.as_ref().map(|t| t.0.clone()));
        add("status", status.map(|s| s.0.to_owned()));
        add("unused_since", unused_since.as_ref().map(|t| t.0.clone()));
        add("page", page.map(|p| p.to_string()));
        add("per_page", per_page.map(|p| p.to_string()));
        let raw = shuffled(pairs);
        let defaults = ListQuery::default();
        let want = ListQuery {
            sort: sort.map_or(defaults.sort, |s| s.1),
            order: order.map_or(defaults.order, |s| s.1),
            name,
            created_by,
            owner: None,
            created_from: from.map(|t| t.1),
            created_to: to.map(|t| t.1),
            status: status.map(|s| s.1),
            unused_since: unused_since.map(|t| t.1),
            page: page.unwrap_or(defaults.page),
            per_page: per_page.unwrap_or(defaults.per_page),
        };
        prop_assert_eq!(parse_list_query(&raw).unwrap(), want.clone());
        prop_assert_eq!(parse_list_query(&format!("?{raw}")).unwrap(), want);
    }

    #[test]
    fn valid_audit_queries_round_trip(
        user in prop::option::of(text()),
        key_id in prop::option::of(text()),
        action in prop::option::of(select(AuditAction::ALL.to_vec())),
        from in prop::option::of(time(Bound::Start)),
        to in prop::option::of(time(Bound::End)),
        page in prop::option::of(1u32..=1_000_000),
        per_page in prop::option::of(1u32..=100),
        ranks in proptest::collection::vec(any::<Index>(), 7),
    ) {
        prop_assume!(match (&from, &to) { (Some(f), Some(t)) => f.1 <= t.1, _ => true });
        let mut pairs = Vec::new();
        let mut add = |n: &str, v: Option<String>| {
            if let Some(v) = v {
                let rank = ranks[pairs.len()].index(1000);
                pairs.push((n.to_owned(), v, rank));
            }
        };
        add("user", user.clone());
        add("key_id", key_id.clone());
        add("action", action.map(|a| a.as_str().to_owned()));
        add("from", from.as_ref().map(|t| t.0.clone()));
        add("to", to.as_ref().map(|t| t.0.clone()));
        add("page", page.map(|p| p.to_string()));
        add("per_page", per_page.map(|p| p.to_string()));
        let raw = shuffled(pairs);
        let defaults = AuditQuery::default();
        let want = AuditQuery {
            user,
            key_id,
            action,
            from: from.map(|t| t.1),
            to: to.map(|t| t.1),
            page: page.unwrap_or(defaults.page),
            per_page: per_page.unwrap_or(defaults.per_page),
        };
        prop_assert_eq!(parse_audit_query(&raw).unwrap(), want);
    }

    #[test]
    fn out_of_range_numbers_name_their_parameter(
        param in select(vec!["page", "per_page"]),
        value in prop_oneof![
            Just("0".to_owned()), "-[0-9]{1,6}", "[0-9]{8,20}", "[0-9]{1,3}\\.[0-9]", "[a-z]{1,5}",
        ],
    ) {
        prop_assume!(!(param == "per_page" && value.parse::<u32>().is_ok_and(|n| (1..=100).contains(&n))));
        prop_assume!(!(param == "page" && value.parse::<u32>().is_ok_and(|n| (1..=1_000_000).contains(&n))));
        let raw = format!("{param}={value}");
        for result in [parse_list_query(&raw).map(|_| ()), parse_audit_query(&raw).map(|_| ())] {
            match result {
                Err(Error::InvalidQuery(e)) => prop_assert_eq!(e.field, param),
                other => prop_assert!(false, "{raw}: {other:?}"),
            }
        }
    }
}
