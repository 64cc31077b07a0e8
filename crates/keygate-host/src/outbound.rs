//! Outbound HTTP as Spin allows it: only to hosts the component's
//! `allowed_outbound_hosts` lists. Entries are read as Spin's
//! `outbound-networking-config` (`allowed_hosts.rs`) reads them, so an entry
//! that Spin accepts, refuses, skips or matches behaves the same here.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::variables::Template;

/// One `scheme://host[:port]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHost {
    /// `None`: `*://`. Kept as written, as Spin does (`HTTP://` matches nothing).
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    /// `self` / `self.alt`: Spin's relative (self) requests, which this runner
    /// does not make, so it allows nothing here.
    ToSelf,
    /// `*.example.com`, kept as `.example.com`.
    Suffix(String),
    Exact(Host),
    /// `10.0.0.0/8`: address and prefix length.
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    /// `8080` is `8080..8081`; `8000..9000` excludes 9000, as in Spin.
    Range(Range<u32>),
}

/// A host as the URL standard (and Spin's `url::Host`) reads it.
#[derive(Debug, Clone, PartialEq)]
enum Host {
    Domain(String),
    Ip(IpAddr),
}

impl AllowedHost {
    /// Spin's `AllowedHostConfig::parse`: the port is split off first and only
    /// if the whole rest is not already a host (IPv6 literals and CIDRs contain
    /// `:`); a path is refused, a lone trailing `/` is not.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!("{text:?} is not <scheme>://<host>[:<port>] (`*` allowed for each part)");
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some(_) if HostPattern::parse(rest).is_ok() => (rest, ""),
            Some((h, tail)) => match tail.split_once('/') {
                Some((_, path)) if !path.is_empty() => {
                    bail!("{text:?} has a path but is not allowed to")
                }
                Some((port, _)) => (h, port),
                None => (h, tail),
            },
        };
        let port = PortPattern::parse(port, scheme)
            .with_context(|| format!("invalid allowed host port {port:?}"))?;
        let scheme = parse_scheme(scheme)
            .with_context(|| format!("invalid allowed host scheme {scheme:?}"))?;
        let host =
            HostPattern::parse(host).with_context(|| format!("invalid allowed host {host:?}"))?;
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &Host, port: Option<u16>) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host.allows(host)
            && self.port.allows(port.or_else(|| well_known_port(scheme)))
    }
}

fn parse_scheme(scheme: &str) -> Result<Option<String>> {
    if scheme == "*" {
        return Ok(None);
    }
    ensure!(!scheme.starts_with('{'), "scheme lists are not supported");
    ensure!(
        scheme.chars().all(char::is_alphabetic),
        "only alphabetic characters are allowed"
    );
    Ok(Some(scheme.to_string()))
}

impl HostPattern {
    fn parse(host: &str) -> Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        ensure!(!host.starts_with('{'), "host lists are not supported");
        if let Some((ip, len)) = parse_cidr(host) {
            return Ok(Self::Cidr(ip, len));
        }
        let host = host.strip_suffix('/').unwrap_or(host);
        ensure!(!host.contains('/'), "must not include a path");
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                !domain.contains('*'),
                "wildcards are allowed only as prefixes"
            );
            let parsed = Host::parse(domain)
                .with_context(|| format!("invalid wildcard host \"*.{domain}\""))?;
            let Host::Domain(domain) = parsed else {
                bail!("wildcard suffix must be a domain");
            };
            return Ok(Self::Suffix(format!(".{domain}")));
        }
        ensure!(
            !host.contains('*'),
            "wildcards are allowed only as subdomains"
        );
        Ok(Self::Exact(Host::parse(host)?))
    }

    fn allows(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Suffix(suffix), Host::Domain(domain)) => domain.ends_with(suffix.as_str()),
            (Self::Exact(exact), host) => exact == host,
            (Self::Cidr(net, len), Host::Ip(ip)) => in_network(*net, *len, *ip),
            _ => false,
        }
    }
}

/// `ip/len` as the `ip_network` crate reads it (host bits are dropped).
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

fn in_network(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 96),
        IpAddr::V6(a) => (u128::from(a), 0),
    };
    let ((net, pad), (ip, ip_pad)) = (bits(net), bits(ip));
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0) >> pad;
    pad == ip_pad && net & mask == ip & mask
}

impl PortPattern {
    fn parse(port: &str, scheme: &str) -> Result<Self> {
        if port.is_empty() {
            let port = well_known_port(scheme).map(|p| Self::Range(p.into()..u32::from(p) + 1));
            return port
                .with_context(|| format!("scheme {scheme:?} has no default port: give one"));
        }
        if port == "*" {
            return Ok(Self::Any);
        }
        ensure!(!port.starts_with('{'), "port lists are not yet supported");
        if let Some((start, end)) = port.split_once("..") {
            let number = |p: &str| {
                p.parse::<u16>()
                    .with_context(|| format!("port range {port:?} contains non-number"))
            };
            return Ok(Self::Range(number(start)?.into()..number(end)?.into()));
        }
        let port: u16 = port
            .parse()
            .with_context(|| format!("port {port:?} is not a number"))?;
        Ok(Self::Range(port.into()..u32::from(port) + 1))
    }

    fn allows(&self, port: Option<u16>) -> bool {
        match self {
            Self::Any => true,
            Self::Range(r) => port.is_some_and(|p| r.contains(&p.into())),
        }
    }
}

/// Spin's default ports; a scheme without one needs an explicit port.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Host {
    /// The URL standard's host parser for ASCII hosts: `[v6]`, IPv4 in any
    /// of its forms (`127.1`, `0x7f.0.0.1`), else a lowercased domain.
    fn parse(text: &str) -> Result<Self> {
        if let Some(inner) = text.strip_prefix('[') {
            let v6 = inner.strip_suffix(']').and_then(|a| a.parse().ok());
            return v6
                .map(|a| Self::Ip(IpAddr::V6(a)))
                .context("invalid IPv6 address");
        }
        ensure!(!text.is_empty(), "empty host");
        ensure!(
            text.is_ascii(),
            "write international domain names as punycode (xn--…)"
        );
        if let Some(c) = text
            .chars()
            .find(|c| c.is_ascii_control() || " #%/:<>?@[\\]^|".contains(*c))
        {
            bail!("{c:?} is not allowed in a host");
        }
        let domain = text.to_ascii_lowercase();
        if ends_in_a_number(&domain) {
            let v4 = parse_ipv4(&domain).context("invalid IPv4 address")?;
            return Ok(Self::Ip(IpAddr::V4(v4)));
        }
        Ok(Self::Domain(domain))
    }
}

/// The URL standard's "ends in a number": such a host is read as IPv4.
fn ends_in_a_number(domain: &str) -> bool {
    let mut labels = domain.rsplit('.');
    let last = match labels.next() {
        Some("") => labels.next(),
        last => last,
    };
    last.is_some_and(|l| {
        (!l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())) || ipv4_number(l).is_ok()
    })
}

/// One IPv4 part: decimal, `0x` hex or `0` octal; `Ok(None)` overflows.
fn ipv4_number(text: &str) -> Result<Option<u32>, ()> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
        (hex, 16)
    } else if text.len() >= 2 && text.starts_with('0') {
        (&text[1..], 8)
    } else if text.is_empty() {
        return Err(());
    } else {
        (text, 10)
    };
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(());
    }
    Ok(if digits.is_empty() {
        Some(0)
    } else {
        u32::from_str_radix(digits, radix).ok()
    })
}

fn parse_ipv4(domain: &str) -> Option<Ipv4Addr> {
    let mut parts: Vec<&str> = domain.split('.').collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() > 4 {
        return None;
    }
    let mut numbers = parts
        .iter()
        .map(|p| ipv4_number(p).ok().flatten())
        .collect::<Option<Vec<u32>>>()?;
    let last = numbers.pop()?;
    if last > u32::MAX >> (8 * numbers.len()) || numbers.iter().any(|n| *n > 255) {
        return None;
    }
    let high = numbers.iter().enumerate();
    Some(Ipv4Addr::from(
        high.fold(last, |a, (i, n)| a + (n << (8 * (3 - i)))),
    ))
}

/// The outbound policy of one component; also the `wasi:http` hooks of its
/// requests' stores.
#[derive(Debug, Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<[AllowedHost]>,
}

impl OutboundHttp {
    /// The component's entries, templates rendered with the application
    /// variables' values (Spin resolves them the same way, against
    /// `[variables]`, not the component's own variables).
    pub fn new(entries: &[String], app_values: &HashMap<String, String>) -> Result<Self> {
        if entries == ["insecure:allow-all"] {
            bail!("\"insecure:allow-all\" is not allowed: \"*://*:*\" allows everything");
        }
        let allowed = entries.iter().filter_map(|entry| {
            let host = resolve(entry, app_values).with_context(|| format!("{entry:?}"));
            host.transpose()
        });
        Ok(Self {
            allowed: allowed.collect::<Result<_>>()?,
        })
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let Some(host) = uri.host().and_then(|h| Host::parse(h).ok()) else {
            return false;
        };
        let port = uri.port_u16();
        self.allowed.iter().any(|a| a.allows(&scheme, &host, port))
    }
}

/// One entry. An entry with `{{ name }}` references is parsed once rendered;
/// if it renders to nothing (`""`, `http://`, `https://`) it is skipped, as
/// in Spin, so an optional endpoint whose variable is empty allows nothing.
/// A literal entry is never skipped: `""` written as such is an error.
fn resolve(entry: &str, app_values: &HashMap<String, String>) -> Result<Option<AllowedHost>> {
    if !entry.contains("{{") {
        return AllowedHost::parse(entry).map(Some);
    }
    let template = Template::parse(entry)?;
    let Some(resolved) = template.render(app_values) else {
        let missing = template.references().find(|n| !app_values.contains_key(*n));
        bail!("variable `{}` has no value", missing.unwrap_or_default());
    };
    if matches!(resolved.as_str(), "" | "http://" | "https://") {
        return Ok(None);
    }
    AllowedHost::parse(&resolved)
        .map(Some)
        .with_context(|| format!("resolves to {resolved:?}"))
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

    fn try_policy(entries: &[&str], vars: &[(&str, &str)]) -> Result<OutboundHttp> {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let values = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        OutboundHttp::new(&entries, &values.collect())
    }

    /// Asserts which of `uris` the entries allow.
    fn check(entries: &[&str], vars: &[(&str, &str)], uris: &[(&str, bool)]) {
        let p = try_policy(entries, vars).unwrap();
        for (uri, allowed) in uris {
            assert_eq!(p.allows(&uri.parse().unwrap()), *allowed, "{uri}");
        }
    }

    #[test]
    fn exact_wildcard_and_port_rules() {
        check(&[], &[], &[("https://example.com/", false)]);
        let entries = [
            "https://api.example.com",
            "http://*.internal:8080",
            "*://any.test:*",
            "https://my.api.com/",
            "http://localhost:3000..3002",
            "redis://cache",
        ];
        check(
            &entries,
            &[],
            &[
                ("https://API.example.com:443/x", true),
                ("http://api.example.com/x", false),
                ("https://api.example.com:8443/", false),
                ("http://a.b.internal:8080/", true),
                ("http://internal:8080/", false),
                ("http://any.test:1234/", true),
                ("https://any.test/", true),
                ("https://my.api.com/v1", true),
                ("http://localhost:3001/", true),
                ("http://localhost:3002/", false),
                ("redis://cache:6379/", true),
                ("redis://cache:6380/", false),
            ],
        );
        check(
            &["*://*:*"],
            &[],
            &[("http://x:1/", true), ("https://[::1]/", true)],
        );
    }

    #[test]
    fn ip_literals_and_networks() {
        let entries = [
            "http://127.0.0.1:8080",
            "https://[::1]",
            "http://10.0.0.0/8",
            "*://2001:db8::/32:443",
        ];
        check(
            &entries,
            &[],
            &[
                ("http://127.0.0.1:8080/", true),
                ("http://127.0.0.1/", false),
                ("http://127.1:8080/", true),
                ("https://[::1]/", true),
                ("https://[::2]/", false),
                ("http://10.20.30.40/", true),
                ("http://11.0.0.1/", false),
                ("https://[2001:db8:abcd::1]/", true),
                ("https://[2001:db9::1]/", false),
            ],
        );
    }

    #[test]
    fn malformed_entries_are_errors() {
        // Paths (the last four): Spin refuses them all, a lone trailing `/` aside.
        let bad = "example.com * https:// https://x:port tcp://x HTTPS://x http://x:99999 \
            http://x:8080..70000 http://x// http://x:80:90 http://*. http://a.*.com \
            http://*.127.0.0.1 http://[::1 http://1.2.3.4.5 http://256.0.0.1 \
            http://exa[mple.com ht-tp://x \
            https://x/path http://*.x.com/p http://10.0.0.0/8/p https://x:8080/p";
        for bad in bad.split_whitespace().chain([""]) {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
        let e = AllowedHost::parse("https://x:8080/path").unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"https://x:8080/path\" has a path but is not allowed to"
        );
        assert!(try_policy(&["insecure:allow-all"], &[]).is_err());
    }

    #[test]
    fn templated_entries_are_resolved_with_app_variables() {
        let entries = ["{{ oidc_origin }}", "https://{{ host }}:{{ port }}"];
        let vars = [
            ("oidc_origin", "https://idp.example"),
            ("host", "api.test"),
            ("port", "8443"),
        ];
        check(
            &entries,
            &vars,
            &[
                ("https://idp.example/.well-known/openid-configuration", true),
                ("https://api.test:8443/", true),
                ("https://api.test/", false),
            ],
        );
    }

    #[test]
    fn empty_resolutions_are_skipped() {
        let entries = [
            "{{ a }}",
            "https://{{ a }}",
            "http://{{ a }}",
            "https://three",
        ];
        let p = try_policy(&entries, &[("a", "")]).unwrap();
        assert_eq!(p.allowed.len(), 1);
    }

    #[test]
    fn invalid_resolutions_name_the_entry_and_variable() {
        let error = |entries: &[&str], vars: &[(&str, &str)]| {
            format!("{:#}", try_policy(entries, vars).unwrap_err())
        };
        let e = error(
            &["https://ok", "http://{{ db }}"],
            &[("db", "zoinks, Scooby!")],
        );
        assert!(
            e.starts_with("\"http://{{ db }}\": resolves to \"http://zoinks, Scooby!\""),
            "{e}"
        );
        let e = error(&["https://{{ nowhere }}"], &[]);
        assert_eq!(
            e,
            "\"https://{{ nowhere }}\": variable `nowhere` has no value"
        );
        let e = error(&["{{ h }}"], &[("h", "https://h:1/path")]);
        assert!(e.contains("{{ h }}") && e.contains("has a path"), "{e}");
    }
}
