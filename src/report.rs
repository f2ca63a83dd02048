//! An error with the chain of its causes, for log lines: `link tag failed: the tags attachment
//! cannot be read: …`. Each layer says what it was doing; the causes say why.

use std::error::Error;
use std::fmt;

/// `error` and each of its sources, joined by `: `.
pub fn report<'e>(error: &'e (dyn Error + 'static)) -> Report<'e> {
    Report(error)
}

/// See [`report`].
pub struct Report<'e>(&'e (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("link tag failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(report(&error).to_string(), "link tag failed: disk full");
    }
}
