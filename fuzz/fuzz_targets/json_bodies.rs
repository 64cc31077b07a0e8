//! Every JSON request body: create key, the key lifecycle's (PATCH, roll,
//! transfer), create service account, verify (with its gateway headers) and
//! the user-removed webhook, plus the size/media-type gate in front of them.
//! The one body goes to every parser.
//!
//! - never panics;
//! - create: accepted values obey the contract's rules (trimmed name of
//!   1–100 characters without control characters, description ≤ 500,
//!   `expires_at` in the future, `owner` a trimmed user id or a service
//!   account id); a rejection is `invalid_request` (400) or
//!   `validation_failed` (422) naming only the body's fields;
//! - PATCH: each field present obeys create's rules (`null` removes the
//!   description or the expiry, never the name); rejections as create's;
//! - roll: a grace of 0 … 604800 seconds (0 for an empty body), or a
//!   rejection naming `expires_previous_in`;
//! - transfer: an owner as create's, or a rejection naming only `owner`;
//! - service account: name and description as a key's, and whatever it
//!   accepts, create accepts with the same name and description;
//! - verify: accepted requests carry bounded, query-free context; a
//!   rejection is `invalid_request`; `Debug` never shows the key;
//! - webhook: a trimmed valid user id, or `invalid_request`.
#![no_main]

use keygate::Error;
use keygate::key::is_service_account_id;
use keygate::model::Owner;
use keygate::validate::{
    MAX_BODY_BYTES, MAX_ROLL_GRACE_SECONDS, check_json_body, parse_create_body, parse_patch_body,
    parse_roll_body, parse_service_account_body, parse_transfer_body,
};
use keygate::verify::VerifyRequest;
use keygate::webhook::parse_user_removed;
use keygate_fuzz::{check_problem, fields};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_712_400; // 2026-11-26T17:00:00Z

fuzz_target!(|data: &[u8]| {
    let [content_type, header_values, body] = fields::<3>(data);
    let content_type = String::from_utf8_lossy(content_type);
    match check_json_body(Some(&content_type), body.len()) {
        Ok(()) => assert!(body.len() <= MAX_BODY_BYTES),
        Err(e) => {
            assert!(matches!(
                e,
                Error::UnsupportedMediaType | Error::PayloadTooLarge
            ));
            check_problem(&e, None);
        }
    }

    create(body);
    patch(body);
    roll(body);
    transfer(body);
    service_account(body);
    verify(header_values, body);
    match parse_user_removed(body) {
        Ok(event) => {
            let u = &event.user_id;
            assert!(u.trim() == u && !u.is_empty() && u.chars().count() <= 200);
        }
        Err(e) => assert_eq!(e.code(), "invalid_request"),
    }
});

fn create(body: &[u8]) {
    match parse_create_body(body, NOW) {
        Ok(new) => {
            check_name(&new.name);
            if let Some(d) = &new.description {
                check_description(d);
            }
            assert!(new.expires_at.is_none_or(|t| t > NOW));
            if let Some(owner) = &new.owner {
                check_owner(owner);
            }
        }
        Err(e) => check_rejection(e, &["name", "description", "expires_at", "owner"]),
    }
}

fn check_name(n: &str) {
    assert!(n.trim() == n && !n.is_empty() && n.chars().count() <= 100);
    assert!(!n.chars().any(char::is_control));
}

fn check_description(d: &str) {
    assert!(!d.trim().is_empty() && d.chars().count() <= 500);
}

/// A user id (trimmed, 1–200 characters, no control characters, not
/// starting `sa_`) or the shape of a service account's id.
fn check_owner(owner: &Owner) {
    match owner {
        Owner::ServiceAccount(id) => assert!(is_service_account_id(id), "{id:?}"),
        Owner::User(u) => {
            assert!(u.trim() == u && !u.is_empty() && u.chars().count() <= 200);
            assert!(!u.chars().any(char::is_control) && !u.starts_with("sa_"));
        }
    }
    assert!(!owner.as_str().is_empty());
}

/// `invalid_request` (whose detail never quotes a value), or
/// `validation_failed` naming only `fields`.
fn check_rejection(error: Error, fields: &[&str]) {
    match error {
        Error::InvalidRequest(detail) => {
            // The detail names at most a field; it never quotes a value.
            assert!(detail.chars().count() < 200);
            check_problem(&Error::InvalidRequest(detail), None);
        }
        Error::ValidationFailed(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(fields.contains(&e.field.as_str()), "{}", e.field);
            }
            let e = Error::ValidationFailed(errors);
            assert_eq!(e.status(), 422);
            check_problem(&e, None);
        }
        e => panic!("a body answered {e:?}"),
    }
}

fn patch(body: &[u8]) {
    match parse_patch_body(body, NOW) {
        Ok(changes) => {
            if let Some(n) = &changes.name {
                check_name(n);
            }
            if let Some(Some(d)) = &changes.description {
                check_description(d);
            }
            if let Some(Some(t)) = changes.expires_at {
                assert!(t > NOW);
            }
        }
        Err(e) => check_rejection(e, &["name", "description", "expires_at"]),
    }
}

fn roll(body: &[u8]) {
    match parse_roll_body(body) {
        Ok(grace) => {
            assert!((0..=MAX_ROLL_GRACE_SECONDS).contains(&grace));
            if body.iter().all(u8::is_ascii_whitespace) {
                assert_eq!(grace, 0);
            }
        }
        Err(e) => check_rejection(e, &["expires_previous_in"]),
    }
}

fn transfer(body: &[u8]) {
    match parse_transfer_body(body) {
        Ok(owner) => check_owner(&owner),
        Err(Error::ValidationFailed(errors)) => {
            assert_eq!(errors.len(), 1);
            check_rejection(Error::ValidationFailed(errors), &["owner"]);
        }
        Err(e) => check_rejection(e, &[]),
    }
}

fn service_account(body: &[u8]) {
    match parse_service_account_body(body) {
        Ok(new) => {
            check_name(&new.name);
            if let Some(d) = &new.description {
                check_description(d);
            }
            // The same rules as a key's: create takes the same body alike.
            let key = parse_create_body(body, NOW).expect("create accepts it too");
            assert_eq!((key.name, key.description), (new.name, new.description));
        }
        Err(e) => check_rejection(e, &["name", "description"]),
    }
}

/// Gateway headers from the input (`\n`-separated values, in this order).
fn verify(header_values: &[u8], body: &[u8]) {
    const NAMES: [&str; 8] = [
        "authorization",
        "x-api-key",
        "x-forwarded-method",
        "x-forwarded-uri",
        "x-forwarded-for",
        "x-original-method",
        "x-original-uri",
        "x-real-ip",
    ];
    let values = String::from_utf8_lossy(header_values);
    let values: Vec<&str> = values.split('\n').collect();
    let header = |name: &str| {
        let at = NAMES.iter().position(|n| *n == name)?;
        values
            .get(at)
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
    };
    let body = (!body.is_empty()).then_some(body);
    match VerifyRequest::from_http(header, body) {
        Ok(request) => {
            let c = &request.context;
            assert!(c.method.as_ref().is_none_or(|m| m.chars().count() <= 32));
            assert!(c.source_ip.as_ref().is_none_or(|m| m.chars().count() <= 64));
            if let Some(p) = &c.path {
                assert!(p.chars().count() <= 2048 && !p.contains(['?', '#']));
            }
            if let Some(key) = request.key() {
                assert!(!key.is_empty());
                if key.len() >= 8 && !format!("{c:?}").contains(key) {
                    assert!(!format!("{request:?}").contains(key));
                }
            }
        }
        Err(e) => {
            assert_eq!(e.code(), "invalid_request");
            check_problem(&e, None);
        }
    }
}
