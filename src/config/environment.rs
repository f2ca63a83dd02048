//! Environment variables that override settings of the file (config.md §8), read from the
//! [`Env`] snapshot, and the defaults that depend on the machine (the instance id).

use std::sync::OnceLock;

use serde_json::Value;

use super::checker::Checker;
use super::coerce::Coerce;
use super::path::YamlPath;
use super::Env;

/// A setting's value from `variable` when it is set, typed like a file value; an invalid
/// value is reported against `path` and ignored.
pub fn typed<T: Coerce>(
    ck: &mut Checker<'_>,
    env: &Env,
    variable: &str,
    path: &YamlPath,
) -> Option<T> {
    let text = env.get(variable)?;
    let typed = T::coerce(&Value::String(text.to_owned()));
    if typed.is_none() {
        ck.env_error(
            path,
            variable,
            format!("must be {}, found {text:?}", T::EXPECTED),
        );
    }
    typed
}

/// An integer setting of at least `min` from `variable`.
pub fn int_at_least(
    ck: &mut Checker<'_>,
    env: &Env,
    variable: &str,
    path: &YamlPath,
    min: i64,
) -> Option<i64> {
    let value = typed::<i64>(ck, env, variable, path)?;
    if value < min {
        ck.env_error(
            path,
            variable,
            format!("must be an integer >= {min}, found {value}"),
        );
        return None;
    }
    Some(value)
}

/// `limits.default_workers` from `CONSERVER_WORKERS` × `CONSERVER_VCON_CONCURRENCY`: each
/// counts as 1 when only the other is set (config.md §7.3); `None` when neither is.
pub fn workers(ck: &mut Checker<'_>, env: &Env, path: &YamlPath) -> Option<i64> {
    const PROCESSES: &str = "CONSERVER_WORKERS";
    const THREADS: &str = "CONSERVER_VCON_CONCURRENCY";
    if env.get(PROCESSES).is_none() && env.get(THREADS).is_none() {
        return None;
    }
    let processes = if env.get(PROCESSES).is_some() {
        int_at_least(ck, env, PROCESSES, path, 1)?
    } else {
        1
    };
    let threads = if env.get(THREADS).is_some() {
        int_at_least(ck, env, THREADS, path, 1)?
    } else {
        1
    };
    let product = processes.checked_mul(threads);
    if product.is_none() {
        ck.env_error(
            path,
            PROCESSES,
            format!("{processes} × {threads} workers is too many"),
        );
    }
    product
}

/// `<hostname>-<pid>-<4 random hex digits>`, chosen once per process so that a reload does
/// not rename the running instance.
pub fn default_instance_id(env: &Env) -> String {
    static INSTANCE_ID: OnceLock<String> = OnceLock::new();
    INSTANCE_ID
        .get_or_init(|| {
            let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .or_else(|| env.get("HOSTNAME").map(str::to_owned))
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

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    #[test]
    fn workers_multiply_and_default_to_one() {
        let path = YamlPath::root().key("limits").key("default_workers");
        let mut ck = Checker::new(None);
        assert_eq!(workers(&mut ck, &env(&[]), &path), None);
        assert_eq!(
            workers(&mut ck, &env(&[("CONSERVER_WORKERS", "3")]), &path),
            Some(3)
        );
        assert_eq!(
            workers(&mut ck, &env(&[("CONSERVER_VCON_CONCURRENCY", "5")]), &path),
            Some(5)
        );
        let both = env(&[
            ("CONSERVER_WORKERS", "2"),
            ("CONSERVER_VCON_CONCURRENCY", "8"),
        ]);
        assert_eq!(workers(&mut ck, &both, &path), Some(16));
        assert!(ck.problems.is_empty());
        assert_eq!(
            workers(&mut ck, &env(&[("CONSERVER_WORKERS", "0")]), &path),
            None
        );
        assert_eq!(ck.problems.len(), 1);
        assert!(ck.problems[0].message.contains("CONSERVER_WORKERS"));
        assert_eq!(ck.problems[0].line, None);
    }

    #[test]
    fn instance_id_has_three_parts_and_is_stable() {
        let id = default_instance_id(&Env::default());
        let parts: Vec<&str> = id.rsplitn(3, '-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0].len(), 4);
        assert!(parts[0].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(parts[1], std::process::id().to_string());
        assert_eq!(default_instance_id(&Env::default()), id);
    }
}
