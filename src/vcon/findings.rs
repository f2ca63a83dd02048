//! What validation found: the 422 problems, reported in document order, and the warnings.
//!
//! Problems come from two places (the scanner sees repeated keys and deep nesting, the rules see
//! values), so each carries a document-order rank: per path segment, the array index or the
//! position of the member's first occurrence among its object's members. Sorting by that rank
//! interleaves both sources in the order a reader meets them. A problem about a whole object
//! (a missing member) ranks with the object itself, so it comes before the object's members.

use serde_json::Value;

use crate::problem::{json_path, Loc, Problem};

use super::view::{Kind, Raw};
use super::Warning;

/// One segment of the location being checked, with its document-order rank (`None` for a
/// member that is not in the document: its problem ranks with the enclosing object).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step<'s> {
    segment: Segment<'s>,
    order: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Segment<'s> {
    Key(&'s str),
    Index(usize),
}

impl<'s> Step<'s> {
    /// The member `name`, whose first occurrence is its object's `order`-th member.
    pub(crate) fn key(name: &'s str, order: usize) -> Self {
        Step {
            segment: Segment::Key(name),
            order: Some(order),
        }
    }

    /// The member `name`, which the object lacks.
    pub(crate) fn absent(name: &'s str) -> Self {
        Step {
            segment: Segment::Key(name),
            order: None,
        }
    }

    /// The element at `index` of an array.
    pub(crate) fn index(index: usize) -> Self {
        Step {
            segment: Segment::Index(index),
            order: Some(index),
        }
    }

    fn loc(&self) -> Loc {
        match self.segment {
            Segment::Key(name) => Loc::Key(name.to_owned()),
            Segment::Index(index) => Loc::Index(index),
        }
    }
}

/// The JSONPath of a location, for messages that point at another place.
pub(crate) fn path_of(steps: &[Step<'_>]) -> String {
    json_path(&steps.iter().map(Step::loc).collect::<Vec<_>>())
}

/// The problems and warnings found so far.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    problems: Vec<(Vec<usize>, Problem)>,
    warnings: Vec<Warning>,
}

impl Findings {
    /// Record a problem at `base` + `tail`, with the offending value when it is worth showing.
    pub(crate) fn problem(
        &mut self,
        base: &[Step<'_>],
        tail: &[Step<'_>],
        kind: &'static str,
        msg: impl Into<String>,
        input: Option<Raw<'_>>,
    ) {
        let steps = || base.iter().chain(tail);
        let loc = steps().map(Step::loc).collect();
        let order = steps().map_while(|step| step.order).collect();
        let mut problem = Problem::body(kind, loc, msg);
        if let Some(value) = input.and_then(scalar_value) {
            problem = problem.with_input(&value);
        }
        self.add_problem(order, problem);
    }

    /// Record a problem whose location the caller has already built.
    pub(crate) fn add_problem(&mut self, order: Vec<usize>, problem: Problem) {
        self.problems.push((order, problem));
    }

    /// Record a warning of vcon.md §3.3 at `base` + `tail`.
    pub(crate) fn warn(&mut self, base: &[Step<'_>], tail: &[Step<'_>], kind: &'static str) {
        let loc: Vec<Loc> = base.iter().chain(tail).map(Step::loc).collect();
        self.warnings.push(Warning {
            kind,
            path: json_path(&loc),
        });
    }

    pub(crate) fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The problems in document order (stable: equal ranks keep the order they were found in).
    pub(crate) fn into_problems(mut self) -> Vec<Problem> {
        self.problems.sort_by(|a, b| a.0.cmp(&b.0));
        self.problems
            .into_iter()
            .map(|(_, problem)| problem)
            .collect()
    }

    pub(crate) fn into_warnings(self) -> Vec<Warning> {
        self.warnings
    }
}

/// The value of a scalar, for a problem's `input`; containers are never shown (api.md §1.4), so
/// they are not even parsed.
fn scalar_value(raw: Raw<'_>) -> Option<Value> {
    match raw.kind() {
        Kind::Object | Kind::Array => None,
        _ => serde_json::from_str(raw.text()).ok(),
    }
}
