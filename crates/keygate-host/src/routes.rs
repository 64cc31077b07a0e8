//! HTTP route matching with Spin's rules: exact routes beat wildcards, the
//! longest wildcard prefix wins, `:name` segments capture, a trailing slash on
//! the request path is ignored for exact routes and kept in the path info of
//! wildcard routes. Duplicate routes: the last one declared wins, with a
//! warning, as in Spin.

use anyhow::{Result, bail};

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    component: String,
    /// As written in the manifest.
    raw: String,
    /// With a leading `/` and without a trailing one (Spin's "based route").
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// What a request path matched, with the values for Spin's request headers.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'r> {
    pub component: &'r str,
    /// `spin-matched-route`
    pub matched_route: &'r str,
    /// `spin-raw-component-route`
    pub raw_route: &'r str,
    /// `spin-component-route`: the raw route without its trailing `/...`
    pub component_route: &'r str,
    /// `spin-path-info`: the part of the path the wildcard matched
    pub path_info: String,
    /// `spin-path-match-<name>` for each `:name` segment
    pub captures: Vec<(&'r str, String)>,
}

impl Router {
    /// Builds the router from `(route, component id)` pairs in manifest order.
    /// Returns the router and a warning per duplicate route.
    pub fn build(routes: &[(String, String)]) -> Result<(Self, Vec<String>)> {
        let mut built: Vec<Route> = Vec::new();
        let mut warnings = Vec::new();
        for (raw, component) in routes {
            let route = Route::parse(raw, component)?;
            if let Some(existing) = built.iter_mut().find(|r| r.raw == route.raw) {
                warnings.push(format!(
                    "route {raw:?} is declared for both `{}` and `{component}`; `{component}` handles it",
                    existing.component
                ));
                *existing = route;
            } else {
                built.push(route);
            }
        }
        Ok((Self { routes: built }, warnings))
    }

    /// The best route for a request path (without its query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        let request: Vec<&str> = trimmed.split('/').skip(1).collect();
        let mut best: Option<(&Route, (bool, usize, usize))> = None;
        for route in &self.routes {
            if !route.matches(&request) {
                continue;
            }
            let rank = route.rank();
            if best.as_ref().is_none_or(|(_, b)| rank > *b) {
                best = Some((route, rank));
            }
        }
        let (route, _) = best?;
        Some(route.to_match(path, &request))
    }

    /// `(route, component)` for the start-up banner, as Spin prints them.
    pub fn describe(&self) -> Vec<(String, &str)> {
        self.routes
            .iter()
            .map(|r| {
                let shown = if r.wildcard {
                    format!(
                        "{} (wildcard)",
                        r.based.strip_suffix("/...").unwrap_or(&r.based)
                    )
                } else {
                    r.based.clone()
                };
                (shown, r.component.as_str())
            })
            .collect()
    }
}

impl Route {
    fn parse(raw: &str, component: &str) -> Result<Self> {
        let absolute = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("/{raw}")
        };
        let based = absolute.strip_suffix('/').unwrap_or(&absolute).to_string();
        let (prefix, wildcard) = match based
            .strip_suffix("/...")
            .or_else(|| based.strip_suffix("/*"))
        {
            Some(prefix) => (prefix, true),
            None if based == "/..." || based == "/*" => ("", true),
            None => (based.as_str(), false),
        };
        let mut segments = Vec::new();
        for segment in prefix.split('/').skip(1) {
            if segment.is_empty() || segment == "..." || segment == "*" {
                bail!(
                    "route {raw:?} of component `{component}`: empty or misplaced wildcard segment"
                );
            }
            segments.push(match segment.strip_prefix(':') {
                Some("") => bail!("route {raw:?} of component `{component}`: `:` needs a name"),
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(segment.to_string()),
            });
        }
        Ok(Self {
            component: component.to_string(),
            raw: raw.to_string(),
            based,
            segments,
            wildcard,
        })
    }

    fn matches(&self, request: &[&str]) -> bool {
        let fits = if self.wildcard {
            request.len() >= self.segments.len()
        } else {
            request.len() == self.segments.len()
        };
        fits && self.segments.iter().zip(request).all(|(s, r)| match s {
            Segment::Literal(l) => l == r,
            Segment::Param(_) => !r.is_empty(),
        })
    }

    /// Exact before wildcard, then more segments, then more literal segments.
    fn rank(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, self.segments.len(), literals)
    }

    fn to_match(&self, path: &str, request: &[&str]) -> RouteMatch<'_> {
        let path_info = if self.wildcard {
            let rest = request[self.segments.len()..].join("/");
            match (rest.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{rest}"),
                (false, true) => format!("/{rest}/"),
            }
        } else {
            String::new()
        };
        let captures = self
            .segments
            .iter()
            .zip(request)
            .filter_map(|(s, r)| match s {
                Segment::Param(name) => Some((name.as_str(), (*r).to_string())),
                Segment::Literal(_) => None,
            })
            .collect();
        RouteMatch {
            component: &self.component,
            matched_route: &self.based,
            raw_route: &self.raw,
            component_route: self.raw.strip_suffix("/...").unwrap_or(&self.raw),
            path_info,
            captures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let pairs: Vec<(String, String)> = routes
            .iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect();
        Router::build(&pairs).unwrap().0
    }

    fn component<'a>(r: &'a Router, path: &str) -> Option<&'a str> {
        r.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes_match_only_their_path() {
        let r = router(&[("/foo", "foo"), ("/foo/bar", "foobar")]);
        assert_eq!(component(&r, "/foo"), Some("foo"));
        assert_eq!(component(&r, "/foo/bar"), Some("foobar"));
        assert_eq!(component(&r, "/foo/baz"), None);
        assert_eq!(component(&r, "/foobar"), None);
        assert_eq!(component(&r, "/"), None);
        assert_eq!(r.route("/foo").unwrap().path_info, "");
    }

    #[test]
    fn trailing_slash_is_ignored_for_exact_routes() {
        let r = router(&[("/foo/", "foo")]);
        assert_eq!(component(&r, "/foo"), Some("foo"));
        assert_eq!(component(&r, "/foo/"), Some("foo"));
        assert_eq!(r.route("/foo").unwrap().matched_route, "/foo");
    }

    #[test]
    fn wildcard_matches_prefix_and_reports_path_info() {
        let r = router(&[("/test/...", "t")]);
        let info = |p: &str| r.route(p).unwrap().path_info;
        assert_eq!(info("/test"), "");
        assert_eq!(info("/test/"), "/");
        assert_eq!(info("/test/hello"), "/hello");
        assert_eq!(info("/test/hello/"), "/hello/");
        assert_eq!(info("/test/a/b"), "/a/b");
        assert_eq!(component(&r, "/testing"), None);
    }

    #[test]
    fn root_wildcard_catches_everything() {
        let r = router(&[("/...", "all")]);
        assert_eq!(component(&r, "/"), Some("all"));
        assert_eq!(component(&r, "/a/b/"), Some("all"));
        let m = r.route("/env/api").unwrap();
        assert_eq!(m.path_info, "/env/api");
        assert_eq!(m.matched_route, "/...");
        assert_eq!(m.component_route, "");
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[
            ("/...", "root"),
            ("/one/...", "one"),
            ("/one/two/three/...", "three"),
            ("/one/two/...", "two"),
            ("/one", "one_exact"),
        ]);
        assert_eq!(component(&r, "/one"), Some("one_exact"));
        assert_eq!(component(&r, "/one/"), Some("one_exact"));
        assert_eq!(component(&r, "/one/x"), Some("one"));
        assert_eq!(component(&r, "/one/two/three/four"), Some("three"));
        assert_eq!(component(&r, "/one/two/x"), Some("two"));
        assert_eq!(component(&r, "/other"), Some("root"));
    }

    #[test]
    fn named_segments_capture_and_literals_win() {
        let r = router(&[
            ("/users/:id", "user"),
            ("/users/me", "me"),
            ("/users/:id/...", "sub"),
        ]);
        assert_eq!(component(&r, "/users/me"), Some("me"));
        let m = r.route("/users/42").unwrap();
        assert_eq!(
            (m.component, m.captures.clone()),
            ("user", vec![("id", "42".to_string())])
        );
        let m = r.route("/users/42/keys/1").unwrap();
        assert_eq!((m.component, m.path_info.as_str()), ("sub", "/keys/1"));
    }

    #[test]
    fn spin_header_values_follow_spin() {
        let r = router(&[("/foo/...", "c")]);
        let m = r.route("/foo/bar").unwrap();
        assert_eq!(m.matched_route, "/foo/...");
        assert_eq!(m.raw_route, "/foo/...");
        assert_eq!(m.component_route, "/foo");
        assert_eq!(m.path_info, "/bar");
    }

    #[test]
    fn duplicates_last_wins_with_a_warning() {
        let pairs = vec![
            ("/foo".to_string(), "first".to_string()),
            ("/foo".to_string(), "second".to_string()),
        ];
        let (r, warnings) = Router::build(&pairs).unwrap();
        assert_eq!(component(&r, "/foo"), Some("second"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("first") && warnings[0].contains("second"));
    }

    #[test]
    fn malformed_routes_are_errors() {
        for bad in ["/a//b", "/a/.../b", "/:"] {
            let pairs = vec![(bad.to_string(), "c".to_string())];
            assert!(Router::build(&pairs).is_err(), "{bad}");
        }
    }
}
