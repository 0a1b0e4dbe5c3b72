//! The Asterisk Manager Interface on the wire, shared by the connector plugin and Monti's PBX
//! simulator (`main/manager.c`): after a one-line banner,
//! messages are blocks of `Key: Value` lines ended by an empty line. Keys compare without case
//! and may repeat (`Variable:`, `ChanVariable:`), so a message keeps its lines in order.

use serde::{Deserialize, Serialize};

/// Longest message kept, in lines; a longer one is cut (its tail dropped) rather than grown
/// without bound.
pub const MAX_LINES: usize = 512;

/// One message: an event, a response, or (from a client) an action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// The first value of `key` (compared without case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The event's name, if it is one.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// `Success`, `Error`, `Goodbye`, `Follows` … for a response.
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// A number field; `None` when missing or not a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.trim().parse().ok()
    }

    /// A `0`/`1` (or `true`/`false`) field.
    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key)?.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Some(true),
            "0" | "false" | "no" => Some(false),
            _ => None,
        }
    }
}

/// An action to send: `Action: <name>`, its parameters, an `ActionID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    lines: Vec<(String, String)>,
}

impl Action {
    pub fn new(name: &str, action_id: &str) -> Self {
        Self {
            lines: vec![("Action".into(), name.into()), ("ActionID".into(), action_id.into())],
        }
    }

    /// Adds a parameter (repeat the key for repeated parameters). Line breaks in a value are
    /// dropped: they would end the message early and let text from elsewhere become an action.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        let clean: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        self.lines.push((key.to_owned(), clean));
        self
    }

    /// The wire form, `\r\n` line ends and the empty line that ends the message.
    pub fn to_wire(&self) -> String {
        to_wire(&self.lines)
    }
}

/// A message in wire form: `Key: Value\r\n` per line, then the empty line that ends it.
pub fn to_wire<K: AsRef<str>, V: AsRef<str>>(lines: &[(K, V)]) -> String {
    let mut out = String::new();
    for (key, value) in lines {
        out.push_str(key.as_ref());
        out.push_str(": ");
        out.push_str(value.as_ref());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

/// What one line completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// The server's greeting, e.g. `Asterisk Call Manager/7.0.3`.
    Banner(String),
    Message(Message),
}

/// Turns lines (as a line stream delivers them, without their line end) into messages. Kept
/// between calls: a message may arrive over several deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Framer {
    current: Vec<(String, String)>,
    /// Lines that were not `Key: Value` in the current message (kept as a `Output` value, as
    /// old `Command` responses send raw text).
    #[serde(default)]
    dropped: usize,
}

impl Framer {
    /// Starts over (a new connection).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Takes one line; returns what it completed, if anything.
    pub fn push(&mut self, line: &str) -> Option<Framed> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            if self.current.is_empty() {
                return None;
            }
            self.dropped = 0;
            return Some(Framed::Message(Message {
                headers: std::mem::take(&mut self.current),
            }));
        }
        if self.current.is_empty() && line.starts_with("Asterisk Call Manager/") {
            return Some(Framed::Banner(line.to_owned()));
        }
        if self.current.len() >= MAX_LINES {
            self.dropped += 1;
            return None;
        }
        match line.split_once(':') {
            Some((key, value)) if !key.is_empty() && !key.contains(' ') => {
                self.current
                    .push((key.to_owned(), value.strip_prefix(' ').unwrap_or(value).to_owned()));
            }
            // `Response: Follows` bodies and other free text.
            _ => self.current.push(("Output".to_owned(), line.to_owned())),
        }
        None
    }
}

/// `md5` login: the key the server expects for a challenge is computed by the host (the plugin
/// never sees the password); this is the placeholder it replaces.
pub const KEY_PLACEHOLDER: &str = "{monti-key}";
/// `plain` login: the placeholder the host replaces with the password.
pub const SECRET_PLACEHOLDER: &str = "{monti-secret}";

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Vec<Framed> {
        let mut framer = Framer::default();
        text.split('\n').filter_map(|l| framer.push(l)).collect()
    }

    #[test]
    fn messages_end_at_an_empty_line_and_keep_repeated_keys() {
        let framed = frame(
            "Asterisk Call Manager/7.0.3\r\nResponse: Success\r\nActionID: 1\r\nMessage: ok\r\n\r\n\
             Event: VarSet\r\nVariable: A\r\nvariable: B\r\nValue: x: y\r\n\r\n",
        );
        assert_eq!(framed[0], Framed::Banner("Asterisk Call Manager/7.0.3".into()));
        let Framed::Message(response) = &framed[1] else {
            panic!()
        };
        assert_eq!(
            (response.response(), response.action_id()),
            (Some("Success"), Some("1"))
        );
        let Framed::Message(event) = &framed[2] else { panic!() };
        assert_eq!(event.event(), Some("VarSet"));
        assert_eq!(event.get_all("VARIABLE").collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(event.get("Value"), Some("x: y"), "only the first colon splits");
        assert_eq!(framed.len(), 3);
    }

    #[test]
    fn garbage_and_over_long_messages_do_not_grow_without_bound() {
        let mut framer = Framer::default();
        assert_eq!(framer.push("no colon here"), None);
        for i in 0..10_000 {
            assert_eq!(framer.push(&format!("Key{i}: v")), None);
        }
        let Some(Framed::Message(message)) = framer.push("") else {
            panic!()
        };
        assert_eq!(message.headers.len(), MAX_LINES);
        assert_eq!(message.get("Output"), Some("no colon here"));
        // Blank lines between messages are nothing.
        assert_eq!(framer.push(""), None);
    }

    #[test]
    fn actions_cannot_be_split_by_their_values() {
        let wire = Action::new("QueuePause", "7")
            .with("Interface", "SIP/1001")
            .with("Reason", "lunch\r\n\r\nAction: Logoff")
            .to_wire();
        assert_eq!(
            wire,
            "Action: QueuePause\r\nActionID: 7\r\nInterface: SIP/1001\r\nReason: lunchAction: Logoff\r\n\r\n"
        );
    }
}
