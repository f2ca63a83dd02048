//! `delay` (modules.md §3.6): waits, then continues (a test aid). The wait is a timer future,
//! so the chain timeout and shutdown cancel it by dropping the run.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::config::Module;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `delay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayOptions {
    /// Seconds to wait (fractions allowed); a negative value waits 0 s, with a warning.
    #[serde(default = "default_seconds")]
    pub seconds: f64,
}

impl ModuleOptions for DelayOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        if self.seconds < 0.0 {
            problems.warn(format!(
                "{}: {} is negative; the delay waits 0 s",
                at.key("seconds"),
                self.seconds
            ));
        } else if self.wait().is_none() {
            problems.error(
                &at.key("seconds"),
                format!("{} seconds is too long a wait", self.seconds),
            );
        }
    }
}

impl DelayOptions {
    /// The wait: negative values wait 0 s, as in the Python server.
    fn wait(&self) -> Option<Duration> {
        Duration::try_from_secs_f64(self.seconds.max(0.0)).ok()
    }
}

fn default_seconds() -> f64 {
    5.0
}

/// The `delay` link.
#[derive(Debug)]
pub struct Delay {
    wait: Duration,
}

impl LinkModule for Delay {
    type Options = DelayOptions;

    fn build(
        options: DelayOptions,
        _module: &Module<LinkKind>,
        _ctx: &ModuleContext,
    ) -> Result<Delay, BuildError> {
        Ok(Delay {
            // Checked with the options: a wait too long to hold was refused there.
            wait: options.wait().unwrap_or(Duration::MAX),
        })
    }
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
    use crate::links::test_support::{self, document, module, run};

    fn build(module: &Module<LinkKind>) -> Result<Delay, Vec<String>> {
        test_support::build(module)
    }
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
