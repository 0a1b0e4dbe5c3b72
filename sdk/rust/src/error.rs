use crate::PluginError;
use crate::bindings::event_handler::monti::plugin::{http, types::Denied};

/// Why a call into the host did not do what was asked. `?` turns it into a [`PluginError`]
/// (retryable only for [`Error::Transport`]: the other failures recur with the same input).
///
/// The variants' names are part of what a plugin logs (`{error:?}`), as the contract names them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Not granted to the installation (a destination, a secret, a stream), or not offered here.
    NotGranted(String),
    /// A quota is used up: the store's bytes, events or outbound calls of one call.
    QuotaExceeded(String),
    /// The other end could not be reached or did not answer in time.
    Transport(String),
    /// A response larger than the host hands over.
    TooLarge,
    /// Data without the expected shape: the configuration, a stored value, a body.
    Invalid(String),
}

impl Error {
    /// Whether the same call may work later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transport(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotGranted(why) | Error::QuotaExceeded(why) | Error::Transport(why) | Error::Invalid(why) => {
                f.write_str(why)
            }
            Error::TooLarge => f.write_str("the response is larger than the host hands over"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Denied> for Error {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::NotGranted(why) => Error::NotGranted(why),
            Denied::QuotaExceeded(why) => Error::QuotaExceeded(why),
        }
    }
}

impl From<http::HttpError> for Error {
    fn from(error: http::HttpError) -> Self {
        match error {
            http::HttpError::Denied(denied) => denied.into(),
            http::HttpError::Transport(why) => Error::Transport(why),
            http::HttpError::TooLarge => Error::TooLarge,
        }
    }
}

impl From<Error> for PluginError {
    fn from(error: Error) -> Self {
        PluginError {
            retryable: error.is_retryable(),
            message: error.to_string(),
        }
    }
}
