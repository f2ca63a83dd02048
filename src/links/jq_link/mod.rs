//! `jq_link` (modules.md §3.3): a jq filter decides whether the vCon goes on; an optional jq
//! transform then replaces it. Both programs are compiled when the config is loaded.

mod program;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use self::program::{json_text, truthy, Program, RunError};
use super::{Link, LinkContext, LinkError, LinkKind, LinkModule, LinkOutcome, AFTER_LINK};
use crate::config::Module;
use crate::metrics::Metrics;
use crate::modules::{BuildError, ModuleContext, ModuleOptions};
use crate::vcon::{Document, IngestOptions};

/// vCons larger than this are run through jq on a blocking thread, so that a long run never
/// holds an async worker thread.
const BLOCKING_THRESHOLD_BYTES: usize = 256 * 1024;

/// The options of `jq_link`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JqLinkOptions {
    /// jq program run on the vCon (its stored JSON object); its first output, truthy by
    /// Python's rule (`false`, `null`, `0`, `""`, `[]`, `{}` are false; no output is no match),
    /// decides whether the vCon matches. Compiled when the configuration is loaded.
    #[serde(default = "identity")]
    pub filter: Compiled,
    /// Continue when the filter matches (`true`) or when it does not (`false`); halt otherwise.
    #[serde(default = "default_forward_matches")]
    pub forward_matches: bool,
    /// jq program whose one output, a valid vCon object, replaces the vCon once the filter let
    /// it through (a different uuid continues the chain as that vCon). Not run on signed or
    /// encrypted vCons.
    #[serde(default)]
    pub transform: Option<Compiled>,
}

impl ModuleOptions for JqLinkOptions {
    const IGNORED: &'static [(&'static str, &'static str)] = &[AFTER_LINK];
}

/// A jq program, compiled as the option is read: one that does not compile is a config error
/// at its option's path.
#[derive(Clone)]
pub struct Compiled(Arc<Program>);

impl<'de> Deserialize<'de> for Compiled {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Program::compile(&code)
            .map(|program| Compiled(Arc::new(program)))
            .map_err(serde::de::Error::custom)
    }
}

/// `.`: every vCon matches.
fn identity() -> Compiled {
    // jaq compiles the identity program whatever the input: a failure is a broken build.
    Compiled(Arc::new(
        Program::compile(".").expect("the jq identity program compiles"),
    ))
}

fn default_forward_matches() -> bool {
    true
}

/// The `jq_link` link.
pub struct JqLink {
    name: String,
    filter: Arc<Program>,
    forward_matches: bool,
    transform: Option<Arc<Program>>,
    ingest: IngestOptions,
    metrics: Arc<Metrics>,
}

impl LinkModule for JqLink {
    type Options = JqLinkOptions;

    fn build(
        options: JqLinkOptions,
        module: &Module<LinkKind>,
        ctx: &ModuleContext,
    ) -> Result<JqLink, BuildError> {
        Ok(JqLink {
            name: module.name.clone(),
            filter: options.filter.0,
            forward_matches: options.forward_matches,
            transform: options.transform.map(|program| program.0),
            ingest: IngestOptions {
                accept_signed: true,
                max_bytes: ctx.limits.max_vcon_bytes,
            },
            metrics: ctx.metrics.clone(),
        })
    }
}

#[async_trait]
impl Link for JqLink {
    async fn run(
        &self,
        vcon: &mut Document,
        _ctx: &mut LinkContext<'_>,
    ) -> Result<LinkOutcome, LinkError> {
        let text = vcon.text().to_owned();
        let filter = self.filter.clone();
        let matched =
            off_the_async_thread(text.len(), move || filter_matches(&filter, &text)).await;
        let matched = match matched {
            Ok(matched) => matched,
            Err(error) => {
                self.metrics
                    .jq_errors
                    .with_label_values(&[&self.name])
                    .inc();
                tracing::warn!(link = %self.name, vcon_id = %vcon.uuid(), %error, "the jq filter raised an error: chain halted");
                return Ok(LinkOutcome::Halt);
            }
        };
        if matched != self.forward_matches {
            return Ok(LinkOutcome::Halt);
        }
        match &self.transform {
            Some(transform) if vcon.is_unsigned() => self.transform(transform, vcon).await,
            Some(_) => {
                tracing::debug!(link = %self.name, vcon_id = %vcon.uuid(), "signed or encrypted vCon: transform skipped");
                Ok(LinkOutcome::Continue)
            }
            None => Ok(LinkOutcome::Continue),
        }
    }
}

impl JqLink {
    async fn transform(
        &self,
        program: &Arc<Program>,
        vcon: &mut Document,
    ) -> Result<LinkOutcome, LinkError> {
        let text = vcon.text().to_owned();
        let program = program.clone();
        let size = text.len();
        let outputs =
            off_the_async_thread(size, move || program.run(text.as_bytes(), 2, json_text))
                .await
                .map_err(|e| {
                    LinkError::Content(format!("the jq transform raised an error: {e}"))
                })?;
        let [output] = <[Vec<u8>; 1]>::try_from(outputs).map_err(|outputs| {
            let count = if outputs.is_empty() {
                "no output"
            } else {
                "several outputs"
            };
            LinkError::Content(format!(
                "the jq transform must produce exactly one vCon; it produced {count}"
            ))
        })?;
        if output.as_slice() == vcon.text().as_bytes() {
            return Ok(LinkOutcome::Continue);
        }
        if output.len() > self.ingest.max_bytes {
            return Err(LinkError::Content(format!(
                "the jq transform produced {} bytes, more than limits.max_vcon_bytes ({})",
                output.len(),
                self.ingest.max_bytes
            )));
        }
        if output.first() != Some(&b'{') {
            return Err(LinkError::Content(
                "the jq transform must produce a JSON object".to_owned(),
            ));
        }
        vcon.replace(&output, &self.ingest)
            .map_err(|source| LinkError::Refused {
                what: "the jq transform produced an invalid vCon",
                source,
            })?;
        Ok(LinkOutcome::Continue)
    }
}

/// Whether the filter matches `text`; on a type error, tried once more on the Python server's
/// cleaned copy (arrays named `body` keep only their strings), as legacy data needs.
fn filter_matches(filter: &Program, text: &str) -> Result<bool, RunError> {
    match first_truthy(filter, text.as_bytes()) {
        Err(error) if error.type_error => {
            let mut value: Value = serde_json::from_str(text).map_err(|e| RunError {
                message: format!("the vCon is not JSON: {e}"),
                type_error: false,
            })?;
            if !keep_only_string_bodies(&mut value) {
                return Err(error);
            }
            first_truthy(filter, value.to_string().as_bytes())
        }
        other => other,
    }
}

fn first_truthy(filter: &Program, input: &[u8]) -> Result<bool, RunError> {
    Ok(filter
        .run(input, 1, truthy)?
        .first()
        .copied()
        .unwrap_or(false))
}

/// Every array member named `body`, at any depth, keeps only its string elements. Returns
/// whether anything was removed.
fn keep_only_string_bodies(value: &mut Value) -> bool {
    let mut changed = false;
    match value {
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                if let (true, Value::Array(items)) = (key == "body", &mut *member) {
                    let before = items.len();
                    items.retain(Value::is_string);
                    changed |= items.len() != before;
                } else {
                    changed |= keep_only_string_bodies(member);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= keep_only_string_bodies(item);
            }
        }
        _ => {}
    }
    changed
}

/// Run `work` inline for small inputs, else on a blocking thread.
async fn off_the_async_thread<T: Send + 'static>(
    input_bytes: usize,
    work: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, RunError> {
    if input_bytes <= BLOCKING_THRESHOLD_BYTES {
        return work();
    }
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(RunError {
            message: format!("the jq run did not finish: {e}"),
            type_error: false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::test_support::{self, document, module, run, U};
    use serde_json::json;

    fn build(module: &Module<LinkKind>) -> Result<JqLink, Vec<String>> {
        test_support::build(module)
    }

    fn link(options: Value) -> JqLink {
        build(&module("jq_link", options)).unwrap()
    }

    #[test]
    fn options_are_checked_and_programs_compiled() {
        let jq = link(json!({}));
        assert!(jq.forward_matches && jq.transform.is_none());
        let problems = build(&module(
            "jq_link",
            json!({"filter": ".a |", "transform": "input", "forward_matches": "sometimes", "x": 1}),
        ))
        .err()
        .unwrap();
        assert_eq!(
            problems,
            [
                "options.filter: the jq program does not parse: expected term at the end",
                "options.transform: the jq program uses what jaq does not define: undefined filter input/0",
                "options.forward_matches: must be a boolean (true/false, yes/no, on/off, 1/0), found \"sometimes\"",
                "options.x: unknown key \"x\"; valid keys: filter, forward_matches, transform",
            ]
        );
    }

    #[tokio::test]
    async fn the_filter_continues_or_halts() {
        let vcon = || document(json!({"uuid": U, "parties": [{"tel": "+1"}], "n": 0}));
        for (filter, forward, expected) in [
            (".parties | length > 0", true, LinkOutcome::Continue),
            (".parties | length > 0", false, LinkOutcome::Halt),
            (".n", true, LinkOutcome::Halt),
            (".n", false, LinkOutcome::Continue),
            ("empty", true, LinkOutcome::Halt),
            (".parties", true, LinkOutcome::Continue),
            (".missing", true, LinkOutcome::Halt),
            ("error(\"x\")", false, LinkOutcome::Halt),
        ] {
            let jq = link(json!({"filter": filter, "forward_matches": forward}));
            let outcome = run(&jq, &mut vcon()).await.unwrap();
            assert_eq!(outcome, expected, "{filter} {forward}");
        }
    }

    #[tokio::test]
    async fn a_type_error_is_retried_on_string_only_bodies() {
        let jq = link(json!({"filter": r#"[.dialog[].body[] | test("refund")] | any"#}));
        let mut vcon =
            document(json!({"uuid": U, "dialog": [{"body": [{"x": 1}, "a refund please"]}]}));
        assert_eq!(run(&jq, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert!(!vcon.is_changed());
        let mut vcon = document(json!({"uuid": U, "dialog": [{"body": 5}]}));
        assert_eq!(run(&jq, &mut vcon).await.unwrap(), LinkOutcome::Halt);
        assert_eq!(
            jq.metrics
                .jq_errors
                .with_label_values(&["my_jq_link"])
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn the_transform_replaces_the_vcon() {
        let jq = link(json!({"transform": ". + {subject: \"hi\"}"}));
        let mut vcon = document(json!({"uuid": U, "created_at": "2024-01-01T00:00:00Z"}));
        assert_eq!(run(&jq, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert_eq!(
            vcon.text(),
            format!(r#"{{"uuid":"{U}","created_at":"2024-01-01T00:00:00Z","subject":"hi"}}"#)
        );
        let other = "0191a3f4-5b6c-7d8e-9f00-0000000000ff";
        let jq = link(json!({"transform": format!(".uuid = \"{other}\"")}));
        run(&jq, &mut vcon).await.unwrap();
        assert_eq!(vcon.uuid().to_string(), other);
    }

    #[tokio::test]
    async fn an_identical_output_leaves_the_vcon_unchanged() {
        let jq = link(json!({"transform": "."}));
        let mut vcon = document(json!({"uuid": U, "created_at": "2024-01-01T00:00:00Z"}));
        assert_eq!(run(&jq, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert!(!vcon.is_changed());
    }

    #[tokio::test]
    async fn bad_transforms_fail() {
        let mut vcon = document(json!({"uuid": U, "created_at": "2024-01-01T00:00:00Z"}));
        for (transform, why) in [
            ("empty", "no output"),
            (".,.", "several outputs"),
            ("[.]", "a JSON object"),
            (".uuid = 5", "invalid vCon"),
            ("error(\"no\")", "raised an error"),
        ] {
            let jq = link(json!({"transform": transform}));
            let error = run(&jq, &mut vcon).await.unwrap_err();
            let shown = crate::report(&error).to_string();
            assert!(shown.contains(why), "{transform}: {shown}");
            assert!(!vcon.is_changed());
        }
    }

    #[tokio::test]
    async fn signed_vcons_are_filtered_but_not_transformed() {
        let jq = link(json!({"filter": ".payload", "transform": "{}"}));
        let mut signed = document(json!({"payload": "e30", "signatures": [{}]}));
        assert_eq!(run(&jq, &mut signed).await.unwrap(), LinkOutcome::Continue);
        assert!(!signed.is_changed());
    }

    #[tokio::test]
    async fn large_vcons_run_on_a_blocking_thread() {
        let big = "x".repeat(BLOCKING_THRESHOLD_BYTES + 1);
        let jq = link(json!({"filter": ".note | length > 10", "transform": ".note = \"short\""}));
        let mut vcon =
            document(json!({"uuid": U, "created_at": "2024-01-01T00:00:00Z", "note": big}));
        assert_eq!(run(&jq, &mut vcon).await.unwrap(), LinkOutcome::Continue);
        assert_eq!(vcon.value()["note"], "short");
    }
}
