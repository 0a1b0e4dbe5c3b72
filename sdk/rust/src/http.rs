//! Outbound HTTP to the destinations granted to the installation (`capabilities.http`).
//!
//! ```ignore
//! let response = http::Request::post("https://api.example.com/v1/pages")
//!     .json(&serde_json::json!({ "summary": "queue sales is waiting" }))?
//!     .send_with_secret(&secrets::get("token")?, Placement::Bearer)?;
//! if !response.is_success() { … }
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::event_handler::monti::plugin::http as host;
use crate::secrets::Secret;

/// Where the host puts a secret in a request.
pub use host::Placement;
/// An answer: status, headers (names in lower case) and body.
pub use host::Response;

/// A request to build and send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    inner: host::Request,
}

impl Request {
    /// A request with any method.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            inner: host::Request {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
            },
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value).map_err(|e| Error::Invalid(format!("the request body as JSON: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// How long to wait for the answer; the host caps it (10 s, and the time left in the call).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner.timeout_ms = Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        self
    }

    /// Sends it. Any status is an answer; [`Error`] means none came (or it was refused).
    pub fn send(self) -> Result<Response, Error> {
        host::send(&self.inner).map_err(Error::from)
    }

    /// Sends it with the secret placed by the host: only to the destination the secret is bound
    /// to, and replacing any header of the same name the request carries.
    pub fn send_with_secret(self, secret: &Secret, placement: Placement) -> Result<Response, Error> {
        host::send_with_secret(&self.inner, secret, &placement).map_err(Error::from)
    }
}

impl Response {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body, read as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Invalid(format!("the response body as JSON: {e}")))
    }
}
