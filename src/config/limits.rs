//! The `limits` section (config.md §7.3) and the retry object (§7.4).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::path::YamlPath;
use super::read::{at_least, optional_seconds, positive_seconds, seconds, Problems};

/// The `limits` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// vCons of a chain processed concurrently on each instance, for chains that do not set
    /// `workers` (≥ 1); env `CONSERVER_WORKERS` × `CONSERVER_VCON_CONCURRENCY`.
    #[serde(default = "four", deserialize_with = "at_least::<_, usize, 1>")]
    pub default_workers: usize,
    /// Seconds (> 0) one outbound HTTP request may take, for modules without a `timeout`
    /// option.
    #[serde(default = "thirty_seconds", deserialize_with = "positive_seconds")]
    pub http_timeout: Duration,
    /// The retry policy of links and storages that do not set their own.
    #[serde(default)]
    pub retry: Retry,
    /// Write a chain's storages concurrently (else one after another, in chain order); env
    /// `CONSERVER_PARALLEL_STORAGE`.
    #[serde(default = "yes")]
    pub parallel_storage: bool,
    /// Largest vCon a link may produce, in bytes (≥ 1).
    #[serde(
        default = "sixty_four_mib",
        deserialize_with = "at_least::<_, usize, 1>"
    )]
    pub max_vcon_bytes: usize,
    /// Largest recording a transcription link downloads or decodes, in bytes (≥ 1).
    #[serde(
        default = "two_hundred_fifty_six_mib",
        deserialize_with = "at_least::<_, usize, 1>"
    )]
    pub max_media_bytes: usize,
    /// Seconds (≥ 0) in-flight vCons get to finish on SIGTERM/SIGINT before they are handed
    /// back to their ingress lists.
    #[serde(default = "thirty_seconds", deserialize_with = "seconds")]
    pub shutdown_grace: Duration,
}

fn four() -> usize {
    4
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn yes() -> bool {
    true
}

fn sixty_four_mib() -> usize {
    64 * 1024 * 1024
}

fn two_hundred_fifty_six_mib() -> usize {
    256 * 1024 * 1024
}

impl Default for Limits {
    /// Every limit at its default.
    fn default() -> Self {
        // Every field has a default, so the empty mapping reads.
        serde_json::from_value(Value::Object(Default::default()))
            .expect("every limit has a default")
    }
}

impl Limits {
    /// The checks a type cannot express.
    pub fn check(&self, at: &YamlPath, written: &Value, problems: &mut Problems) {
        self.retry
            .check(&at.key("retry"), written.get("retry"), problems);
    }
}

/// The retry object: tries and waits of a module's calls to its service. The wait before try
/// *n*+1 is `min(max_backoff, initial_backoff × multiplier^(n−1))` with jitter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Tries in total, including the first (1 … 100; 1 = no retry).
    #[serde(default = "six", deserialize_with = "attempts")]
    pub attempts: u32,
    /// Seconds (≥ 0) before the second try.
    #[serde(default = "one_second", deserialize_with = "seconds")]
    pub initial_backoff: Duration,
    /// Upper bound of one wait in seconds (≥ `initial_backoff`).
    #[serde(default = "sixty_five_seconds", deserialize_with = "seconds")]
    pub max_backoff: Duration,
    /// Growth of the wait between tries (≥ 1).
    #[serde(default = "two", deserialize_with = "multiplier")]
    pub multiplier: f64,
}

fn six() -> u32 {
    6
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

fn sixty_five_seconds() -> Duration {
    Duration::from_secs(65)
}

fn two() -> f64 {
    2.0
}

fn attempts<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let attempts: u32 = at_least::<D, u32, 1>(deserializer)?;
    if attempts > 100 {
        return Err(serde::de::Error::custom(format!(
            "must be an integer <= 100, found {attempts}"
        )));
    }
    Ok(attempts)
}

fn multiplier<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let multiplier = f64::deserialize(deserializer)?;
    if multiplier < 1.0 {
        return Err(serde::de::Error::custom(format!(
            "must be a number >= 1, found {multiplier}"
        )));
    }
    Ok(multiplier)
}

impl Default for Retry {
    /// The defaults of config.md §7.4, which match the Python server's per-module retries.
    fn default() -> Self {
        Retry {
            attempts: six(),
            initial_backoff: one_second(),
            max_backoff: sixty_five_seconds(),
            multiplier: two(),
        }
    }
}

impl Retry {
    /// `max_backoff ≥ initial_backoff`, blaming the key written in `written` (the object as
    /// the file has it); nothing when neither was written here (the base was checked).
    pub fn check(&self, at: &YamlPath, written: Option<&Value>, problems: &mut Problems) {
        if self.max_backoff >= self.initial_backoff {
            return;
        }
        let has = |key: &str| {
            written
                .and_then(|w| w.get(key))
                .is_some_and(|v| !v.is_null())
        };
        let blamed = if has("max_backoff") {
            "max_backoff"
        } else if has("initial_backoff") {
            "initial_backoff"
        } else {
            return;
        };
        problems.error(
            &at.key(blamed),
            format!(
                "max_backoff ({} s) must be >= initial_backoff ({} s)",
                self.max_backoff.as_secs_f64(),
                self.initial_backoff.as_secs_f64()
            ),
        );
    }
}

/// A module's own `retry`: the keys given replace those of `limits.retry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOverride {
    /// Tries in total, including the first (1 … 100).
    #[serde(default, deserialize_with = "optional_attempts")]
    attempts: Option<u32>,
    /// Seconds (≥ 0) before the second try.
    #[serde(default, deserialize_with = "optional_seconds")]
    initial_backoff: Option<Duration>,
    /// Upper bound of one wait in seconds.
    #[serde(default, deserialize_with = "optional_seconds")]
    max_backoff: Option<Duration>,
    /// Growth of the wait between tries (≥ 1).
    #[serde(default, deserialize_with = "optional_multiplier")]
    multiplier: Option<f64>,
}

fn optional_attempts<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    struct Attempts(u32);
    impl<'de> Deserialize<'de> for Attempts {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            attempts(d).map(Attempts)
        }
    }
    Ok(Option::<Attempts>::deserialize(deserializer)?.map(|Attempts(a)| a))
}

fn optional_multiplier<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<f64>, D::Error> {
    struct Multiplier(f64);
    impl<'de> Deserialize<'de> for Multiplier {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            multiplier(d).map(Multiplier)
        }
    }
    Ok(Option::<Multiplier>::deserialize(deserializer)?.map(|Multiplier(m)| m))
}

impl RetryOverride {
    /// The policy: these keys over `base`.
    pub fn over(&self, base: &Retry) -> Retry {
        Retry {
            attempts: self.attempts.unwrap_or(base.attempts),
            initial_backoff: self.initial_backoff.unwrap_or(base.initial_backoff),
            max_backoff: self.max_backoff.unwrap_or(base.max_backoff),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
        }
    }
}
