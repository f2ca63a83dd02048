//! Collects every problem and warning of one compile pass, with paths and line numbers, and
//! offers the typed reads the compiler is written with (a bad value is reported and read as
//! absent, so the pass goes on).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::coerce::{field_names, Coerce, Field, Object};
use super::locate::line_of;
use super::path::YamlPath;
use super::suggest::nearest;
use super::ConfigProblem;

/// The problems and warnings found so far.
pub struct Checker<'s> {
    /// The YAML text, when the config came from a file (for line numbers).
    source: Option<&'s str>,
    /// Problems, in the order found.
    pub problems: Vec<ConfigProblem>,
    /// Warnings: reported, but the config stays valid.
    pub warnings: Vec<String>,
    /// Paths whose `${VAR}` could not be expanded: their value is the unexpanded text, so a
    /// type error there would only repeat the same problem.
    unresolved: HashSet<String>,
}

impl<'s> Checker<'s> {
    /// A checker for a config read from `source` (`None`: posted, no lines to give).
    pub fn new(source: Option<&'s str>) -> Self {
        Checker {
            source,
            problems: Vec::new(),
            warnings: Vec::new(),
            unresolved: HashSet::new(),
        }
    }

    /// A problem at `path`, with the line of that path in the file when known.
    pub fn error(&mut self, path: &YamlPath, message: impl Into<String>) {
        let text = path.to_string();
        if self.unresolved.contains(&text) {
            return;
        }
        let line = self
            .source
            .and_then(|source| line_of(source, path.segments()));
        self.problems.push(ConfigProblem {
            path: text,
            line,
            message: message.into(),
        });
    }

    /// A problem in the value an environment variable gives the setting at `path`: it has
    /// no line in the file.
    pub fn env_error(&mut self, path: &YamlPath, variable: &str, message: impl std::fmt::Display) {
        self.problems.push(ConfigProblem {
            path: path.to_string(),
            line: None,
            message: format!(
                "{message} (from environment variable {variable}, which overrides {path})"
            ),
        });
    }

    /// A problem with a setting that came from the file, or from `variable` when set.
    pub fn setting_error(
        &mut self,
        path: &YamlPath,
        variable: Option<&str>,
        message: impl std::fmt::Display,
    ) {
        match variable {
            Some(variable) => self.env_error(path, variable, message),
            None => self.error(path, message.to_string()),
        }
    }

    /// The mapping of a section or entry, or its defaults when absent or (reported) not a
    /// mapping; its unknown keys are reported.
    pub fn section<T>(&mut self, path: &YamlPath, field: &Option<Field<Object<T>>>) -> T
    where
        T: serde::de::DeserializeOwned + Default + Clone,
    {
        match self.get(path, field) {
            Some(object) => self.known(path, &object).clone(),
            None => T::default(),
        }
    }

    /// A `${VAR}` that could not be expanded; later problems at the same path are dropped.
    pub fn unresolved(&mut self, path: &YamlPath, message: String) {
        self.error(path, message);
        self.unresolved.insert(path.to_string());
    }

    /// Something an operator should know that does not make the config invalid.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// The typed value of an optional field; `None` when absent or (reported) invalid.
    pub fn get<T: Coerce + Clone>(
        &mut self,
        path: &YamlPath,
        field: &Option<Field<T>>,
    ) -> Option<T> {
        field.as_ref().and_then(|field| self.typed(path, field))
    }

    /// The typed value of a present field; `None` when (reported) invalid.
    pub fn typed<T: Coerce + Clone>(&mut self, path: &YamlPath, field: &Field<T>) -> Option<T> {
        match field {
            Field::Valid(value) => Some(value.clone()),
            Field::Invalid(found) => {
                self.error(
                    path,
                    format!("must be {}, found {}", T::EXPECTED, describe(found)),
                );
                None
            }
        }
    }

    /// A required field: reported as missing when absent.
    pub fn required<T: Coerce + Clone>(
        &mut self,
        path: &YamlPath,
        field: &Option<Field<T>>,
    ) -> Option<T> {
        if field.is_none() {
            self.error(path, format!("is required ({})", T::EXPECTED));
        }
        self.get(path, field)
    }

    /// The mapping's fields, after reporting each key it does not have, with the nearest
    /// valid key when one is close.
    pub fn known<'o, T: serde::de::DeserializeOwned>(
        &mut self,
        path: &YamlPath,
        object: &'o Object<T>,
    ) -> &'o T {
        let valid = field_names::<T>();
        for key in &object.unknown {
            let message = match nearest(key, valid) {
                Some(close) => format!("unknown key {key:?} (did you mean {close:?}?)"),
                None => format!("unknown key {key:?}; valid keys: {}", valid.join(", ")),
            };
            self.error(&path.key(key), message);
        }
        &object.value
    }

    /// An integer of at least `min`.
    pub fn int_at_least(
        &mut self,
        path: &YamlPath,
        field: &Option<Field<i64>>,
        min: i64,
    ) -> Option<i64> {
        let value = self.get(path, field)?;
        if value < min {
            self.error(path, format!("must be an integer >= {min}, found {value}"));
            return None;
        }
        Some(value)
    }

    /// A number of seconds, `> 0` when `positive`, else `>= 0`.
    pub fn seconds(
        &mut self,
        path: &YamlPath,
        field: &Option<Field<f64>>,
        positive: bool,
    ) -> Option<Duration> {
        let value = self.get(path, field)?;
        let fits = if positive { value > 0.0 } else { value >= 0.0 };
        if !fits {
            let bound = if positive { "> 0" } else { ">= 0" };
            self.error(
                path,
                format!("must be a number of seconds {bound}, found {value}"),
            );
            return None;
        }
        let duration = Duration::try_from_secs_f64(value).ok();
        if duration.is_none() {
            self.error(path, format!("{value} seconds is too long"));
        }
        duration
    }
}

/// A found value as a message shows it: scalars as written, collections by kind.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
        scalar => scalar.to_string(),
    }
}
