//! Outbound HTTP as Spin allows it: only to hosts the component's
//! `allowed_outbound_hosts` lists (`scheme://host[:port]`, `*` wildcards).

use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

impl AllowedHost {
    pub fn parse(text: &str) -> Result<Self> {
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!("{text:?}: must be scheme://host[:port] (e.g. \"https://api.example.com\")");
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("{text:?}: must not contain a path");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| anyhow::anyhow!("{text:?}: invalid port"))?,
                ),
            ),
            None => (rest, default_port(scheme)),
        };
        if host.is_empty() {
            bail!("{text:?}: missing host");
        }
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
        } else {
            HostPattern::Exact(host.to_ascii_lowercase())
        };
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
                HostPattern::Exact(h) => *h == host,
            }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The outbound policy of one component; also the `wasi:http` hooks of its
/// requests' stores.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<[AllowedHost]>,
}

impl OutboundHttp {
    pub fn new(entries: &[String]) -> Result<Self> {
        let allowed = entries
            .iter()
            .map(|e| AllowedHost::parse(e))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            allowed: allowed.into(),
        })
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let Some(host) = uri.host() else { return false };
        let Some(port) = uri.port_u16().or_else(|| default_port(&scheme)) else {
            return false;
        };
        self.allowed.iter().any(|a| a.allows(&scheme, host, port))
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if !self.allows(request.uri()) {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundHttp {
        OutboundHttp::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allows(p: &OutboundHttp, uri: &str) -> bool {
        p.allows(&uri.parse().unwrap())
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!allows(&policy(&[]), "https://example.com/"));
    }

    #[test]
    fn exact_wildcard_and_port_rules() {
        let p = policy(&[
            "https://api.example.com",
            "http://*.internal:8080",
            "*://any.test:*",
        ]);
        assert!(allows(&p, "https://API.example.com/x"));
        assert!(!allows(&p, "http://api.example.com/x"), "scheme must match");
        assert!(
            !allows(&p, "https://api.example.com:8443/"),
            "default port only"
        );
        assert!(allows(&p, "http://a.b.internal:8080/"));
        assert!(!allows(&p, "http://internal:8080/"));
        assert!(allows(&p, "http://any.test:1234/"));
        assert!(allows(&p, "https://any.test/"));
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            "example.com",
            "https://",
            "https://x:port",
            "https://x/path",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
