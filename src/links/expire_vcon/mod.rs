//! `expire_vcon` (modules.md §3.5): the vCon's TTL when this run finishes. Recorded in the run's
//! effects rather than set at once, so a later link, or a chain the vCon is routed to, never
//! finds it expired.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::read::at_least;
use crate::config::Module;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `expire_vcon`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireVconOptions {
    /// Seconds the vCon lives in the store once this run finishes, instead of `redis.vcon_ttl`
    /// (an integer ≥ 1).
    #[serde(
        default = "default_seconds",
        deserialize_with = "at_least::<_, u64, 1>"
    )]
    pub seconds: u64,
}

fn default_seconds() -> u64 {
    86_400
}

impl ModuleOptions for ExpireVconOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];
}

/// The `expire_vcon` link.
#[derive(Debug)]
pub struct ExpireVcon {
    seconds: u64,
}

impl LinkModule for ExpireVcon {
    type Options = ExpireVconOptions;

    fn build(
        options: ExpireVconOptions,
        _module: &Module<LinkKind>,
        _ctx: &ModuleContext,
    ) -> Result<ExpireVcon, BuildError> {
        Ok(ExpireVcon {
            seconds: options.seconds,
        })
    }
}

#[async_trait]
impl Link for ExpireVcon {
    async fn run(
        &self,
        _vcon: &mut Document,
        ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        ctx.effects.expire_seconds = Some(self.seconds);
        Ok(LinkOutcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, document, module, run_with};

    fn build(module: &Module<LinkKind>) -> Result<ExpireVcon, Vec<String>> {
        test_support::build(module)
    }
    use crate::links::RunEffects;
    use serde_json::json;

    #[test]
    fn options() {
        assert_eq!(
            build(&module("expire_vcon", json!({}))).unwrap().seconds,
            86_400
        );
        assert_eq!(
            build(&module("expire_vcon", json!({"seconds": "60"})))
                .unwrap()
                .seconds,
            60
        );
        assert_eq!(
            build(&module("expire_vcon", json!({"seconds": 0}))).unwrap_err(),
            ["options.seconds: must be an integer >= 1, found 0"]
        );
        assert!(build(&module("expire_vcon", json!({"seconds": 1.5}))).is_err());
        assert!(build(&module("expire_vcon", json!({"ttl": 5}))).is_err());
    }

    #[tokio::test]
    async fn the_ttl_is_recorded_for_the_end_of_the_run() {
        let link = build(&module("expire_vcon", json!({"seconds": 120}))).unwrap();
        let mut effects = RunEffects::default();
        let mut signed = document(json!({"payload": "e30", "signatures": [{}]}));
        let outcome = run_with(&link, &mut signed, &mut effects).await.unwrap();
        assert_eq!(outcome, LinkOutcome::Continue);
        assert_eq!(effects.expire_seconds, Some(120));
    }
}
