//! A jq program compiled once with jaq (jaq-core + the jaq-std and jaq-json libraries), run on
//! vCon text. Only plain data crosses this module's boundary — jaq's values are reference
//! counted without atomics — so a run can happen on a blocking thread.

use jaq_core::data::JustLut;
use jaq_core::load::{parse::Def, Arena, File, Loader};
use jaq_core::{compile, load, Compiler, Ctx, Exn, Vars};
use jaq_json::Val;

type Data = JustLut<Val>;

/// A compiled jq program.
pub struct Program {
    filter: jaq_core::Filter<Data>,
}

/// Why a run did not produce its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// jaq's message (`cannot use 1 as string`, …).
    pub message: String,
    /// A value of the wrong type (the case the Python server retries on cleaned data).
    pub type_error: bool,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Program {
    /// Compile `code`; the error names what does not parse or is not defined.
    pub fn compile(code: &str) -> Result<Program, String> {
        let arena = Arena::default();
        let loader = Loader::new(definitions());
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errors| load_errors(code, errors))?;
        let functions = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let filter = Compiler::default()
            .with_funs(functions)
            .compile(modules)
            .map_err(compile_errors)?;
        Ok(Program { filter })
    }

    /// Run on the JSON text `input`; up to `limit` outputs, each as a value or as JSON text
    /// depending on `read`.
    pub fn run<T>(
        &self,
        input: &[u8],
        limit: usize,
        read: impl Fn(&Val) -> T,
    ) -> Result<Vec<T>, RunError> {
        let input = jaq_json::read::parse_single(input).map_err(|e| RunError {
            message: format!("the input is not JSON: {e}"),
            type_error: false,
        })?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, input))
            .take(limit)
            .map(|output| output.map(|value| read(&value)).map_err(run_error))
            .collect()
    }
}

/// Python's truthiness, which the Python server applies to the first output: `false`, `null`,
/// zero, and empty strings, lists and objects are false.
pub fn truthy(value: &Val) -> bool {
    match value {
        Val::Null | Val::Bool(false) => false,
        Val::Bool(true) => true,
        Val::Num(n) => n.to_string().parse::<f64>() != Ok(0.0),
        Val::TStr(s) | Val::BStr(s) => !s.is_empty(),
        Val::Arr(items) => !items.is_empty(),
        Val::Obj(members) => !members.is_empty(),
    }
}

/// A value as JSON text (compact, members in order, numbers as read).
pub fn json_text(value: &Val) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = jaq_json::write::write(&mut out, &Default::default(), 0, value);
    out
}

fn definitions() -> impl Iterator<Item = Def<&'static str>> {
    jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
}

fn run_error(exception: Exn<'_, Val>) -> RunError {
    // `halt` must not end the process (jaq's `unwrap_valr` would call `exit`).
    match exception.get_err() {
        Ok(error) => {
            let message = error.to_string();
            let type_error = message.starts_with("cannot use ");
            RunError {
                message,
                type_error,
            }
        }
        Err(other) => RunError {
            message: match other.get_halt() {
                Ok(code) => format!("the program called halt (exit code {code})"),
                Err(_) => "the program stopped unexpectedly".to_owned(),
            },
            type_error: false,
        },
    }
}

fn load_errors(code: &str, errors: load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_file, error) in errors {
        match error {
            load::Error::Io(items) => messages.extend(
                items
                    .into_iter()
                    .map(|(path, why)| format!("cannot load module {path}: {why}")),
            ),
            load::Error::Lex(items) => {
                messages.extend(items.into_iter().map(|(expected, found)| {
                    format!("expected {} {}", expected.as_str(), position(code, found))
                }))
            }
            load::Error::Parse(items) => {
                messages.extend(items.into_iter().map(|(expected, found)| {
                    format!("expected {} {}", expected.as_str(), position(code, found))
                }))
            }
        }
    }
    format!("the jq program does not parse: {}", messages.join("; "))
}

/// `at character N ('…')`, or `at the end` when nothing is left.
fn position(code: &str, found: &str) -> String {
    if found.is_empty() {
        return "at the end".to_owned();
    }
    let offset = load::span(code, found).start;
    let column = code[..offset.min(code.len())].chars().count() + 1;
    let excerpt: String = found.chars().take(12).collect();
    format!("at character {column} ('{excerpt}')")
}

fn compile_errors(errors: compile::Errors<&str, ()>) -> String {
    let messages: Vec<String> = errors
        .into_iter()
        .flat_map(|(_file, items)| items)
        .map(|(name, undefined)| match undefined {
            compile::Undefined::Filter(arity) => format!("undefined filter {name}/{arity}"),
            other => format!("undefined {} {name}", other.as_str()),
        })
        .collect();
    format!(
        "the jq program uses what jaq does not define: {}",
        messages.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(code: &str, input: &str) -> Result<Vec<String>, RunError> {
        let program = Program::compile(code).unwrap();
        program.run(input.as_bytes(), 10, |v| {
            String::from_utf8(json_text(v)).unwrap()
        })
    }

    #[test]
    fn programs_run_and_keep_member_order_and_number_text() {
        assert_eq!(
            outputs(".a, .b", r#"{"a": 1, "b": [2]}"#).unwrap(),
            ["1", "[2]"]
        );
        assert_eq!(
            outputs(". + {x: 1}", r#"{"z":1.50,"a":12345678901234567890123}"#).unwrap(),
            [r#"{"z":1.50,"a":12345678901234567890123,"x":1}"#]
        );
        assert_eq!(outputs("empty", "{}").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn compile_errors_are_readable() {
        let error = Program::compile(".a |").err().unwrap();
        assert!(
            error.starts_with("the jq program does not parse"),
            "{error}"
        );
        let error = Program::compile("input").err().unwrap();
        assert_eq!(
            error,
            "the jq program uses what jaq does not define: undefined filter input/0"
        );
        let error = Program::compile("$nope").err().unwrap();
        assert!(error.contains("undefined variable"), "{error}");
    }

    #[test]
    fn type_errors_are_recognised_and_halt_does_not_exit() {
        let error = outputs(r#".[] | test("a")"#, r#"[1]"#).unwrap_err();
        assert!(error.type_error, "{error}");
        let error = outputs(r#"error("boom")"#, "{}").unwrap_err();
        assert!(!error.type_error);
        let error = outputs("halt", "{}").unwrap_err();
        assert!(error.message.contains("halt"), "{error}");
    }

    #[test]
    fn truthiness_is_pythons() {
        let program = Program::compile(".[]").unwrap();
        let falsy = program
            .run(
                br#"[false, null, 0, 0.0, -0.0, 0e10, "", [], {}]"#,
                20,
                truthy,
            )
            .unwrap();
        assert_eq!(falsy, [false; 9]);
        let truthy_values = program
            .run(br#"[true, 1, 0.5, "0", [0], {"a": null}, -1]"#, 20, truthy)
            .unwrap();
        assert_eq!(truthy_values, [true; 7]);
    }
}
