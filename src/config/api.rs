//! The `api` section (config.md §7.2): the HTTP server, and who may use it (api.md §2).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::Deserialize;

use super::path::YamlPath;
use super::read::{at_least, Problems};
use super::Env;

/// First path segments of the routes (api.md §3): a prefix starting with one of them would
/// make `/<prefix>/…` and a root route ambiguous.
const ROUTE_SEGMENTS: &[&str] = &[
    "vcon",
    "vcons",
    "dlq",
    "chains",
    "config",
    "health",
    "ready",
    "version",
    "metrics",
    "openapi.json",
    "stats",
    "index_vcons",
];

/// The `api` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Listen address `host:port` (`[::]:8000` for IPv6); env `CONSERVER_BIND`.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Second base path: starts with `/`, or `""` (root only; a configured `/` is `""` too);
    /// no trailing slash; env `API_ROOT_PATH`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// API tokens. Compiled: the union of `CONSERVER_API_TOKEN`, the token file's lines and
    /// these, in that order, without duplicates.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// File of tokens, one per line (blank lines and `#` comments skipped); env
    /// `CONSERVER_API_TOKEN_FILE`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The auth header (compiled lowercase); env `CONSERVER_HEADER_NAME`.
    #[serde(default = "default_header_name")]
    pub header_name: String,
    /// Request body limit in bytes (≥ 1024).
    #[serde(
        default = "sixty_four_mib",
        deserialize_with = "at_least::<_, usize, 1024>"
    )]
    pub max_body_bytes: usize,
    /// Serve without tokens on a non-loopback address.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Let `POST /config` remove or replace every API token, or change `api.bind` or
    /// `redis.url` (the running configuration's value decides).
    #[serde(default)]
    pub allow_auth_change_by_api: bool,
    /// Accept JWS/JWE vCons on POST.
    #[serde(default = "yes")]
    pub accept_signed: bool,
    /// CORS origins.
    #[serde(default = "any_origin")]
    pub cors_allow_origins: Vec<String>,
}

fn default_bind() -> String {
    "127.0.0.1:8000".to_owned()
}

fn default_prefix() -> String {
    "/api".to_owned()
}

fn default_header_name() -> String {
    "x-conserver-api-token".to_owned()
}

fn sixty_four_mib() -> usize {
    64 * 1024 * 1024
}

fn yes() -> bool {
    true
}

fn any_origin() -> Vec<String> {
    vec!["*".to_owned()]
}

impl ApiSettings {
    /// The checks a type cannot express, the canonical forms (prefix, header name) and the
    /// token set (api.md §2).
    pub fn check(&mut self, at: &YamlPath, env: &Env, problems: &mut Problems) {
        if let Some(problem) = bind_problem(&self.bind) {
            problems.error(&at.key("bind"), problem);
        }
        match normalize_prefix(&self.prefix) {
            Ok(prefix) => self.prefix = prefix,
            Err(problem) => problems.error(&at.key("prefix"), problem),
        }
        if let Some(problem) = header_name_problem(&self.header_name) {
            problems.error(&at.key("header_name"), problem);
        }
        self.header_name = self.header_name.to_ascii_lowercase();
        self.tokens = self.token_set(at, env, problems);
    }

    /// `CONSERVER_API_TOKEN`, the token file's lines, `api.tokens`, in that order, without
    /// duplicates.
    fn token_set(&self, at: &YamlPath, env: &Env, problems: &mut Problems) -> Vec<String> {
        let mut tokens: Vec<String> = env
            .get("CONSERVER_API_TOKEN")
            .map(str::to_owned)
            .into_iter()
            .collect();
        if let Some(file) = &self.token_file {
            match std::fs::read_to_string(file) {
                Ok(text) => tokens.extend(token_lines(&text)),
                Err(error) => problems.error(
                    &at.key("token_file"),
                    format!(
                        "cannot read token file {:?}: {error}",
                        file.display().to_string()
                    ),
                ),
            }
        }
        for (i, token) in self.tokens.iter().enumerate() {
            if token.trim().is_empty() {
                problems.error(&at.key("tokens").index(i), "a token must not be empty");
            } else {
                tokens.push(token.clone());
            }
        }
        let mut unique = Vec::with_capacity(tokens.len());
        for token in tokens {
            if !unique.contains(&token) {
                unique.push(token);
            }
        }
        unique
    }
}

/// The tokens of a token file: one per line, trimmed; blank lines and `#` comments skipped.
fn token_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
}

/// Why `bind` is not `host:port`, if it is not.
fn bind_problem(bind: &str) -> Option<String> {
    let expected = "expected host:port, such as 127.0.0.1:8000, 0.0.0.0:8000 or [::]:8000";
    let port = if let Some(rest) = bind.strip_prefix('[') {
        let Some((host, port)) = rest.split_once("]:") else {
            return Some(format!("{bind:?}: {expected}"));
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Some(format!("{host:?} is not an IPv6 address"));
        }
        port
    } else {
        let Some((host, port)) = bind.rsplit_once(':') else {
            return Some(format!("{bind:?} has no port: {expected}"));
        };
        if host.contains(':') {
            return Some(format!(
                "{bind:?}: write an IPv6 address in brackets, such as [::]:8000"
            ));
        }
        let hostname = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if host.parse::<Ipv4Addr>().is_err() && !hostname {
            return Some(format!(
                "{host:?} is not a host name or IP address: {expected}"
            ));
        }
        port
    };
    port.parse::<u16>()
        .is_err()
        .then(|| format!("port {port:?} is not a number from 0 to 65535"))
}

/// `api.prefix` in its canonical form: `""` (root only) or `/segment[/segment…]` without a
/// trailing slash; or why it cannot be one.
fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let Some(segments) = trimmed.strip_prefix('/') else {
        return Err(format!(
            "prefix {prefix:?} must start with '/' (or be \"\" for the root only)"
        ));
    };
    if segments.split('/').any(str::is_empty) {
        return Err(format!("prefix {prefix:?} has an empty path segment"));
    }
    if let Some(bad) = segments
        .chars()
        .find(|c| c.is_whitespace() || "?#%{}\\".contains(*c))
    {
        return Err(format!("prefix {prefix:?} must not contain {bad:?}"));
    }
    let first = segments.split('/').next().unwrap_or_default();
    if ROUTE_SEGMENTS.contains(&first) {
        return Err(format!("prefix {prefix:?} begins with /{first}, the start of a route; routes would be ambiguous"));
    }
    Ok(trimmed.to_owned())
}

/// Why `name` cannot be an HTTP header name, if it cannot (RFC 9110 token characters).
fn header_name_problem(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    (!valid).then(|| format!("{name:?} is not a valid HTTP header name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_syntax() {
        for good in [
            "127.0.0.1:8000",
            "0.0.0.0:80",
            "[::]:8000",
            "[::1]:0",
            "localhost:8000",
            "my-host.local:9",
        ] {
            assert_eq!(bind_problem(good), None, "{good}");
        }
        for bad in [
            "8000",
            "127.0.0.1",
            ":8000",
            "::1:8000",
            "[::]8000",
            "[zz]:80",
            "host:99999",
            "host:http",
            "a b:80",
        ] {
            assert!(bind_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn prefix_shapes() {
        assert_eq!(normalize_prefix("/api"), Ok("/api".into()));
        assert_eq!(normalize_prefix("/api/"), Ok("/api".into()));
        assert_eq!(normalize_prefix("/"), Ok(String::new()));
        assert_eq!(normalize_prefix(""), Ok(String::new()));
        assert_eq!(
            normalize_prefix("/conserver/v1"),
            Ok("/conserver/v1".into())
        );
        assert!(normalize_prefix("api")
            .unwrap_err()
            .contains("start with '/'"));
        assert!(normalize_prefix("/vcon").unwrap_err().contains("/vcon"));
        assert!(normalize_prefix("/openapi.json/x").is_err());
        assert!(normalize_prefix("/health").is_err());
        assert!(normalize_prefix("/a//b").is_err());
        assert!(normalize_prefix("/a b").is_err());
        // Only whole segments clash: /vconserver is not /vcon.
        assert_eq!(normalize_prefix("/vconserver"), Ok("/vconserver".into()));
    }

    #[test]
    fn token_file_lines() {
        let tokens: Vec<String> = token_lines("  a \n\n# comment\nb\n   \n#c\n").collect();
        assert_eq!(tokens, ["a", "b"]);
    }

    #[test]
    fn header_names() {
        assert_eq!(header_name_problem("X-Conserver-Api-Token"), None);
        assert!(header_name_problem("bad header").is_some());
        assert!(header_name_problem("").is_some());
    }
}
