//! The identity system's `user.removed` webhook, signed per Standard Webhooks.
//!
//! Missing or unparseable `webhook-*` headers answer `invalid_signature`, not
//! `invalid_request`: a request without a verifiable signature is an
//! unauthenticated request, and nothing about its body is looked at. The
//! signature is checked before the timestamp, so only a genuine but late
//! delivery hears `timestamp_out_of_tolerance`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::error::Error;
use crate::timestamp::parse_rfc3339;
use crate::validate::{is_user_id, json_error_detail, parse_json_object};

/// How far `webhook-timestamp` may be from now, either way (the spec's default).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// `webhook-id` is stored as the idempotency key; longer ids are refused.
pub const MAX_WEBHOOK_ID_CHARS: usize = 200;

type HmacSha256 = Hmac<Sha256>;

/// The decoded `whsec_` secret. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// The Spin variable `webhook_secret`; unset, empty or not
    /// `whsec_<base64>` → `webhook_not_configured` (a broken secret could
    /// never verify anything, and saying "not configured" leaks nothing).
    pub fn parse(configured: Option<&str>) -> Result<Self, Error> {
        configured
            .map(str::trim)
            .and_then(|s| s.strip_prefix("whsec_"))
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|bytes| !bytes.is_empty())
            .map(WebhookSecret)
            .ok_or(Error::WebhookNotConfigured)
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// A `webhook-signature` value (`v1,<base64>`) for this delivery; what a
    /// sender computes. For tests and tools.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

/// The three `webhook-*` headers as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebhookHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Checks the signature (any `v1,` entry may match; compared in constant time
/// by `hmac`) and then the timestamp. Returns the `webhook-id`.
pub fn verify_signature(
    secret: &WebhookSecret,
    headers: &WebhookHeaders<'_>,
    body: &[u8],
    now: i64,
) -> Result<String, Error> {
    let (Some(id), Some(timestamp), Some(signatures)) =
        (headers.id, headers.timestamp, headers.signature)
    else {
        return Err(Error::InvalidSignature);
    };
    let (id, timestamp) = (id.trim(), timestamp.trim());
    let sent_at: i64 = timestamp.parse().map_err(|_| Error::InvalidSignature)?;
    let mac = secret.mac(id, timestamp, body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if !matched {
        return Err(Error::InvalidSignature);
    }
    // `abs_diff`: a signed timestamp near i64::MIN/MAX must not overflow
    // (found by the `webhook_signature` fuzz target).
    if now.abs_diff(sent_at) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(Error::TimestampOutOfTolerance);
    }
    if id.is_empty()
        || id.chars().count() > MAX_WEBHOOK_ID_CHARS
        || id.chars().any(char::is_control)
    {
        return Err(Error::InvalidRequest(format!(
            "webhook-id must be 1–{MAX_WEBHOOK_ID_CHARS} printable characters"
        )));
    }
    Ok(id.to_owned())
}

/// A verified `user.removed` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRemovedEvent {
    pub user_id: String,
}

/// `{"type": "user.removed", "timestamp": "<RFC 3339>", "data": {"user_id": "..."}}`.
///
/// Strict, as every JSON body of the contract: an unknown field (at the top
/// or in `data`) is `invalid_request`, so a sender's mistake is loud rather
/// than a removal silently read some other way.
pub fn parse_user_removed(body: &[u8]) -> Result<UserRemovedEvent, Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Event {
        #[serde(rename = "type")]
        kind: String,
        timestamp: String,
        // A map first: serde's derived structs would also take `[user_id]`.
        data: serde_json::Map<String, serde_json::Value>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Data {
        user_id: String,
    }
    let event: Event = parse_json_object(body)?;
    let bad = |what: &str| Error::InvalidRequest(what.to_owned());
    let data: Data = serde_json::from_value(serde_json::Value::Object(event.data))
        .map_err(|e| bad(&format!("`data`: {}", json_error_detail(&e))))?;
    if event.kind != "user.removed" {
        return Err(bad("`type` must be \"user.removed\""));
    }
    if parse_rfc3339(&event.timestamp).is_none() {
        return Err(bad("`timestamp` must be an RFC 3339 timestamp"));
    }
    if !is_user_id(&data.user_id) {
        return Err(bad(
            "`data.user_id` must be a user id (1–200 printable characters)",
        ));
    }
    Ok(UserRemovedEvent {
        user_id: data.user_id.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_712_400;
    // The Standard Webhooks reference example.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> WebhookHeaders<'a> {
        WebhookHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn matches_the_standard_webhooks_reference_signature() {
        let secret = WebhookSecret::parse(Some(SPEC_SECRET)).unwrap();
        assert_eq!(secret.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        let ts = SPEC_TS.to_string();
        assert_eq!(
            verify_signature(
                &secret,
                &headers(SPEC_ID, &ts, SPEC_SIG),
                SPEC_BODY,
                SPEC_TS + 299
            )
            .unwrap(),
            SPEC_ID
        );
    }

    #[test]
    fn any_matching_v1_entry_is_enough() {
        let secret = WebhookSecret::parse(Some(SPEC_SECRET)).unwrap();
        let good = secret.sign("msg_1", NOW, b"{}");
        let ts = NOW.to_string();
        let list = format!("v1,AAAA v2,xyz v1a,{} {good}", &good[3..]);
        assert!(verify_signature(&secret, &headers("msg_1", &ts, &list), b"{}", NOW).is_ok());
    }

    #[test]
    fn wrong_or_missing_signatures_are_rejected() {
        let secret = WebhookSecret::parse(Some(SPEC_SECRET)).unwrap();
        let other = WebhookSecret::parse(Some("whsec_c2VjcmV0")).unwrap();
        let ts = NOW.to_string();
        let good = secret.sign("msg_1", NOW, b"{}");
        let wrong_secret = other.sign("msg_1", NOW, b"{}");
        let cases = [
            headers("msg_1", &ts, &wrong_secret),
            headers("msg_2", &ts, &good),
            headers("msg_1", "1795712401", &good),
            headers("msg_1", &ts, &good[3..]),
            headers("msg_1", &ts, "v1,not base64!"),
            headers("msg_1", "soon", &good),
            WebhookHeaders {
                id: None,
                ..headers("msg_1", &ts, &good)
            },
            WebhookHeaders {
                timestamp: None,
                ..headers("msg_1", &ts, &good)
            },
            WebhookHeaders {
                signature: None,
                ..headers("msg_1", &ts, &good)
            },
        ];
        for h in cases {
            assert!(
                matches!(
                    verify_signature(&secret, &h, b"{}", NOW),
                    Err(Error::InvalidSignature)
                ),
                "{h:?}"
            );
        }
        assert!(matches!(
            verify_signature(&secret, &headers("msg_1", &ts, &good), b"{ }", NOW),
            Err(Error::InvalidSignature)
        ));
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_are_rejected() {
        let secret = WebhookSecret::parse(Some(SPEC_SECRET)).unwrap();
        for (offset, ok) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let sent = NOW + offset;
            let sig = secret.sign("m", sent, b"{}");
            let result =
                verify_signature(&secret, &headers("m", &sent.to_string(), &sig), b"{}", NOW);
            if ok {
                assert!(result.is_ok(), "{offset}");
            } else {
                assert!(
                    matches!(result, Err(Error::TimestampOutOfTolerance)),
                    "{offset}"
                );
            }
        }
    }

    #[test]
    fn extreme_signed_timestamps_are_out_of_tolerance_not_an_overflow() {
        let secret = WebhookSecret::parse(Some(SPEC_SECRET)).unwrap();
        for sent in [i64::MIN, i64::MIN + NOW, i64::MAX, -1] {
            let sig = secret.sign("m", sent, b"{}");
            let result =
                verify_signature(&secret, &headers("m", &sent.to_string(), &sig), b"{}", NOW);
            assert!(
                matches!(result, Err(Error::TimestampOutOfTolerance)),
                "{sent}"
            );
        }
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        for bad in [
            None,
            Some(""),
            Some("whsec_"),
            Some("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Some("whsec_***"),
        ] {
            assert!(
                matches!(WebhookSecret::parse(bad), Err(Error::WebhookNotConfigured)),
                "{bad:?}"
            );
        }
        let secret = WebhookSecret::parse(Some(SPEC_SECRET)).unwrap();
        assert!(!format!("{secret:?}").contains("MfKQ"));
    }

    #[test]
    fn parses_user_removed_bodies() {
        let body = br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00.123Z","data":{"user_id":"floris@example.com"}}"#;
        assert_eq!(
            parse_user_removed(body).unwrap().user_id,
            "floris@example.com"
        );
        for bad in [
            &br#"{"type":"user.created","timestamp":"2026-11-26T17:00:00Z","data":{"user_id":"u"}}"#[..],
            br#"{"timestamp":"2026-11-26T17:00:00Z","data":{"user_id":"u"}}"#,
            br#"{"type":"user.removed","data":{"user_id":"u"}}"#,
            br#"{"type":"user.removed","timestamp":"yesterday","data":{"user_id":"u"}}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z","data":{}}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z","data":{"user_id":""}}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z","data":{"user_id":7}}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z"}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z","data":{"user_id":"u"},"v":2}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z","data":["u"]}"#,
            br#"{"type":"user.removed","timestamp":"2026-11-26T17:00:00Z","data":{"user_id":"u","extra":1}}"#,
            b"[]",
            b"not json",
        ] {
            assert!(
                matches!(parse_user_removed(bad), Err(Error::InvalidRequest(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
