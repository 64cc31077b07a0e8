//! Reading a verify call: where the key and the description of the
//! authorised call come from (`/api/verify` body, or a gateway's
//! forward-auth headers).

use std::fmt;

use serde::Deserialize;

use crate::auth::bearer_token;
use crate::error::Error;
use crate::model::VerifyContext;
use crate::validate::parse_json_object;

/// Longer values are cut before they reach the audit trail.
const MAX_METHOD_CHARS: usize = 32;
const MAX_PATH_CHARS: usize = 2048;
const MAX_SOURCE_IP_CHARS: usize = 64;

/// The presented key (unchecked) and the call it authorises.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct VerifyRequest {
    key: Option<String>,
    pub context: VerifyContext,
}

impl fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("context", &self.context)
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    key: Option<String>,
    method: Option<String>,
    path: Option<String>,
    source_ip: Option<String>,
}

impl VerifyRequest {
    /// `header(name)` looks a request header up by lower-case name; `body` is
    /// the POST body when there is one (empty counts as none).
    ///
    /// The key: `Authorization: Bearer`, else `X-API-Key`, else the body's
    /// `key`. The call: the body's fields, else `X-Forwarded-*`, else
    /// `X-Original-*`; the source IP falls back to `X-Real-IP`. The first
    /// `X-Forwarded-For` entry is the client. Paths lose their query string
    /// (it may carry secrets, and the audit trail must not).
    pub fn from_http(
        header: impl Fn(&str) -> Option<String>,
        body: Option<&[u8]>,
    ) -> Result<Self, Error> {
        let body: Body = match body {
            Some(b) if !b.iter().all(u8::is_ascii_whitespace) => parse_json_object(b)?,
            _ => Body::default(),
        };
        let header = |name: &str| {
            header(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let key = header("authorization")
            .and_then(|a| bearer_token(&a).map(str::to_owned))
            .or_else(|| header("x-api-key"))
            .or(body.key)
            .filter(|k| !k.is_empty());
        let method = non_empty(body.method)
            .or_else(|| header("x-forwarded-method"))
            .or_else(|| header("x-original-method"));
        let path = non_empty(body.path)
            .or_else(|| header("x-forwarded-uri"))
            .or_else(|| header("x-original-uri"))
            .map(|p| strip_query(&p).to_owned());
        let source_ip = non_empty(body.source_ip)
            .or_else(|| {
                header("x-forwarded-for")
                    .and_then(|v| v.split(',').next().map(|ip| ip.trim().to_owned()))
                    .filter(|ip| !ip.is_empty())
            })
            .or_else(|| header("x-real-ip"));
        Ok(Self {
            key,
            context: VerifyContext {
                method: method.map(|m| cut(&m, MAX_METHOD_CHARS)),
                path: path.map(|p| cut(&p, MAX_PATH_CHARS)),
                source_ip: source_ip.map(|ip| cut(&ip, MAX_SOURCE_IP_CHARS)),
            },
        })
    }

    /// The presented key, not yet checked; pass it to `KeyService::verify`.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or_default()
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn key_sources_in_order_of_precedence() {
        let r = VerifyRequest::from_http(
            headers(&[("authorization", "Bearer kg_a"), ("x-api-key", "kg_b")]),
            Some(br#"{"key":"kg_c"}"#),
        )
        .unwrap();
        assert_eq!(r.key(), Some("kg_a"));
        let r = VerifyRequest::from_http(
            headers(&[("authorization", "Basic xyz"), ("x-api-key", " kg_b ")]),
            Some(br#"{"key":"kg_c"}"#),
        )
        .unwrap();
        assert_eq!(r.key(), Some("kg_b"));
        let r = VerifyRequest::from_http(headers(&[]), Some(br#"{"key":"kg_c"}"#)).unwrap();
        assert_eq!(r.key(), Some("kg_c"));
        let r = VerifyRequest::from_http(headers(&[("x-api-key", "")]), Some(b"")).unwrap();
        assert_eq!(r.key(), None);
    }

    #[test]
    fn context_from_the_body_wins_over_gateway_headers() {
        let h = [
            ("x-forwarded-method", "PUT"),
            ("x-forwarded-uri", "/orders/7?token=kg_secret"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
            ("x-original-method", "GET"),
            ("x-original-uri", "/other"),
            ("x-real-ip", "10.0.0.2"),
        ];
        let r = VerifyRequest::from_http(headers(&h), None).unwrap();
        assert_eq!(
            r.context,
            VerifyContext {
                method: Some("PUT".into()),
                path: Some("/orders/7".into()),
                source_ip: Some("203.0.113.9".into()),
            }
        );
        let body = br#"{"method":"DELETE","path":"/x?y=1","source_ip":"198.51.100.1"}"#;
        let r = VerifyRequest::from_http(headers(&h), Some(body)).unwrap();
        assert_eq!(r.context.method.as_deref(), Some("DELETE"));
        assert_eq!(r.context.path.as_deref(), Some("/x"));
        assert_eq!(r.context.source_ip.as_deref(), Some("198.51.100.1"));
        let nginx = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/a"),
            ("x-real-ip", "10.0.0.2"),
        ];
        let r = VerifyRequest::from_http(headers(&nginx), None).unwrap();
        assert_eq!(
            r.context,
            VerifyContext {
                method: Some("GET".into()),
                path: Some("/a".into()),
                source_ip: Some("10.0.0.2".into()),
            }
        );
        assert_eq!(
            VerifyRequest::from_http(headers(&[]), None)
                .unwrap()
                .context,
            VerifyContext::default()
        );
    }

    #[test]
    fn bad_bodies_are_invalid_requests_and_debug_hides_the_key() {
        for body in [
            &b"{"[..],
            br#"{"key":"kg_a","extra":1}"#,
            br#"{"key":5}"#,
            b"[]",
        ] {
            assert!(
                matches!(
                    VerifyRequest::from_http(headers(&[]), Some(body)),
                    Err(Error::InvalidRequest(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let r = VerifyRequest::from_http(headers(&[("x-api-key", "kg_topsecret")]), None).unwrap();
        assert!(!format!("{r:?}").contains("topsecret"));
    }

    #[test]
    fn long_values_are_cut() {
        let long = format!("/{}", "a".repeat(5000));
        let r = VerifyRequest::from_http(headers(&[("x-forwarded-uri", &long)]), None).unwrap();
        assert_eq!(r.context.path.unwrap().len(), MAX_PATH_CHARS);
    }
}
