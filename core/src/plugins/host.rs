//! The host side of the contract: what each import does for a plugin instance.

use std::collections::BTreeMap;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    world: "event-handler",
    path: "../sdk/wit",
    with: {
        "monti:plugin/secrets.secret": SecretHandle,
    },
    imports: { default: trappable },
});

use monti::plugin::types::Denied;
use monti::plugin::{config, events, http, kv, log, secrets, streams};

/// A secret the plugin asked for, by name; the value stays with the host.
pub struct SecretHandle {
    pub name: String,
}

/// Lines kept from one invocation (the newest win beyond this).
pub const MAX_LOG_LINES: usize = 200;
/// Longest log line kept, in bytes.
pub const MAX_LOG_LINE: usize = 2_000;

/// Everything one instance may touch.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub config_json: String,
    pub kv: BTreeMap<String, Vec<u8>>,
    pub kv_quota_bytes: usize,
    pub max_emit: usize,
    pub emitted: Vec<Event>,
    pub logs: Vec<(log::Level, String)>,
    pub secret_names: Vec<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    fn kv_bytes(&self) -> usize {
        self.kv.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub fn push_log(&mut self, level: log::Level, message: &str) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs.remove(0);
        }
        let mut line = message.to_owned();
        if line.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        self.logs.push((level, line));
    }
}

type HostResult<T> = wasmtime::Result<T>;

impl monti::plugin::types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> HostResult<()> {
        self.push_log(level, &message);
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self) -> HostResult<String> {
        Ok(self.config_json.clone())
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        Ok(self.kv.get(&key).cloned())
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> HostResult<Result<(), Denied>> {
        let old = self.kv.get(&key).map_or(0, |v| key.len() + v.len());
        if self.kv_bytes() - old + key.len() + value.len() > self.kv_quota_bytes {
            return Ok(Err(Denied::QuotaExceeded(format!(
                "the key-value store holds at most {} bytes",
                self.kv_quota_bytes
            ))));
        }
        self.kv.insert(key, value);
        Ok(Ok(()))
    }

    fn delete(&mut self, key: String) -> HostResult<()> {
        self.kv.remove(&key);
        Ok(())
    }

    fn keys(&mut self, prefix: String) -> HostResult<Vec<String>> {
        Ok(self.kv.keys().filter(|k| k.starts_with(&prefix)).cloned().collect())
    }
}

impl secrets::HostSecret for HostState {
    fn name(&mut self, secret: Resource<SecretHandle>) -> HostResult<String> {
        Ok(self.table.get(&secret)?.name.clone())
    }

    fn drop(&mut self, secret: Resource<SecretHandle>) -> HostResult<()> {
        self.table.delete(secret)?;
        Ok(())
    }
}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> HostResult<Result<Resource<SecretHandle>, Denied>> {
        if !self.secret_names.contains(&name) {
            return Ok(Err(Denied::NotGranted(format!("no secret `{name}` is configured"))));
        }
        Ok(Ok(self.table.push(SecretHandle { name })?))
    }
}

impl http::Host for HostState {
    fn send(&mut self, request: http::Request) -> HostResult<Result<http::Response, http::HttpError>> {
        Ok(Err(http::HttpError::Denied(Denied::NotGranted(format!(
            "outbound HTTP to {} is not granted to this installation",
            request.url
        )))))
    }

    fn send_with_secret(
        &mut self,
        request: http::Request,
        _secret: Resource<SecretHandle>,
        _placement: http::Placement,
    ) -> HostResult<Result<http::Response, http::HttpError>> {
        self.send(request)
    }
}

impl events::Host for HostState {
    fn emit(&mut self, events: Vec<Event>) -> HostResult<Result<(), Denied>> {
        if self.emitted.len() + events.len() > self.max_emit {
            return Ok(Err(Denied::QuotaExceeded(format!(
                "at most {} events per invocation",
                self.max_emit
            ))));
        }
        self.emitted.extend(events);
        Ok(Ok(()))
    }
}

impl streams::Host for HostState {
    fn open(&mut self, name: String, _target: streams::Target) -> HostResult<Result<u32, Denied>> {
        Ok(Err(Denied::NotGranted(format!(
            "stream `{name}` is not granted to this installation"
        ))))
    }

    fn send(&mut self, id: u32, _data: Vec<u8>) -> HostResult<Result<(), Denied>> {
        Ok(Err(Denied::NotGranted(format!("no open stream {id}"))))
    }

    fn close(&mut self, _id: u32) -> HostResult<()> {
        Ok(())
    }
}
