//! Plain domain types and rules shared by every layer. No I/O here. Most of them live in the
//! `monti-domain` crate (shared with the simulators); alerts are the server's own.

pub mod alert;
pub mod retry;

pub use monti_domain::{FieldError, Role, Validation, events, ids, new_id, role, time, validate};
