//! Every JSON request body: create key, verify (with its gateway headers) and
//! the user-removed webhook, plus the size/media-type gate in front of them.
//!
//! - never panics;
//! - create: accepted values obey the contract's rules (trimmed name of
//!   1–100 characters without control characters, description ≤ 500,
//!   `expires_at` in the future); a rejection is `invalid_request` (400) or
//!   `validation_failed` (422) naming only the body's fields;
//! - verify: accepted requests carry bounded, query-free context; a
//!   rejection is `invalid_request`; `Debug` never shows the key;
//! - webhook: a trimmed valid user id, or `invalid_request`.
#![no_main]

use keygate::Error;
use keygate::validate::{MAX_BODY_BYTES, check_json_body, parse_create_body};
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
            let n = &new.name;
            assert!(n.trim() == n && !n.is_empty() && n.chars().count() <= 100);
            assert!(!n.chars().any(char::is_control));
            if let Some(d) = &new.description {
                assert!(!d.trim().is_empty() && d.chars().count() <= 500);
            }
            assert!(new.expires_at.is_none_or(|t| t > NOW));
        }
        Err(Error::InvalidRequest(detail)) => {
            // The detail names at most a field; it never quotes a value.
            assert!(detail.chars().count() < 200);
            check_problem(&Error::InvalidRequest(detail), None);
        }
        Err(Error::ValidationFailed(errors)) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(["name", "description", "expires_at"].contains(&e.field.as_str()));
            }
            let e = Error::ValidationFailed(errors);
            assert_eq!(e.status(), 422);
            check_problem(&e, None);
        }
        Err(e) => panic!("create body answered {e:?}"),
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
