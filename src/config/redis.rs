//! The `redis` section (config.md §7.1): the store's connection and the lifetimes of its keys.

use serde::Deserialize;

use super::environment::default_instance_id;
use super::path::YamlPath;
use super::read::{at_least, seconds, Problems};

/// The `redis` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:pass@]host[:port][/db]`, `rediss://…` (TLS) or `unix:///path`; env
    /// `REDIS_URL`. None (or `""`) anywhere → the embedded in-memory store.
    #[serde(default)]
    pub url: Option<String>,
    /// Treat `url` as a seed node of a Redis Cluster (not available in this build yet).
    #[serde(default)]
    pub cluster: bool,
    /// Store `vcon:{uuid}` as RedisJSON documents, for drop-in use beside a Python deployment
    /// on redis-stack.
    #[serde(default)]
    pub json_module: bool,
    /// Prepended to every key; must be `""` to share Redis with Python servers.
    #[serde(default)]
    pub key_prefix: String,
    /// Name of the created-at index; env `VCON_SORTED_SET_NAME`.
    #[serde(default = "default_sorted_set")]
    pub sorted_set: String,
    /// Seconds (≥ 0, 0 = never) a vCon lives once no chain holds it; env `VCON_REDIS_EXPIRY`.
    #[serde(default = "one_hour")]
    pub vcon_ttl: u64,
    /// Seconds (≥ 0, 0 = never) a vCon lives in a DLQ; env `VCON_DLQ_EXPIRY`.
    #[serde(default = "one_week")]
    pub dlq_ttl: u64,
    /// Seconds (≥ 1) the party index sets live, renewed on each addition; env
    /// `VCON_INDEX_EXPIRY`.
    #[serde(default = "one_day", deserialize_with = "at_least::<_, u64, 1>")]
    pub index_ttl: u64,
    /// Read vCons missing from the store back from storages; env
    /// `VCON_STORAGE_FALLBACK_ENABLED`.
    #[serde(default = "yes")]
    pub storage_fallback: bool,
    /// This instance's name in processing lists and heartbeats (letters, digits, `-`, `_`,
    /// `.`); env `CONSERVER_INSTANCE_ID`. Default `<hostname>-<pid>-<4 random hex digits>`.
    #[serde(default = "default_instance_id")]
    pub instance_id: String,
    /// Seconds (≥ 5) the heartbeat lives; refreshed every third of it.
    #[serde(default = "thirty", deserialize_with = "at_least::<_, u64, 5>")]
    pub heartbeat_ttl: u64,
    /// Seconds (≥ 0) `serve` waits for Redis at start, trying again with backoff, before it
    /// gives up; 0 = wait forever. Meanwhile `/health` answers and `/ready` is 503.
    #[serde(default = "sixty_seconds", deserialize_with = "seconds")]
    pub connect_timeout: std::time::Duration,
}

fn sixty_seconds() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

fn default_sorted_set() -> String {
    "vcons".to_owned()
}

fn one_hour() -> u64 {
    3600
}

fn one_week() -> u64 {
    604_800
}

fn one_day() -> u64 {
    86_400
}

fn yes() -> bool {
    true
}

fn thirty() -> u64 {
    30
}

impl RedisSettings {
    /// The checks a type cannot express; `url: ""` (from `${REDIS_URL:-}`) means no URL.
    pub fn check(&mut self, at: &YamlPath, problems: &mut Problems) {
        if self.url.as_deref() == Some("") {
            self.url = None;
        }
        if let Some(problem) = self.url.as_deref().and_then(url_problem) {
            problems.error(&at.key("url"), problem);
        }
        if self.cluster {
            problems.error(
                &at.key("cluster"),
                "Redis Cluster is not available in this build yet: point redis.url at one Redis \
                 server",
            );
        }
        if self.url.is_none() && self.json_module {
            problems.error(
                &at.key("json_module"),
                "json_module needs a Redis server, but no Redis URL is configured (redis.url / \
                 REDIS_URL), so the embedded in-memory store is used",
            );
        }
        if self.key_prefix.contains(['{', '}']) || self.key_prefix.chars().any(char::is_whitespace)
        {
            problems.error(
                &at.key("key_prefix"),
                "must not contain whitespace, '{' or '}' (they would break Redis Cluster hash tags)",
            );
        }
        if self.sorted_set.is_empty() {
            problems.error(&at.key("sorted_set"), "must not be empty");
        }
        let id = &self.instance_id;
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            problems.error(
                &at.key("instance_id"),
                format!("instance id {id:?} must be non-empty letters, digits, '-', '_' and '.'"),
            );
        }
    }
}

/// Why `url` is not a Redis URL conserver can use, if it is not.
fn url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not echoed: a malformed URL may still hold a password.
        return Some(
            "is not a Redis URL: expected redis://host[:port][/db], rediss://… or unix:///path"
                .to_owned(),
        );
    };
    match scheme {
        "redis" | "rediss"
            if rest
                .rsplit('@')
                .next()
                .is_some_and(|host| !host.is_empty() && !host.starts_with('/')) =>
        {
            None
        }
        "redis" | "rediss" => Some(format!(
            "Redis URL {:?} names no host",
            super::redact::url_secrets(url)
        )),
        "unix" if rest.starts_with('/') => None,
        "unix" => Some(
            "a unix:// Redis URL needs an absolute socket path (unix:///path/to/redis.sock)"
                .to_owned(),
        ),
        other => Some(format!(
            "Redis URL scheme {other:?} is not supported: use redis, rediss or unix"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        for good in [
            "redis://localhost",
            "redis://:pw@h:6379/1",
            "rediss://u:p@h",
            "unix:///tmp/redis.sock",
        ] {
            assert_eq!(url_problem(good), None, "{good}");
        }
        assert!(url_problem("http://x").unwrap().contains("\"http\""));
        assert!(url_problem("localhost:6379").is_some());
        assert!(url_problem("redis://").is_some());
        assert!(url_problem("unix://relative").is_some());
        // A password in a bad URL is not echoed.
        assert!(!url_problem("redis:/u:secret@h").unwrap().contains("secret"));
    }
}
