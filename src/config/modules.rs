//! The `links`, `storages` and `tracers` sections (config.md §3, §4): module instances, each
//! resolved to its kind, its options read and checked by that kind, its retry policy merged
//! over `limits.retry`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::limits::{Retry, RetryOverride};
use super::path::YamlPath;
use super::read::{Named, Problems};
use super::Module;
use crate::links::LinkKind;
use crate::modules::{Kind, Resolved, Section};
use crate::storages::StorageKind;

/// A link instance as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// The built-in module: `links.<name>`, `conserver.links.<name>` or `<name>`.
    module: String,
    /// Module options, over the module's defaults (`null` = `{}`).
    #[serde(default)]
    options: Map<String, Value>,
    /// Retry policy of a module that calls a network service; keys not given come from
    /// `limits.retry`.
    #[serde(default)]
    retry: Option<RetryOverride>,
    /// The Python server's `pip install` source: not supported (an error).
    #[serde(default)]
    pip_name: Option<Value>,
    /// In the Python server's example file, and never had an effect: ignored with a warning.
    #[serde(default, rename = "ingress-lists")]
    ingress_lists: Option<Value>,
    /// In the Python server's example file, and never had an effect: ignored with a warning.
    #[serde(default, rename = "egress-lists")]
    egress_lists: Option<Value>,
}

/// A storage instance as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageEntry {
    /// The built-in module: `storage.<name>`, `common.storage.<name>` or `<name>`.
    module: String,
    /// Module options, over the module's defaults (`null` = `{}`).
    #[serde(default)]
    options: Map<String, Value>,
    /// Retry policy of a storage that calls a network service; keys not given come from
    /// `limits.retry`.
    #[serde(default)]
    retry: Option<RetryOverride>,
    /// The Python server's `pip install` source: not supported (an error).
    #[serde(default)]
    pip_name: Option<Value>,
}

/// A tracer instance as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracerEntry {
    /// The built-in module: `tracers.<name>`, `conserver.tracers.<name>` or `<name>`.
    module: String,
    /// Module options (no tracer of this build reads them).
    #[serde(default, rename = "options")]
    _options: Option<Value>,
    /// The Python server's `pip install` source: not supported (an error).
    #[serde(default)]
    pip_name: Option<Value>,
}

/// What the three kinds of entry have in common.
struct Common<'e> {
    module: &'e str,
    options: &'e Map<String, Value>,
    retry: Option<&'e RetryOverride>,
    pip_name: bool,
}

impl LinkEntry {
    fn common(&self) -> Common<'_> {
        Common {
            module: &self.module,
            options: &self.options,
            retry: self.retry.as_ref(),
            pip_name: self.pip_name.is_some(),
        }
    }
}

impl StorageEntry {
    fn common(&self) -> Common<'_> {
        Common {
            module: &self.module,
            options: &self.options,
            retry: self.retry.as_ref(),
            pip_name: self.pip_name.is_some(),
        }
    }
}

/// The `links` section.
pub fn links(
    entries: &Named<LinkEntry>,
    written: Option<&Value>,
    default_retry: &Retry,
    problems: &mut Problems,
) -> Vec<Module<LinkKind>> {
    let at = YamlPath::root().key("links");
    for (name, entry) in &entries.0 {
        for (key, present) in [
            ("ingress-lists", entry.ingress_lists.is_some()),
            ("egress-lists", entry.egress_lists.is_some()),
        ] {
            if present {
                problems.warn(format!(
                    "{}: ignored (it never had an effect in the Python server either)",
                    at.key(name).key(key)
                ));
            }
        }
    }
    instances(
        entries.0.iter().map(|(name, entry)| (name, entry.common())),
        &at,
        written,
        default_retry,
        problems,
    )
}

/// The `storages` section.
pub fn storages(
    entries: &Named<StorageEntry>,
    written: Option<&Value>,
    default_retry: &Retry,
    problems: &mut Problems,
) -> Vec<Module<StorageKind>> {
    instances(
        entries.0.iter().map(|(name, entry)| (name, entry.common())),
        &YamlPath::root().key("storages"),
        written,
        default_retry,
        problems,
    )
}

/// The `tracers` section: no tracer is available in this build, so every one is a problem.
pub fn tracers(entries: &Named<TracerEntry>, problems: &mut Problems) {
    let at = YamlPath::root().key("tracers");
    for (name, entry) in &entries.0 {
        let entry_at = at.key(name);
        if let Some(problem) =
            Section::resolve_tracer(&entry.module).problem(Section::Tracer, &entry.module)
        {
            problems.error(&entry_at.key("module"), problem);
        }
        if entry.pip_name.is_some() {
            pip_name_problem(Section::Tracer, &entry.module, &entry_at, problems);
        }
    }
}

/// The instances of one section: each module resolved, `pip_name` refused, options checked by
/// the kind, `retry` merged.
fn instances<'e, K: Kind>(
    entries: impl Iterator<Item = (&'e String, Common<'e>)>,
    at: &YamlPath,
    written: Option<&Value>,
    default_retry: &Retry,
    problems: &mut Problems,
) -> Vec<Module<K>> {
    let mut compiled = Vec::new();
    for (name, entry) in entries {
        let entry_at = at.key(name);
        let written_entry = written.and_then(|section| section.get(name));
        if entry.pip_name {
            pip_name_problem(K::SECTION, entry.module, &entry_at, problems);
        }
        let kind = match K::resolve(entry.module) {
            Resolved::Built(kind) => kind,
            other => {
                if let Some(problem) = other.problem(K::SECTION, entry.module) {
                    problems.error(&entry_at.key("module"), problem);
                }
                continue;
            }
        };
        // A legacy name may preset options of the module it names.
        let short = K::SECTION.short_name(entry.module);
        let options = match (short != kind.name())
            .then(|| kind.alias_options(short, entry.options))
            .flatten()
        {
            Some((preset, warning)) => {
                problems.warn(format!("{}: {warning}", entry_at.key("module")));
                preset
            }
            None => entry.options.clone(),
        };
        // Options that are not a mapping were reported; reading them as empty would only add
        // "required" problems for what the file may well have.
        let options_written = written_entry.and_then(|e| e.get("options"));
        if options_written.is_none_or(|o| o.is_object() || o.is_null()) {
            kind.check_options(&options, &entry_at.key("options"), problems);
        }
        let retry = match entry.retry {
            Some(own) => {
                if !kind.calls_network() {
                    problems.error(
                        &entry_at.key("retry"),
                        format!(
                            "module {:?} makes no network call, so it takes no retry policy",
                            kind.name()
                        ),
                    );
                }
                let policy = own.over(default_retry);
                policy.check(
                    &entry_at.key("retry"),
                    written_entry.and_then(|e| e.get("retry")),
                    problems,
                );
                policy
            }
            None => default_retry.clone(),
        };
        compiled.push(Module {
            name: name.clone(),
            kind,
            options,
            retry,
        });
    }
    compiled
}

fn pip_name_problem(section: Section, module: &str, at: &YamlPath, problems: &mut Problems) {
    problems.error(
        &at.key("pip_name"),
        format!(
            "module {module:?} cannot be installed with pip_name: conserver does not load code at run time. {}",
            section.builtins_sentence()
        ),
    );
}

/// The key prefixes (`vcon_storage:`) the `redis_storage` instances write, which list names
/// must not start with (config.md §5).
pub fn redis_storage_prefixes(storages: &[Module<StorageKind>]) -> Vec<String> {
    storages
        .iter()
        .filter(|storage| storage.kind == StorageKind::RedisStorage)
        .map(|storage| {
            let prefix = storage
                .options
                .get("prefix")
                .and_then(Value::as_str)
                .unwrap_or("vcon_storage");
            format!("{prefix}:")
        })
        .collect()
}
