//! The document `GET /config` shows (api.md §5.22): secrets replaced by `"***"`.

use serde_json::{Map, Value};

use super::interpolate::is_single_reference;

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
                    let shown = if key == "ingress_auth" {
                        hidden(value)
                    } else {
                        member(key, value)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        other => open(other),
    }
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
        Value::String(text) => Value::String(url_passwords(text)),
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

/// `text` with the password of every `scheme://user:password@host` URL in it replaced by
/// `***`. A password that is a `${VAR}` reference is kept, like a reference elsewhere.
pub fn url_passwords(text: &str) -> String {
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
