//! Outbound HTTP for tests: expectations with canned answers, and a record of what was sent.

use std::sync::Mutex;

use monti_plugin_host::Outbound;
use monti_plugin_host::wit::{HttpError, Request, Response};

/// A request the host let out, as it would have gone on the wire (secrets placed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Whether an expectation answered it.
    pub expected: bool,
}

impl RecordedRequest {
    /// A header's value (names compare without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// One scripted exchange: a method and URL, and what the "server" answers.
#[derive(Debug, Clone)]
pub struct Expectation {
    method: String,
    url: String,
    answer: Result<Response, HttpError>,
    /// How many more requests it answers (`None`: any number).
    times: Option<usize>,
}

impl Expectation {
    /// Expects `method url` (the whole URL, query included) and answers 200 with an empty body.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            answer: Ok(Response {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            }),
            times: Some(1),
        }
    }

    /// Answers with this status and body.
    pub fn respond(mut self, status: u16, body: impl Into<Vec<u8>>) -> Self {
        self.answer = Ok(Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        });
        self
    }

    /// Answers with a JSON body.
    pub fn respond_json(self, status: u16, body: &serde_json::Value) -> Self {
        self.respond(status, body.to_string())
            .header("content-type", "application/json")
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Ok(response) = &mut self.answer {
            response.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Fails the way a network does (refused connection, timeout …).
    pub fn fail(mut self, message: &str) -> Self {
        self.answer = Err(HttpError::Transport(message.to_owned()));
        self
    }

    /// Answers this many requests (default 1).
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Answers every matching request.
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }
}

/// The scripted network. A request no expectation matches fails with a transport error (and is
/// recorded as unexpected).
#[derive(Debug, Default)]
pub struct MockHttp {
    expectations: Mutex<Vec<Expectation>>,
    sent: Mutex<Vec<RecordedRequest>>,
}

impl MockHttp {
    /// Adds an expectation; they match in the order added.
    pub fn expect(&self, expectation: Expectation) -> &Self {
        self.expectations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(expectation);
        self
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Expectations that still wait for requests (`always` ones are not counted).
    pub fn pending(&self) -> Vec<String> {
        self.expectations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.times.is_some_and(|n| n > 0))
            .map(|e| format!("{} {}", e.method, e.url))
            .collect()
    }

    /// Panics unless every expectation was met and nothing unexpected was sent.
    pub fn verify(&self) {
        let pending = self.pending();
        assert!(pending.is_empty(), "expected requests that were not sent: {pending:?}");
        let unexpected: Vec<String> = self
            .requests()
            .iter()
            .filter(|r| !r.expected)
            .map(|r| format!("{} {}", r.method, r.url))
            .collect();
        assert!(unexpected.is_empty(), "requests nobody expected: {unexpected:?}");
    }
}

impl Outbound for MockHttp {
    fn send(&self, request: Request, url: monti_plugin_host::Url, _allow_private: bool) -> Result<Response, HttpError> {
        let method = request.method.to_ascii_uppercase();
        let answer = {
            let mut expectations = self.expectations.lock().unwrap_or_else(|e| e.into_inner());
            expectations
                .iter_mut()
                .find(|e| e.method == method && e.url == url.as_str() && e.times != Some(0))
                .map(|e| {
                    if let Some(n) = &mut e.times {
                        *n -= 1;
                    }
                    e.answer.clone()
                })
        };
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RecordedRequest {
                method: method.clone(),
                url: url.to_string(),
                headers: request.headers,
                body: request.body,
                expected: answer.is_some(),
            });
        answer.unwrap_or_else(|| {
            Err(HttpError::Transport(format!(
                "the test expects no {method} {url} (add an Expectation)"
            )))
        })
    }
}
