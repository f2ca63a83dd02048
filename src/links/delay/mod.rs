//! `delay` (modules.md §3.6): waits, then continues (a test aid). The wait is a timer future,
//! so the chain timeout and shutdown cancel it by dropping the run.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::options::{self, lenient};
use super::{Link, LinkContext, LinkError, LinkOutcome};
use crate::config::Module;
use crate::vcon::Document;

/// The options of `delay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayOptions {
    /// Seconds to wait (fractions allowed); a negative value waits 0 s, with a warning.
    #[serde(default = "default_seconds", deserialize_with = "lenient")]
    pub seconds: f64,
}

fn default_seconds() -> f64 {
    5.0
}

/// The `delay` link.
#[derive(Debug)]
pub struct Delay {
    wait: Duration,
}

/// Build from the module's options.
pub fn build(module: &Module) -> Result<Delay, Vec<String>> {
    options::parse_checked(module, &["after_link"], |options: DelayOptions| {
        if options.seconds < 0.0 {
            tracing::warn!(link = %module.name, seconds = options.seconds, "delay: negative seconds; waiting 0 s");
        }
        Duration::try_from_secs_f64(options.seconds.max(0.0))
            .map(|wait| Delay { wait })
            .map_err(|_| {
                vec![format!(
                    "options.seconds: {} is too long a wait",
                    options.seconds
                )]
            })
    })
}

#[async_trait]
impl Link for Delay {
    async fn run(
        &self,
        _vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        tokio::time::sleep(self.wait).await;
        Ok(LinkOutcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::options::tests::module;
    use crate::links::test_support::{document, run};
    use serde_json::json;

    #[test]
    fn options() {
        assert_eq!(
            build(&module("delay", json!({}))).unwrap().wait,
            Duration::from_secs(5)
        );
        assert_eq!(
            build(&module("delay", json!({"seconds": "0.25"})))
                .unwrap()
                .wait,
            Duration::from_millis(250)
        );
        assert_eq!(
            build(&module("delay", json!({"seconds": -3})))
                .unwrap()
                .wait,
            Duration::ZERO
        );
        assert!(build(&module("delay", json!({"seconds": "soon"}))).is_err());
        assert!(build(&module("delay", json!({"seconds": 1e300}))).is_err());
    }

    #[tokio::test]
    async fn it_waits_and_can_be_cancelled() {
        let link = build(&module("delay", json!({"seconds": 0.05}))).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            run(&link, &mut document(json!({}))).await.unwrap(),
            LinkOutcome::Continue
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        let link = build(&module("delay", json!({"seconds": 3600}))).unwrap();
        let mut vcon = document(json!({}));
        let cut = tokio::time::timeout(Duration::from_millis(10), run(&link, &mut vcon)).await;
        assert!(cut.is_err(), "the chain timeout drops the wait");
    }
}
