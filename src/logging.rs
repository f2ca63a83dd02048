//! Logging: `tracing` with the `RUST_LOG` filter syntax (env_logger's convention), else the
//! Python server's `LOG_LEVEL`; `CONSERVER_LOG_FORMAT=json` for one JSON object per line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(default_filter(level_from_python(
                std::env::var("LOG_LEVEL").ok().as_deref(),
            )))
        });
    let json = std::env::var("CONSERVER_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only for a terminal, and never with NO_COLOR (https://no-color.org): a log file
    // or a collector must not receive escape codes.
    let colours = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Third-party libraries whose own lines are chatter unless debugging: their start-up
/// notices and per-connection events. `actix_http` logs a malformed request (any client can
/// send one) as an error of its own; the client gets its 400 either way.
const QUIET: &[(&str, &str)] = &[
    ("actix_server", "warn"),
    ("actix_web", "warn"),
    ("actix_http", "off"),
    ("h2", "warn"),
    ("hyper", "warn"),
    ("hyper_util", "warn"),
    ("reqwest", "warn"),
    ("rustls", "warn"),
    ("mio", "warn"),
];

/// The filter of `level` when `RUST_LOG` does not say: conserver's lines at `level`, the
/// libraries' chatter only when debugging.
fn default_filter(level: &str) -> String {
    if level == "debug" {
        return level.to_owned();
    }
    QUIET
        .iter()
        .fold(level.to_owned(), |filter, (target, quiet)| {
            format!("{filter},{target}={quiet}")
        })
}

/// `LOG_LEVEL` as the Python server reads it (`DEBUG`, `INFO`, `WARNING`, `ERROR`).
fn level_from_python(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("DEBUG") => "debug",
        Some("WARNING") | Some("WARN") => "warn",
        Some("ERROR") | Some("CRITICAL") => "error",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::{default_filter, level_from_python};
    use tracing_subscriber::EnvFilter;

    #[test]
    fn library_chatter_is_kept_for_debugging() {
        assert_eq!(default_filter("debug"), "debug");
        let info = default_filter("info");
        assert!(info.starts_with("info,actix_server=warn,"), "{info}");
        assert!(info.contains("actix_http=off"), "{info}");
        assert!(EnvFilter::try_new(&info).is_ok());
    }

    #[test]
    fn python_levels_map_to_tracing_levels() {
        assert_eq!(level_from_python(Some("DEBUG")), "debug");
        assert_eq!(level_from_python(Some("warning")), "warn");
        assert_eq!(level_from_python(Some("CRITICAL")), "error");
        assert_eq!(level_from_python(None), "info");
        assert_eq!(level_from_python(Some("bogus")), "info");
    }
}
