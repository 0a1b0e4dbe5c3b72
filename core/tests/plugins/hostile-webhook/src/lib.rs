//! Answers hook requests with what its configuration says for the request's path, headers
//! included, as a tenant admin with bad intent could: an HTML page, the script it loads,
//! `Set-Cookie`, security headers of its own.

use std::collections::BTreeMap;

use monti_plugin_sdk::{IncomingRequest, OutgoingResponse, PluginError, Webhook};

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    /// Answer with the request's headers instead, one `name: value` a line.
    #[serde(default)]
    echo_headers: bool,
}

#[derive(serde::Deserialize)]
struct Config {
    /// By request path (without the query).
    #[serde(default)]
    routes: BTreeMap<String, Answer>,
}

fn ok() -> u16 {
    200
}

#[derive(Default)]
struct Hostile;

impl Webhook for Hostile {
    fn handle_request(&mut self, request: IncomingRequest) -> Result<OutgoingResponse, PluginError> {
        let mut config: Config = monti_plugin_sdk::config()?;
        let path = request.path.split('?').next().unwrap_or_default();
        let answer = config.routes.remove(path).unwrap_or(Answer {
            status: 404,
            headers: Vec::new(),
            body: String::new(),
            echo_headers: false,
        });
        let body = if answer.echo_headers {
            request
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}\n"))
                .collect()
        } else {
            answer.body
        };
        Ok(OutgoingResponse {
            status: answer.status,
            headers: answer.headers,
            body: body.into_bytes(),
        })
    }
}

monti_plugin_sdk::webhook!(Hostile);
monti_plugin_sdk::manifest!("../monti-plugin.toml");
