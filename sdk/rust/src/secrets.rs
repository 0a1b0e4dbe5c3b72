//! Secrets the tenant admin configured for the installation (`capabilities.secrets`). A plugin
//! holds a handle, never the value: the host places the value into a request
//! ([`crate::http::Request::send_with_secret`]) or stream data
//! ([`crate::Stream::send_with_secret`]) bound for the one destination the secret is bound to.

use crate::Error;
use crate::bindings::event_handler::monti::plugin::secrets as host;

pub use host::Secret;

/// The secret called `name` ([`Error::NotGranted`] when the manifest does not declare it or no
/// value was given).
pub fn get(name: &str) -> Result<Secret, Error> {
    host::get(name).map_err(Error::from)
}
