//! Who may reach the API, as rules on a compiled configuration (api.md §2): the start-up rule
//! "no public bind without a token", which every way of putting a configuration in force
//! applies (start, `check-config`, `POST /config`, reloads), and the rule that a token holder
//! cannot use `POST /config` to open the door or move the server.

use std::net::{IpAddr, ToSocketAddrs};

use super::path::YamlPath;
use super::{Config, ConfigProblem};

/// The problem with serving token routes under `config` on `bind` (the address actually
/// listened on: `--bind`, or the running one after a live change), if there is one.
/// `serves_api` is false for the worker role, which serves no token route.
pub fn serving_problem(config: &Config, bind: &str, serves_api: bool) -> Option<ConfigProblem> {
    if !serves_api || !config.api.tokens.is_empty() || config.api.allow_unauthenticated {
        return None;
    }
    // An address that does not resolve is refused when the server binds it.
    let ip = bind.to_socket_addrs().ok()?.next()?.ip();
    if is_loopback(ip) {
        return None;
    }
    Some(problem(
        YamlPath::root().key("api").key("tokens"),
        format!(
            "no API token is configured and the server listens on {bind}, which is not a loopback \
             address: set CONSERVER_API_TOKEN, CONSERVER_API_TOKEN_FILE or api.tokens, or set \
             api.allow_unauthenticated: true to serve without authentication"
        ),
    ))
}

/// The problems of replacing `running` by `next` through `POST /config`: removing or replacing
/// every API token, changing `api.bind` or `redis.url`. None when the running configuration has
/// `api.allow_auth_change_by_api: true` (the posted one cannot grant itself that).
pub fn api_change_problems(next: &Config, running: &Config) -> Vec<ConfigProblem> {
    if running.api.allow_auth_change_by_api {
        return Vec::new();
    }
    let rule = "is refused through POST /config while the running configuration has \
                api.allow_auth_change_by_api: false; change the file on the server and reload it \
                (SIGHUP), or allow it there first";
    let mut problems = Vec::new();
    let keeps_a_token = running.api.tokens.is_empty()
        || next
            .api
            .tokens
            .iter()
            .any(|token| running.api.tokens.contains(token));
    if !keeps_a_token {
        problems.push(problem(
            YamlPath::root().key("api").key("tokens"),
            format!("removing or replacing every API token {rule}"),
        ));
    }
    if next.api.bind != running.api.bind {
        problems.push(problem(
            YamlPath::root().key("api").key("bind"),
            format!("changing api.bind {rule}"),
        ));
    }
    if next.redis.url != running.redis.url {
        problems.push(problem(
            YamlPath::root().key("redis").key("url"),
            format!("changing redis.url {rule}"),
        ));
    }
    problems
}

fn problem(path: YamlPath, message: String) -> ConfigProblem {
    ConfigProblem {
        path,
        line: None,
        message,
    }
}

/// Loopback, including an IPv4 loopback address mapped into IPv6.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, None, &Env::default()).unwrap()
    }

    #[test]
    fn a_public_bind_needs_a_token_unless_allowed() {
        let open = config("api: {bind: '0.0.0.0:8000'}");
        let found = serving_problem(&open, "0.0.0.0:8000", true).unwrap();
        assert_eq!(found.path, "api.tokens");
        assert!(found.message.contains("0.0.0.0:8000"), "{found}");
        assert_eq!(serving_problem(&open, "0.0.0.0:8000", false), None);
        assert_eq!(serving_problem(&open, "127.0.0.1:8000", true), None);
        assert_eq!(serving_problem(&open, "[::1]:8000", true), None);
        let tokened = config("api: {bind: '0.0.0.0:8000', tokens: [t]}");
        assert_eq!(serving_problem(&tokened, "0.0.0.0:8000", true), None);
        let allowed = config("api: {bind: '0.0.0.0:8000', allow_unauthenticated: true}");
        assert_eq!(serving_problem(&allowed, "0.0.0.0:8000", true), None);
    }

    #[test]
    fn the_api_cannot_drop_every_token_or_move_the_server() {
        let running = config("api: {tokens: [a, b]}");
        assert!(api_change_problems(&config("api: {tokens: [b, c]}"), &running).is_empty());
        let paths = |next: &Config| -> Vec<String> {
            api_change_problems(next, &running)
                .into_iter()
                .map(|p| p.path.to_string())
                .collect()
        };
        assert_eq!(paths(&config("{}")), ["api.tokens"]);
        assert_eq!(paths(&config("api: {tokens: [c]}")), ["api.tokens"]);
        assert_eq!(
            paths(&config(
                "api: {tokens: [a], bind: '0.0.0.0:9000'}\nredis: {url: 'redis://h'}"
            )),
            ["api.bind", "redis.url"]
        );
        // The posted file cannot allow itself; the running one can.
        assert_eq!(
            paths(&config("api: {allow_auth_change_by_api: true}")),
            ["api.tokens"]
        );
        let permissive = config("api: {tokens: [a], allow_auth_change_by_api: true}");
        assert!(api_change_problems(&config("{}"), &permissive).is_empty());
    }
}
