//! Long-lived connections the host keeps for the installation (`capabilities.streams`): TCP line
//! streams and WebSockets. What arrives is delivered to the plugin's
//! [`on_stream`](crate::EventHandler::on_stream), outside the call that opened them.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bindings::event_handler::monti::plugin::streams as host;
use crate::http::Placement;
use crate::secrets::Secret;

/// How the host writes a secret into stream data.
pub use host::SecretForm;
/// What arrives on a stream: opened, a line, a message, closed (with why).
pub use host::StreamItem;
/// Where a stream leads: `TcpLines((host, port))` or `Websocket(url)`.
pub use host::Target;

/// An open stream (its id, which stays the same while the connection lasts and may be kept
/// in the store: it serializes as the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Stream(u32);

impl Stream {
    /// The stream the host calls `id`.
    pub fn from_id(id: u32) -> Self {
        Stream(id)
    }

    pub fn id(self) -> u32 {
        self.0
    }

    /// Writes `data` to it as it is (a TCP stream's lines end as the protocol wants, `\r\n`
    /// say).
    pub fn send(self, data: impl AsRef<[u8]>) -> Result<(), Error> {
        host::send(self.0, data.as_ref()).map_err(Error::from)
    }

    /// Writes `data` with every `placeholder` in it replaced by the secret in `form`, by the
    /// host and only on a stream to the destination the secret is bound to.
    pub fn send_with_secret(
        self,
        data: impl AsRef<[u8]>,
        placeholder: &str,
        secret: &Secret,
        form: SecretForm,
    ) -> Result<(), Error> {
        host::send_with_secret(self.0, data.as_ref(), placeholder, secret, &form).map_err(Error::from)
    }

    /// Closes it.
    pub fn close(self) {
        host::close(self.0);
    }
}

/// Opens the stream called `name` to `target`, or returns the one already open under that name.
pub fn open(name: &str, target: &Target) -> Result<Stream, Error> {
    host::open(name, target).map(Stream).map_err(Error::from)
}

/// [`open`] for a TCP stream of lines.
pub fn tcp_lines(name: &str, host: &str, port: u16) -> Result<Stream, Error> {
    open(name, &Target::TcpLines((host.to_owned(), port)))
}

/// Opens a WebSocket whose upgrade request carries the secret, placed by the host (only to the
/// destination the secret is bound to).
pub fn open_with_secret(name: &str, target: &Target, secret: &Secret, placement: Placement) -> Result<Stream, Error> {
    host::open_with_secret(name, target, secret, &placement)
        .map(Stream)
        .map_err(Error::from)
}
