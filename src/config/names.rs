//! Rules for the names a config defines: instance names (links, storages, tracers, chains,
//! followers) and Redis list names (config.md §4, §5).

/// Prefixes of the keys conserver and the Python server keep in Redis next to the lists
/// (redis.md §2): a list named like one of them would collide with those keys.
const RESERVED_LIST_PREFIXES: &[&str] = &[
    "vcon:",
    "DLQ:",
    "conserver:",
    "tel:",
    "mailto:",
    "name:",
    "context:",
];

/// Longest list name, in bytes.
const MAX_LIST_NAME_BYTES: usize = 200;

/// Why `name` cannot name a link, storage, tracer, chain or follower, if it cannot.
pub fn instance_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name must not be empty".to_owned());
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    (!valid).then(|| format!("name {name:?} may contain only letters, digits, '_', '-' and '.'"))
}

/// Why `name` cannot be a list name, if it cannot. `storage_prefixes` are the key prefixes
/// (`vcon_storage:`) of the configured `redis_storage` instances.
pub fn list_name_problem(name: &str, storage_prefixes: &[String]) -> Option<String> {
    if name.is_empty() {
        return Some("a list name must not be empty".to_owned());
    }
    if name.len() > MAX_LIST_NAME_BYTES {
        return Some(format!(
            "list name is {} bytes long; at most {MAX_LIST_NAME_BYTES} are allowed",
            name.len()
        ));
    }
    if name.chars().any(char::is_whitespace) {
        return Some(format!("list name {name:?} must not contain whitespace"));
    }
    if name.contains(['{', '}']) {
        return Some(format!(
            "list name {name:?} must not contain '{{' or '}}' (they would break Redis Cluster hash tags)"
        ));
    }
    let reserved = RESERVED_LIST_PREFIXES
        .iter()
        .copied()
        .chain(storage_prefixes.iter().map(String::as_str));
    reserved
        .into_iter()
        .find(|prefix| name.starts_with(prefix))
        .map(|prefix| {
            format!(
                "list name {name:?} starts with {prefix:?}, a prefix reserved for other Redis keys"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        for good in ["main", "tag-1", "my.link", "A_b"] {
            assert_eq!(instance_name_problem(good), None, "{good}");
        }
        for bad in ["", "a b", "x/y", "é"] {
            assert!(instance_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn list_names() {
        let prefixes = vec!["vcon_storage:".to_owned()];
        assert_eq!(list_name_problem("default_ingress", &prefixes), None);
        assert_eq!(list_name_problem("calls:urgent", &prefixes), None);
        for bad in [
            "",
            "a b",
            "a{b}",
            "vcon:x",
            "DLQ:in",
            "conserver:x",
            "tel:+1",
            "mailto:a",
            "name:x",
            "context:x",
            "vcon_storage:x",
        ] {
            assert!(list_name_problem(bad, &prefixes).is_some(), "{bad}");
        }
        assert!(list_name_problem(&"x".repeat(201), &prefixes)
            .unwrap()
            .contains("201 bytes"));
        assert_eq!(list_name_problem(&"x".repeat(200), &prefixes), None);
    }
}
