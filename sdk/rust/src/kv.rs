//! The installation's key-value store: bytes under string keys, kept by the host per tenant and
//! installation, within the manifest's `capabilities.kv_bytes`. A call's writes are kept when it
//! returns; a call that traps (a panic, a limit) leaves the store as it was.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::event_handler::monti::plugin::kv as host;

/// The value under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::get(key)
}

/// The value under `key` as text (`None` also when it is not UTF-8).
pub fn get_string(key: &str) -> Option<String> {
    String::from_utf8(host::get(key)?).ok()
}

/// The value under `key`, read as JSON.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    host::get(key)
        .map(|bytes| serde_json::from_slice(&bytes))
        .transpose()
        .map_err(|e| Error::Invalid(format!("the stored `{key}`: {e}")))
}

/// Stores `value` under `key`; refused ([`Error::QuotaExceeded`]) when the store would hold more
/// than the installation's quota.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
    host::set(key, value.as_ref()).map_err(Error::from)
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Invalid(format!("`{key}` as JSON: {e}")))?;
    set(key, bytes)
}

/// Removes `key` (nothing happens when it is not there).
pub fn delete(key: &str) {
    host::delete(key);
}

/// The keys that start with `prefix`, in order.
pub fn keys(prefix: &str) -> Vec<String> {
    host::keys(prefix)
}
