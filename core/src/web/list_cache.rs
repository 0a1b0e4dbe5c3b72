//! Serialized list pages, cached against their collection's version.
//!
//! Every write to a versioned collection bumps `collection_versions` in the same transaction
//! (database triggers), so a page cached under version N is served only while the collection is
//! still at version N, on any instance. The version also makes the list's ETag, so clients that
//! poll get `304 Not Modified` until something changes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::body::Bytes;

/// What a page depends on besides the data: who may see what, and the query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub tenant_id: String,
    pub collection: &'static str,
    /// The caller's visibility (scoped supervisors see fewer rows).
    pub visibility: String,
    pub query: String,
}

#[derive(Debug)]
struct Entry {
    version: i64,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<PageKey, Entry>,
    /// Insertion order, for evicting the oldest pages first.
    order: VecDeque<PageKey>,
    bytes: usize,
}

/// A size-bounded cache of page bodies.
#[derive(Debug)]
pub struct ListCache {
    max_bytes: usize,
    /// Pages larger than this are not worth keeping.
    max_entry_bytes: usize,
    inner: Mutex<Inner>,
}

impl ListCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            max_entry_bytes: (max_bytes / 16).max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached body of `key` if it was made at `version`.
    pub fn get(&self, key: &PageKey, version: i64) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .entries
            .get(key)
            .filter(|e| e.version == version)
            .map(|e| e.body.clone())
    }

    pub fn put(&self, key: PageKey, version: i64, body: Bytes) {
        if self.max_bytes == 0 || body.len() > self.max_entry_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let size = body.len();
        match inner.entries.insert(key.clone(), Entry { version, body }) {
            Some(old) => inner.bytes = inner.bytes - old.body.len() + size,
            None => {
                inner.bytes += size;
                inner.order.push_back(key);
            }
        }
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.entries.remove(&oldest) {
                inner.bytes -= evicted.body.len();
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

/// A short stable hash for ETags (FNV-1a; not for security, only to tell queries apart).
pub fn fingerprint(key: &PageKey) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [key.tenant_id.as_str(), key.collection, &key.visibility, &key.query] {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &str) -> PageKey {
        PageKey {
            tenant_id: "ten_1".into(),
            collection: "agents",
            visibility: String::new(),
            query: q.into(),
        }
    }

    #[test]
    fn serves_only_the_version_it_was_made_for() {
        let cache = ListCache::new(1000);
        cache.put(key("limit=1"), 3, Bytes::from_static(b"page"));
        assert_eq!(cache.get(&key("limit=1"), 3).as_deref(), Some(&b"page"[..]));
        assert!(cache.get(&key("limit=1"), 4).is_none(), "a newer version is a miss");
        assert!(cache.get(&key("limit=2"), 3).is_none());
        cache.put(key("limit=1"), 4, Bytes::from_static(b"newer"));
        assert_eq!(cache.bytes(), 5);
    }

    #[test]
    fn evicts_oldest_pages_beyond_the_budget() {
        let cache = ListCache::new(160);
        for i in 0..20 {
            cache.put(key(&format!("q={i}")), 1, Bytes::from(vec![b'x'; 10]));
        }
        assert!(cache.bytes() <= 160);
        assert!(cache.get(&key("q=0"), 1).is_none());
        assert!(cache.get(&key("q=19"), 1).is_some());
        cache.put(key("huge"), 1, Bytes::from(vec![b'x'; 100]));
        assert!(cache.get(&key("huge"), 1).is_none(), "oversized pages are not cached");
    }

    #[test]
    fn fingerprints_differ_by_visibility() {
        let mut scoped = key("limit=1");
        scoped.visibility = "teams=[a]".into();
        assert_ne!(fingerprint(&key("limit=1")), fingerprint(&scoped));
    }
}
