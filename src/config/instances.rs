//! The `links`, `storages` and `tracers` sections (config.md §3, §4): module instances.
//!
//! Options are kept as written (interpolated); each module validates its own options when
//! it is built, so nothing here knows a module's option schema.

use super::checker::Checker;
use super::coerce::{Field, Named, Object, Options};
use super::modules::{transcribe_alias_vendor, ModuleKind};
use super::names::instance_name_problem;
use super::path::YamlPath;
use super::raw::{RawLink, RawRetry, RawStorage, RawTracer};
use super::settings::retry;
use super::{Module, Retry};

/// The keys every kind of instance has, borrowed from its raw struct.
struct Entry<'r> {
    module: &'r Option<Field<String>>,
    options: &'r Option<Field<Options>>,
    /// `None` for tracers, which have no `retry` key.
    retry: Option<&'r Option<Field<Object<RawRetry>>>>,
    pip_name: bool,
}

/// The compiled instances of one section, and every name it defines (also those whose
/// definition has problems, so that references to them are not reported as undefined).
pub struct Section {
    /// The instances that compiled, in file order.
    pub modules: Vec<Module>,
    /// Every name the section defines, in file order.
    pub names: Vec<String>,
}

/// The `links` section.
pub fn links(
    ck: &mut Checker<'_>,
    field: &Option<Field<Named<Object<RawLink>>>>,
    default_retry: &Retry,
) -> Section {
    section(
        ck,
        ModuleKind::Link,
        "links",
        field,
        default_retry,
        |ck, path, raw: &RawLink| {
            for (key, present) in [
                ("ingress-lists", raw.ingress_lists.is_some()),
                ("egress-lists", raw.egress_lists.is_some()),
            ] {
                if present {
                    ck.warn(format!(
                        "{}: ignored (it never had an effect in the Python server either)",
                        path.key(key)
                    ));
                }
            }
            Entry {
                module: &raw.module,
                options: &raw.options,
                retry: Some(&raw.retry),
                pip_name: raw.pip_name.is_some(),
            }
        },
    )
}

/// The `storages` section.
pub fn storages(
    ck: &mut Checker<'_>,
    field: &Option<Field<Named<Object<RawStorage>>>>,
    default_retry: &Retry,
) -> Section {
    section(
        ck,
        ModuleKind::Storage,
        "storages",
        field,
        default_retry,
        |_, _, raw: &RawStorage| Entry {
            module: &raw.module,
            options: &raw.options,
            retry: Some(&raw.retry),
            pip_name: raw.pip_name.is_some(),
        },
    )
}

/// The `tracers` section.
pub fn tracers(
    ck: &mut Checker<'_>,
    field: &Option<Field<Named<Object<RawTracer>>>>,
    default_retry: &Retry,
) -> Section {
    section(
        ck,
        ModuleKind::Tracer,
        "tracers",
        field,
        default_retry,
        |_, _, raw: &RawTracer| Entry {
            module: &raw.module,
            options: &raw.options,
            retry: None,
            pip_name: raw.pip_name.is_some(),
        },
    )
}

/// One section: each entry's name checked, its unknown keys reported, and its common keys
/// (read by `entry_of`) compiled.
fn section<T, F>(
    ck: &mut Checker<'_>,
    kind: ModuleKind,
    key: &str,
    field: &Option<Field<Named<Object<T>>>>,
    default_retry: &Retry,
    entry_of: F,
) -> Section
where
    T: serde::de::DeserializeOwned + Default + Clone,
    F: for<'r> Fn(&mut Checker<'_>, &YamlPath, &'r T) -> Entry<'r>,
{
    let path = YamlPath::root().key(key);
    let mut compiled = Section {
        modules: Vec::new(),
        names: Vec::new(),
    };
    let Some(Named(entries)) = ck.get(&path, field) else {
        return compiled;
    };
    for (name, object) in &entries {
        let entry_path = path.key(name);
        compiled.names.push(name.clone());
        if let Some(problem) = instance_name_problem(name) {
            ck.error(&entry_path, problem);
        }
        let Some(object) = ck.typed(&entry_path, object) else {
            continue;
        };
        let raw = ck.known(&entry_path, &object).clone();
        let entry = entry_of(ck, &entry_path, &raw);
        if let Some(module) = instance(ck, kind, name, &entry_path, &entry, default_retry) {
            compiled.modules.push(module);
        }
    }
    compiled
}

/// One instance: its module resolved, `pip_name` refused, `retry` merged.
fn instance(
    ck: &mut Checker<'_>,
    kind: ModuleKind,
    name: &str,
    path: &YamlPath,
    entry: &Entry<'_>,
    default_retry: &Retry,
) -> Option<Module> {
    let module_path = path.key("module");
    let written = ck.required(&module_path, entry.module);
    let module = written
        .as_deref()
        .and_then(|written| match kind.resolve(written) {
            Some(module) => Some(module),
            None => {
                ck.error(&module_path, kind.not_builtin_message(written));
                None
            }
        });
    if entry.pip_name {
        let named = written.as_deref().unwrap_or(name);
        ck.error(
            &path.key("pip_name"),
            format!(
                "module {named:?} cannot be installed with pip_name: conserver does not load code at run time. {}",
                kind.builtins_sentence()
            ),
        );
    }
    let options = ck
        .get(&path.key("options"), entry.options)
        .unwrap_or_default();
    let retry_path = path.key("retry");
    let policy = match entry.retry {
        Some(field @ Some(_)) => {
            if let Some(module) = module.filter(|m| !kind.calls_network(m)) {
                ck.error(
                    &retry_path,
                    format!("module {module:?} makes no network call, so it takes no retry policy"),
                );
            }
            retry(ck, &retry_path, field, default_retry)
        }
        _ => default_retry.clone(),
    };
    let module = module?;
    if let Some(vendor) = transcribe_alias_vendor(module) {
        ck.warn(format!(
            "{module_path}: {module} is a deprecated alias of the transcribe link with vendor {vendor}"
        ));
    }
    Some(Module {
        name: name.to_owned(),
        module: module.to_owned(),
        options: options.0,
        retry: policy,
    })
}

/// The key prefixes (`vcon_storage:`) the `redis_storage` instances write, which list names
/// must not start with (config.md §5).
pub fn redis_storage_prefixes(storages: &[Module]) -> Vec<String> {
    storages
        .iter()
        .filter(|storage| storage.module == "redis_storage")
        .map(|storage| {
            let prefix = storage
                .options
                .get("prefix")
                .and_then(|p| p.as_str())
                .unwrap_or("vcon_storage");
            format!("{prefix}:")
        })
        .collect()
}
