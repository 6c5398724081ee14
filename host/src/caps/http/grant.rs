//! `http_urls` and `http_credentials`: the URLs a plugin may read, and the
//! token files whose contents go to some of them.
//!
//! A granted URL is a prefix: scheme, host and port exactly, and the path
//! by whole segments (`http://127.0.0.1:3000/health` allows `/health` and
//! `/health/live`, never `/healthz` or `/admin`). A requested URL is parsed
//! and normalised as a browser would (`..`, `%2e%2e`) before it is matched,
//! and one that hides a separator (`%2f`, `%5c`, a backslash) or carries
//! credentials of its own is refused outright.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use url::Url;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// URL prefixes the plugin may GET and HEAD: `http://127.0.0.1:3000/health`.
    #[serde(default, rename = "http_urls")]
    pub urls: Vec<String>,
    /// A file holding a bearer token, per URL prefix (each also in
    /// `http_urls`): sent only to URLs under that prefix.
    #[serde(default, rename = "http_credentials")]
    pub credentials: BTreeMap<String, PathBuf>,
}

/// A granted URL prefix, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct UrlPrefix {
    scheme: String,
    host: String,
    port: u16,
    segments: Vec<String>,
}

impl UrlPrefix {
    /// `text` as a grant: http or https, a host, no credentials, query or fragment.
    pub fn parse(text: &str) -> Result<UrlPrefix, String> {
        let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https URLs".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("holds credentials; put a token in http_credentials".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("a prefix has no query or fragment".into());
        }
        if hides_a_separator(url.path()) {
            return Err("its path hides a separator (%2f, %5c or \\)".into());
        }
        UrlPrefix::of(&url).ok_or_else(|| "has no host".into())
    }

    fn of(url: &Url) -> Option<UrlPrefix> {
        let mut segments: Vec<String> = url.path_segments()?.map(String::from).collect();
        while segments.last().is_some_and(String::is_empty) {
            segments.pop(); // `/api/` and `/api` are the same prefix
        }
        Some(UrlPrefix {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
            segments,
        })
    }

    /// Whether `url` (already parsed and normalised) is under this prefix.
    pub fn covers(&self, url: &Url) -> bool {
        let Some(requested) = UrlPrefix::of(url) else {
            return false;
        };
        requested.scheme == self.scheme
            && requested.host == self.host
            && requested.port == self.port
            && requested.segments.starts_with(&self.segments)
    }
}

/// A path that a server might split where remedy did not: an encoded slash
/// or backslash, or a backslash itself.
fn hides_a_separator(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c") || path.contains('\\')
}

/// Why `text` may not be requested under `grant`, or the URL to request.
pub fn check_url(grant: &HttpGrant, text: &str) -> Result<Url, String> {
    if text.contains('\\') {
        return Err(format!("{text}: a backslash in a URL is refused"));
    }
    let url = Url::parse(text).map_err(|e| format!("{text}: not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text}: a URL may not carry credentials; the operator grants a token in http_credentials"
        ));
    }
    if hides_a_separator(url.path()) {
        return Err(format!(
            "{text}: the path hides a separator (%2f or %5c), which a server may split elsewhere"
        ));
    }
    let granted = grant
        .urls
        .iter()
        .filter_map(|prefix| UrlPrefix::parse(prefix).ok())
        .any(|prefix| prefix.covers(&url));
    if granted {
        Ok(url)
    } else {
        Err(format!("{url} is not under any granted URL (http_urls)"))
    }
}

/// The token file for `url`: the longest credentials prefix covering it.
pub fn token_file<'g>(grant: &'g HttpGrant, url: &Url) -> Option<&'g PathBuf> {
    grant
        .credentials
        .iter()
        .filter_map(|(prefix, file)| Some((UrlPrefix::parse(prefix).ok()?, file)))
        .filter(|(prefix, _)| prefix.covers(url))
        .max_by_key(|(prefix, _)| prefix.segments.len())
        .map(|(_, file)| file)
}

/// Every problem with the grant, each naming its key.
pub fn problems(grant: &HttpGrant) -> Vec<String> {
    let mut problems: Vec<String> = grant
        .urls
        .iter()
        .filter_map(|text| {
            UrlPrefix::parse(text)
                .err()
                .map(|why| format!("grants.http_urls = {text:?}: {why}"))
        })
        .collect();
    for (prefix, file) in &grant.credentials {
        let inside = UrlPrefix::parse(prefix).is_ok_and(|credited| {
            grant.urls.iter().any(|granted| {
                UrlPrefix::parse(granted).is_ok_and(|granted| {
                    granted.scheme == credited.scheme
                        && granted.host == credited.host
                        && granted.port == credited.port
                        && credited.segments.starts_with(&granted.segments)
                })
            })
        });
        if !inside {
            problems.push(format!(
                "grants.http_credentials: {prefix:?} is not under a granted URL (http_urls)"
            ));
        }
        if !file.is_absolute() {
            problems.push(format!(
                "grants.http_credentials: {:?} must be an absolute path",
                file.display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(urls: &[&str]) -> HttpGrant {
        HttpGrant {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            ..HttpGrant::default()
        }
    }

    #[test]
    fn a_granted_prefix_allows_its_own_path_by_whole_segments() {
        let health = grant(&["http://127.0.0.1:3000/health", "http://node-exporter:9100/metrics"]);
        for allowed in [
            "http://127.0.0.1:3000/health",
            "http://127.0.0.1:3000/health/",
            "http://127.0.0.1:3000/health/live?verbose=1",
            "HTTP://127.0.0.1:3000/health",
            "http://NODE-EXPORTER:9100/metrics",
            "http://127.0.0.1:3000/admin/../health",
        ] {
            assert!(check_url(&health, allowed).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn tricks_aimed_past_the_prefix_are_refused() {
        let health = grant(&["http://127.0.0.1:3000/health"]);
        for refused in [
            "http://127.0.0.1:3000/healthz",
            "http://127.0.0.1:3000/health/../admin",
            "http://127.0.0.1:3000/health/%2e%2e/admin",
            "http://127.0.0.1:3000/health/%2E%2E/admin",
            "http://127.0.0.1:3000/health%2f..%2fadmin",
            "http://127.0.0.1:3000/health/..%5cadmin",
            "http://127.0.0.1:3000/health\\..\\admin",
            "http://127.0.0.1:3000//health",
            "http://127.0.0.1:3000//evil.example/health",
            "http://127.0.0.1:3001/health",
            "https://127.0.0.1:3000/health",
            "http://127.0.0.1/health",
            "http://localhost:3000/health",
            "http://127.0.0.1:3000@evil.example/health",
            "http://evil.example#@127.0.0.1:3000/health",
            "http://user:pw@127.0.0.1:3000/health",
            "http://127.0.0.1.evil.example:3000/health",
            "file:///etc/passwd",
            "gopher://127.0.0.1:3000/health",
            "/health",
            "",
        ] {
            assert!(check_url(&health, refused).is_err(), "{refused} was allowed");
        }
    }

    #[test]
    fn grants_are_checked_and_tokens_go_only_under_their_prefix() {
        let mut credited = grant(&["http://127.0.0.1:3000/"]);
        credited.credentials.insert(
            "http://127.0.0.1:3000/admin".into(),
            PathBuf::from("/etc/remedy/api-token"),
        );
        assert!(problems(&credited).is_empty(), "{:?}", problems(&credited));
        let admin = Url::parse("http://127.0.0.1:3000/admin/stats").unwrap();
        let health = Url::parse("http://127.0.0.1:3000/health").unwrap();
        assert!(token_file(&credited, &admin).is_some());
        assert!(token_file(&credited, &health).is_none());

        let bad = HttpGrant {
            urls: vec![
                "ftp://host/x".into(),
                "http://u:p@host/x".into(),
                "http://host/x?q=1".into(),
                "http://host/a%2fb".into(),
                "not a url".into(),
            ],
            credentials: [("http://other:1/".to_string(), PathBuf::from("token"))].into(),
        };
        let found = problems(&bad);
        assert_eq!(found.len(), 7, "{found:#?}");
        assert!(found.iter().all(|p| p.starts_with("grants.http_")), "{found:#?}");
    }
}
