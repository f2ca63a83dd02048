//! What a vCon is indexed by (redis.md §6): its parties' `tel`, `mailto` and `name`, and its
//! index instant.

use super::dates::parse_date_value;
use super::view::{self, Object};
use super::PartyIndex;

/// The string `tel`, `mailto` and `name` of every party object, exactly as written. An empty
/// string is skipped: it names nobody, and a `tel:` key shared by every such vCon would only
/// grow (the Python server skips falsy values too).
pub(crate) fn party_index(vcon: &Object<'_>) -> PartyIndex {
    let mut index = PartyIndex::default();
    let Some(parties) = vcon.get("parties").and_then(|member| view::elements(member.value)) else {
        return index;
    };
    for party in parties.iter().filter_map(|raw| Object::of(raw)) {
        for (name, values) in [
            ("tel", &mut index.tel),
            ("mailto", &mut index.mailto),
            ("name", &mut index.name),
        ] {
            if let Some(value) = party.get_str(name).filter(|value| !value.is_empty()) {
                values.push(value.into_owned());
            }
        }
    }
    index
}

/// The document's `created_at` as Unix seconds (fraction dropped toward the past), when it has
/// a readable one.
pub(crate) fn created_at(vcon: &Object<'_>) -> Option<i64> {
    let member = vcon.get("created_at")?;
    parse_date_value(member.value).map(|instant| instant.timestamp())
}
