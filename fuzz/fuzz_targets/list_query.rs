//! `GET /api/keys` and `GET /api/audit` query strings.
//!
//! - never panics;
//! - a rejection is `invalid_query` (400) naming a parameter of the input
//!   (as written or decoded; a name that may be a secret is `(name not shown)`);
//! - an accepted query, written back out in full, parses to the same value.
#![no_main]

use keygate::model::{KeyStatus, SortField, SortOrder};
use keygate::timestamp::format_rfc3339;
use keygate::validate::{decode_query, parse_audit_query, parse_list_query, shown_name};
use keygate::{AuditQuery, Error, ListQuery};
use keygate_fuzz::{check_problem, query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    match parse_list_query(&raw) {
        Ok(q) => assert_eq!(parse_list_query(&list_query_string(&q)).unwrap(), q),
        Err(e) => check_rejection(&raw, &e),
    }
    match parse_audit_query(&raw) {
        Ok(q) => assert_eq!(parse_audit_query(&audit_query_string(&q)).unwrap(), q),
        Err(e) => check_rejection(&raw, &e),
    }
});

fn check_rejection(raw: &str, e: &Error) {
    let Error::InvalidQuery(field) = e else {
        panic!("{raw:?}: not invalid_query but {e:?}");
    };
    assert_eq!(e.status(), 400);
    let names: Vec<String> = raw
        .strip_prefix('?')
        .unwrap_or(raw)
        .split('&')
        .map(|seg| seg.split_once('=').map_or(seg, |(n, _)| n))
        .flat_map(|n| {
            // The leading `?` keeps one that belongs to the name.
            let decoded = decode_query(&format!("?{n}"))
                .ok()
                .and_then(|p| p.into_iter().next());
            [Some(shown_name(n)), decoded.map(|(n, _)| shown_name(&n))]
        })
        .flatten()
        .collect();
    assert!(
        names.contains(&field.field),
        "{raw:?}: names `{}`, not a parameter of the query",
        field.field
    );
    check_problem(e, None);
}

fn time(t: Option<i64>) -> Option<String> {
    t.map(format_rfc3339)
}

fn list_query_string(q: &ListQuery) -> String {
    let sort = match q.sort {
        SortField::Name => "name",
        SortField::CreatedBy => "created_by",
        SortField::Owner => "owner",
        SortField::CreatedAt => "created_at",
        SortField::LastUsedAt => "last_used_at",
    };
    let order = match q.order {
        SortOrder::Asc => "asc",
        SortOrder::Desc => "desc",
    };
    let status = q.status.map(|s| match s {
        KeyStatus::Active => "active",
        KeyStatus::Expired => "expired",
        KeyStatus::Revoked => "revoked",
    });
    let pairs: Vec<(&str, Option<String>)> = vec![
        ("sort", Some(sort.into())),
        ("order", Some(order.into())),
        ("name", q.name.clone()),
        ("created_by", q.created_by.clone()),
        ("owner", q.owner.clone()),
        ("created_from", time(q.created_from)),
        ("created_to", time(q.created_to)),
        ("status", status.map(Into::into)),
        ("unused_since", time(q.unused_since)),
        ("page", Some(q.page.to_string())),
        ("per_page", Some(q.per_page.to_string())),
    ];
    query(&present(pairs))
}

fn audit_query_string(q: &AuditQuery) -> String {
    let pairs: Vec<(&str, Option<String>)> = vec![
        ("user", q.user.clone()),
        ("key_id", q.key_id.clone()),
        ("action", q.action.map(|a| a.as_str().into())),
        ("from", time(q.from)),
        ("to", time(q.to)),
        ("page", Some(q.page.to_string())),
        ("per_page", Some(q.per_page.to_string())),
    ];
    query(&present(pairs))
}

fn present(pairs: Vec<(&str, Option<String>)>) -> Vec<(&str, String)> {
    pairs
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
}
