//! The built-in modules a config may name (config.md §3, modules.md §2), the accepted name
//! forms, and the per-module facts the config checks need (aliases, network use).

/// Which section a module instance is defined in; the same name (`webhook`, `scitt`) can be
/// both a link and a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// Defined under `links`.
    Link,
    /// Defined under `storages`.
    Storage,
    /// Defined under `tracers`.
    Tracer,
}

/// Built-in links, alphabetically (the order of the error message).
pub const LINKS: &[&str] = &[
    "analyze",
    "analyze_and_label",
    "analyze_vcon",
    "check_and_tag",
    "datatrails",
    "deepgram_link",
    "delay",
    "detect_engagement",
    "diet",
    "expire_vcon",
    "groq_whisper",
    "http_link",
    "hugging_face_whisper",
    "hugging_llm_link",
    "jq_link",
    "openai_transcribe",
    "post_analysis_to_slack",
    "sampler",
    "scitt",
    "tag",
    "tag_router",
    "transcribe",
    "webhook",
    "wtf_transcribe",
];

/// Built-in storages, alphabetically.
pub const STORAGES: &[&str] = &[
    "chatgpt_files",
    "dataverse",
    "elasticsearch",
    "file",
    "milvus",
    "mongo",
    "postgres",
    "redis_storage",
    "s3",
    "scitt",
    "sftp",
    "vcon_mcp",
    "webhook",
];

/// Built-in tracers.
pub const TRACERS: &[&str] = &["jlinc"];

/// Links that call no network service, so a `retry` policy on them is meaningless
/// (modules.md §2.1: the rows whose external service is "none"). `diet` is not among them:
/// it may upload to S3 or POST to an endpoint.
const LOCAL_LINKS: &[&str] = &[
    "tag",
    "tag_router",
    "jq_link",
    "sampler",
    "expire_vcon",
    "delay",
];

/// Storages that call no network service: the local disk, and the server's own Redis, whose
/// failures are handled by the store rather than by a module retry policy.
const LOCAL_STORAGES: &[&str] = &["file", "redis_storage"];

impl ModuleKind {
    /// The singular noun of messages ("link").
    pub fn noun(self) -> &'static str {
        match self {
            ModuleKind::Link => "link",
            ModuleKind::Storage => "storage",
            ModuleKind::Tracer => "tracer",
        }
    }

    /// The built-in modules of this kind.
    pub fn builtins(self) -> &'static [&'static str] {
        match self {
            ModuleKind::Link => LINKS,
            ModuleKind::Storage => STORAGES,
            ModuleKind::Tracer => TRACERS,
        }
    }

    /// The Python package prefixes under which a module of this kind may be named.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            ModuleKind::Link => &["conserver.links.", "links."],
            ModuleKind::Storage => &["common.storage.", "storage."],
            ModuleKind::Tracer => &["conserver.tracers.", "tracers."],
        }
    }

    /// The short name of the built-in module `written` names (`links.tag` → `tag`), or
    /// `None` when it names no built-in module of this kind.
    pub fn resolve(self, written: &str) -> Option<&'static str> {
        let short = self
            .prefixes()
            .iter()
            .find_map(|p| written.strip_prefix(p))
            .unwrap_or(written);
        self.builtins().iter().copied().find(|name| *name == short)
    }

    /// Whether a module of this kind calls a network service, and so may have a `retry` policy.
    pub fn calls_network(self, module: &str) -> bool {
        match self {
            ModuleKind::Link => !LOCAL_LINKS.contains(&module),
            ModuleKind::Storage => !LOCAL_STORAGES.contains(&module),
            // Tracers have no `retry` key at all (config.md §4).
            ModuleKind::Tracer => false,
        }
    }

    /// The error message for a module that is not built in (config.md §3), naming it as
    /// the file wrote it when its prefix is not one of this kind's, else by its short name.
    pub fn not_builtin_message(self, written: &str) -> String {
        let named = self
            .prefixes()
            .iter()
            .find_map(|p| written.strip_prefix(p))
            .unwrap_or(written);
        format!(
            "module {named:?} is not a built-in {noun}. conserver does not load code at run time. {tail}",
            noun = self.noun(),
            tail = self.builtins_sentence(),
        )
    }

    /// "Built-in links: a, b, c. Custom processing in any language can run behind http_link."
    pub fn builtins_sentence(self) -> String {
        format!("{} {CUSTOM_CODE_HINT}", self.builtins_list())
    }

    /// "Built-in links: a, b, c."
    pub fn builtins_list(self) -> String {
        format!("Built-in {}s: {}.", self.noun(), self.builtins().join(", "))
    }
}

/// Where custom code goes instead of a Python module.
pub const CUSTOM_CODE_HINT: &str = "Custom processing in any language can run behind http_link.";

/// The vendor a legacy transcription link presets on `transcribe` (modules.md §3.9), or
/// `None` for any other module.
pub fn transcribe_alias_vendor(module: &str) -> Option<&'static str> {
    match module {
        "openai_transcribe" => Some("openai"),
        "groq_whisper" => Some("groq"),
        "hugging_face_whisper" => Some("hugging_face"),
        "deepgram_link" => Some("deepgram"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_names_the_same_module() {
        for written in ["tag", "links.tag", "conserver.links.tag"] {
            assert_eq!(ModuleKind::Link.resolve(written), Some("tag"));
        }
        for written in ["file", "storage.file", "common.storage.file"] {
            assert_eq!(ModuleKind::Storage.resolve(written), Some("file"));
        }
        for written in ["jlinc", "tracers.jlinc", "conserver.tracers.jlinc"] {
            assert_eq!(ModuleKind::Tracer.resolve(written), Some("jlinc"));
        }
    }

    #[test]
    fn the_kind_comes_from_the_section() {
        assert_eq!(ModuleKind::Link.resolve("webhook"), Some("webhook"));
        assert_eq!(
            ModuleKind::Storage.resolve("storage.webhook"),
            Some("webhook")
        );
        assert_eq!(ModuleKind::Link.resolve("storage.file"), None);
        assert_eq!(ModuleKind::Storage.resolve("links.tag"), None);
        assert_eq!(ModuleKind::Link.resolve("links.custom_link_module"), None);
    }

    #[test]
    fn message_matches_the_spec_example() {
        let message = ModuleKind::Link.not_builtin_message("links.custom_link_module");
        assert_eq!(
            message,
            "module \"custom_link_module\" is not a built-in link. conserver does not load code at run \
             time. Built-in links: analyze, analyze_and_label, analyze_vcon, check_and_tag, datatrails, \
             deepgram_link, delay, detect_engagement, diet, expire_vcon, groq_whisper, http_link, \
             hugging_face_whisper, hugging_llm_link, jq_link, openai_transcribe, post_analysis_to_slack, \
             sampler, scitt, tag, tag_router, transcribe, webhook, wtf_transcribe. Custom processing in \
             any language can run behind http_link."
        );
        assert!(ModuleKind::Link
            .not_builtin_message("storage.file")
            .contains("\"storage.file\""));
    }

    #[test]
    fn network_modules() {
        assert!(!ModuleKind::Link.calls_network("tag"));
        assert!(ModuleKind::Link.calls_network("diet"));
        assert!(ModuleKind::Link.calls_network("webhook"));
        assert!(!ModuleKind::Storage.calls_network("file"));
        assert!(ModuleKind::Storage.calls_network("s3"));
        assert_eq!(transcribe_alias_vendor("deepgram_link"), Some("deepgram"));
        assert_eq!(transcribe_alias_vendor("transcribe"), None);
    }
}
