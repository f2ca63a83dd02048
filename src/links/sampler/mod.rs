//! `sampler` (modules.md §3.4): keeps a sample of the vCons (continue) and halts the rest.

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::config::Module;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::Document;

/// The options of `sampler`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerOptions {
    /// How the sample is drawn: `percentage`, `rate`, `modulo` or `time_based`.
    #[serde(default)]
    pub method: Method,
    /// `percentage`: the share kept, 0 … 100; `rate`: the mean number of seconds between
    /// samples (> 0); `modulo` and `time_based`: the divisor, an integer ≥ 1.
    #[serde(default = "default_value")]
    pub value: f64,
    /// Makes the random methods deterministic: each vCon's draw comes from a generator seeded
    /// with this seed and its uuid, so a vCon always gets the same decision.
    #[serde(default)]
    pub seed: Option<i64>,
}

fn default_value() -> f64 {
    50.0
}

/// How the sample is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Keep when a uniform draw in [0, 100] is ≤ `value`.
    #[default]
    Percentage,
    /// Keep when an exponential draw with mean `value` is ≤ 1.
    Rate,
    /// Keep when the first 8 hex digits of SHA-256 of the lowercase uuid, read as an integer,
    /// are divisible by `value`.
    Modulo,
    /// Keep when the current Unix second is divisible by `value`.
    TimeBased,
}

/// The `sampler` link.
#[derive(Debug)]
pub struct Sampler {
    options: SamplerOptions,
}

impl ModuleOptions for SamplerOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];

    /// A `value` out of its method's range is a config error.
    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        let value = self.value;
        let whole = value.fract() == 0.0;
        let problem = match self.method {
            Method::Percentage if !(0.0..=100.0).contains(&value) => {
                Some("must be between 0 and 100 for method percentage")
            }
            Method::Rate if value <= 0.0 => Some("must be greater than 0 for method rate"),
            Method::Modulo if !whole || value < 1.0 || value > u32::MAX as f64 => {
                Some("must be an integer >= 1 for method modulo")
            }
            Method::TimeBased if !whole || value < 1.0 || value > u32::MAX as f64 => {
                Some("must be an integer >= 1 for method time_based")
            }
            _ => None,
        };
        if let Some(why) = problem {
            problems.error(&at.key("value"), format!("{why}, found {value}"));
        }
    }
}

impl LinkModule for Sampler {
    type Options = SamplerOptions;

    fn build(
        options: SamplerOptions,
        _module: &Module<LinkKind>,
        _ctx: &ModuleContext,
    ) -> Result<Sampler, BuildError> {
        Ok(Sampler { options })
    }
}

impl Sampler {
    /// Whether the vCon `uuid` is kept, at Unix second `now`.
    fn keeps(&self, uuid: Uuid, now: u64) -> bool {
        let value = self.options.value;
        match self.options.method {
            Method::Percentage => self.draw(uuid) * 100.0 <= value,
            // Inverse transform sampling: -ln(1 - U) × mean is exponential with that mean.
            Method::Rate => -(1.0 - self.draw(uuid)).ln() * value <= 1.0,
            Method::Modulo => uuid_number(uuid).is_multiple_of(value as u64),
            Method::TimeBased => now.is_multiple_of(value as u64),
        }
    }

    /// A uniform draw in [0, 1): from the seed and the uuid when seeded, else at random.
    fn draw(&self, uuid: Uuid) -> f64 {
        match self.options.seed {
            Some(seed) => fastrand::Rng::with_seed(seeded(seed, uuid)).f64(),
            None => fastrand::f64(),
        }
    }
}

/// The first 8 hex digits of SHA-256 of the lowercase uuid, as an integer.
fn uuid_number(uuid: Uuid) -> u64 {
    let digest = Sha256::digest(uuid.to_string().as_bytes());
    u64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// A generator seed from the configured seed and the uuid: SHA-256, so it is the same on every
/// instance and every release (std's hasher promises neither).
fn seeded(seed: i64, uuid: Uuid) -> u64 {
    let digest = Sha256::digest(format!("{seed}:{uuid}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[async_trait]
impl Link for Sampler {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(if self.keeps(vcon.uuid(), now) {
            LinkOutcome::Continue
        } else {
            LinkOutcome::Halt
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, document, module, run, U};
    use serde_json::{json, Value};

    fn build(module: &Module<LinkKind>) -> Result<Sampler, Vec<String>> {
        test_support::build(module)
    }

    fn sampler(options: Value) -> Sampler {
        build(&module("sampler", options)).unwrap()
    }

    #[test]
    fn options_defaults_and_errors() {
        let s = sampler(json!({}));
        assert_eq!(s.options.method, Method::Percentage);
        assert_eq!(s.options.value, 50.0);
        assert_eq!(s.options.seed, None);
        let s = sampler(json!({"method": "modulo", "value": "10", "seed": null}));
        assert_eq!(s.options.method, Method::Modulo);
        let problems = build(&module("sampler", json!({"method": "x"}))).unwrap_err();
        assert_eq!(
            problems,
            ["options.method: must be one of percentage, rate, modulo, time_based, found \"x\""]
        );
        for (method, value) in [
            ("percentage", 101.0),
            ("percentage", -1.0),
            ("rate", 0.0),
            ("modulo", 0.0),
            ("modulo", 2.5),
            ("time_based", 0.0),
        ] {
            let problems = build(&module(
                "sampler",
                json!({"method": method, "value": value}),
            ))
            .unwrap_err();
            assert!(
                problems[0].starts_with("options.value: must be "),
                "{problems:?}"
            );
            assert!(
                problems[0].ends_with(&format!("for method {method}, found {value}")),
                "{problems:?}"
            );
        }
        assert!(build(&module("sampler", json!({"rate": 1}))).is_err());
    }

    #[test]
    fn modulo_reads_the_uuid_hash() {
        let uuid: Uuid = U.parse().unwrap();
        let digest = Sha256::digest(U.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        assert_eq!(uuid_number(uuid), u64::from_str_radix(&hex, 16).unwrap());
        let keep_all = sampler(json!({"method": "modulo", "value": 1}));
        assert!(keep_all.keeps(uuid, 0));
        let divisor = uuid_number(uuid) + 1;
        let keep_none = sampler(json!({"method": "modulo", "value": divisor}));
        assert!(!keep_none.keeps(uuid, 0));
    }

    #[test]
    fn time_based_uses_the_second() {
        let s = sampler(json!({"method": "time_based", "value": 10}));
        let uuid: Uuid = U.parse().unwrap();
        assert!(s.keeps(uuid, 1_700_000_000));
        assert!(!s.keeps(uuid, 1_700_000_001));
    }

    #[test]
    fn seeded_draws_are_per_vcon_and_repeatable() {
        let s = sampler(json!({"value": 50, "seed": 42}));
        let uuids: Vec<Uuid> = (0..200u128).map(Uuid::from_u128).collect();
        let first: Vec<bool> = uuids.iter().map(|u| s.keeps(*u, 0)).collect();
        let again: Vec<bool> = uuids.iter().map(|u| s.keeps(*u, 0)).collect();
        assert_eq!(first, again);
        let kept = first.iter().filter(|k| **k).count();
        assert!(
            (50..150).contains(&kept),
            "a seed keeps a sample, not all or none: {kept}"
        );
        let rate = sampler(json!({"method": "rate", "value": 1, "seed": "7"}));
        let kept = uuids.iter().filter(|u| rate.keeps(**u, 0)).count();
        assert!((80..175).contains(&kept), "about 63% kept: {kept}");
    }

    #[tokio::test]
    async fn extremes_keep_all_or_none_and_signed_vcons_are_sampled() {
        let all = sampler(json!({"value": 100}));
        let none = sampler(json!({"value": 0}));
        let mut signed = document(json!({"payload": "e30", "signatures": [{}]}));
        assert_eq!(run(&all, &mut signed).await.unwrap(), LinkOutcome::Continue);
        let mut vcon = document(json!({"uuid": U}));
        assert_eq!(run(&none, &mut vcon).await.unwrap(), LinkOutcome::Halt);
    }
}
