//! The closed set of links this build provides: one arm each.

use std::sync::Arc;

use super::{delay, expire_vcon, http_link, jq_link, sampler, tag, tag_router, webhook};
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
            LinkKind::Webhook | LinkKind::HttpLink => true,
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
