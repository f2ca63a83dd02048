//! The closed set of links this build provides: one arm each.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    delay, diet, expire_vcon, http_link, jq_link, post_analysis_to_slack, sampler, tag, tag_router,
    transcribe, webhook, wtf_transcribe,
};
use super::{Link, LinkModule};
use crate::config::Module;
use crate::modules::{build_options, module_kinds, BuildError, ModuleContext, OptionsOf, Section};

module_kinds! {
    /// A built-in link.
    LinkKind in Section::Link;
    /// `tag` (modules.md §3.1).
    Tag => "tag",
    /// `tag_router` (§3.2).
    TagRouter => "tag_router",
    /// `jq_link` (§3.3).
    JqLink => "jq_link",
    /// `sampler` (§3.4).
    Sampler => "sampler",
    /// `expire_vcon` (§3.5).
    ExpireVcon => "expire_vcon",
    /// `delay` (§3.6).
    Delay => "delay",
    /// `webhook` (§3.7).
    Webhook => "webhook",
    /// `http_link` (§3.8).
    HttpLink => "http_link",
    /// `transcribe` (§3.9–§3.13), also named by its legacy vendor modules.
    Transcribe => "transcribe",
    /// `wtf_transcribe` (§3.14).
    WtfTranscribe => "wtf_transcribe",
    /// `diet` (§3.21).
    Diet => "diet",
    /// `post_analysis_to_slack` (§3.22).
    PostAnalysisToSlack => "post_analysis_to_slack";
    with {
        fn aliases(self) -> &'static [&'static str] {
            self.aliases()
        }

        fn alias_options(
            self,
            alias: &str,
            options: &Map<String, Value>,
        ) -> Option<(Map<String, Value>, String)> {
            self.alias_options(alias, options)
        }
    }
}

impl LinkKind {
    /// Whether the link calls a network service (modules.md §2.1: the rows whose external
    /// service is not "none").
    pub fn calls_network(self) -> bool {
        match self {
            LinkKind::Tag
            | LinkKind::TagRouter
            | LinkKind::JqLink
            | LinkKind::Sampler
            | LinkKind::ExpireVcon
            | LinkKind::Delay => false,
            LinkKind::Webhook
            | LinkKind::HttpLink
            | LinkKind::Transcribe
            | LinkKind::WtfTranscribe
            | LinkKind::Diet
            | LinkKind::PostAnalysisToSlack => true,
        }
    }

    /// The legacy names of the link (modules.md §2.1).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            LinkKind::Transcribe => &[
                "deepgram_link",
                "openai_transcribe",
                "groq_whisper",
                "hugging_face_whisper",
            ],
            LinkKind::Tag
            | LinkKind::TagRouter
            | LinkKind::JqLink
            | LinkKind::Sampler
            | LinkKind::ExpireVcon
            | LinkKind::Delay
            | LinkKind::Webhook
            | LinkKind::HttpLink
            | LinkKind::WtfTranscribe
            | LinkKind::Diet
            | LinkKind::PostAnalysisToSlack => &[],
        }
    }

    /// The options an instance named by a legacy name runs with, and its warning.
    pub fn alias_options(
        self,
        alias: &str,
        options: &Map<String, Value>,
    ) -> Option<(Map<String, Value>, String)> {
        match self {
            LinkKind::Transcribe => transcribe::alias_options(alias, options),
            LinkKind::Tag
            | LinkKind::TagRouter
            | LinkKind::JqLink
            | LinkKind::Sampler
            | LinkKind::ExpireVcon
            | LinkKind::Delay
            | LinkKind::Webhook
            | LinkKind::HttpLink
            | LinkKind::WtfTranscribe
            | LinkKind::Diet
            | LinkKind::PostAnalysisToSlack => None,
        }
    }

    /// The options type of the module.
    pub fn options(self) -> OptionsOf {
        match self {
            LinkKind::Tag => OptionsOf::of::<tag::TagOptions>(),
            LinkKind::TagRouter => OptionsOf::of::<tag_router::TagRouterOptions>(),
            LinkKind::JqLink => OptionsOf::of::<jq_link::JqLinkOptions>(),
            LinkKind::Sampler => OptionsOf::of::<sampler::SamplerOptions>(),
            LinkKind::ExpireVcon => OptionsOf::of::<expire_vcon::ExpireVconOptions>(),
            LinkKind::Delay => OptionsOf::of::<delay::DelayOptions>(),
            LinkKind::Webhook => OptionsOf::of::<webhook::WebhookOptions>(),
            LinkKind::HttpLink => OptionsOf::of::<http_link::HttpLinkOptions>(),
            LinkKind::Transcribe => OptionsOf::checked_by(transcribe::check, &[]),
            LinkKind::WtfTranscribe => OptionsOf::of::<wtf_transcribe::WtfTranscribeOptions>(),
            LinkKind::Diet => OptionsOf::of::<diet::DietOptions>(),
            LinkKind::PostAnalysisToSlack => {
                OptionsOf::of::<post_analysis_to_slack::SlackOptions>()
            }
        }
    }

    /// Build the link instance `module`.
    pub fn build(
        self,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<Arc<dyn Link>, BuildError> {
        match self {
            LinkKind::Tag => built::<tag::Tag>(module, ctx),
            LinkKind::TagRouter => built::<tag_router::TagRouter>(module, ctx),
            LinkKind::JqLink => built::<jq_link::JqLink>(module, ctx),
            LinkKind::Sampler => built::<sampler::Sampler>(module, ctx),
            LinkKind::ExpireVcon => built::<expire_vcon::ExpireVcon>(module, ctx),
            LinkKind::Delay => built::<delay::Delay>(module, ctx),
            LinkKind::Webhook => built::<webhook::Webhook>(module, ctx),
            LinkKind::HttpLink => built::<http_link::HttpLink>(module, ctx),
            LinkKind::Transcribe => built::<transcribe::Transcribe>(module, ctx),
            LinkKind::WtfTranscribe => built::<wtf_transcribe::WtfTranscribe>(module, ctx),
            LinkKind::Diet => built::<diet::Diet>(module, ctx),
            LinkKind::PostAnalysisToSlack => {
                built::<post_analysis_to_slack::PostAnalysisToSlack>(module, ctx)
            }
        }
    }
}

fn built<L: LinkModule>(
    module: &Module<LinkKind>,
    ctx: &ModuleContext,
) -> Result<Arc<dyn Link>, BuildError> {
    let options = build_options::<L::Options>(&module.name, Section::Link, &module.options)?;
    Ok(Arc::new(L::build(options, module, ctx)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::Kind;

    #[test]
    fn names_and_kinds_agree() {
        assert_eq!(LinkKind::NAMES.len(), LinkKind::ALL.len());
        for (kind, name) in LinkKind::ALL.iter().zip(LinkKind::NAMES) {
            assert_eq!(kind.name(), *name);
        }
        assert!(!LinkKind::Tag.calls_network());
        assert!(LinkKind::Webhook.calls_network());
        assert!(LinkKind::HttpLink.calls_network());
    }
}
