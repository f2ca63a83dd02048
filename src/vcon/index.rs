//! What a vCon is stored and indexed by (redis.md §6): its uuid, its index instant, and its
//! parties' `tel`, `mailto` and `name`.

use uuid::Uuid;

use super::dates::parse_date_value;
use super::top_level::TopLevel;
use super::view::Element;
use super::PartyIndex;

/// What validation of one document yields for storing and indexing it.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    pub uuid: Option<Uuid>,
    pub created_at: Option<i64>,
    pub parties: PartyIndex,
}

/// The string `tel`, `mailto` and `name` of every party object, exactly as written. An empty
/// string is skipped: it names nobody, and a `tel:` key shared by every such vCon would only
/// grow (the Python server skips falsy values too).
pub(crate) fn party_index(vcon: &TopLevel<'_>) -> PartyIndex {
    let mut index = PartyIndex::default();
    let Some(parties) = vcon
        .get("parties")
        .and_then(|member| member.value.elements_picking(["tel", "mailto", "name"]))
    else {
        return index;
    };
    for party in parties {
        let Element::Object(found) = party else {
            continue;
        };
        for (name, values) in [
            ("tel", &mut index.tel),
            ("mailto", &mut index.mailto),
            ("name", &mut index.name),
        ] {
            let value = found.get(name).and_then(|member| member.value.string());
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                values.push(value.into_owned());
            }
        }
    }
    index
}

/// [`party_index`] of a document already parsed (the run's document).
pub(crate) fn party_index_of(vcon: &serde_json::Value) -> PartyIndex {
    let mut index = PartyIndex::default();
    let parties = vcon.get("parties").and_then(serde_json::Value::as_array);
    for party in parties.into_iter().flatten() {
        for (name, values) in [
            ("tel", &mut index.tel),
            ("mailto", &mut index.mailto),
            ("name", &mut index.name),
        ] {
            let value = party.get(name).and_then(serde_json::Value::as_str);
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                values.push(value.to_owned());
            }
        }
    }
    index
}

/// The document's `created_at` as Unix seconds (fraction dropped toward the past), when it has
/// a readable one.
pub(crate) fn created_at(vcon: &TopLevel<'_>) -> Option<i64> {
    let member = vcon.get("created_at")?;
    parse_date_value(member.value).map(|instant| instant.timestamp())
}
