//! `tag` (modules.md §3.1): adds fixed tags `"<t>:<t>"` to the tags attachment.

use async_trait::async_trait;
use serde::Deserialize;

use super::{tags, Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::Module;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `tag`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagOptions {
    /// Each entry `t` adds the tag `"t:t"` (once: a tag already present is not repeated).
    #[serde(default = "default_tags")]
    pub tags: Vec<String>,
}

impl ModuleOptions for TagOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];
}

/// The Python server's default.
fn default_tags() -> Vec<String> {
    vec!["iron".to_owned(), "maiden".to_owned()]
}

/// The `tag` link.
#[derive(Debug)]
pub struct Tag {
    /// The `"t:t"` strings, in option order.
    tags: Vec<String>,
}

impl LinkModule for Tag {
    type Options = TagOptions;

    fn build(
        options: TagOptions,
        _module: &Module<LinkKind>,
        _ctx: &ModuleContext,
    ) -> Result<Tag, BuildError> {
        Ok(Tag {
            tags: options.tags.iter().map(|t| format!("{t}:{t}")).collect(),
        })
    }
}

#[async_trait]
impl Link for Tag {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        if !vcon.is_unsigned() {
            return Ok(LinkOutcome::Skipped);
        }
        tags::add_tags(vcon, &self.tags)?;
        Ok(LinkOutcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, document, module, run};

    fn build(module: &Module<LinkKind>) -> Result<Tag, Vec<String>> {
        test_support::build(module)
    }
    use serde_json::json;

    #[test]
    fn options_default_and_unknown_keys() {
        let tag = build(&module("tag", json!({}))).unwrap();
        assert_eq!(tag.tags, ["iron:iron", "maiden:maiden"]);
        let tag = build(&module(
            "tag",
            json!({"tags": ["vip", 7], "after_link": ["x"]}),
        ))
        .unwrap();
        assert_eq!(tag.tags, ["vip:vip", "7:7"]);
        let problems = build(&module("tag", json!({"tag": ["x"], "tags": "x"}))).unwrap_err();
        assert_eq!(
            problems,
            [
                "options.tag: unknown key \"tag\" (did you mean \"tags\"?)",
                "options.tags: must be a list, found \"x\""
            ]
        );
    }

    #[tokio::test]
    async fn tags_are_added_once() {
        let tag = build(&module("tag", json!({"tags": ["a", "b"]}))).unwrap();
        let mut vcon = document(json!({}));
        assert_eq!(run(&tag, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert_eq!(run(&tag, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert_eq!(
            vcon.value()["attachments"],
            json!([{"purpose": "tags", "body": "[\"a:a\", \"b:b\"]", "encoding": "json"}])
        );
    }

    #[tokio::test]
    async fn signed_vcons_are_skipped_and_bad_bodies_fail() {
        let tag = build(&module("tag", json!({}))).unwrap();
        let mut signed = document(json!({"payload": "e30", "signatures": [{}]}));
        assert_eq!(run(&tag, &mut signed).await.unwrap(), LinkOutcome::Skipped);
        assert!(!signed.is_changed());
        let mut bad = document(json!({"attachments": [{"purpose": "tags", "body": "{"}]}));
        assert!(run(&tag, &mut bad).await.is_err());
    }
}
