//! `tag_router` (modules.md §3.2): queues the uuid on the lists its tags map to. The pushes are
//! made by the runner when the run ends (`RunEffects::routes`), never during the link, so a
//! routed chain cannot load the vCon while this one still changes it.

use async_trait::async_trait;
use serde::Deserialize;

use super::{tags, Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::path::YamlPath;
use crate::config::read::{Named, Problems};
use crate::config::Module;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `tag_router`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRouterOptions {
    /// Tag name → list the uuid is pushed to when the vCon has a tag of that name.
    #[serde(default)]
    pub tag_routes: Named<String>,
    /// Continue the chain after routing; `false` halts it (routing still happens).
    #[serde(default = "default_forward_original")]
    pub forward_original: bool,
}

impl ModuleOptions for TagRouterOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        if self.tag_routes.0.is_empty() {
            problems.warn(format!(
                "{}: none, so this tag_router routes nothing",
                at.key("tag_routes")
            ));
        }
    }
}

fn default_forward_original() -> bool {
    true
}

/// The `tag_router` link.
#[derive(Debug)]
pub struct TagRouter {
    options: TagRouterOptions,
}

impl LinkModule for TagRouter {
    type Options = TagRouterOptions;

    fn build(
        options: TagRouterOptions,
        _module: &Module<LinkKind>,
        _ctx: &ModuleContext,
    ) -> Result<TagRouter, BuildError> {
        Ok(TagRouter { options })
    }
}

#[async_trait]
impl Link for TagRouter {
    async fn run(
        &self,
        vcon: &mut Document,
        ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if self.options.tag_routes.0.is_empty() {
            return Ok(LinkOutcome::Continue);
        }
        if !vcon.is_unsigned() {
            return Ok(LinkOutcome::Skipped);
        }
        for name in tags::tag_names(vcon.value()) {
            let lists = self
                .options
                .tag_routes
                .0
                .iter()
                .filter(|(tag, _)| *tag == name);
            for (_, list) in lists {
                if !ctx.effects.routes.contains(list) {
                    ctx.effects.routes.push(list.clone());
                }
            }
        }
        Ok(if self.options.forward_original {
            LinkOutcome::Continue
        } else {
            LinkOutcome::Halt
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, document, module, run_with};

    fn build(module: &Module<LinkKind>) -> Result<TagRouter, Vec<String>> {
        test_support::build(module)
    }
    use crate::links::RunEffects;
    use serde_json::{json, Value};

    fn tagged(tags: &[&str]) -> Value {
        let body = serde_json::to_string(tags).unwrap();
        json!({"attachments": [{"purpose": "tags", "body": body, "encoding": "json"}]})
    }

    #[test]
    fn options_defaults_and_coercion() {
        let router = build(&module("tag_router", json!({}))).unwrap();
        assert!(router.options.tag_routes.0.is_empty());
        assert!(router.options.forward_original);
        let router = build(&module(
            "tag_router",
            json!({"tag_routes": {"a": "list_a", "b": 2}, "forward_original": "no"}),
        ))
        .unwrap();
        assert_eq!(
            router.options.tag_routes.0,
            [("a".into(), "list_a".into()), ("b".into(), "2".into())]
        );
        assert!(!router.options.forward_original);
        let problems =
            build(&module("tag_router", json!({"tag_routes": ["a"], "x": 1}))).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(
            problems,
            [
                "options.tag_routes: must be a mapping, found a list",
                "options.x: unknown key \"x\"; valid keys: tag_routes, forward_original"
            ]
        );
    }

    #[tokio::test]
    async fn each_list_receives_the_uuid_once_in_order() {
        let router = build(&module(
            "tag_router",
            json!({"tag_routes": {"vip": "vips", "lang": "langs", "team": "vips"}}),
        ))
        .unwrap();
        let mut vcon = document(tagged(&[
            "lang:en", "vip:yes", "lang:fr", "team:a", "other:x",
        ]));
        let mut effects = RunEffects {
            routes: vec!["langs".into()],
            ..RunEffects::default()
        };
        let outcome = run_with(&router, &mut vcon, &mut effects).await.unwrap();
        assert_eq!(outcome, LinkOutcome::Continue);
        assert_eq!(effects.routes, ["langs", "vips"]);
        assert!(!vcon.is_changed());
    }

    #[tokio::test]
    async fn outcomes() {
        let halting = build(&module(
            "tag_router",
            json!({"tag_routes": {"vip": "vips"}, "forward_original": false}),
        ))
        .unwrap();
        let mut effects = RunEffects::default();
        let outcome = run_with(&halting, &mut document(tagged(&["vip:1"])), &mut effects).await;
        assert_eq!(outcome.unwrap(), LinkOutcome::Halt);
        assert_eq!(effects.routes, ["vips"]);
        let mut effects = RunEffects::default();
        let outcome = run_with(&halting, &mut document(json!({})), &mut effects).await;
        assert_eq!(outcome.unwrap(), LinkOutcome::Halt, "no tags: halts too");
        assert!(effects.routes.is_empty());
        let signed = json!({"payload": "e30", "signatures": [{}]});
        let outcome = run_with(&halting, &mut document(signed), &mut effects).await;
        assert_eq!(outcome.unwrap(), LinkOutcome::Skipped);
        let empty = build(&module("tag_router", json!({"forward_original": false}))).unwrap();
        let outcome = run_with(&empty, &mut document(tagged(&["vip:1"])), &mut effects).await;
        assert_eq!(
            outcome.unwrap(),
            LinkOutcome::Continue,
            "no tag_routes: continue"
        );
    }
}
