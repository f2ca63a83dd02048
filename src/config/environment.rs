//! Environment variables that override settings of the file (config.md §8), as values laid
//! over the document before it is read, so they are typed and checked like the file's own;
//! and the defaults that depend on the machine (the instance id).

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::path::YamlPath;
use super::Env;
use crate::problem::Loc;

/// Variable → the setting it overrides.
const OVERRIDES: &[(&str, &[&str])] = &[
    ("REDIS_URL", &["redis", "url"]),
    ("VCON_SORTED_SET_NAME", &["redis", "sorted_set"]),
    ("VCON_REDIS_EXPIRY", &["redis", "vcon_ttl"]),
    ("VCON_DLQ_EXPIRY", &["redis", "dlq_ttl"]),
    ("VCON_INDEX_EXPIRY", &["redis", "index_ttl"]),
    (
        "VCON_STORAGE_FALLBACK_ENABLED",
        &["redis", "storage_fallback"],
    ),
    ("CONSERVER_INSTANCE_ID", &["redis", "instance_id"]),
    ("CONSERVER_BIND", &["api", "bind"]),
    ("API_ROOT_PATH", &["api", "prefix"]),
    ("CONSERVER_HEADER_NAME", &["api", "header_name"]),
    ("CONSERVER_API_TOKEN_FILE", &["api", "token_file"]),
    (
        "CONSERVER_PARALLEL_STORAGE",
        &["limits", "parallel_storage"],
    ),
];

/// The processes × threads of the Python server, whose product is `limits.default_workers`.
const PROCESSES: &str = "CONSERVER_WORKERS";
const THREADS: &str = "CONSERVER_VCON_CONCURRENCY";

/// One setting an environment variable gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The setting.
    pub path: YamlPath,
    /// The variable (or variables) it comes from, as messages name them.
    pub variable: String,
    /// The value, as text: read like a value of the file.
    pub value: Value,
}

/// The settings the environment overrides.
pub fn overrides(env: &Env) -> Vec<Override> {
    let mut found: Vec<Override> = OVERRIDES
        .iter()
        .filter_map(|(variable, keys)| {
            let value = env.get(variable)?;
            Some(Override {
                path: keys
                    .iter()
                    .fold(YamlPath::root(), |path, key| path.key(key)),
                variable: (*variable).to_owned(),
                value: Value::String(value.to_owned()),
            })
        })
        .collect();
    if let Some(workers) = workers(env) {
        found.push(workers);
    }
    found
}

/// `limits.default_workers` from `CONSERVER_WORKERS` × `CONSERVER_VCON_CONCURRENCY`: each
/// counts as 1 when only the other is set (config.md §7.3). A variable that is not a count is
/// laid over as it is, so the reader reports it.
fn workers(env: &Env) -> Option<Override> {
    let path = YamlPath::root().key("limits").key("default_workers");
    let given = |name: &'static str| env.get(name).map(|text| (name, text));
    let (processes, threads) = (given(PROCESSES), given(THREADS));
    let (variable, value) = match (processes, threads) {
        (None, None) => return None,
        (Some((name, text)), None) | (None, Some((name, text))) => {
            (name.to_owned(), Value::String(text.to_owned()))
        }
        (Some((_, p)), Some((_, t))) => {
            let variable = format!("{PROCESSES} × {THREADS}");
            let product = match (p.trim().parse::<u64>(), t.trim().parse::<u64>()) {
                (Ok(p), Ok(t)) => p
                    .checked_mul(t)
                    .map_or_else(|| Value::String(format!("{p} × {t}")), Value::from),
                // The one that is not a count is what the reader reports.
                (Err(_), _) => Value::String(p.to_owned()),
                (_, Err(_)) => Value::String(t.to_owned()),
            };
            (variable, product)
        }
    };
    Some(Override {
        path,
        variable,
        value,
    })
}

/// `document` (a mapping) with `overrides` laid over it, sections created where missing.
pub fn laid_over(document: &Value, overrides: &[Override]) -> Value {
    let mut merged = document.clone();
    for Override { path, value, .. } in overrides {
        let (Some(root), [Loc::Key(section), Loc::Key(key)]) =
            (merged.as_object_mut(), path.segments())
        else {
            continue;
        };
        let entry = root
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Some(settings) = entry.as_object_mut() {
            settings.insert(key.clone(), value.clone());
        }
    }
    merged
}

/// `<hostname>-<pid>-<4 random hex digits>`, chosen once per process so that a reload does
/// not rename the running instance.
pub fn default_instance_id() -> String {
    static INSTANCE_ID: OnceLock<String> = OnceLock::new();
    INSTANCE_ID
        .get_or_init(|| {
            let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "conserver".to_owned());
            // The id is only letters, digits, '-', '_' and '.'; a hostname may hold others.
            let hostname: String = hostname
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let random = uuid::Uuid::new_v4().simple().to_string();
            format!("{hostname}-{}-{}", std::process::id(), &random[..4])
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn workers_of(pairs: &[(&str, &str)]) -> Option<(String, Value)> {
        workers(&env(pairs)).map(|o| (o.variable, o.value))
    }

    #[test]
    fn workers_multiply_and_default_to_one() {
        assert_eq!(workers_of(&[]), None);
        assert_eq!(
            workers_of(&[("CONSERVER_WORKERS", "3")]),
            Some(("CONSERVER_WORKERS".into(), json!("3")))
        );
        assert_eq!(
            workers_of(&[("CONSERVER_VCON_CONCURRENCY", "5")]),
            Some(("CONSERVER_VCON_CONCURRENCY".into(), json!("5")))
        );
        assert_eq!(
            workers_of(&[
                ("CONSERVER_WORKERS", "2"),
                ("CONSERVER_VCON_CONCURRENCY", "8")
            ]),
            Some((
                "CONSERVER_WORKERS × CONSERVER_VCON_CONCURRENCY".into(),
                json!(16)
            ))
        );
        assert_eq!(
            workers_of(&[
                ("CONSERVER_WORKERS", "x"),
                ("CONSERVER_VCON_CONCURRENCY", "8")
            ]),
            Some((
                "CONSERVER_WORKERS × CONSERVER_VCON_CONCURRENCY".into(),
                json!("x")
            ))
        );
    }

    #[test]
    fn overrides_are_laid_over_the_document() {
        let found = overrides(&env(&[("REDIS_URL", "redis://e"), ("CONSERVER_BIND", "")]));
        assert_eq!(found.len(), 1, "an empty variable counts as unset");
        let merged = laid_over(
            &json!({"redis": {"url": "redis://f", "vcon_ttl": 5}}),
            &found,
        );
        assert_eq!(
            merged,
            json!({"redis": {"url": "redis://e", "vcon_ttl": 5}})
        );
        let merged = laid_over(&json!({"redis": null}), &found);
        assert_eq!(merged, json!({"redis": {"url": "redis://e"}}));
    }

    #[test]
    fn instance_id_has_three_parts_and_is_stable() {
        let id = default_instance_id();
        let parts: Vec<&str> = id.rsplitn(3, '-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0].len(), 4);
        assert!(parts[0].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(parts[1], std::process::id().to_string());
        assert_eq!(default_instance_id(), id);
    }
}
