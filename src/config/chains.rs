//! The sections that wire instances to lists: `chains` (config.md §5), `followers`,
//! `ingress_auth` and `imports` (§6), and the checks across them.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::names::list_name_problem;
use super::path::YamlPath;
use super::read::{describe, optional_at_least, optional_positive_seconds, Named, Problems};
use super::Chain;
use crate::modules::{Section, CUSTOM_CODE_HINT};

/// A chain as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    /// Names of links (keys of `links`), run in this order. Required; may be `[]`.
    #[serde(default)]
    links: Option<Vec<Reference>>,
    /// Names of storages (keys of `storages`) written after the links.
    #[serde(default)]
    storages: Vec<Reference>,
    /// Lists this chain consumes; without one the chain never runs.
    #[serde(default)]
    ingress_lists: Vec<String>,
    /// Lists the uuid is appended to once the storages succeeded.
    #[serde(default)]
    egress_lists: Vec<String>,
    /// A disabled chain consumes nothing.
    #[serde(default = "yes")]
    enabled: bool,
    /// Seconds (> 0) the link phase of one vCon may take; none by default.
    #[serde(default, deserialize_with = "optional_positive_seconds")]
    timeout: Option<Duration>,
    /// vCons processed concurrently per instance (≥ 1); default `limits.default_workers`.
    #[serde(default, deserialize_with = "optional_at_least::<_, usize, 1>")]
    workers: Option<usize>,
    /// Names of the tracers run for this chain; default every tracer.
    #[serde(default)]
    tracers: Option<Vec<Reference>>,
}

fn yes() -> bool {
    true
}

/// An entry of a chain's `links`, `storages` or `tracers`: the name of an instance, or what
/// was written instead (reported with the noun of the section by [`references`]).
#[derive(Debug)]
enum Reference {
    /// A name (a number or boolean the YAML reader typed is taken as its text).
    Name(String),
    /// The inline form `- analyze: {…}`, with its first key.
    Inline(String),
    /// Anything else.
    Other(Value),
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::String(name) => Reference::Name(name),
            Value::Number(number) => Reference::Name(number.to_string()),
            Value::Bool(flag) => Reference::Name(flag.to_string()),
            Value::Object(inline) => Reference::Inline(
                inline
                    .keys()
                    .next()
                    .map_or_else(|| "…".to_owned(), |k| format!("{k:?}")),
            ),
            other => Reference::Other(other),
        })
    }
}

/// Names defined by the other sections, which chains refer to (every name written, also
/// those whose definition has problems, so a reference to them is not reported as well).
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
    entries: &Named<ChainEntry>,
    defined: &Defined<'_>,
    default_workers: usize,
    problems: &mut Problems,
) -> Vec<Chain> {
    let path = YamlPath::root().key("chains");
    // Ingress list → the enabled chain that reads it, to find a list read by two.
    let mut readers: HashMap<&str, &str> = HashMap::new();
    let mut compiled = Vec::new();
    for (name, entry) in &entries.0 {
        let at = path.key(name);
        let chain = chain(name, &at, entry, defined, default_workers, problems);
        for (i, list) in entry.ingress_lists.iter().enumerate() {
            let list_at = at.key("ingress_lists").index(i);
            if entry.ingress_lists[..i].contains(list) {
                problems.error(&list_at, format!("ingress list {list:?} is listed twice"));
            } else if entry.enabled {
                match readers.get(list.as_str()) {
                    Some(other) => problems.error(
                        &list_at,
                        format!(
                            "ingress list {list:?} is already read by the enabled chain {other:?}; an ingress list \
                             belongs to one enabled chain"
                        ),
                    ),
                    None => {
                        readers.insert(list, name);
                    }
                }
            }
        }
        for (i, list) in entry.egress_lists.iter().enumerate() {
            if entry.ingress_lists.contains(list) {
                problems.error(
                    &at.key("egress_lists").index(i),
                    format!("egress list {list:?} is also an ingress list of this chain: its vCons would loop forever"),
                );
            }
        }
        if entry.ingress_lists.is_empty() {
            problems.warn(format!("{at}: no ingress_lists, so this chain never runs"));
        }
        compiled.push(chain);
    }
    compiled
}

fn chain(
    name: &str,
    at: &YamlPath,
    entry: &ChainEntry,
    defined: &Defined<'_>,
    default_workers: usize,
    problems: &mut Problems,
) -> Chain {
    let links_at = at.key("links");
    let links = match &entry.links {
        Some(links) => references(&links_at, links, Section::Link, defined.links, problems),
        None => {
            problems.error(
                &links_at,
                "is required: the names of the links to run, in order (may be [])",
            );
            Vec::new()
        }
    };
    let storages = references(
        &at.key("storages"),
        &entry.storages,
        Section::Storage,
        defined.storages,
        problems,
    );
    if let Some(tracers) = &entry.tracers {
        references(
            &at.key("tracers"),
            tracers,
            Section::Tracer,
            defined.tracers,
            problems,
        );
    }
    for (key, lists) in [
        ("ingress_lists", &entry.ingress_lists),
        ("egress_lists", &entry.egress_lists),
    ] {
        for (i, list) in lists.iter().enumerate() {
            if let Some(problem) = list_name_problem(list, defined.storage_prefixes) {
                problems.error(&at.key(key).index(i), problem);
            }
        }
    }
    Chain {
        name: name.to_owned(),
        links,
        storages,
        ingress_lists: entry.ingress_lists.clone(),
        egress_lists: entry.egress_lists.clone(),
        enabled: entry.enabled,
        timeout: entry.timeout,
        workers: entry.workers.unwrap_or(default_workers),
    }
}

/// A list of instance names, each of which must be defined in its section.
fn references(
    at: &YamlPath,
    items: &[Reference],
    section: Section,
    defined: &[String],
    problems: &mut Problems,
) -> Vec<String> {
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_at = at.index(i);
        let name = match item {
            Reference::Name(name) => name,
            Reference::Inline(written) => {
                problems.error(
                    &item_at,
                    format!(
                        "an entry must be the name of a {noun} defined under {key}; the inline form \
                         (- {written}: {{…}}) is not supported: define the {noun} under {key} and name it here",
                        noun = section.noun(),
                        key = section.key(),
                    ),
                );
                continue;
            }
            Reference::Other(found) => {
                problems.error(
                    &item_at,
                    format!(
                        "must be the name of a {}, found {}",
                        section.noun(),
                        describe(found)
                    ),
                );
                continue;
            }
        };
        if !defined.contains(name) {
            let candidates: Vec<&str> = defined.iter().map(String::as_str).collect();
            let hint = super::suggest::nearest(name, &candidates)
                .map(|close| format!(" (did you mean {close:?}?)"))
                .unwrap_or_default();
            problems.error(
                &item_at,
                format!(
                    "no {} named {name:?} is defined under {}{hint}",
                    section.noun(),
                    section.key()
                ),
            );
        }
        names.push(name.clone());
    }
    names
}

/// The `followers` section: no follower runs in this build, so every one is a problem.
pub fn followers(entries: &Named<Value>, problems: &mut Problems) {
    let at = YamlPath::root().key("followers");
    for (name, _) in &entries.0 {
        problems.error(
            &at.key(name),
            "followers are not available in this build yet: nothing would pull from this \
             follower's server",
        );
    }
}

/// The `ingress_auth` section: list → one key or a list of keys.
pub fn ingress_auth(
    entries: &Named<Value>,
    chains: &[Chain],
    storage_prefixes: &[String],
    problems: &mut Problems,
) -> Vec<(String, Vec<String>)> {
    let path = YamlPath::root().key("ingress_auth");
    let mut compiled = Vec::new();
    for (list, keys) in &entries.0 {
        let list_at = path.key(list);
        if let Some(problem) = list_name_problem(list, storage_prefixes) {
            problems.error(&list_at, problem);
        }
        // A single key is written as a scalar, so its path is the list's own.
        let written: Vec<(YamlPath, &Value)> = match keys {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (list_at.index(i), item))
                .collect(),
            Value::Null | Value::Object(_) => {
                problems.error(
                    &list_at,
                    format!("must be a key or a list of keys, found {}", describe(keys)),
                );
                continue;
            }
            scalar => vec![(list_at.clone(), scalar)],
        };
        if written.is_empty() {
            problems.error(&list_at, "needs at least one key");
        }
        let mut valid = Vec::new();
        for (key_at, key) in written {
            match key {
                Value::String(key) if key.is_empty() => {
                    problems.error(&key_at, "a key must not be empty")
                }
                Value::String(key) => valid.push(key.clone()),
                Value::Number(_) | Value::Bool(_) => valid.push(key.to_string()),
                other => problems.error(
                    &key_at,
                    format!("must be a string, found {}", describe(other)),
                ),
            }
        }
        if !chains
            .iter()
            .any(|c| c.enabled && c.ingress_lists.contains(list))
        {
            problems.warn(format!(
                "{list_at}: no enabled chain reads {list:?}, so its external ingress answers 404"
            ));
        }
        compiled.push((list.clone(), valid));
    }
    compiled
}

/// `imports` must be absent, `null` or `{}`: conserver never loads code (config.md §3).
pub fn imports(imports: Option<&Value>, problems: &mut Problems) {
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
                problems.error(
                    &path.key(name),
                    format!(
                        "module {module:?} cannot be imported: conserver does not load code at run time. {} {} {} \
                         {CUSTOM_CODE_HINT}",
                        Section::Link.builtins_list(),
                        Section::Storage.builtins_list(),
                        Section::Tracer.builtins_list(),
                    ),
                );
            }
        }
        Some(other) => problems.error(
            &path,
            format!(
                "must be absent or empty: conserver does not load code at run time (found {})",
                describe(other)
            ),
        ),
    }
}
