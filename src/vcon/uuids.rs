//! The uuid text forms accepted in vCons, paths and queries (vcon.md §2.6, api.md §1.2).

use uuid::Uuid;

const URN_PREFIX: &str = "urn:uuid:";

/// Parse `8-4-4-4-12` or 32 hex digits, either in braces, or `urn:uuid:` + the hyphenated form,
/// in any letter case. Anything else (surrounding whitespace, other lengths, a braced urn) is
/// refused: lenient parsing here would let two spellings of garbage name the same key.
pub(crate) fn parse_uuid(text: &str) -> Option<Uuid> {
    let has_urn_prefix = text
        .get(..URN_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(URN_PREFIX));
    let inner = if has_urn_prefix {
        text.get(URN_PREFIX.len()..)
            .filter(|rest| rest.len() == 36)?
    } else if let Some(braced) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        braced
    } else {
        text
    };
    // The uuid crate reads a 36-character text as the hyphenated form and a 32-character text
    // as the simple form; its other forms (braces, urn) have other lengths and are handled above.
    if inner.len() != 36 && inner.len() != 32 {
        return None;
    }
    Uuid::try_parse(inner).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANONICAL: &str = "019f15a6-a752-826f-b9a2-279e0d16bc46";

    fn canonical() -> Uuid {
        Uuid::try_parse(CANONICAL).unwrap()
    }

    #[test]
    fn accepts_every_listed_form_in_any_case() {
        for text in [
            "019f15a6-a752-826f-b9a2-279e0d16bc46",
            "019F15A6-A752-826F-B9A2-279E0D16BC46",
            "019f15a6a752826fb9a2279e0d16bc46",
            "019F15A6A752826FB9A2279E0D16BC46",
            "{019f15a6-a752-826f-b9a2-279e0d16bc46}",
            "{019f15a6a752826fb9a2279e0d16bc46}",
            "urn:uuid:019f15a6-a752-826f-b9a2-279e0d16bc46",
            "URN:UUID:019F15A6-A752-826F-B9A2-279E0D16BC46",
        ] {
            assert_eq!(parse_uuid(text), Some(canonical()), "{text}");
        }
        assert_eq!(canonical().hyphenated().to_string(), CANONICAL);
    }

    #[test]
    fn accepts_any_version() {
        assert!(parse_uuid("11111111-1111-1111-1111-111111111111").is_some());
        assert!(parse_uuid("00000000-0000-0000-0000-000000000000").is_some());
        assert!(parse_uuid("03f94617-0a05-40cd-89a7-69e746fa512a").is_some());
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "",
            " 019f15a6-a752-826f-b9a2-279e0d16bc46",
            "019f15a6-a752-826f-b9a2-279e0d16bc46 ",
            "019f15a6-a752-826f-b9a2-279e0d16bc4",
            "019f15a6-a752-826f-b9a2-279e0d16bc467",
            "019f15a6a752826fb9a2279e0d16bc4",
            "019f15a6-a752826f-b9a2-279e0d16bc46-",
            "019f15a6_a752_826f_b9a2_279e0d16bc46",
            "g19f15a6-a752-826f-b9a2-279e0d16bc46",
            "{019f15a6-a752-826f-b9a2-279e0d16bc46",
            "019f15a6-a752-826f-b9a2-279e0d16bc46}",
            "urn:uuid:019f15a6a752826fb9a2279e0d16bc46",
            "urn:uuid:{019f15a6-a752-826f-b9a2-279e0d16bc46}",
            "{urn:uuid:019f15a6-a752-826f-b9a2-279e0d16bc46}",
            "uuid:019f15a6-a752-826f-b9a2-279e0d16bc46",
            "NOT-A-UUID",
            "é19f15a6-a752-826f-b9a2-279e0d16bc4",
        ] {
            assert_eq!(parse_uuid(text), None, "{text:?}");
        }
    }
}
