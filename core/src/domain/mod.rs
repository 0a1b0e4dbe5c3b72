//! Plain domain types and rules shared by every layer. No I/O here.

pub mod events;
pub mod ids;
pub mod role;
pub mod time;
pub mod validate;

pub use ids::new_id;
pub use role::Role;
pub use validate::{FieldError, Validation};
