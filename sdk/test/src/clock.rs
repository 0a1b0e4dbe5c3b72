//! Time that moves only when the test moves it.

use std::sync::Mutex;
use std::time::Duration;

/// The plugin's wall and monotonic clocks. Starts at 2027-01-15T08:00:00Z.
#[derive(Debug)]
pub struct VirtualClock {
    since_epoch: Mutex<Duration>,
}

/// 2027-01-15T08:00:00Z, Unix milliseconds.
const START_MS: u64 = 1_800_000_000_000;

impl Default for VirtualClock {
    fn default() -> Self {
        Self {
            since_epoch: Mutex::new(Duration::from_millis(START_MS)),
        }
    }
}

impl VirtualClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Duration> {
        self.since_epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Now, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.lock().as_millis() as i64
    }

    /// Sets the time, Unix milliseconds (it may go backwards, as real clocks sometimes do).
    pub fn set_ms(&self, unix_ms: i64) {
        *self.lock() = Duration::from_millis(unix_ms.max(0) as u64);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        *self.lock() += by;
    }
}

impl monti_plugin_host::Clock for VirtualClock {
    fn now(&self) -> Duration {
        *self.lock()
    }
}
