//! Timestamps are stored as Unix milliseconds (portable across SQLite and PostgreSQL, and
//! ordered as numbers) and shown as RFC 3339 in UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn to_rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn serialize_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_rfc3339(*ms))
}

pub fn serialize_opt_ms<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&to_rfc3339(*ms)),
        None => s.serialize_none(),
    }
}
