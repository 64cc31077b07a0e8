//! The user-removed webhook: signature headers, verification, then the body.
//!
//! The input is cut into a secret, `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, a body and a clock. Properties:
//! - nothing panics (secret parsing, header parsing, HMAC, body parsing);
//! - a delivery is accepted only with a `v1,` entry that is exactly the
//!   sender's signature of (trimmed id, trimmed timestamp, body): no forgery;
//! - the genuine signature of the same delivery is accepted unless the
//!   timestamp is out of tolerance or the id is not 1–200 printable chars;
//!   with one body byte changed it is `invalid_signature`;
//! - the body parses into a trimmed, valid user id or is `invalid_request` (400).
#![no_main]

use keygate::Error;
use keygate::webhook::{
    TOLERANCE_SECONDS, WebhookHeaders, WebhookSecret, parse_user_removed, verify_signature,
};
use keygate_fuzz::{check_problem, fields};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fuzz_target!(|data: &[u8]| {
    let [configured, id, ts, sig, body, clock] = fields::<6>(data);
    let configured = String::from_utf8_lossy(configured);
    if let Err(e) = WebhookSecret::parse(Some(&configured)) {
        assert_eq!(e.code(), "webhook_not_configured");
        check_problem(&e, None);
    }
    let secret = WebhookSecret::parse(Some(SECRET)).unwrap();
    let (id, ts, sig) = (
        String::from_utf8_lossy(id),
        String::from_utf8_lossy(ts),
        String::from_utf8_lossy(sig),
    );
    let now = i64::from(u32::from_le_bytes(
        clock
            .get(..4)
            .and_then(|c| c.try_into().ok())
            .unwrap_or([0; 4]),
    ));

    // Headers as the fuzzer wrote them (each may also be missing).
    fn present(s: &str) -> Option<&str> {
        (!s.starts_with('\u{0}')).then_some(s)
    }
    let headers = WebhookHeaders {
        id: present(&id),
        timestamp: present(&ts),
        signature: present(&sig),
    };
    match verify_signature(&secret, &headers, body, now) {
        Ok(verified_id) => {
            let sent: i64 = ts.trim().parse().unwrap();
            assert_eq!(verified_id, id.trim());
            let genuine = secret.sign(id.trim(), sent, body);
            // `sign` formats the timestamp canonically; the header may not be.
            if ts.trim() == sent.to_string() {
                assert!(
                    sig.split_whitespace().any(|e| e == genuine),
                    "forged signature accepted"
                );
            }
            assert!(now.abs_diff(sent) <= TOLERANCE_SECONDS as u64);
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::InvalidSignature
                        | Error::TimestampOutOfTolerance
                        | Error::InvalidRequest(_)
                ),
                "{e:?}"
            );
            check_problem(&e, Some(SECRET));
        }
    }

    // The same delivery signed for real.
    if let Ok(sent) = ts.trim().parse::<i64>() {
        let canonical = sent.to_string();
        let genuine = secret.sign(id.trim(), sent, body);
        let list = format!("{sig} {genuine}");
        let headers = WebhookHeaders {
            id: Some(&id),
            timestamp: Some(&canonical),
            signature: Some(&list),
        };
        let id_ok = {
            let t = id.trim();
            !t.is_empty() && t.chars().count() <= 200 && !t.chars().any(char::is_control)
        };
        match verify_signature(&secret, &headers, body, now) {
            Ok(v) => {
                assert!(id_ok && now.abs_diff(sent) <= TOLERANCE_SECONDS as u64 && v == id.trim())
            }
            Err(Error::TimestampOutOfTolerance) => {
                assert!(now.abs_diff(sent) > TOLERANCE_SECONDS as u64)
            }
            Err(Error::InvalidRequest(_)) => assert!(!id_ok),
            Err(e) => panic!("genuine signature refused: {e:?}"),
        }
        if !body.is_empty() {
            let mut tampered = body.to_vec();
            tampered[0] ^= 1;
            let only = WebhookHeaders {
                signature: Some(&genuine),
                ..headers
            };
            assert!(matches!(
                verify_signature(&secret, &only, &tampered, now),
                Err(Error::InvalidSignature)
            ));
        }
    }

    match parse_user_removed(body) {
        Ok(event) => {
            let u = &event.user_id;
            assert_eq!(u.trim(), u);
            assert!(!u.is_empty() && u.chars().count() <= 200);
            assert!(!u.chars().any(char::is_control));
        }
        Err(e) => {
            assert_eq!((e.status(), e.code()), (400, "invalid_request"));
            check_problem(&e, None);
        }
    }
});
