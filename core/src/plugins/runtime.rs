//! What the server keeps in memory for one tenant's plugins: the installations it loaded, and
//! per installation its circuit breaker, warm instance, key-value store, runs not written yet,
//! recent log lines and open streams; per tenant its quota and its inbound hook rate. All of it
//! hangs off one [`TenantRuntime`], so forgetting a tenant forgets everything at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::streams::InstallationStreams;
use super::{Limits, LogLine, ValidPlugin, WarmInstance};
use crate::auth::ratelimit::{Rate, RateLimiter, TokenBucket, retry_after_secs};
use crate::store::TenantId;
use crate::store::plugins::Stamp;

/// Consecutive failures after which an installation's circuit opens.
pub(super) const BREAK_AFTER: u32 = 5;
/// How long an open circuit skips the installation before one trial run (half-open).
pub(super) const OPEN_FOR: Duration = Duration::from_secs(60);
/// How often a connector's stream runs are written.
const RUN_RECORD_EVERY: Duration = Duration::from_secs(1);
/// Log lines kept per installation across runs (as many as one run may write).
pub const RECENT_LOG_LINES: usize = 200;

/// An installation's key-value store.
pub(super) type Kv = std::collections::BTreeMap<String, Vec<u8>>;

/// Consecutive failures, and since when the circuit is open.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Circuit {
    pub(super) failures: u32,
    pub(super) open_since: Option<Instant>,
}

impl Circuit {
    /// Whether to run now: closed, or open long enough for a trial.
    pub(super) fn admits(&self) -> bool {
        self.open_since.is_none_or(|since| since.elapsed() >= OPEN_FOR)
    }

    pub(super) fn record(&mut self, failed: bool) {
        if failed {
            self.failures += 1;
            if self.failures >= BREAK_AFTER {
                // Opened, or a failed trial keeps it open for another period.
                self.open_since = Some(Instant::now());
            }
        } else {
            *self = Circuit::default();
        }
    }
}

/// An enabled installation as loaded.
pub(super) struct Installed {
    pub(super) id: String,
    pub(super) plugin_id: String,
    pub(super) config: String,
    pub(super) plugin: ValidPlugin,
}

/// The tenant's enabled installations, as of `stamp`.
pub(super) struct TenantPlugins {
    pub(super) stamp: Stamp,
    pub(super) installed: Vec<Installed>,
}

/// The process-wide count of warm instances: each held one takes a slot and gives it back
/// when dropped, wherever that happens (a tenant forgotten drops its instances with it).
#[derive(Debug, Default)]
pub(super) struct WarmSlots(AtomicUsize);

pub(super) struct WarmSlot(Arc<WarmSlots>);

impl WarmSlots {
    /// A slot while fewer than `max` are taken.
    pub(super) fn take(self: &Arc<Self>, max: usize) -> Option<WarmSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| WarmSlot(self.clone()))
    }

    #[cfg(test)]
    pub(super) fn taken(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for WarmSlot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A warm instance with the slot it holds.
pub(super) struct Warm {
    pub(super) instance: WarmInstance,
    pub(super) slot: WarmSlot,
}

/// Runs recorded in memory since the installation's record was last written.
struct PendingRuns {
    runs: i64,
    failures: i64,
    kv: Option<Kv>,
    error: Option<String>,
    since: Instant,
}

/// What to write to an installation's record.
pub(super) struct RunRecord {
    pub(super) runs: i64,
    pub(super) failures: i64,
    pub(super) kv: Option<Kv>,
    pub(super) error: Option<String>,
    pub(super) logs: Vec<LogLine>,
}

/// What is kept for one installation.
#[derive(Default)]
struct InstallationState {
    /// The circuit of the version (digest) it belongs to: an upgrade starts closed.
    circuit: Option<(String, Circuit)>,
    warm: Option<Warm>,
    /// The key-value store as the last run left it (the database has the same, written when a
    /// run changed it): a connector's floor is read once, not on every call.
    kv: Option<Arc<Kv>>,
    /// Stream runs not written yet: a connector runs dozens of times a second, and its run
    /// record is written at most once a second (and by any other run).
    pending: Option<PendingRuns>,
    /// The last lines logged, across runs: a run that logs nothing (a heartbeat) does not wipe
    /// what a connector said when it connected.
    logs: VecDeque<LogLine>,
    streams: Option<Arc<InstallationStreams>>,
}

impl InstallationState {
    fn take_record(&mut self) -> Option<RunRecord> {
        let pending = self.pending.take()?;
        Some(RunRecord {
            runs: pending.runs,
            failures: pending.failures,
            kv: pending.kv,
            error: pending.error,
            logs: self.logs.iter().cloned().collect(),
        })
    }
}

/// What a tenant's plugins may still use: buckets that refill at their quota per minute, up
/// to a minute's worth (so a quiet tenant can burst, a busy one is held to its rate).
struct Quota {
    invocations: TokenBucket,
    http_calls: TokenBucket,
    events: TokenBucket,
}

/// One tenant's plugin runtime.
pub(super) struct TenantRuntime {
    pub(super) tenant: TenantId,
    /// One delivery (batch, replay, command, stream data, heartbeat) at a time.
    pub(super) turn: tokio::sync::Mutex<()>,
    /// One load of the installations at a time.
    pub(super) loading: tokio::sync::Mutex<()>,
    /// When the installations were last looked up, and what they were.
    pub(super) checked: Mutex<Option<(Instant, Stamp)>>,
    pub(super) loaded: Mutex<Option<Arc<TenantPlugins>>>,
    installations: Mutex<HashMap<String, InstallationState>>,
    /// Inbound hook requests, per installation.
    hooks: RateLimiter,
    quota_rates: [Rate; 3],
    quota: Mutex<Quota>,
    quota_config: crate::config::PluginQuota,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TenantRuntime {
    pub(super) fn new(tenant: TenantId, policy: &crate::config::PluginsConfig) -> Self {
        let quota = &policy.tenant_quota;
        let quota_rates = [
            Rate::per_minute(quota.invocations as f64),
            Rate::per_minute(quota.http_calls as f64),
            Rate::per_minute(quota.events as f64),
        ];
        let now = Instant::now();
        let hook_rate = policy.hook_rate.max(1);
        Self {
            tenant,
            turn: tokio::sync::Mutex::new(()),
            loading: tokio::sync::Mutex::new(()),
            checked: Mutex::new(None),
            loaded: Mutex::new(None),
            installations: Mutex::new(HashMap::new()),
            // `plugins.hook_rate` a second, bursts of twice that.
            hooks: RateLimiter::new(f64::from(hook_rate), hook_rate.saturating_mul(2)),
            quota_rates,
            quota: Mutex::new(Quota {
                invocations: TokenBucket::full(quota_rates[0], now),
                http_calls: TokenBucket::full(quota_rates[1], now),
                events: TokenBucket::full(quota_rates[2], now),
            }),
            quota_config: quota.clone(),
        }
    }

    /// Whether any installations are loaded.
    pub(super) fn has_loaded(&self) -> bool {
        lock(&self.loaded).is_some()
    }

    /// The stamp looked up less than `ttl` ago, if any.
    pub(super) fn recent_stamp(&self, ttl: Duration) -> Option<Stamp> {
        lock(&self.checked)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, stamp)| stamp)
    }

    pub(super) fn set_stamp(&self, stamp: Option<Stamp>) {
        *lock(&self.checked) = stamp.map(|s| (Instant::now(), s));
    }

    /// What is loaded, if it is as of `stamp`.
    pub(super) fn loaded_as_of(&self, stamp: Stamp) -> Option<Arc<TenantPlugins>> {
        lock(&self.loaded).clone().filter(|l| l.stamp == stamp)
    }

    /// Makes `loaded` what runs, and drops what is kept for installations no longer in it (and
    /// warm instances of another version). Returns the runs of dropped installations that are
    /// still to be written.
    pub(super) fn replace_loaded(&self, loaded: Option<Arc<TenantPlugins>>) -> Vec<(String, RunRecord)> {
        let mut unwritten = Vec::new();
        {
            let mut states = lock(&self.installations);
            let installed: &[Installed] = loaded.as_ref().map_or(&[], |l| &l.installed);
            states.retain(|id, state| {
                let Some(current) = installed.iter().find(|i| &i.id == id) else {
                    if let Some(record) = state.take_record() {
                        unwritten.push((id.clone(), record));
                    }
                    return false;
                };
                if state
                    .warm
                    .as_ref()
                    .is_some_and(|w| w.instance.digest() != current.plugin.digest)
                {
                    state.warm = None;
                }
                true
            });
        }
        *lock(&self.loaded) = loaded;
        unwritten
    }

    /// The runs of every installation still to be written (the tenant is being forgotten).
    pub(super) fn take_all_records(&self) -> Vec<(String, RunRecord)> {
        lock(&self.installations)
            .iter_mut()
            .filter_map(|(id, state)| state.take_record().map(|r| (id.clone(), r)))
            .collect()
    }

    pub(super) fn circuit(&self, installation_id: &str, digest: &str) -> Circuit {
        lock(&self.installations)
            .get(installation_id)
            .and_then(|s| s.circuit.as_ref())
            .filter(|(d, _)| d == digest)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    /// Counts a run towards the circuit; says whether the circuit is open now and whether
    /// that changed.
    pub(super) fn record_outcome(&self, installation_id: &str, digest: &str, failed: bool) -> (bool, bool) {
        let mut states = lock(&self.installations);
        let state = states.entry(installation_id.to_owned()).or_default();
        if state.circuit.as_ref().is_none_or(|(d, _)| d != digest) {
            state.circuit = Some((digest.to_owned(), Circuit::default()));
        }
        let Some((_, circuit)) = state.circuit.as_mut() else {
            return (false, false);
        };
        let was_open = circuit.open_since.is_some();
        circuit.record(failed);
        let open = circuit.open_since.is_some();
        (open, open != was_open)
    }

    pub(super) fn kv(&self, installation_id: &str) -> Option<Arc<Kv>> {
        lock(&self.installations)
            .get(installation_id)
            .and_then(|s| s.kv.clone())
    }

    pub(super) fn set_kv(&self, installation_id: &str, kv: Kv) {
        lock(&self.installations)
            .entry(installation_id.to_owned())
            .or_default()
            .kv = Some(Arc::new(kv));
    }

    pub(super) fn take_warm(&self, installation_id: &str) -> Option<Warm> {
        lock(&self.installations)
            .get_mut(installation_id)
            .and_then(|s| s.warm.take())
    }

    pub(super) fn keep_warm(&self, installation_id: &str, warm: Warm) {
        lock(&self.installations)
            .entry(installation_id.to_owned())
            .or_default()
            .warm = Some(warm);
    }

    /// The installation's streams, made by `open` the first time.
    pub(super) fn streams(
        &self,
        installation_id: &str,
        open: impl FnOnce() -> Option<InstallationStreams>,
    ) -> Option<Arc<InstallationStreams>> {
        let mut states = lock(&self.installations);
        let state = states.entry(installation_id.to_owned()).or_default();
        if state.streams.is_none() {
            state.streams = open().map(Arc::new);
        }
        state.streams.clone()
    }

    /// The installation's streams if it has any open or had.
    pub(super) fn existing_streams(&self, installation_id: &str) -> Option<Arc<InstallationStreams>> {
        lock(&self.installations)
            .get(installation_id)
            .and_then(|s| s.streams.clone())
    }

    /// Records a run in memory: its log lines join the installation's recent ones, and it is
    /// due to be written unless it is a stream run less than a second after the last write.
    pub(super) fn note_run(
        &self,
        installation_id: &str,
        kv: Option<&Kv>,
        error: Option<&str>,
        logs: &[LogLine],
        streamed: bool,
    ) -> Option<RunRecord> {
        let mut states = lock(&self.installations);
        let state = states.entry(installation_id.to_owned()).or_default();
        keep_recent(&mut state.logs, logs);
        let pending = state.pending.get_or_insert_with(|| PendingRuns {
            runs: 0,
            failures: 0,
            kv: None,
            error: None,
            since: Instant::now(),
        });
        pending.runs += 1;
        pending.failures += i64::from(error.is_some());
        if let Some(kv) = kv {
            pending.kv = Some(kv.clone());
        }
        if let Some(error) = error {
            pending.error = Some(error.to_owned());
        }
        if streamed && pending.since.elapsed() < RUN_RECORD_EVERY {
            return None;
        }
        state.take_record()
    }

    /// Takes a token from the installation's hook bucket, or says in how many seconds there
    /// is one.
    pub(super) fn admit_hook(&self, installation_id: &str) -> Result<(), u32> {
        self.hooks
            .check(installation_id)
            .map_err(|wait| u32::try_from(retry_after_secs(wait).max(1)).unwrap_or(u32::MAX))
    }

    /// Counts a call against the tenant's quota and narrows `limits` to what is left of it;
    /// `Err` with the reason when its calls are used up.
    pub(super) fn budget(&self, limits: &mut Limits) -> Result<(), String> {
        let now = Instant::now();
        let [invocations, http_calls, events] = self.quota_rates;
        let mut quota = lock(&self.quota);
        if quota.invocations.take(invocations, 1.0, now).is_err() {
            metrics::counter!("plugin_quota_exceeded_total", "kind" => "invocations").increment(1);
            return Err(format!(
                "the tenant's plugins used their {} calls a minute",
                self.quota_config.invocations
            ));
        }
        limits.http_calls = limits
            .http_calls
            .min(quota.http_calls.available(http_calls, now).max(0.0) as u32);
        limits.max_emit = limits
            .max_emit
            .min(quota.events.available(events, now).max(0.0) as usize);
        Ok(())
    }

    /// Takes what a call used from the tenant's buckets.
    pub(super) fn spend(&self, http_calls: usize, events: usize) {
        let mut quota = lock(&self.quota);
        quota.http_calls.charge(http_calls as f64);
        quota.events.charge(events as f64);
    }

    /// The installation's recent log lines (for tests).
    #[cfg(test)]
    fn recent_logs(&self, installation_id: &str) -> Vec<LogLine> {
        lock(&self.installations)
            .get(installation_id)
            .map(|s| s.logs.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Adds a run's lines to the recent ones, keeping the last [`RECENT_LOG_LINES`].
fn keep_recent(recent: &mut VecDeque<LogLine>, lines: &[LogLine]) {
    let skip = lines.len().saturating_sub(RECENT_LOG_LINES);
    recent.extend(lines[skip..].iter().cloned());
    while recent.len() > RECENT_LOG_LINES {
        recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> LogLine {
        LogLine {
            level: "info",
            message: message.to_owned(),
        }
    }

    fn tenant() -> TenantId {
        TenantId::for_tests("t1")
    }

    fn runtime() -> TenantRuntime {
        TenantRuntime::new(tenant(), &crate::config::PluginsConfig::default())
    }

    #[test]
    fn the_circuit_opens_after_repeated_failures_and_closes_on_success() {
        let mut circuit = Circuit::default();
        for _ in 0..BREAK_AFTER - 1 {
            circuit.record(true);
            assert!(circuit.admits(), "still closed");
        }
        circuit.record(true);
        assert!(!circuit.admits(), "open after {BREAK_AFTER} failures in a row");
        // A trial after the open period: success closes it, failure keeps it open.
        circuit.open_since = Some(Instant::now() - OPEN_FOR);
        assert!(circuit.admits(), "half-open: one trial");
        circuit.record(true);
        assert!(!circuit.admits(), "a failed trial opens it again");
        circuit.open_since = Some(Instant::now() - OPEN_FOR);
        circuit.record(false);
        assert!(circuit.admits() && circuit.failures == 0, "closed after a success");
    }

    #[test]
    fn a_new_version_starts_with_a_closed_circuit() {
        let runtime = runtime();
        for _ in 0..BREAK_AFTER {
            runtime.record_outcome("i1", "v1", true);
        }
        assert!(!runtime.circuit("i1", "v1").admits());
        assert!(runtime.circuit("i1", "v2").admits(), "the upgrade runs");
        assert!(runtime.circuit("i2", "v1").admits(), "other installations are separate");
    }

    #[test]
    fn a_run_that_logs_nothing_keeps_the_recent_lines() {
        let runtime = runtime();
        // A stream run logs, a heartbeat right after logs nothing and is written at once.
        assert!(
            runtime
                .note_run("i1", None, None, &[line("connected"), line("logged in")], true)
                .is_none(),
            "a stream run waits for the next write"
        );
        let written = runtime
            .note_run("i1", None, None, &[], false)
            .expect("a heartbeat is written");
        assert_eq!(written.runs, 2);
        let messages: Vec<&str> = written.logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["connected", "logged in"]);
        let written = runtime.note_run("i1", None, None, &[], false).unwrap();
        assert_eq!(written.logs.len(), 2, "still there on the next empty run");
    }

    #[test]
    fn recent_lines_are_bounded_and_keep_the_newest() {
        let runtime = runtime();
        for run in 0..3 {
            let lines: Vec<LogLine> = (0..RECENT_LOG_LINES)
                .map(|i| line(&format!("run {run} line {i}")))
                .collect();
            runtime.note_run("i1", None, None, &lines, false);
        }
        let last = format!("run 2 line {}", RECENT_LOG_LINES - 1);
        runtime.note_run("i1", None, None, &[line("one more")], false);
        let kept = runtime.recent_logs("i1");
        assert_eq!(kept.len(), RECENT_LOG_LINES);
        assert_eq!(kept[0].message, "run 2 line 1");
        assert_eq!(kept[RECENT_LOG_LINES - 2].message, last);
        assert_eq!(kept[RECENT_LOG_LINES - 1].message, "one more");
    }

    #[test]
    fn dropping_an_installation_hands_back_its_unwritten_runs() {
        let runtime = runtime();
        runtime.note_run("gone", None, Some("boom"), &[line("last words")], true);
        runtime.set_kv("gone", Kv::new());
        let unwritten = runtime.replace_loaded(None);
        assert_eq!(unwritten.len(), 1);
        let (id, record) = &unwritten[0];
        assert_eq!(id, "gone");
        assert_eq!((record.runs, record.failures), (1, 1));
        assert_eq!(record.error.as_deref(), Some("boom"));
        assert!(runtime.kv("gone").is_none(), "nothing is kept for it");
    }

    #[test]
    fn the_quota_refuses_calls_beyond_a_minutes_worth() {
        let policy = crate::config::PluginsConfig {
            tenant_quota: crate::config::PluginQuota {
                invocations: 3,
                http_calls: 10,
                events: 5,
            },
            ..Default::default()
        };
        let runtime = TenantRuntime::new(tenant(), &policy);
        let asked = || Limits {
            cpu: Duration::ZERO,
            memory_bytes: 0,
            max_emit: 100,
            kv_bytes: 0,
            wall: Duration::ZERO,
            http_calls: 100,
        };
        let mut limits = asked();
        assert!(runtime.budget(&mut limits).is_ok());
        assert_eq!(
            (limits.http_calls, limits.max_emit),
            (10, 5),
            "narrowed to what is left"
        );
        runtime.spend(4, 5);
        let mut limits = asked();
        assert!(runtime.budget(&mut limits).is_ok());
        assert_eq!(limits.http_calls, 6);
        assert_eq!(limits.max_emit, 0, "no events left");
        assert!(runtime.budget(&mut asked()).is_ok());
        assert!(runtime.budget(&mut asked()).is_err(), "three calls a minute");
    }

    #[test]
    fn hooks_are_limited_per_installation() {
        let policy = crate::config::PluginsConfig {
            hook_rate: 1,
            ..Default::default()
        };
        let runtime = TenantRuntime::new(tenant(), &policy);
        assert!(runtime.admit_hook("a").is_ok());
        assert!(runtime.admit_hook("a").is_ok());
        assert_eq!(runtime.admit_hook("a"), Err(1));
        assert!(runtime.admit_hook("b").is_ok(), "each installation has its own bucket");
    }

    #[test]
    fn warm_slots_are_given_back_when_dropped() {
        let slots = Arc::new(WarmSlots::default());
        let a = slots.take(2).unwrap();
        let b = slots.take(2).unwrap();
        assert!(slots.take(2).is_none(), "two at most");
        drop(a);
        assert_eq!(slots.taken(), 1);
        let _c = slots.take(2).expect("a slot came back");
        drop(b);
        assert_eq!(slots.taken(), 1);
    }
}
