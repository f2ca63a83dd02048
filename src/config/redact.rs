//! Secrets out of sight: the one routine for every place a configuration value is shown —
//! the document `GET /config` answers (api.md §5.22), `check-config`'s summary, log lines and
//! errors. A value is a secret when its key names one (`password`, `token`, `api_key`, …; an
//! `Authorization` header), when the module's options declare it one, when it is the password
//! of a URL, or the value of a URL query parameter whose name names one (`?token=`,
//! `?api_key=`, `?sig=`…). `${VAR}` references are shown: they name a secret without holding it.

use serde_json::{Map, Value};

use super::interpolate::is_single_reference;
use crate::modules::{Kind, Resolved};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Words that make a mapping key name a secret (case-insensitive substrings);
/// `authorization` catches bearer tokens in webhook `headers`.
const SECRET_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "credential",
    "dsn",
    "authorization",
];

/// The document with every secret redacted.
pub fn redact(document: &Value) -> Value {
    match document {
        Value::Object(sections) => Value::Object(
            sections
                .iter()
                .map(|(key, value)| {
                    // Every ingress_auth value is an external-ingress key, whatever its list
                    // is called; even a `${VAR}` reference is hidden there (the rule of
                    // api.md §5.22 is stated without exception for this section).
                    let shown = match key.as_str() {
                        "ingress_auth" => hidden(value),
                        "links" => instances::<crate::links::LinkKind>(value),
                        "storages" => instances::<crate::storages::StorageKind>(value),
                        _ => member(key, value),
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        other => open(other),
    }
}

/// The instances of a `links` or `storages` section: each module's declared secret options
/// are masked as well as those whose name says secret.
fn instances<K: Kind>(section: &Value) -> Value {
    let Value::Object(entries) = section else {
        return open(section);
    };
    let shown = entries.iter().map(|(name, entry)| {
        let declared = entry
            .get("module")
            .and_then(Value::as_str)
            .and_then(|module| match K::resolve(module) {
                Resolved::Built(kind) => Some(kind.options().secrets),
                _ => None,
            })
            .unwrap_or_default();
        let shown = match entry {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, value)| {
                        let shown = match (key.as_str(), value) {
                            ("options", Value::Object(options)) => Value::Object(
                                options
                                    .iter()
                                    .map(|(option, v)| {
                                        let shown = if declared.contains(&option.as_str()) {
                                            secret(v)
                                        } else {
                                            member(option, v)
                                        };
                                        (option.clone(), shown)
                                    })
                                    .collect(),
                            ),
                            _ => member(key, value),
                        };
                        (key.clone(), shown)
                    })
                    .collect(),
            ),
            other => open(other),
        };
        (name.clone(), shown)
    });
    Value::Object(shown.collect())
}

/// Whether a mapping key names a secret (its value is masked; modules leave such options out
/// of what they copy into a vCon).
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower != "key_prefix" && SECRET_WORDS.iter().any(|word| lower.contains(word))
}

fn member(key: &str, value: &Value) -> Value {
    if is_secret_key(key) {
        secret(value)
    } else {
        open(value)
    }
}

/// A value under a key that does not name a secret: only URL passwords are hidden.
fn open(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), member(k, v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(open).collect()),
        Value::String(text) => Value::String(url_secrets(text)),
        scalar => scalar.clone(),
    }
}

/// A value under a key that names a secret: masked member by member, except `${VAR}`
/// references, which name a secret without containing it. `null` hides nothing.
fn secret(value: &Value) -> Value {
    match value {
        Value::String(text) if is_single_reference(text) => value.clone(),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), secret(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(secret).collect()),
        Value::Null => Value::Null,
        _ => Value::String(MASK.to_owned()),
    }
}

/// Every value masked, references included.
fn hidden(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), hidden(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(hidden).collect()),
        Value::Null => Value::Null,
        _ => Value::String(MASK.to_owned()),
    }
}

/// Query parameter names that hold a secret (any case); a name containing one of
/// [`SECRET_PARAMETER_WORDS`] does too.
const SECRET_PARAMETERS: &[&str] = &["key", "apikey", "sig", "signature", "code"];

/// Words that make a query parameter name a secret (`access_token`, `api_key`, `x-api-key`).
const SECRET_PARAMETER_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "signature",
    "credential",
];

fn is_secret_parameter(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_PARAMETERS.contains(&lower.as_str())
        || SECRET_PARAMETER_WORDS
            .iter()
            .any(|word| lower.contains(word))
}

/// `text` with every secret of the URLs in it replaced by `***`: the password of
/// `scheme://user:password@host`, and the value of each query parameter whose name says
/// secret. A `${VAR}` reference is kept, like a reference elsewhere.
pub fn url_secrets(text: &str) -> String {
    query_secrets(&url_passwords(text))
}

/// The values of secret query parameters in the URLs of `text`, masked.
fn query_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(question) = rest.find('?') {
        let before = &rest[..question];
        // Only the query of a URL: something with `://` earlier on the same word.
        let word_start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        out.push_str(&rest[..=question]);
        let after = &rest[question + 1..];
        if !before[word_start..].contains("://") {
            rest = after;
            continue;
        }
        let query_len = after
            .find(|c: char| c == '#' || c.is_whitespace() || c == '"' || c == '\'' || c == ')')
            .unwrap_or(after.len());
        let shown: Vec<String> = after[..query_len]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value))
                    if is_secret_parameter(name)
                        && !value.is_empty()
                        && !is_single_reference(value) =>
                {
                    format!("{name}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&shown.join("&"));
        rest = &after[query_len..];
    }
    out.push_str(rest);
    out
}

/// `text` with the password of every `scheme://user:password@host` URL in it replaced by
/// `***`. A password that is a `${VAR}` reference is kept, like a reference elsewhere.
fn url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the letters, digits, `+`, `.` and `-` before `://`, from a letter on.
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map_or(0, |i| i + 1);
        let scheme = rest[scheme_start..at].trim_start_matches(|c: char| !c.is_ascii_alphabetic());
        let has_scheme = !scheme.is_empty();
        let after = &rest[at + 3..];
        // The authority ends where the path, query, fragment or surrounding text begins.
        let authority_len = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_len];
        out.push_str(&rest[..at + 3]);
        match authority.rfind('@').and_then(|at_sign| {
            authority[..at_sign]
                .split_once(':')
                .map(|(u, p)| (u, p, at_sign))
        }) {
            Some((user, password, at_sign))
                if has_scheme && !password.is_empty() && !is_single_reference(password) =>
            {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
                out.push_str(&authority[at_sign..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys_are_masked_whatever_their_shape() {
        let doc = json!({
            "links": {"summarize": {"module": "analyze", "options": {
                "OPENAI_API_KEY": "sk-live",
                "model": "gpt-4o-mini",
                "api_keys": ["a", "b"],
                "credentials": {"user": "u", "nested": {"pass": "p"}},
                "password": 12345,
                "Authorization": "Bearer abc",
                "headers": {"Authorization": "Bearer xyz", "Accept": "application/json"},
                "sentry_dsn": "https://k@sentry.io/1",
                "max_tokens": 100,
                "no_secret_here": null
            }}}
        });
        assert_eq!(
            redact(&doc)["links"]["summarize"]["options"],
            json!({
                "OPENAI_API_KEY": "***",
                "model": "gpt-4o-mini",
                "api_keys": ["***", "***"],
                "credentials": {"user": "***", "nested": {"pass": "***"}},
                "password": "***",
                "Authorization": "***",
                "headers": {"Authorization": "***", "Accept": "application/json"},
                "sentry_dsn": "***",
                "max_tokens": "***",
                "no_secret_here": null
            })
        );
    }

    #[test]
    fn the_secrets_of_the_transcription_diet_and_slack_links_are_masked() {
        for secret in [
            "DEEPGRAM_KEY",
            "LITELLM_MASTER_KEY",
            "OPENAI_API_KEY",
            "openai_api_key",
            "AZURE_OPENAI_API_KEY",
            "API_KEY",
            "api-key",
            "ai_usage_api_token",
            "aws_access_key_id",
            "aws_secret_access_key",
            "token",
        ] {
            assert!(is_secret_key(secret), "{secret}");
            let doc = json!({"links": {"l": {"options": {secret: "s3cr3t"}}}});
            assert_eq!(
                redact(&doc)["links"]["l"]["options"][secret],
                MASK,
                "{secret}"
            );
        }
        for shown in [
            "vendor",
            "model",
            "base_url",
            "vfun-server-url",
            "s3_bucket",
            "minimum_duration",
        ] {
            assert!(!is_secret_key(shown), "{shown}");
        }
    }

    #[test]
    fn references_and_key_prefix_are_shown() {
        let doc = json!({
            "redis": {"key_prefix": "prod:", "url": "${REDIS_URL}"},
            "storages": {"pg": {"options": {
                "password": "${PG_PASSWORD}",
                "api_key": "${KEY:-dev}",
                "token": "Bearer ${T}",
                "keys": ["${A}", "literal"]
            }}}
        });
        let shown = redact(&doc);
        assert_eq!(
            shown["redis"],
            json!({"key_prefix": "prod:", "url": "${REDIS_URL}"})
        );
        assert_eq!(
            shown["storages"]["pg"]["options"],
            json!({"password": "${PG_PASSWORD}", "api_key": "${KEY:-dev}", "token": "***", "keys": ["${A}", "***"]})
        );
    }

    #[test]
    fn ingress_auth_is_always_masked() {
        let doc =
            json!({"ingress_auth": {"partner": "k1", "support": ["${S1}", "k2"], "other": 42}});
        assert_eq!(
            redact(&doc)["ingress_auth"],
            json!({"partner": "***", "support": ["***", "***"], "other": "***"})
        );
    }

    #[test]
    fn options_a_module_declares_secret_are_masked_whatever_their_name() {
        let doc = json!({
            "links": {"hook": {"module": "links.webhook", "options": {
                "headers": {"X-Custom-Auth": "s3cr3t", "X-Ref": "${HOOK_SIG}"},
                "webhook-urls": ["https://h/x"]
            }}},
            "storages": {"copy": {"module": "webhook", "options": {"headers": {"Cookie": "c=1"}}}}
        });
        let shown = redact(&doc);
        assert_eq!(
            shown["links"]["hook"]["options"],
            json!({"headers": {"X-Custom-Auth": "***", "X-Ref": "${HOOK_SIG}"}, "webhook-urls": ["https://h/x"]})
        );
        assert_eq!(
            shown["storages"]["copy"]["options"]["headers"]["Cookie"],
            "***"
        );
    }

    #[test]
    fn secret_query_parameters_are_masked_in_urls() {
        assert_eq!(
            url_secrets("https://h/hook?token=abc&x=1&API_KEY=k2#frag"),
            "https://h/hook?token=***&x=1&API_KEY=***#frag"
        );
        assert_eq!(
            url_secrets("redis://u:pw@h:6379/0?password=p&db=1"),
            "redis://u:***@h:6379/0?password=***&db=1"
        );
        assert_eq!(
            url_secrets("see https://h/x?sig=s1&access_token=t and ?token=not-a-url"),
            "see https://h/x?sig=***&access_token=*** and ?token=not-a-url"
        );
        assert_eq!(
            url_secrets("https://h/x?apikey=${KEY}&signature="),
            "https://h/x?apikey=${KEY}&signature="
        );
        assert_eq!(url_secrets("https://h/x?q=token"), "https://h/x?q=token");
        let doc =
            json!({"links": {"hook": {"options": {"webhook-urls": ["https://h/x?api_key=k"]}}}});
        assert_eq!(
            redact(&doc)["links"]["hook"]["options"]["webhook-urls"][0],
            "https://h/x?api_key=***"
        );
    }

    #[test]
    fn url_passwords_are_masked_anywhere() {
        assert_eq!(
            url_passwords("redis://user:pa55@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(url_passwords("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(
            url_passwords("https://host/path?x=a@b:c"),
            "https://host/path?x=a@b:c"
        );
        assert_eq!(url_passwords("mongodb://u@h"), "mongodb://u@h");
        assert_eq!(url_passwords("redis://u:${PW}@h"), "redis://u:${PW}@h");
        assert_eq!(
            url_passwords("${URL:-redis://u:dev@h}"),
            "${URL:-redis://u:***@h}"
        );
        assert_eq!(
            url_passwords("a http://x:y@h b https://p:q@i/j"),
            "a http://x:***@h b https://p:***@i/j"
        );
        assert_eq!(url_passwords("no url"), "no url");
        let doc =
            json!({"storages": {"m": {"options": {"url": "mongodb://admin:hunter2@db:27017/"}}}});
        assert_eq!(
            redact(&doc)["storages"]["m"]["options"]["url"],
            "mongodb://admin:***@db:27017/"
        );
    }
}
