//! What every link and storage shares: the names a configuration may give a module
//! (config.md §3) and the built-in names this build does not provide, the [`Kind`] each
//! instance compiles to, the [`ModuleContext`] modules are built with, and ([`values`]) the
//! typed option values their options structs are made of.
//!
//! A module is one folder under `links/` or `storages/` and one arm of its kind's enum
//! (`links::LinkKind`, `storages::StorageKind`); every `match` on the kind is exhaustive, so a
//! kind whose arm is missing does not compile.

pub mod values;

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::config::{ConfigProblem, Limits};
use crate::http::Deliveries;
use crate::metrics::Metrics;
use crate::store::Store;

/// The section a module instance is defined in; the same name (`webhook`) can be both a link
/// and a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `links`.
    Link,
    /// `storages`.
    Storage,
    /// `tracers`.
    Tracer,
}

/// Modules of the Python server that a configuration may name and this build does not provide:
/// naming one is a config error saying so, not "unknown module".
const NOT_BUILT: &[(Section, &str)] = &[
    (Section::Link, "analyze"),
    (Section::Link, "analyze_and_label"),
    (Section::Link, "analyze_vcon"),
    (Section::Link, "check_and_tag"),
    (Section::Link, "datatrails"),
    (Section::Link, "detect_engagement"),
    (Section::Link, "hugging_llm_link"),
    (Section::Link, "scitt"),
    (Section::Storage, "chatgpt_files"),
    (Section::Storage, "dataverse"),
    (Section::Storage, "elasticsearch"),
    (Section::Storage, "milvus"),
    (Section::Storage, "scitt"),
    (Section::Storage, "sftp"),
    (Section::Tracer, "jlinc"),
];

/// Where custom code goes instead of a Python module.
pub const CUSTOM_CODE_HINT: &str = "Custom processing in any language can run behind http_link.";

impl Section {
    /// The singular noun of messages ("link").
    pub fn noun(self) -> &'static str {
        match self {
            Section::Link => "link",
            Section::Storage => "storage",
            Section::Tracer => "tracer",
        }
    }

    /// The key of the section in the file (`links`).
    pub fn key(self) -> &'static str {
        match self {
            Section::Link => "links",
            Section::Storage => "storages",
            Section::Tracer => "tracers",
        }
    }

    /// The Python package prefixes under which a module of this section may be named.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            Section::Link => &["conserver.links.", "links."],
            Section::Storage => &["common.storage.", "storage."],
            Section::Tracer => &["conserver.tracers.", "tracers."],
        }
    }

    /// `written` without this section's package prefix (`links.tag` → `tag`).
    pub fn short_name(self, written: &str) -> &str {
        self.prefixes()
            .iter()
            .find_map(|prefix| written.strip_prefix(prefix))
            .unwrap_or(written)
    }

    /// Every built-in module name of this section, alphabetically (those of this build and
    /// those it does not provide).
    pub fn builtins(self) -> Vec<&'static str> {
        let built: Vec<&'static str> = match self {
            Section::Link => names_and_aliases::<crate::links::LinkKind>(),
            Section::Storage => names_and_aliases::<crate::storages::StorageKind>(),
            Section::Tracer => Vec::new(),
        };
        let mut names: Vec<&'static str> = built.into_iter().chain(not_built(self)).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// "Built-in links: a, b, c."
    pub fn builtins_list(self) -> String {
        format!("Built-in {}s: {}.", self.noun(), self.builtins().join(", "))
    }

    /// "Built-in links: a, b, c. Custom processing in any language can run behind http_link."
    pub fn builtins_sentence(self) -> String {
        format!("{} {CUSTOM_CODE_HINT}", self.builtins_list())
    }

    /// The problem of a `module` that names no built-in module of this section: named as the
    /// file wrote it when its prefix is not this section's, else by its short name.
    pub fn not_builtin_message(self, written: &str) -> String {
        format!(
            "module {:?} is not a built-in {}. conserver does not load code at run time. {}",
            self.short_name(written),
            self.noun(),
            self.builtins_sentence(),
        )
    }
}

/// The names and legacy names of every kind `K`.
fn names_and_aliases<K: Kind>() -> Vec<&'static str> {
    K::ALL
        .iter()
        .flat_map(|kind| std::iter::once(kind.name()).chain(kind.aliases().iter().copied()))
        .collect()
}

fn not_built(section: Section) -> impl Iterator<Item = &'static str> {
    NOT_BUILT
        .iter()
        .filter(move |(own, _)| *own == section)
        .map(|(_, name)| *name)
}

/// What the `module` of an instance names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved<K> {
    /// A module of this build.
    Built(K),
    /// A built-in module of the Python server that this build does not provide.
    NotBuilt(&'static str),
    /// Nothing built in.
    Unknown,
}

impl<K> Resolved<K> {
    /// The problem message of a name that does not resolve to a module of this build.
    pub fn problem(&self, section: Section, written: &str) -> Option<String> {
        match self {
            Resolved::Built(_) => None,
            Resolved::NotBuilt(name) => Some(format!(
                "module {name:?} is not available in this build yet. {}",
                section.builtins_available()
            )),
            Resolved::Unknown => Some(section.not_builtin_message(written)),
        }
    }
}

impl Section {
    /// "Available in this build: a, b."
    fn builtins_available(self) -> String {
        let built: &[&str] = match self {
            Section::Link => crate::links::LinkKind::NAMES,
            Section::Storage => crate::storages::StorageKind::NAMES,
            Section::Tracer => &[],
        };
        if built.is_empty() {
            format!("No {} is available in this build.", self.noun())
        } else {
            format!(
                "{}s available in this build: {}.",
                capitalised(self.noun()),
                built.join(", ")
            )
        }
    }

    /// The tracer named by `written` (config.md §3): no tracer is built yet.
    pub fn resolve_tracer(written: &str) -> Resolved<std::convert::Infallible> {
        let short = Section::Tracer.short_name(written);
        match not_built(Section::Tracer).find(|name| *name == short) {
            Some(name) => Resolved::NotBuilt(name),
            None => Resolved::Unknown,
        }
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A kind of built-in module: what a configured instance compiles to.
pub trait Kind: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// The section its instances are defined in.
    const SECTION: Section;
    /// Every kind.
    const ALL: &'static [Self];

    /// The module's name (`tag`).
    fn name(self) -> &'static str;

    /// Other names of the same module (legacy names of the Python server).
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }

    /// The options an instance named by `alias` (one of [`Kind::aliases`]) runs with, when the
    /// legacy name presets some (the transcription vendor of `deepgram_link`), and the warning
    /// the name deserves. `None`: the options as written, no warning.
    fn alias_options(
        self,
        alias: &str,
        options: &Map<String, Value>,
    ) -> Option<(Map<String, Value>, String)> {
        let _ = (alias, options);
        None
    }

    /// Whether the module calls a network service (so it takes a `retry` policy, and a link's
    /// changes are written back as soon as it ran: a crash must not pay for the call twice).
    fn calls_network(self) -> bool;

    /// What the configuration knows of the module's options.
    fn options(self) -> OptionsOf;

    /// Read and check the instance's options at `at` (`links.x.options`), reporting every
    /// problem; what its build will read.
    fn check_options(self, options: &Map<String, Value>, at: &YamlPath, problems: &mut Problems) {
        (self.options().check)(options, at, problems)
    }

    /// The kind `written` names in this section (any accepted form, aliases included).
    fn resolve(written: &str) -> Resolved<Self> {
        let short = Self::SECTION.short_name(written);
        if let Some(kind) = Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == short || kind.aliases().contains(&short))
        {
            return Resolved::Built(kind);
        }
        match not_built(Self::SECTION).find(|name| *name == short) {
            Some(name) => Resolved::NotBuilt(name),
            None => Resolved::Unknown,
        }
    }
}

/// Declares a closed set of modules: the enum (one variant per module, with its name), its
/// `NAMES`, and the items of [`Kind`] that follow from them. The enum's own `calls_network`,
/// `options` and `build` are written by hand, one exhaustive `match` each; a trailing
/// `; with { … }` adds
/// the other items of its `Kind` (a set with legacy names gives `aliases`).
macro_rules! module_kinds {
    ($(#[$meta:meta])* $enum:ident in $section:expr;
     $($(#[$doc:meta])* $kind:ident => $name:literal),* $(,)?
     $(; with { $($extra:tt)* })?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum {
            $($(#[$doc])* $kind,)*
        }

        impl $enum {
            /// The names of the modules of this build.
            pub const NAMES: &'static [&'static str] = &[$($name),*];
        }

        impl $crate::modules::Kind for $enum {
            const SECTION: $crate::modules::Section = $section;
            const ALL: &'static [$enum] = &[$($enum::$kind),*];

            fn name(self) -> &'static str {
                match self {
                    $($enum::$kind => $name,)*
                }
            }

            fn calls_network(self) -> bool {
                self.calls_network()
            }

            fn options(self) -> $crate::modules::OptionsOf {
                self.options()
            }

            $($($extra)*)?
        }
    };
}
pub(crate) use module_kinds;

/// What an options struct is to the configuration.
pub trait ModuleOptions: DeserializeOwned {
    /// Keys the Python module took that have no effect here, each with the reason: accepted
    /// with a warning (modules.md §1.8).
    const IGNORED: &'static [(&'static str, &'static str)] = &[];

    /// Options whose values are secrets whatever their name: masked wherever the
    /// configuration is shown (`GET /config`, summaries), like the options whose name says
    /// secret (`password`, `api_key`, …), which are masked anyway.
    const SECRETS: &'static [&'static str] = &[];

    /// Problems the types of the options cannot express (one option given only with another,
    /// a range that depends on a mode…), and warnings about what they make the module do.
    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        let _ = (at, problems);
    }
}

/// A module's options type, as the configuration uses it: how to check an instance's options,
/// and which of them are secrets.
#[derive(Clone, Copy)]
pub struct OptionsOf {
    check: fn(&Map<String, Value>, &YamlPath, &mut Problems),
    /// [`ModuleOptions::SECRETS`].
    pub secrets: &'static [&'static str],
}

impl OptionsOf {
    /// The options type `T`.
    pub fn of<T: ModuleOptions>() -> OptionsOf {
        OptionsOf {
            check: check_options::<T>,
            secrets: T::SECRETS,
        }
    }

    /// Options checked by `check` (a module whose options type depends on one of them).
    pub fn checked_by(
        check: fn(&Map<String, Value>, &YamlPath, &mut Problems),
        secrets: &'static [&'static str],
    ) -> OptionsOf {
        OptionsOf { check, secrets }
    }
}

/// Read the options of a module instance at `at` as `T`, every problem reported; keys `T`
/// ignores are dropped with a warning.
pub fn read_options<T: ModuleOptions>(
    options: &Map<String, Value>,
    at: &YamlPath,
    problems: &mut Problems,
) -> Option<T> {
    let mut kept = options.clone();
    for (key, why) in T::IGNORED {
        if kept.shift_remove(*key).is_some() {
            problems.warn(format!("{}: ignored ({why})", at.key(key)));
        }
    }
    let typed = problems.read::<T>(&Value::Object(kept), at)?;
    typed.check(at, problems);
    Some(typed)
}

/// Check the options of an instance whose options are `T` (the body of
/// [`Kind::check_options`]).
pub fn check_options<T: ModuleOptions>(
    options: &Map<String, Value>,
    at: &YamlPath,
    problems: &mut Problems,
) {
    read_options::<T>(options, at, problems);
}

/// The options of an instance for its build: they were checked when the configuration
/// compiled, so a problem now is a [`BuildError`].
pub fn build_options<T: ModuleOptions>(
    name: &str,
    section: Section,
    options: &Map<String, Value>,
) -> Result<T, BuildError> {
    let at = YamlPath::root().key(section.key()).key(name).key("options");
    let mut problems = Problems::new(None);
    let typed = read_options::<T>(options, &at, &mut problems);
    let (found, _) = problems.into_parts();
    match typed {
        Some(typed) if found.is_empty() => Ok(typed),
        _ => Err(BuildError::Options(found)),
    }
}

/// What every module is built with.
#[derive(Clone)]
pub struct ModuleContext {
    /// One HTTP client for the process (connection reuse); `User-Agent: conserver/<version>`.
    pub http: reqwest::Client,
    /// The process's per-target delivery actors over `http` (`http::delivery`): every request
    /// a module sends goes through its target's, so one slow target holds up only its own.
    pub deliveries: Deliveries,
    /// The `limits` section: default timeout, largest vCon a link may produce, …
    pub limits: Limits,
    /// The process's metrics (retries, jq errors).
    pub metrics: Arc<Metrics>,
    /// The server's own store (for `redis_storage`).
    pub store: Arc<dyn Store>,
}

impl ModuleContext {
    /// The context of modules built for `limits` on `store`, with a client of its own.
    pub fn new(limits: Limits, metrics: Arc<Metrics>, store: Arc<dyn Store>) -> ModuleContext {
        let http = crate::http::http_client(&limits);
        ModuleContext {
            deliveries: Deliveries::new(http.clone(), metrics.clone()),
            http,
            limits,
            metrics,
            store,
        }
    }
}

/// Why a module could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Its options do not read (a configuration that did not go through the compiler).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Options(Vec<ConfigProblem>),
}

impl BuildError {
    /// As configuration problems.
    pub fn into_problems(self) -> Vec<ConfigProblem> {
        match self {
            BuildError::Options(problems) => problems,
        }
    }
}

/// Read `options` (a JSON object) as `T` at `options`, or every problem as
/// `options.<key>: message`.
#[cfg(test)]
pub(crate) fn read_in_test<T: ModuleOptions>(options: Value) -> Result<T, Vec<String>> {
    let mut problems = Problems::new(None);
    let typed = read_options::<T>(
        options.as_object().expect("options are a JSON object"),
        &YamlPath::root().key("options"),
        &mut problems,
    );
    let (found, _) = problems.into_parts();
    match typed {
        Some(typed) if found.is_empty() => Ok(typed),
        _ => Err(found.iter().map(ToString::to_string).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::LinkKind;
    use crate::storages::StorageKind;

    #[test]
    fn every_form_names_the_same_module() {
        for written in ["tag", "links.tag", "conserver.links.tag"] {
            assert_eq!(LinkKind::resolve(written), Resolved::Built(LinkKind::Tag));
        }
        for written in ["file", "storage.file", "common.storage.file"] {
            assert_eq!(
                StorageKind::resolve(written),
                Resolved::Built(StorageKind::File)
            );
        }
        for written in ["jlinc", "tracers.jlinc", "conserver.tracers.jlinc"] {
            assert_eq!(
                Section::resolve_tracer(written),
                Resolved::NotBuilt("jlinc")
            );
        }
    }

    #[test]
    fn the_section_decides_the_kind() {
        assert_eq!(
            LinkKind::resolve("webhook"),
            Resolved::Built(LinkKind::Webhook)
        );
        assert_eq!(
            StorageKind::resolve("storage.webhook"),
            Resolved::Built(StorageKind::Webhook)
        );
        assert_eq!(LinkKind::resolve("storage.file"), Resolved::Unknown);
        assert_eq!(StorageKind::resolve("links.tag"), Resolved::Unknown);
        assert_eq!(LinkKind::resolve("analyze"), Resolved::NotBuilt("analyze"));
        assert_eq!(StorageKind::resolve("s3"), Resolved::Built(StorageKind::S3));
        assert_eq!(
            StorageKind::resolve("storage.mongo"),
            Resolved::Built(StorageKind::Mongo)
        );
        assert_eq!(StorageKind::resolve("sftp"), Resolved::NotBuilt("sftp"));
    }

    #[test]
    fn messages_match_the_spec() {
        let message = Section::Link.not_builtin_message("links.custom_link_module");
        assert_eq!(
            message,
            "module \"custom_link_module\" is not a built-in link. conserver does not load code at run \
             time. Built-in links: analyze, analyze_and_label, analyze_vcon, check_and_tag, datatrails, \
             deepgram_link, delay, detect_engagement, diet, expire_vcon, groq_whisper, http_link, \
             hugging_face_whisper, hugging_llm_link, jq_link, openai_transcribe, post_analysis_to_slack, \
             sampler, scitt, tag, tag_router, transcribe, webhook, wtf_transcribe. Custom processing in \
             any language can run behind http_link."
        );
        assert!(Section::Link
            .not_builtin_message("storage.file")
            .contains("\"storage.file\""));
        assert_eq!(
            StorageKind::resolve("sftp")
                .problem(Section::Storage, "sftp")
                .unwrap(),
            "module \"sftp\" is not available in this build yet. Storages available in this build: \
             file, mongo, postgres, redis_storage, s3, vcon_mcp, webhook."
        );
        assert_eq!(
            Section::resolve_tracer("jlinc").problem(Section::Tracer, "jlinc").unwrap(),
            "module \"jlinc\" is not available in this build yet. No tracer is available in this build."
        );
    }

    #[test]
    fn built_and_not_built_names_never_overlap() {
        for section in [Section::Link, Section::Storage] {
            let built: &[&str] = match section {
                Section::Link => LinkKind::NAMES,
                _ => StorageKind::NAMES,
            };
            for name in not_built(section) {
                assert!(
                    !built.contains(&name),
                    "{name} is built and listed as not built"
                );
            }
        }
    }
}
