//! Key names (spec/redis.md §2). This is the only place a key name is spelled out, so the
//! layout shared with the Python server cannot drift between call sites.
//!
//! Every key is the configured prefix followed by the name of the spec. Keys are built into a
//! `String` sized up front: one allocation per key, no formatting machinery on the hot path.
//!
//! Cluster note: the hash-tagged pairs (`vcon:<uuid>` with `{vcon:<uuid>}:pending`, `<list>`
//! with `{<list>}:processing:<id>`) share a slot only when the prefix is empty or carries a hash
//! tag of its own (e.g. `{app}:`), because the prefix sits outside the braces as the spec says.

use uuid::Uuid;

/// The TTL of the pending hash, renewed on every enqueue: 30 days (redis.md §2).
pub const PENDING_TTL_SECONDS: u64 = 2_592_000;

/// A piece of a key name: a `&str` as is, or a uuid in its lowercase hyphenated form.
pub trait KeyPart {
    /// Appends the text of this part to `out`.
    fn push_to(&self, out: &mut String);
    /// The length in bytes [`KeyPart::push_to`] appends, to size the key once.
    fn byte_len(&self) -> usize;
}

impl KeyPart for &str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
    fn byte_len(&self) -> usize {
        self.len()
    }
}

impl KeyPart for &String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
    fn byte_len(&self) -> usize {
        self.len()
    }
}

impl KeyPart for Uuid {
    fn push_to(&self, out: &mut String) {
        let mut buffer = Uuid::encode_buffer();
        out.push_str(self.hyphenated().encode_lower(&mut buffer));
    }
    fn byte_len(&self) -> usize {
        uuid::fmt::Hyphenated::LENGTH
    }
}

/// The three party fields of the party index (redis.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartyField {
    /// `tel:<value>`
    Tel,
    /// `mailto:<value>`
    Mailto,
    /// `name:<value>`
    Name,
}

impl PartyField {
    /// The key name before the value, colon included.
    fn label(self) -> &'static str {
        match self {
            PartyField::Tel => "tel:",
            PartyField::Mailto => "mailto:",
            PartyField::Name => "name:",
        }
    }
}

/// The member of the created-at sorted set for a uuid: `vcon:<uuid>`. A member, not a key, so
/// it carries no prefix.
pub fn sorted_set_member(id: impl KeyPart) -> String {
    join(&[&"vcon:", &id])
}

/// The uuid of a sorted-set member: `vcon:` removed; a bare uuid (written by the Python server's
/// re-caching) is returned as is.
pub fn member_uuid(member: &str) -> &str {
    member.strip_prefix("vcon:").unwrap_or(member)
}

/// Builds every key name from the configured prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (`redis.key_prefix`; `""` to share Redis with Python servers).
    pub fn new(prefix: impl Into<String>) -> Keys {
        Keys {
            prefix: prefix.into(),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `vcon:<uuid>`: the vCon's JSON text (or RedisJSON document).
    pub fn vcon(&self, id: impl KeyPart) -> String {
        self.key(&[&"vcon:", &id])
    }

    /// `{vcon:<uuid>}:pending`: the hash of runs waiting or in flight, in the vCon's slot.
    pub fn pending(&self, id: impl KeyPart) -> String {
        self.key(&[&"{vcon:", &id, &"}:pending"])
    }

    /// The created-at sorted set (`redis.sorted_set`, `vcons` by default).
    pub fn sorted_set(&self, name: &str) -> String {
        self.key(&[&name])
    }

    /// `tel:<v>`, `mailto:<v>` or `name:<v>`: the uuids of the vCons with that party value.
    pub fn party(&self, field: PartyField, value: &str) -> String {
        self.key(&[&field.label(), &value])
    }

    /// The key of a logical list name (ingress or egress list).
    pub fn list(&self, name: &str) -> String {
        self.key(&[&name])
    }

    /// `{<list>}:processing:<instance id>`: what an instance took from `list`, in its slot.
    pub fn processing(&self, list: &str, instance: &str) -> String {
        self.key(&[&"{", &list, &"}:processing:", &instance])
    }

    /// `DLQ:<list>`: uuids whose run from `list` failed.
    pub fn dlq(&self, list: &str) -> String {
        self.key(&[&"DLQ:", &list])
    }

    /// `DLQ:storage:<name>`: uuids whose write to that storage failed.
    pub fn storage_dlq(&self, storage: &str) -> String {
        self.key(&[&"DLQ:storage:", &storage])
    }

    /// `conserver:chain_stats:<chain>`: the hash of `processed`, `halted`, `failed`.
    pub fn chain_stats(&self, chain: &str) -> String {
        self.key(&[&"conserver:chain_stats:", &chain])
    }

    /// `conserver:instances`: the set of registered instance ids.
    pub fn instances(&self) -> String {
        self.key(&[&"conserver:instances"])
    }

    /// `conserver:instance:<id>`: the heartbeat of an instance.
    pub fn instance(&self, id: &str) -> String {
        self.key(&[&"conserver:instance:", &id])
    }

    /// `conserver:instance:<id>:lists`: the ingress lists an instance consumed.
    pub fn instance_lists(&self, id: &str) -> String {
        self.key(&[&"conserver:instance:", &id, &":lists"])
    }

    /// `conserver:egress_pending:<uuid>`: egress held back by a dead-lettered storage write.
    pub fn egress_pending(&self, id: impl KeyPart) -> String {
        self.key(&[&"conserver:egress_pending:", &id])
    }

    /// `context:<list>:<uuid>`: trace contexts a Python producer left for a queued uuid.
    pub fn context(&self, list: &str, id: impl KeyPart) -> String {
        self.key(&[&"context:", &list, &":", &id])
    }

    /// `<name>` under the prefix: a `redis_storage` value (its name carries the storage's own
    /// prefix, `vcon_storage:<uuid>` by default).
    pub fn blob(&self, name: &str) -> String {
        self.key(&[&name])
    }

    /// The `SCAN MATCH` pattern of every `vcon:<uuid>` key, glob characters of the prefix
    /// escaped so that a prefix like `a*:` matches only itself.
    pub fn vcon_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 8);
        for character in self.prefix.chars() {
            if matches!(character, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(character);
        }
        pattern.push_str("vcon:*");
        pattern
    }

    /// The uuid part of a `vcon:<uuid>` key under this prefix; `None` for any other key.
    pub fn vcon_id<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix("vcon:")
    }

    /// The prefix followed by `parts`, allocated once.
    fn key(&self, parts: &[&dyn KeyPart]) -> String {
        let len = self.prefix.len() + parts.iter().map(|part| part.byte_len()).sum::<usize>();
        let mut key = String::with_capacity(len);
        key.push_str(&self.prefix);
        for part in parts {
            part.push_to(&mut key);
        }
        key
    }
}

/// `parts` joined, allocated once (for names that are not keys).
fn join(parts: &[&dyn KeyPart]) -> String {
    Keys::default().key(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0192b5a4-7e3c-8d1e-9f00-1234567890ab";

    fn uuid() -> Uuid {
        Uuid::parse_str(UUID).unwrap()
    }

    #[test]
    fn names_without_prefix_are_the_python_servers() {
        let keys = Keys::new("");
        assert_eq!(keys.vcon(uuid()), format!("vcon:{UUID}"));
        assert_eq!(keys.pending(uuid()), format!("{{vcon:{UUID}}}:pending"));
        assert_eq!(keys.sorted_set("vcons"), "vcons");
        assert_eq!(keys.party(PartyField::Tel, "+1 555"), "tel:+1 555");
        assert_eq!(
            keys.party(PartyField::Mailto, "mailto:a@b"),
            "mailto:mailto:a@b"
        );
        assert_eq!(keys.party(PartyField::Name, "Alice"), "name:Alice");
        assert_eq!(keys.list("default_ingress"), "default_ingress");
        assert_eq!(
            keys.processing("calls", "host-1-ab12"),
            "{calls}:processing:host-1-ab12"
        );
        assert_eq!(keys.dlq("calls"), "DLQ:calls");
        assert_eq!(keys.storage_dlq("s3"), "DLQ:storage:s3");
        assert_eq!(keys.chain_stats("main"), "conserver:chain_stats:main");
        assert_eq!(keys.instances(), "conserver:instances");
        assert_eq!(keys.instance("i1"), "conserver:instance:i1");
        assert_eq!(keys.instance_lists("i1"), "conserver:instance:i1:lists");
        assert_eq!(
            keys.egress_pending(uuid()),
            format!("conserver:egress_pending:{UUID}")
        );
        assert_eq!(
            keys.context("calls", uuid()),
            format!("context:calls:{UUID}")
        );
        assert_eq!(
            keys.blob(&format!("vcon_storage:{UUID}")),
            format!("vcon_storage:{UUID}")
        );
    }

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t:");
        let all = [
            keys.vcon(uuid()),
            keys.pending(uuid()),
            keys.sorted_set("vcons"),
            keys.party(PartyField::Tel, "1"),
            keys.list("l"),
            keys.processing("l", "i"),
            keys.dlq("l"),
            keys.storage_dlq("s"),
            keys.chain_stats("c"),
            keys.instances(),
            keys.instance("i"),
            keys.instance_lists("i"),
            keys.egress_pending(uuid()),
            keys.context("l", uuid()),
            keys.blob("b"),
        ];
        for key in all {
            assert!(key.starts_with("t:"), "{key}");
        }
        assert_eq!(keys.pending(uuid()), format!("t:{{vcon:{UUID}}}:pending"));
    }

    #[test]
    fn string_and_uuid_parts_give_the_same_key() {
        let keys = Keys::new("p");
        assert_eq!(keys.vcon(uuid()), keys.vcon(UUID));
        assert_eq!(keys.vcon(&UUID.to_string()), keys.vcon(UUID));
    }

    #[test]
    fn uuids_are_lowercase_hyphenated() {
        let upper = Uuid::parse_str(&UUID.to_uppercase()).unwrap();
        assert_eq!(Keys::new("").vcon(upper), format!("vcon:{UUID}"));
    }

    #[test]
    fn keys_are_allocated_once() {
        let key = Keys::new("prefix:").pending(uuid());
        assert_eq!(key.capacity(), key.len());
    }

    #[test]
    fn sorted_set_members_have_no_prefix_and_both_forms_read_back() {
        assert_eq!(sorted_set_member(uuid()), format!("vcon:{UUID}"));
        assert_eq!(member_uuid(&format!("vcon:{UUID}")), UUID);
        assert_eq!(member_uuid(UUID), UUID);
    }

    #[test]
    fn scan_pattern_escapes_glob_characters_of_the_prefix() {
        assert_eq!(Keys::new("").vcon_pattern(), "vcon:*");
        assert_eq!(
            Keys::new("a*[b]?\\:").vcon_pattern(),
            "a\\*\\[b\\]\\?\\\\:vcon:*"
        );
    }

    #[test]
    fn vcon_id_only_for_vcon_keys_under_the_prefix() {
        let keys = Keys::new("p:");
        assert_eq!(keys.vcon_id(&format!("p:vcon:{UUID}")), Some(UUID));
        assert_eq!(keys.vcon_id(&format!("vcon:{UUID}")), None);
        assert_eq!(keys.vcon_id(&format!("p:{{vcon:{UUID}}}:pending")), None);
    }
}
