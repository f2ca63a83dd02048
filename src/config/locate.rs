//! Line numbers for config problems, found in the YAML text.
//!
//! The YAML parser keeps no positions in its values, so the line of a path is found by
//! walking the text's indentation: each key is searched below its parent's line, deeper
//! than the parent; list items are counted by their `- ` markers. This covers block-style
//! files (the common case). When a step cannot be followed (flow style `{…}`/`[…]`, a key
//! that is missing), the line of the deepest step found is given, which still points at
//! the mapping or list concerned.

use crate::problem::Loc;

/// One non-blank, non-comment line: its number (1-based), indentation and text after it.
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// The 1-based line of `segments` in `source`, or of its deepest ancestor found there.
pub fn line_of(source: &str, segments: &[Loc]) -> Option<usize> {
    let lines: Vec<Line<'_>> = source
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let text = raw.trim_start();
            let blank = text.is_empty() || text.starts_with('#') || text == "---";
            (!blank).then(|| Line {
                number: i + 1,
                indent: raw.len() - text.len(),
                text,
            })
        })
        .collect();

    // The block being searched: lines after `start` that are indented deeper than `parent`
    // (`None` at the top level). `first_inline` is the text of an item line whose content
    // begins on the same line as its `- ` marker (`- module: tag`).
    let mut start = 0;
    let mut parent: Option<usize> = None;
    let mut first_inline: Option<(usize, &str)> = None;
    let mut found = None;
    for segment in segments {
        let step = match segment {
            Loc::Key(key) => find_key(&lines, start, parent, first_inline, key),
            Loc::Index(index) => find_item(&lines, start, parent, *index),
        };
        let Some(step) = step else { break };
        found = Some(lines[step.line].number);
        start = step.line + 1;
        parent = Some(step.indent);
        first_inline = step.inline.map(|text| (step.line, text));
        if step.value_on_same_line {
            break;
        }
    }
    found
}

struct Step<'a> {
    /// Index into the lines.
    line: usize,
    /// Indentation the children of this step are deeper than.
    indent: usize,
    /// For a list item: the text after `- ` when it holds a key.
    inline: Option<&'a str>,
    /// A scalar or flow collection follows on the same line: nothing below belongs to it.
    value_on_same_line: bool,
}

fn find_key<'a>(
    lines: &[Line<'a>],
    start: usize,
    parent: Option<usize>,
    first_inline: Option<(usize, &'a str)>,
    key: &str,
) -> Option<Step<'a>> {
    // A list item's first key sits on the item's own line, after the `- `.
    if let Some((line, text)) = first_inline {
        let dash_indent = lines[line].indent;
        let key_indent = dash_indent + (lines[line].text.len() - text.len());
        if let Some(rest) = after_key(text, key) {
            return Some(key_step(line, key_indent, rest));
        }
        return scan_keys(lines, start, Some(dash_indent), key);
    }
    scan_keys(lines, start, parent, key)
}

fn scan_keys<'a>(
    lines: &[Line<'a>],
    start: usize,
    parent: Option<usize>,
    key: &str,
) -> Option<Step<'a>> {
    // Keys of this mapping sit at the indentation of its first line; deeper lines belong to
    // its values (`chains.main.links` must not be taken for the top-level `links`).
    let block_indent = lines.get(start)?.indent;
    for (i, line) in lines.iter().enumerate().skip(start) {
        if parent.is_some_and(|p| line.indent <= p) {
            return None;
        }
        if line.indent != block_indent {
            continue;
        }
        if let Some(rest) = after_key(line.text, key) {
            return Some(key_step(i, line.indent, rest));
        }
    }
    None
}

fn key_step<'a>(line: usize, indent: usize, rest: &str) -> Step<'a> {
    let rest = rest.trim();
    Step {
        line,
        indent,
        inline: None,
        value_on_same_line: !(rest.is_empty() || rest.starts_with('#')),
    }
}

/// The text after `key:` when `text` starts with that key (plain or quoted).
fn after_key<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let rest = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ]
    .iter()
    .find_map(|form| text.strip_prefix(form.as_str()))?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

fn find_item<'a>(
    lines: &[Line<'a>],
    start: usize,
    parent: Option<usize>,
    index: usize,
) -> Option<Step<'a>> {
    let mut dash_indent = None;
    let mut count = 0;
    for (i, line) in lines.iter().enumerate().skip(start) {
        // A block sequence may sit at its key's own indentation (`links:\n- a`).
        if parent.is_some_and(|p| line.indent < p) {
            return None;
        }
        let Some(content) = line
            .text
            .strip_prefix('-')
            .filter(|c| c.is_empty() || c.starts_with(' '))
        else {
            if parent.is_some_and(|p| line.indent <= p) {
                return None;
            }
            continue;
        };
        match dash_indent {
            None => dash_indent = Some(line.indent),
            Some(d) if line.indent != d => continue,
            Some(_) => {}
        }
        if count == index {
            let content = content.trim_start();
            let holds_key = content.contains(": ") || content.ends_with(':');
            return Some(Step {
                line: i,
                indent: line.indent,
                inline: holds_key.then_some(content),
                value_on_same_line: !holds_key && !content.is_empty(),
            });
        }
        count += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# demo
links:
  tag:
    module: links.tag
    options: {tags: [a]}
chains:
  main:
    links:
      - tag
      - missing
    ingress_lists: [in]
  other:
    links:
    - tag
followers:
  - url: http://x
    egress_list: out
";

    fn at(path: &[Loc]) -> Option<usize> {
        line_of(TEXT, path)
    }

    #[test]
    fn keys_and_items_are_found() {
        assert_eq!(
            at(&["links".into(), "tag".into(), "module".into()]),
            Some(4)
        );
        assert_eq!(
            at(&["chains".into(), "main".into(), "links".into(), 1.into()]),
            Some(10)
        );
        assert_eq!(
            at(&["chains".into(), "other".into(), "links".into(), 0.into()]),
            Some(14)
        );
        assert_eq!(
            at(&["followers".into(), 0.into(), "egress_list".into()]),
            Some(17)
        );
        assert_eq!(at(&["followers".into(), 0.into(), "url".into()]), Some(16));
    }

    #[test]
    fn nested_keys_are_not_taken_for_top_level_ones() {
        let text = "chains:\n  main:\n    links: [a]\nlinks:\n  a: {module: tag}\n";
        assert_eq!(line_of(text, &["links".into(), "a".into()]), Some(5));
        assert_eq!(
            line_of(text, &["chains".into(), "main".into(), "links".into()]),
            Some(3)
        );
    }

    #[test]
    fn flow_style_and_missing_keys_give_the_nearest_line() {
        assert_eq!(
            at(&[
                "links".into(),
                "tag".into(),
                "options".into(),
                "tags".into()
            ]),
            Some(5)
        );
        assert_eq!(
            at(&[
                "chains".into(),
                "main".into(),
                "ingress_lists".into(),
                0.into()
            ]),
            Some(11)
        );
        assert_eq!(
            at(&["chains".into(), "main".into(), "storages".into()]),
            Some(7)
        );
        assert_eq!(at(&["redis".into()]), None);
    }
}
