//! Streams for tests: what the plugin opened and sent; the test delivers what "arrives".

use std::sync::Mutex;

use monti_plugin_host::StreamBroker;
use monti_plugin_host::wit::Target;

/// A stream the plugin opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedStream {
    pub id: u32,
    pub name: String,
    /// `tcp://host:port` or the WebSocket URL.
    pub target: String,
    /// What the plugin sent on it, in order.
    pub sent: Vec<Vec<u8>>,
    pub closed: bool,
    /// Headers the host placed on a WebSocket's upgrade request (a secret, with its value: the
    /// test sees what the server would).
    pub headers: Vec<(String, String)>,
}

impl OpenedStream {
    /// What was sent, as text.
    pub fn sent_text(&self) -> Vec<String> {
        self.sent
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

/// Keeps no connections: records them. Opening the same name again returns the same id, as
/// the server's broker does.
#[derive(Debug, Default)]
pub struct MockStreams {
    opened: Mutex<Vec<OpenedStream>>,
}

impl MockStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OpenedStream>> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every stream opened so far.
    pub fn opened(&self) -> Vec<OpenedStream> {
        self.lock().clone()
    }

    /// The stream opened under `name`.
    pub fn named(&self, name: &str) -> Option<OpenedStream> {
        self.lock().iter().find(|s| s.name == name).cloned()
    }
}

impl StreamBroker for MockStreams {
    fn open(&self, name: &str, target: &Target, headers: Vec<(String, String)>) -> Result<u32, String> {
        let mut opened = self.lock();
        if let Some(existing) = opened.iter_mut().find(|s| s.name == name) {
            existing.closed = false;
            existing.headers = headers;
            return Ok(existing.id);
        }
        let id = opened.len() as u32 + 1;
        opened.push(OpenedStream {
            id,
            name: name.to_owned(),
            target: match target {
                Target::TcpLines((host, port)) => format!("tcp://{host}:{port}"),
                Target::Websocket(url) => url.clone(),
            },
            sent: Vec::new(),
            closed: false,
            headers,
        });
        Ok(id)
    }

    fn send(&self, id: u32, data: Vec<u8>) -> Result<(), String> {
        let mut opened = self.lock();
        match opened.iter_mut().find(|s| s.id == id && !s.closed) {
            Some(stream) => {
                stream.sent.push(data);
                Ok(())
            }
            None => Err(format!("no open stream {id}")),
        }
    }

    fn destination(&self, id: u32) -> Option<String> {
        let opened = self.lock();
        let stream = opened.iter().find(|s| s.id == id && !s.closed)?;
        Some(match stream.target.strip_prefix("tcp://") {
            Some(_) => stream.target.to_ascii_lowercase(),
            None => monti_plugin_host::stream_destination(&Target::Websocket(stream.target.clone())),
        })
    }

    fn close(&self, id: u32) {
        if let Some(stream) = self.lock().iter_mut().find(|s| s.id == id) {
            stream.closed = true;
        }
    }
}
