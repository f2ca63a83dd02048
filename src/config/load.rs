//! Finding and reading the config file (config.md §1).

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, Env};

/// The files tried, in order, when no path is given.
const DEFAULT_FILES: &[&str] = &["config.yml", "config.yaml"];

/// Load the file named by `explicit`, else by `CONSERVER_CONFIG_FILE`, else the first
/// default file in `dir`; with none of them, the empty configuration and a warning.
pub fn load(explicit: Option<&Path>, env: &Env, dir: &Path) -> Result<Config, ConfigError> {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| env.get("CONSERVER_CONFIG_FILE").map(PathBuf::from));
    let path = match named {
        // A file the operator named must exist: reading it reports it missing.
        Some(path) => path,
        None => match DEFAULT_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
        {
            Some(path) => path,
            None => {
                let mut config = Config::from_yaml("", None, env)?;
                config.warnings.push(format!(
                    "no config file (--config, CONSERVER_CONFIG_FILE, {}): starting with an empty \
                     configuration (API only, no chains)",
                    DEFAULT_FILES.join(", ")
                ));
                return Ok(config);
            }
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
        path: path.clone(),
        source,
    })?;
    Config::from_yaml(&text, Some(path), env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yml");
        assert!(matches!(
            load(Some(&missing), &Env::default(), dir.path()),
            Err(ConfigError::Io { .. })
        ));
        let env = Env([(
            "CONSERVER_CONFIG_FILE".to_owned(),
            missing.display().to_string(),
        )]
        .into());
        assert!(matches!(
            load(None, &env, dir.path()),
            Err(ConfigError::Io { .. })
        ));
    }

    #[test]
    fn no_file_is_the_empty_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(None, &Env::default(), dir.path()).unwrap();
        assert!(config.chains.is_empty() && config.path.is_none());
        assert!(config.warnings.iter().any(|w| w.contains("no config file")));
    }

    #[test]
    fn default_files_are_found_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), "chains: {b: {links: []}}\n").unwrap();
        let config = load(None, &Env::default(), dir.path()).unwrap();
        assert_eq!(config.chains[0].name, "b");
        std::fs::write(dir.path().join("config.yml"), "chains: {a: {links: []}}\n").unwrap();
        let config = load(None, &Env::default(), dir.path()).unwrap();
        assert_eq!(config.chains[0].name, "a");
        assert_eq!(config.path, Some(dir.path().join("config.yml")));
    }
}
