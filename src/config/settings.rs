//! The `redis`, `api` and `limits` sections and retry objects (config.md §7), with the
//! environment overrides of §8 applied on top of the file.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::checker::Checker;
use super::coerce::{Field, List, Object};
use super::environment;
use super::path::YamlPath;
use super::raw::{RawApi, RawLimits, RawRedis, RawRetry};
use super::{ApiSettings, Env, Limits, RedisSettings, Retry};

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

impl Default for Retry {
    /// The defaults of config.md §7.4, which match the Python server's per-module retries.
    fn default() -> Self {
        Retry {
            attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(65),
            multiplier: 2.0,
        }
    }
}

/// A retry object: keys not given keep their value in `base` (the defaults for
/// `limits.retry`, `limits.retry` for a module's own `retry`).
pub fn retry(
    ck: &mut Checker<'_>,
    path: &YamlPath,
    field: &Option<Field<Object<RawRetry>>>,
    base: &Retry,
) -> Retry {
    let raw = ck.section(path, field);
    let mut policy = base.clone();
    let attempts_path = path.key("attempts");
    if let Some(attempts) = ck.int_at_least(&attempts_path, &raw.attempts, 1) {
        match u32::try_from(attempts) {
            Ok(attempts) if attempts <= 100 => policy.attempts = attempts,
            _ => ck.error(
                &attempts_path,
                format!("must be an integer <= 100, found {attempts}"),
            ),
        }
    }
    if let Some(initial) = ck.seconds(&path.key("initial_backoff"), &raw.initial_backoff, false) {
        policy.initial_backoff = initial;
    }
    if let Some(max) = ck.seconds(&path.key("max_backoff"), &raw.max_backoff, false) {
        policy.max_backoff = max;
    }
    let multiplier_path = path.key("multiplier");
    if let Some(multiplier) = ck.get(&multiplier_path, &raw.multiplier) {
        if multiplier >= 1.0 {
            policy.multiplier = multiplier;
        } else {
            ck.error(
                &multiplier_path,
                format!("must be a number >= 1, found {multiplier}"),
            );
        }
    }
    if policy.max_backoff < policy.initial_backoff {
        // Blame the key written here; when both come from `base`, base was reported already.
        let blamed = if raw.max_backoff.is_some() {
            "max_backoff"
        } else {
            "initial_backoff"
        };
        if raw.max_backoff.is_some() || raw.initial_backoff.is_some() {
            ck.error(
                &path.key(blamed),
                format!(
                    "max_backoff ({} s) must be >= initial_backoff ({} s)",
                    policy.max_backoff.as_secs_f64(),
                    policy.initial_backoff.as_secs_f64()
                ),
            );
        }
    }
    policy
}

/// The `redis` section.
pub fn redis(
    ck: &mut Checker<'_>,
    field: &Option<Field<Object<RawRedis>>>,
    env: &Env,
) -> RedisSettings {
    let path = YamlPath::root().key("redis");
    let raw: RawRedis = ck.section(&path, field);

    let url_path = path.key("url");
    // `url: ${REDIS_URL:-}` gives "": no URL, like an empty environment variable.
    let url = text_setting(ck, env, "REDIS_URL", &url_path, &raw.url)
        .filter(|setting| !setting.value.is_empty());
    if let Some(setting) = &url {
        if let Some(problem) = redis_url_problem(&setting.value) {
            ck.setting_error(&url_path, setting.variable, problem);
        }
    }
    let url = url.map(|setting| setting.value);

    let cluster = ck.get(&path.key("cluster"), &raw.cluster).unwrap_or(false);
    let json_module = ck
        .get(&path.key("json_module"), &raw.json_module)
        .unwrap_or(false);
    if url.is_none() {
        for (key, on) in [("cluster", cluster), ("json_module", json_module)] {
            if on {
                ck.error(
                    &path.key(key),
                    format!(
                        "{key} needs a Redis server, but no Redis URL is configured (redis.url / REDIS_URL), \
                         so the embedded in-memory store is used"
                    ),
                );
            }
        }
    }

    let key_prefix_path = path.key("key_prefix");
    let key_prefix = ck
        .get(&key_prefix_path, &raw.key_prefix)
        .unwrap_or_default();
    if key_prefix.contains(['{', '}']) || key_prefix.chars().any(char::is_whitespace) {
        ck.error(
            &key_prefix_path,
            "must not contain whitespace, '{' or '}' (they would break Redis Cluster hash tags)",
        );
    }

    let sorted_set_path = path.key("sorted_set");
    let sorted_set = text_setting(
        ck,
        env,
        "VCON_SORTED_SET_NAME",
        &sorted_set_path,
        &raw.sorted_set,
    )
    .map_or_else(|| "vcons".to_owned(), |setting| setting.value);
    if sorted_set.is_empty() {
        ck.error(&sorted_set_path, "must not be empty");
    }

    let vcon_ttl = int_setting(
        ck,
        env,
        "VCON_REDIS_EXPIRY",
        &path.key("vcon_ttl"),
        &raw.vcon_ttl,
        0,
    )
    .unwrap_or(3600);
    let dlq_ttl = int_setting(
        ck,
        env,
        "VCON_DLQ_EXPIRY",
        &path.key("dlq_ttl"),
        &raw.dlq_ttl,
        0,
    )
    .unwrap_or(604_800);
    let index_ttl = int_setting(
        ck,
        env,
        "VCON_INDEX_EXPIRY",
        &path.key("index_ttl"),
        &raw.index_ttl,
        1,
    )
    .unwrap_or(86_400);
    let fallback_path = path.key("storage_fallback");
    let storage_fallback =
        environment::typed(ck, env, "VCON_STORAGE_FALLBACK_ENABLED", &fallback_path)
            .or_else(|| ck.get(&fallback_path, &raw.storage_fallback))
            .unwrap_or(true);

    let instance_path = path.key("instance_id");
    let instance_id = text_setting(
        ck,
        env,
        "CONSERVER_INSTANCE_ID",
        &instance_path,
        &raw.instance_id,
    );
    let instance_id = match instance_id {
        Some(Setting {
            value: id,
            variable,
        }) => {
            let valid = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                ck.setting_error(
                    &instance_path,
                    variable,
                    format!(
                        "instance id {id:?} must be non-empty letters, digits, '-', '_' and '.'"
                    ),
                );
            }
            id
        }
        None => environment::default_instance_id(env),
    };

    let heartbeat_ttl = ck
        .int_at_least(&path.key("heartbeat_ttl"), &raw.heartbeat_ttl, 5)
        .unwrap_or(30);

    RedisSettings {
        url,
        cluster,
        json_module,
        key_prefix,
        sorted_set,
        vcon_ttl: to_u64(vcon_ttl),
        dlq_ttl: to_u64(dlq_ttl),
        index_ttl: to_u64(index_ttl),
        storage_fallback,
        instance_id,
        heartbeat_ttl: to_u64(heartbeat_ttl),
    }
}

/// The `api` section.
pub fn api(ck: &mut Checker<'_>, field: &Option<Field<Object<RawApi>>>, env: &Env) -> ApiSettings {
    let path = YamlPath::root().key("api");
    let raw: RawApi = ck.section(&path, field);

    let bind_path = path.key("bind");
    let bind = text_setting(ck, env, "CONSERVER_BIND", &bind_path, &raw.bind)
        .unwrap_or_else(|| Setting::default_value("127.0.0.1:8000"));
    if let Some(problem) = bind_problem(&bind.value) {
        ck.setting_error(&bind_path, bind.variable, problem);
    }

    let prefix_path = path.key("prefix");
    let prefix = text_setting(ck, env, "API_ROOT_PATH", &prefix_path, &raw.prefix)
        .unwrap_or_else(|| Setting::default_value("/api"));
    let prefix = normalize_prefix(&prefix.value).unwrap_or_else(|problem| {
        ck.setting_error(&prefix_path, prefix.variable, problem);
        String::new()
    });

    let header_path = path.key("header_name");
    let header_name = text_setting(
        ck,
        env,
        "CONSERVER_HEADER_NAME",
        &header_path,
        &raw.header_name,
    )
    .unwrap_or_else(|| Setting::default_value("x-conserver-api-token"));
    if let Some(problem) = header_name_problem(&header_name.value) {
        ck.setting_error(&header_path, header_name.variable, problem);
    }

    let (tokens, token_file) = tokens(ck, &path, &raw, env);

    let max_body_bytes = ck
        .int_at_least(&path.key("max_body_bytes"), &raw.max_body_bytes, 1024)
        .unwrap_or(67_108_864);
    let cors_allow_origins = strings(ck, &path.key("cors_allow_origins"), &raw.cors_allow_origins)
        .unwrap_or_else(|| vec!["*".to_owned()]);

    ApiSettings {
        bind: bind.value,
        prefix,
        tokens,
        token_file,
        header_name: header_name.value.to_ascii_lowercase(),
        max_body_bytes: to_usize(max_body_bytes),
        allow_unauthenticated: ck
            .get(
                &path.key("allow_unauthenticated"),
                &raw.allow_unauthenticated,
            )
            .unwrap_or(false),
        allow_auth_change_by_api: ck
            .get(
                &path.key("allow_auth_change_by_api"),
                &raw.allow_auth_change_by_api,
            )
            .unwrap_or(false),
        accept_signed: ck
            .get(&path.key("accept_signed"), &raw.accept_signed)
            .unwrap_or(true),
        cors_allow_origins,
    }
}

/// The token set (api.md §2): `CONSERVER_API_TOKEN`, the token file's lines, `api.tokens`,
/// in that order, without duplicates; and the token file used.
fn tokens(
    ck: &mut Checker<'_>,
    path: &YamlPath,
    raw: &RawApi,
    env: &Env,
) -> (Vec<String>, Option<PathBuf>) {
    let mut tokens: Vec<String> = env
        .get("CONSERVER_API_TOKEN")
        .map(str::to_owned)
        .into_iter()
        .collect();

    let file_path = path.key("token_file");
    let token_file = text_setting(
        ck,
        env,
        "CONSERVER_API_TOKEN_FILE",
        &file_path,
        &raw.token_file,
    );
    if let Some(Setting {
        value: file,
        variable,
    }) = &token_file
    {
        match std::fs::read_to_string(file) {
            Ok(text) => tokens.extend(token_lines(&text)),
            Err(error) => ck.setting_error(
                &file_path,
                *variable,
                format!("cannot read token file {file:?}: {error}"),
            ),
        }
    }

    let list_path = path.key("tokens");
    if let Some(List(items)) = ck.get(&list_path, &raw.tokens) {
        for (i, item) in items.iter().enumerate() {
            match ck.typed(&list_path.index(i), item) {
                Some(token) if token.trim().is_empty() => {
                    ck.error(&list_path.index(i), "a token must not be empty")
                }
                Some(token) => tokens.push(token),
                None => {}
            }
        }
    }

    let mut unique = Vec::with_capacity(tokens.len());
    for token in tokens {
        if !unique.contains(&token) {
            unique.push(token);
        }
    }
    (
        unique,
        token_file.map(|setting| PathBuf::from(setting.value)),
    )
}

/// The tokens of a token file: one per line, trimmed; blank lines and `#` comments skipped.
fn token_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
}

/// The `limits` section.
pub fn limits(ck: &mut Checker<'_>, field: &Option<Field<Object<RawLimits>>>, env: &Env) -> Limits {
    let path = YamlPath::root().key("limits");
    let raw: RawLimits = ck.section(&path, field);

    let workers_path = path.key("default_workers");
    let file_workers = ck.int_at_least(&workers_path, &raw.default_workers, 1);
    let default_workers = environment::workers(ck, env, &workers_path)
        .or(file_workers)
        .unwrap_or(4);

    let parallel_path = path.key("parallel_storage");
    let parallel_storage =
        environment::typed(ck, env, "CONSERVER_PARALLEL_STORAGE", &parallel_path)
            .or_else(|| ck.get(&parallel_path, &raw.parallel_storage))
            .unwrap_or(true);

    Limits {
        default_workers: to_usize(default_workers),
        http_timeout: ck
            .seconds(&path.key("http_timeout"), &raw.http_timeout, true)
            .unwrap_or(Duration::from_secs(30)),
        retry: retry(ck, &path.key("retry"), &raw.retry, &Retry::default()),
        parallel_storage,
        max_vcon_bytes: to_usize(
            ck.int_at_least(&path.key("max_vcon_bytes"), &raw.max_vcon_bytes, 1)
                .unwrap_or(67_108_864),
        ),
        max_media_bytes: to_usize(
            ck.int_at_least(&path.key("max_media_bytes"), &raw.max_media_bytes, 1)
                .unwrap_or(268_435_456),
        ),
        shutdown_grace: ck
            .seconds(&path.key("shutdown_grace"), &raw.shutdown_grace, false)
            .unwrap_or(Duration::from_secs(30)),
    }
}

/// A list of strings, each item checked; `None` when absent or not a list.
pub fn strings(
    ck: &mut Checker<'_>,
    path: &YamlPath,
    field: &Option<Field<List<String>>>,
) -> Option<Vec<String>> {
    let List(items) = ck.get(path, field)?;
    Some(
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| ck.typed(&path.index(i), item))
            .collect(),
    )
}

/// A string setting and where it came from, so that a problem with it names its source.
struct Setting {
    value: String,
    /// The environment variable it came from; `None` for the file or the default.
    variable: Option<&'static str>,
}

impl Setting {
    fn default_value(value: &str) -> Self {
        Setting {
            value: value.to_owned(),
            variable: None,
        }
    }
}

/// A string setting `variable` overrides. The file value is type-checked even when
/// overridden: the file must stay valid without the environment.
fn text_setting(
    ck: &mut Checker<'_>,
    env: &Env,
    variable: &'static str,
    path: &YamlPath,
    field: &Option<Field<String>>,
) -> Option<Setting> {
    let from_file = ck.get(path, field).map(|value| Setting {
        value,
        variable: None,
    });
    let from_env = env.get(variable).map(|value| Setting {
        value: value.to_owned(),
        variable: Some(variable),
    });
    from_env.or(from_file)
}

/// An integer setting of at least `min` that `variable` overrides. The file value is
/// checked even when overridden: the file must stay valid without the environment.
fn int_setting(
    ck: &mut Checker<'_>,
    env: &Env,
    variable: &str,
    path: &YamlPath,
    field: &Option<Field<i64>>,
    min: i64,
) -> Option<i64> {
    let from_file = ck.int_at_least(path, field, min);
    environment::int_at_least(ck, env, variable, path, min).or(from_file)
}

/// Why `url` is not a Redis URL conserver can use, if it is not.
fn redis_url_problem(url: &str) -> Option<String> {
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
            super::redact::url_passwords(url)
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
/// trailing slash.
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

/// Values were checked to be `>= 0` (or more) before conversion.
fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_usize(value: i64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
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
    fn redis_urls() {
        for good in [
            "redis://localhost",
            "redis://:pw@h:6379/1",
            "rediss://u:p@h",
            "unix:///tmp/redis.sock",
        ] {
            assert_eq!(redis_url_problem(good), None, "{good}");
        }
        assert!(redis_url_problem("http://x").unwrap().contains("\"http\""));
        assert!(redis_url_problem("localhost:6379").is_some());
        assert!(redis_url_problem("redis://").is_some());
        assert!(redis_url_problem("unix://relative").is_some());
        // A password in a bad URL is not echoed.
        assert!(!redis_url_problem("redis:/u:secret@h")
            .unwrap()
            .contains("secret"));
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
