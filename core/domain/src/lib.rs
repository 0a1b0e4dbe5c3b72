//! Plain domain types and rules shared by every layer of Monti and by its simulators: events,
//! roles, ids, time, validation, and the contact-center KPIs. No I/O here.

pub mod events;
pub mod ids;
pub mod kpi;
pub mod role;
pub mod time;
pub mod validate;

pub use ids::new_id;
pub use role::Role;
pub use validate::{FieldError, Validation};
