//! The route table: host + longest path prefix + method.
//!
//! Generic over the route payload so the gateway can attach its own per-route state while
//! this crate stays free of proxy types.

use std::sync::Arc;

/// What a route matches. Built once at config load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Lower-case host names without port; `*.example.com` matches one or more labels
    /// in front of `example.com`. Empty: any host.
    pub hosts: Vec<String>,
    /// Path prefix, matched on segment boundaries: `/orders` matches `/orders`,
    /// `/orders/1` and `/orders?x`, not `/ordersx`. `/` matches every path.
    pub path_prefix: String,
    /// Upper-case methods; empty: any method.
    pub methods: Vec<String>,
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Matched<'a, T> {
    /// The route that serves the request.
    Route(&'a Arc<T>),
    /// A route serves this host and path, but not this method (405).
    MethodNotAllowed,
    /// No route serves this host and path (404).
    NotFound,
}

/// Routes sorted so that the first match is the most specific: longest prefix first,
/// host-bound routes before host-less ones of the same prefix.
#[derive(Debug)]
pub struct RouteTable<T> {
    routes: Vec<(RouteMatch, Arc<T>)>,
}

impl<T> RouteTable<T> {
    /// Builds the table. Order of `routes` only matters between routes with the same
    /// prefix and host specificity, where the first listed wins.
    pub fn new(routes: Vec<(RouteMatch, Arc<T>)>) -> Self {
        let mut routes = routes;
        routes.sort_by(|(a, _), (b, _)| {
            (b.path_prefix.len(), &a.path_prefix, a.hosts.is_empty()).cmp(&(
                a.path_prefix.len(),
                &b.path_prefix,
                b.hosts.is_empty(),
            ))
        });
        RouteTable { routes }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for a request. `host` is the request's host without port (any
    /// case); `path` the path without query.
    ///
    /// The longest matching prefix decides: when it exists only for other methods the
    /// answer is `MethodNotAllowed`, never a shorter prefix (a shorter prefix usually has
    /// a weaker policy).
    pub fn matches(&self, host: &str, path: &str, method: &str) -> Matched<'_, T> {
        let mut best: Option<(&str, bool)> = None;
        for (m, route) in &self.routes {
            if let Some((prefix, host_bound)) = best {
                if m.path_prefix != prefix || m.hosts.is_empty() == host_bound {
                    break;
                }
            }
            if !prefix_matches(&m.path_prefix, path) || !host_matches(&m.hosts, host) {
                continue;
            }
            best = Some((&m.path_prefix, !m.hosts.is_empty()));
            if m.methods.is_empty() || m.methods.iter().any(|x| x == method) {
                return Matched::Route(route);
            }
        }
        if best.is_some() {
            Matched::MethodNotAllowed
        } else {
            Matched::NotFound
        }
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn host_matches(hosts: &[String], host: &str) -> bool {
    hosts.is_empty()
        || hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            None => h.eq_ignore_ascii_case(host),
        })
}

/// Refuses request paths that an upstream might resolve differently from the route
/// table: dot segments (`/a/../b`, also percent-encoded), encoded slashes or backslashes,
/// backslashes, and anything not starting with `/`. Such a request gets 400 and never
/// reaches a route, so a prefix rule cannot be sidestepped.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    // One pass over the bytes and one over the segments, without allocating: this runs on
    // every request.
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err("the request path must start with '/'");
    }
    let mut encoded_separator = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\\' || b < 0x21 || b == 0x7f {
            return Err("the request path has a forbidden character");
        }
        if b == b'%' {
            if let Some(&[hi, lo]) = bytes.get(i + 1..i + 3) {
                // `| 0x20` lower-cases a letter and leaves a digit as it is.
                encoded_separator |=
                    matches!((hi, lo | 0x20), (b'2', b'f') | (b'5', b'c') | (b'0', b'0'));
            }
        }
    }
    if encoded_separator {
        return Err("the request path has an encoded slash, backslash or NUL");
    }
    if path.split('/').any(is_dot_segment) {
        return Err("the request path has a dot segment");
    }
    Ok(())
}

/// `.` or `..`, each dot possibly percent-encoded (`%2e`, `%2E`).
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', e, tail @ ..] if *e | 0x20 == b'e' => tail,
            _ => return false,
        };
        dots += 1;
    }
    matches!(dots, 1 | 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(hosts: &[&str], prefix: &str, methods: &[&str]) -> RouteMatch {
        RouteMatch {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            path_prefix: prefix.into(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn table() -> RouteTable<&'static str> {
        RouteTable::new(vec![
            (rm(&[], "/", &[]), Arc::new("root")),
            (rm(&[], "/orders", &["GET"]), Arc::new("orders-read")),
            (rm(&[], "/orders", &["POST"]), Arc::new("orders-write")),
            (
                rm(&["api.example.com"], "/orders", &["GET"]),
                Arc::new("orders-api"),
            ),
            (rm(&[], "/orders/admin", &["POST"]), Arc::new("admin")),
            (rm(&["*.example.net"], "/w", &[]), Arc::new("wild")),
            (
                rm(&[], "/zzzzzz", &[]),
                Arc::new("same-length-other-prefix"),
            ),
            (rm(&[], "/orders", &["DELETE"]), Arc::new("orders-delete")),
        ])
    }

    fn name(m: Matched<'_, &'static str>) -> &'static str {
        match m {
            Matched::Route(r) => r,
            Matched::MethodNotAllowed => "405",
            Matched::NotFound => "404",
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(name(t.matches("x", "/orders/admin/1", "POST")), "admin");
        assert_eq!(name(t.matches("x", "/orders/1", "GET")), "orders-read");
        assert_eq!(name(t.matches("x", "/other", "GET")), "root");
    }

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        let t = table();
        assert_eq!(name(t.matches("x", "/ordersx", "GET")), "root");
        assert_eq!(name(t.matches("x", "/orders", "GET")), "orders-read");
    }

    #[test]
    fn method_selects_among_routes_of_the_same_prefix() {
        assert_eq!(
            name(table().matches("x", "/orders", "POST")),
            "orders-write"
        );
        // Listed after a route with another prefix of the same length: still found.
        assert_eq!(
            name(table().matches("x", "/orders", "DELETE")),
            "orders-delete"
        );
    }

    #[test]
    fn longer_prefix_with_other_method_is_405_not_a_fallback() {
        assert_eq!(name(table().matches("x", "/orders/admin", "GET")), "405");
    }

    #[test]
    fn host_bound_route_beats_hostless_and_host_is_case_insensitive() {
        let t = table();
        assert_eq!(
            name(t.matches("API.example.com", "/orders", "GET")),
            "orders-api"
        );
        // The host-bound route has no POST: 405, not a fall-back to the host-less route.
        assert_eq!(name(t.matches("api.example.com", "/orders", "POST")), "405");
    }

    #[test]
    fn wildcard_host_needs_a_label_in_front() {
        let t = table();
        assert_eq!(name(t.matches("a.example.net", "/w", "GET")), "wild");
        assert_eq!(name(t.matches("example.net", "/w", "GET")), "root");
        assert_eq!(name(t.matches("aexample.net", "/w", "GET")), "root");
    }

    #[test]
    fn empty_table_is_404() {
        let t: RouteTable<()> = RouteTable::new(vec![]);
        assert!(matches!(t.matches("x", "/", "GET"), Matched::NotFound));
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for p in [
            "/orders/../admin",
            "/orders/%2e%2E/admin",
            "/orders/.",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "orders",
            "/a%00",
            "/a b",
        ] {
            assert!(check_path(p).is_err(), "{p}");
        }
        for p in [
            "/",
            "/orders/1",
            "/a.b/c..d",
            "/%41",
            "/...",
            "/%2e%2e%2e",
            "/a%2",
            "/a%",
        ] {
            assert!(check_path(p).is_ok(), "{p}");
        }
    }

    /// The first, allocating version of `check_path`, kept as the specification.
    fn check_path_reference(path: &str) -> Result<(), &'static str> {
        if !path.starts_with('/') {
            return Err("the request path must start with '/'");
        }
        if path.bytes().any(|b| b == b'\\' || b < 0x21 || b == 0x7f) {
            return Err("the request path has a forbidden character");
        }
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
            return Err("the request path has an encoded slash, backslash or NUL");
        }
        for segment in lower.split('/') {
            let decoded = segment.replace("%2e", ".");
            if decoded == "." || decoded == ".." {
                return Err("the request path has a dot segment");
            }
        }
        Ok(())
    }

    #[test]
    fn check_path_agrees_with_the_reference_on_every_short_path() {
        // Every path of up to six characters over an alphabet that can spell each refused
        // form, in both cases: same verdict and same reason.
        const ALPHABET: &[u8] = b"/.%2eEfF5c0a\\ ";
        let mut checked = 0;
        let mut path = Vec::new();
        for len in 0..=5u32 {
            for n in 0..ALPHABET.len().pow(len) {
                path.clear();
                path.push(b'/');
                let mut k = n;
                for _ in 0..len {
                    path.push(ALPHABET[k % ALPHABET.len()]);
                    k /= ALPHABET.len();
                }
                let p = std::str::from_utf8(&path).unwrap();
                assert_eq!(check_path(p), check_path_reference(p), "{p:?}");
                checked += 1;
            }
        }
        assert!(checked > 100_000);
        for p in [
            "",
            "x",
            "/%2E",
            "/%2e%2E",
            "/a/%2E./b",
            "/a%2F",
            "/%5C",
            "/%00",
            "/\u{7f}",
        ] {
            assert_eq!(check_path(p), check_path_reference(p), "{p:?}");
        }
    }
}
