//! Identifiers: a short type prefix plus a time-ordered UUIDv7 (`agt_0193…`).
//!
//! The prefix tells a reader of logs or API payloads what an id refers to; the time order keeps
//! inserts append-only in indexes and gives a stable default sort.

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `id` looks like an id we issued with `prefix` (a cheap sanity check for input; the
/// database decides whether it exists).
pub fn looks_like_id(id: &str, prefix: &str) -> bool {
    id.len() == prefix.len() + 33
        && id.starts_with(prefix)
        && id.as_bytes()[prefix.len()] == b'_'
        && id[prefix.len() + 1..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_ordered_and_recognisable() {
        let a = new_id("agt");
        let b = new_id("agt");
        assert!(a < b, "ids are time ordered");
        assert!(looks_like_id(&a, "agt"));
        assert!(!looks_like_id(&a, "team"));
        assert!(!looks_like_id("agt_xyz", "agt"));
    }
}
