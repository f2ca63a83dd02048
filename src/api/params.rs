//! Query and path parameters (api.md §1.2): standard form decoding, repeated parameters as
//! lists (a comma is not a separator), uuids in every accepted form, lenient datetimes. Every
//! problem is collected so one 422 names them all.

use actix_web::HttpRequest;
use uuid::Uuid;

use super::error::ApiError;
use crate::problem::Problem;
use crate::vcon;

/// The decoded query string of a request, plus the problems found while reading it.
pub struct Query {
    pairs: Vec<(String, String)>,
    problems: Vec<Problem>,
}

impl Query {
    pub fn of(req: &HttpRequest) -> Query {
        let pairs = form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
        Query {
            pairs,
            problems: Vec::new(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in request order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A required string parameter; a problem when absent.
    pub fn required(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v.to_owned(),
            None => {
                self.problems.push(Problem::query(
                    "missing",
                    name,
                    format!("query parameter '{name}' is required"),
                ));
                String::new()
            }
        }
    }

    /// An integer in `[min, max]`, `default` when absent.
    pub fn integer(&mut self, name: &str, default: i64, min: i64, max: i64) -> i64 {
        let Some(text) = self.get(name) else {
            return default;
        };
        let input = serde_json::Value::String(text.to_owned());
        match text.trim().parse::<i64>() {
            Ok(v) if v < min => {
                self.problems.push(
                    Problem::query(
                        "greater_than_equal",
                        name,
                        format!("{name} must be an integer >= {min}"),
                    )
                    .with_input(&input),
                );
                default
            }
            Ok(v) if v > max => {
                self.problems.push(
                    Problem::query(
                        "less_than_equal",
                        name,
                        format!("{name} must be an integer <= {max}"),
                    )
                    .with_input(&input),
                );
                default
            }
            Ok(v) => v,
            Err(_) => {
                self.problems.push(
                    Problem::query("int_parsing", name, format!("{name} must be an integer"))
                        .with_input(&input),
                );
                default
            }
        }
    }

    /// A datetime as whole Unix seconds (fraction dropped), when present.
    pub fn datetime(&mut self, name: &str) -> Option<i64> {
        let text = self.get(name)?;
        match vcon::parse_date(text) {
            Some(instant) => Some(instant.timestamp()),
            None => {
                let input = serde_json::Value::String(text.to_owned());
                self.problems.push(
                    Problem::query(
                        "datetime_parsing",
                        name,
                        format!("{name} must be an RFC 3339 datetime, a naive ISO 8601 datetime (UTC) or Unix seconds"),
                    )
                    .with_input(&input),
                );
                None
            }
        }
    }

    /// Every value of `name` as a uuid.
    pub fn uuids(&mut self, name: &str) -> Vec<Uuid> {
        let mut uuids = Vec::new();
        for text in self.all(name) {
            match vcon::parse_uuid(&text) {
                Some(uuid) => uuids.push(uuid),
                None => self
                    .problems
                    .push(uuid_problem(Problem::query, name, &text)),
            }
        }
        uuids
    }

    /// `Err(422)` with every problem found so far.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(self.problems))
        }
    }
}

/// The `{vcon_uuid}` path parameter.
pub fn path_uuid(text: &str) -> Result<Uuid, ApiError> {
    vcon::parse_uuid(text)
        .ok_or_else(|| ApiError::problem(uuid_problem(Problem::path, "vcon_uuid", text)))
}

fn uuid_problem(
    make: fn(&'static str, &str, String) -> Problem,
    name: &str,
    text: &str,
) -> Problem {
    make(
        "uuid_parsing",
        name,
        format!("{name} must be a UUID (hyphenated, 32 hex digits, in braces, or urn:uuid:)"),
    )
    .with_input(&serde_json::Value::String(text.to_owned()))
}
