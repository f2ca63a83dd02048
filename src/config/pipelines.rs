//! The sections that wire instances to lists: `chains` (config.md §5), `followers`,
//! `ingress_auth` and `imports` (§6), and the checks across them.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::checker::{describe, Checker};
use super::coerce::{Field, List, Named, Object};
use super::modules::{ModuleKind, CUSTOM_CODE_HINT};
use super::names::{instance_name_problem, list_name_problem};
use super::path::YamlPath;
use super::raw::{KeyOrKeys, RawChain, RawFollower};
use super::settings::strings;
use super::suggest::nearest;
use super::{Chain, Follower};

/// Names defined by the other sections, which chains refer to.
pub struct Defined<'d> {
    /// Keys of `links`.
    pub links: &'d [String],
    /// Keys of `storages`.
    pub storages: &'d [String],
    /// Keys of `tracers`.
    pub tracers: &'d [String],
    /// Key prefixes of `redis_storage` instances, reserved for list names.
    pub storage_prefixes: &'d [String],
}

/// The `chains` section, with the checks across chains (one enabled reader per ingress
/// list, no egress into the own ingress).
pub fn chains(
    ck: &mut Checker<'_>,
    field: &Option<Field<Named<Object<RawChain>>>>,
    defined: &Defined<'_>,
    default_workers: usize,
) -> Vec<Chain> {
    let path = YamlPath::root().key("chains");
    let Some(Named(entries)) = ck.get(&path, field) else {
        return Vec::new();
    };
    // Ingress list → the enabled chain that reads it, to find a list read by two.
    let mut readers: HashMap<String, String> = HashMap::new();
    let mut compiled = Vec::new();
    for (name, object) in &entries {
        let chain_path = path.key(name);
        if let Some(problem) = instance_name_problem(name) {
            ck.error(&chain_path, problem);
        }
        let Some(object) = ck.typed(&chain_path, object) else {
            continue;
        };
        let raw = ck.known(&chain_path, &object).clone();
        let chain = chain(ck, name, &chain_path, &raw, defined, default_workers);

        for (i, list) in chain.ingress_lists.iter().enumerate() {
            let list_path = chain_path.key("ingress_lists").index(i);
            if chain.ingress_lists[..i].contains(list) {
                ck.error(&list_path, format!("ingress list {list:?} is listed twice"));
            } else if chain.enabled {
                match readers.get(list) {
                    Some(other) => ck.error(
                        &list_path,
                        format!(
                            "ingress list {list:?} is already read by the enabled chain {other:?}; an ingress list \
                             belongs to one enabled chain"
                        ),
                    ),
                    None => {
                        readers.insert(list.clone(), name.clone());
                    }
                }
            }
        }
        for (i, list) in chain.egress_lists.iter().enumerate() {
            if chain.ingress_lists.contains(list) {
                ck.error(
                    &chain_path.key("egress_lists").index(i),
                    format!("egress list {list:?} is also an ingress list of this chain: its vCons would loop forever"),
                );
            }
        }
        if chain.ingress_lists.is_empty() {
            ck.warn(format!(
                "{chain_path}: no ingress_lists, so this chain never runs"
            ));
        }
        compiled.push(chain);
    }
    compiled
}

fn chain(
    ck: &mut Checker<'_>,
    name: &str,
    path: &YamlPath,
    raw: &RawChain,
    defined: &Defined<'_>,
    default_workers: usize,
) -> Chain {
    let links_path = path.key("links");
    if raw.links.is_none() {
        ck.error(
            &links_path,
            "is required: the names of the links to run, in order (may be [])",
        );
    }
    let links = references(ck, &links_path, &raw.links, ModuleKind::Link, defined.links);
    let storages = references(
        ck,
        &path.key("storages"),
        &raw.storages,
        ModuleKind::Storage,
        defined.storages,
    );
    let tracers = raw.tracers.is_some().then(|| {
        references(
            ck,
            &path.key("tracers"),
            &raw.tracers,
            ModuleKind::Tracer,
            defined.tracers,
        )
    });
    let ingress_lists = list_names(
        ck,
        &path.key("ingress_lists"),
        &raw.ingress_lists,
        defined.storage_prefixes,
    );
    let egress_lists = list_names(
        ck,
        &path.key("egress_lists"),
        &raw.egress_lists,
        defined.storage_prefixes,
    );
    let workers = ck
        .int_at_least(&path.key("workers"), &raw.workers, 1)
        .map(|w| usize::try_from(w).unwrap_or(usize::MAX));
    Chain {
        name: name.to_owned(),
        links,
        storages,
        ingress_lists,
        egress_lists,
        enabled: ck.get(&path.key("enabled"), &raw.enabled).unwrap_or(true),
        timeout: ck.seconds(&path.key("timeout"), &raw.timeout, true),
        workers: workers.unwrap_or(default_workers),
        tracers,
    }
}

/// A list of instance names, each of which must be defined in its section.
fn references(
    ck: &mut Checker<'_>,
    path: &YamlPath,
    field: &Option<Field<List<String>>>,
    kind: ModuleKind,
    defined: &[String],
) -> Vec<String> {
    let Some(List(items)) = ck.get(path, field) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        let name = match item {
            Field::Valid(name) => name,
            Field::Invalid(Value::Object(inline)) => {
                let written = inline
                    .keys()
                    .next()
                    .map_or_else(|| "…".to_owned(), |k| format!("{k:?}"));
                ck.error(
                    &item_path,
                    format!(
                        "an entry must be the name of a {noun} defined under {section}; the inline form \
                         (- {written}: {{…}}) is not supported: define the {noun} under {section} and name it here",
                        noun = kind.noun(),
                        section = section_of(kind),
                    ),
                );
                continue;
            }
            Field::Invalid(found) => {
                ck.error(
                    &item_path,
                    format!(
                        "must be the name of a {}, found {}",
                        kind.noun(),
                        describe(found)
                    ),
                );
                continue;
            }
        };
        if !defined.contains(name) {
            let candidates: Vec<&str> = defined.iter().map(String::as_str).collect();
            let hint = nearest(name, &candidates)
                .map(|close| format!(" (did you mean {close:?}?)"))
                .unwrap_or_default();
            ck.error(
                &item_path,
                format!(
                    "no {} named {name:?} is defined under {}{hint}",
                    kind.noun(),
                    section_of(kind)
                ),
            );
        }
        names.push(name.clone());
    }
    names
}

fn section_of(kind: ModuleKind) -> &'static str {
    match kind {
        ModuleKind::Link => "links",
        ModuleKind::Storage => "storages",
        ModuleKind::Tracer => "tracers",
    }
}

/// A list of list names, each following the list-name rules.
fn list_names(
    ck: &mut Checker<'_>,
    path: &YamlPath,
    field: &Option<Field<List<String>>>,
    storage_prefixes: &[String],
) -> Vec<String> {
    let names = strings(ck, path, field).unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        if let Some(problem) = list_name_problem(name, storage_prefixes) {
            ck.error(&path.index(i), problem);
        }
    }
    names
}

/// The `followers` section; each follower must feed a list an enabled chain reads.
pub fn followers(
    ck: &mut Checker<'_>,
    field: &Option<Field<Named<Object<RawFollower>>>>,
    chains: &[Chain],
    default_header: &str,
    storage_prefixes: &[String],
) -> Vec<Follower> {
    let path = YamlPath::root().key("followers");
    let Some(Named(entries)) = ck.get(&path, field) else {
        return Vec::new();
    };
    let mut compiled = Vec::new();
    for (name, object) in &entries {
        let follower_path = path.key(name);
        if let Some(problem) = instance_name_problem(name) {
            ck.error(&follower_path, problem);
        }
        let Some(object) = ck.typed(&follower_path, object) else {
            continue;
        };
        let raw = ck.known(&follower_path, &object).clone();
        if let Some(follower) = follower(
            ck,
            name,
            &follower_path,
            &raw,
            chains,
            default_header,
            storage_prefixes,
        ) {
            compiled.push(follower);
        }
    }
    compiled
}

fn follower(
    ck: &mut Checker<'_>,
    name: &str,
    path: &YamlPath,
    raw: &RawFollower,
    chains: &[Chain],
    default_header: &str,
    storage_prefixes: &[String],
) -> Option<Follower> {
    let url_path = path.key("url");
    let url = ck.required(&url_path, &raw.url);
    if let Some(url) = &url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            ck.error(
                &url_path,
                "must be an http:// or https:// URL of the remote server",
            );
        }
    }
    let egress_path = path.key("egress_list");
    let egress_list = ck.required(&egress_path, &raw.egress_list);
    if egress_list.as_deref() == Some("") {
        ck.error(&egress_path, "must not be empty");
    }
    let ingress_path = path.key("follower_ingress_list");
    let ingress_list = ck.required(&ingress_path, &raw.follower_ingress_list);
    if let Some(list) = &ingress_list {
        if let Some(problem) = list_name_problem(list, storage_prefixes) {
            ck.error(&ingress_path, problem);
        } else if !chains
            .iter()
            .any(|c| c.enabled && c.ingress_lists.contains(list))
        {
            ck.error(
                &ingress_path,
                format!(
                    "no enabled chain reads {list:?}: the followed vCons would never be processed"
                ),
            );
        }
    }
    let header_path = path.key("header_name");
    let header_name = ck.get(&header_path, &raw.header_name);
    if header_name
        .as_deref()
        .is_some_and(|h| h.is_empty() || h.contains(char::is_whitespace) || h.contains(':'))
    {
        ck.error(&header_path, "is not a valid HTTP header name");
    }
    let fetch_vcon_limit = ck
        .int_at_least(&path.key("fetch_vcon_limit"), &raw.fetch_vcon_limit, 1)
        .unwrap_or(10);
    let pulling_interval = ck
        .seconds(&path.key("pulling_interval"), &raw.pulling_interval, true)
        .unwrap_or(Duration::from_secs(10));
    Some(Follower {
        name: name.to_owned(),
        url: url?,
        egress_list: egress_list?,
        follower_ingress_list: ingress_list?,
        auth_token: ck.get(&path.key("auth_token"), &raw.auth_token),
        header_name: header_name
            .unwrap_or_else(|| default_header.to_owned())
            .to_ascii_lowercase(),
        fetch_vcon_limit: usize::try_from(fetch_vcon_limit).unwrap_or(usize::MAX),
        pulling_interval,
    })
}

/// The `ingress_auth` section.
pub fn ingress_auth(
    ck: &mut Checker<'_>,
    field: &Option<Field<Named<KeyOrKeys>>>,
    chains: &[Chain],
    storage_prefixes: &[String],
) -> Vec<(String, Vec<String>)> {
    let path = YamlPath::root().key("ingress_auth");
    let Some(Named(entries)) = ck.get(&path, field) else {
        return Vec::new();
    };
    let mut compiled = Vec::new();
    for (list, keys) in &entries {
        let list_path = path.key(list);
        if let Some(problem) = list_name_problem(list, storage_prefixes) {
            ck.error(&list_path, problem);
        }
        let Some(KeyOrKeys(keys)) = ck.typed(&list_path, keys) else {
            continue;
        };
        if keys.is_empty() {
            ck.error(&list_path, "needs at least one key");
        }
        let single = keys.len() == 1;
        let mut valid = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            // A single key is written as a scalar, so its path is the list's own.
            let key_path = if single {
                list_path.clone()
            } else {
                list_path.index(i)
            };
            match ck.typed(&key_path, key) {
                Some(key) if key.is_empty() => ck.error(&key_path, "a key must not be empty"),
                Some(key) => valid.push(key),
                None => {}
            }
        }
        if !chains
            .iter()
            .any(|c| c.enabled && c.ingress_lists.contains(list))
        {
            ck.warn(format!(
                "{list_path}: no enabled chain reads {list:?}, so its external ingress answers 404"
            ));
        }
        compiled.push((list.clone(), valid));
    }
    compiled
}

/// `imports` must be absent, `null` or `{}`: conserver never loads code (config.md §3).
pub fn imports(ck: &mut Checker<'_>, imports: Option<&Value>) {
    let path = YamlPath::root().key("imports");
    match imports {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (name, entry) in entries {
                let module = match entry {
                    Value::String(module) => module.as_str(),
                    Value::Object(fields) => {
                        fields.get("module").and_then(Value::as_str).unwrap_or(name)
                    }
                    _ => name,
                };
                ck.error(
                    &path.key(name),
                    format!(
                        "module {module:?} cannot be imported: conserver does not load code at run time. {} {} {} \
                         {CUSTOM_CODE_HINT}",
                        ModuleKind::Link.builtins_list(),
                        ModuleKind::Storage.builtins_list(),
                        ModuleKind::Tracer.builtins_list(),
                    ),
                );
            }
        }
        Some(other) => ck.error(
            &path,
            format!(
                "must be absent or empty: conserver does not load code at run time (found {})",
                describe(other)
            ),
        ),
    }
}
