//! The readable summary `conserver check-config` prints for a valid configuration.

use std::fmt::Write;

use super::redact::url_secrets;
use super::Config;

/// Store, API, counts, then each chain with its lists, links and storages, then warnings.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let source = config.path.as_ref().map_or_else(
        || "(no file: empty configuration)".to_owned(),
        |p| p.display().to_string(),
    );
    // `write!` to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "configuration: {source}");
    let store = match &config.redis.url {
        None => "embedded in-memory store (no redis.url / REDIS_URL: nothing survives a restart)"
            .to_owned(),
        Some(url) => {
            let mut kind = format!("Redis at {}", url_secrets(url));
            if config.redis.json_module {
                kind.push_str(" (RedisJSON)");
            }
            kind
        }
    };
    let _ = writeln!(out, "store: {store}");
    let prefix = if config.api.prefix.is_empty() {
        "root only".to_owned()
    } else {
        format!("prefix {}", config.api.prefix)
    };
    let _ = writeln!(
        out,
        "api: {} ({prefix}, {} token(s))",
        config.api.bind,
        config.api.tokens.len()
    );
    let _ = writeln!(
        out,
        "{} link(s), {} storage(s), {} chain(s)",
        config.links.len(),
        config.storages.len(),
        config.chains.len()
    );
    for chain in &config.chains {
        let state = if chain.enabled { "enabled" } else { "disabled" };
        let _ = writeln!(
            out,
            "chain {} ({state}, {} worker(s))",
            chain.name, chain.workers
        );
        let _ = writeln!(out, "  ingress:  {}", list(&chain.ingress_lists));
        let _ = writeln!(
            out,
            "  links:    {}",
            if chain.links.is_empty() {
                "-".to_owned()
            } else {
                chain.links.join(" → ")
            }
        );
        let _ = writeln!(out, "  storages: {}", list(&chain.storages));
        let _ = writeln!(out, "  egress:   {}", list(&chain.egress_lists));
        if let Some(timeout) = chain.timeout {
            let _ = writeln!(out, "  timeout:  {} s", timeout.as_secs_f64());
        }
    }
    for warning in &config.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}
