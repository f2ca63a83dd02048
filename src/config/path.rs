//! YAML paths of config problems: `chains.main.links[2]`, `links["my.link"].module`.
//!
//! A path is kept as segments (the `loc` of a 422 problem) and shown in the dotted form of
//! config.md §9.2. Keys that are not plain words (a link named `my.link`, a list named
//! `DLQ:x`) are shown quoted, `["…"]`, so that the text form can be read back unambiguously
//! by [`YamlPath::parse`] — `ConfigProblem` carries only the text.

use std::fmt;

use crate::problem::Loc;

/// A location in the config document, from the top level down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    /// Read back the text form written by `Display`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let mut segments = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("[\"") {
                let (key, len) = read_quoted(after)?;
                segments.push(Loc::Key(key));
                rest = after[len..].strip_prefix(']')?;
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']')?;
                segments.push(Loc::Index(after[..end].parse().ok()?));
                rest = &after[end + 1..];
            } else {
                let after = if segments.is_empty() {
                    rest
                } else {
                    rest.strip_prefix('.')?
                };
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return None;
                }
                segments.push(Loc::Key(after[..end].to_owned()));
                rest = &after[end..];
            }
        }
        Some(YamlPath(segments))
    }
}

/// A quoted key's text up to its closing quote, and the bytes consumed (quote included).
fn read_quoted(text: &str) -> Option<(String, usize)> {
    let mut key = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((key, i + 1)),
            '\\' => key.push(chars.next()?.1),
            other => key.push(other),
        }
    }
    None
}

/// Keys shown without quotes: those that cannot be confused with the path syntax.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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
        assert_eq!(YamlPath::parse("chains.main.links[2]"), Some(path));
    }

    #[test]
    fn odd_keys_are_quoted_and_read_back() {
        let path = YamlPath::root().key("links").key("my.link").key("module");
        assert_eq!(path.to_string(), "links[\"my.link\"].module");
        assert_eq!(YamlPath::parse(&path.to_string()), Some(path));
        let tricky = YamlPath::root().key("ingress_auth").key("a\"b\\c[0]");
        assert_eq!(YamlPath::parse(&tricky.to_string()), Some(tricky));
        let first = YamlPath::root().key("").index(0);
        assert_eq!(YamlPath::parse(&first.to_string()), Some(first));
    }

    #[test]
    fn root_is_empty() {
        assert_eq!(YamlPath::root().to_string(), "");
        assert_eq!(YamlPath::parse(""), Some(YamlPath::root()));
        assert_eq!(YamlPath::parse("a..b"), None);
    }
}
