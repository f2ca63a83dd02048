//! YAML paths of config problems: `chains.main.links[2]`, `links["my.link"].module`.
//!
//! A path is kept as segments (the `loc` of a 422 problem) and shown in the dotted form of
//! config.md §9.2. Keys that are not plain words (a link named `my.link`, a key `weird.key`, a
//! list named `DLQ:x`) are shown quoted, `["…"]`, so that one key never reads as two and an
//! index never hides inside a key.

use std::fmt;

use crate::problem::Loc;

/// A location in the config document, from the top level down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(Vec<Loc>);

impl YamlPath {
    /// The top level of the document.
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }

    /// The member `key` of the mapping at this path.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Loc::Key(key.to_owned()));
        YamlPath(segments)
    }

    /// The item `index` of the list at this path.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Loc::Index(index));
        YamlPath(segments)
    }

    /// The segments, as in the `loc` of a problem (without the leading `body`).
    pub fn segments(&self) -> &[Loc] {
        &self.0
    }
}

/// Keys shown without quotes: those that cannot be confused with the path syntax.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl PartialEq<&str> for YamlPath {
    fn eq(&self, text: &&str) -> bool {
        // The text a path shows is what it is compared to.
        let shown: String = self.to_string();
        shown.as_str() == *text
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Loc::Index(index) => write!(f, "[{index}]")?,
                Loc::Key(key) if is_plain(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Loc::Key(key) => {
                    let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
                    write!(f, "[\"{escaped}\"]")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_dotted() {
        let path = YamlPath::root()
            .key("chains")
            .key("main")
            .key("links")
            .index(2);
        assert_eq!(path.to_string(), "chains.main.links[2]");
    }

    #[test]
    fn odd_keys_are_quoted_as_one_key() {
        let path = YamlPath::root().key("links").key("my.link").key("module");
        assert_eq!(path.to_string(), "links[\"my.link\"].module");
        let tricky = YamlPath::root().key("hook").key("webhook-urls[0]").index(1);
        assert_eq!(tricky.to_string(), "hook[\"webhook-urls[0]\"][1]");
        let quoted = YamlPath::root().key("a\"b\\c");
        assert_eq!(quoted.to_string(), "[\"a\\\"b\\\\c\"]");
        assert_eq!(YamlPath::root().key("").index(0).to_string(), "[\"\"][0]");
    }

    #[test]
    fn root_is_empty() {
        assert_eq!(YamlPath::root().to_string(), "");
        assert!(YamlPath::root().key("a") == "a");
    }
}
