//! In-memory rate limits: token buckets per key (API token, client address) and growing
//! back-offs for sign-ins that keep failing.
//!
//! Limits are per instance. Behind a load balancer with N instances an attacker gets at most N
//! times the budget, which keeps brute force impractical without a shared store on the hot path.
//!
//! Anyone can make new keys (an address, an email typed into the sign-in form), so every map
//! here is bounded: keys are stored as fixed-size digests, and a map that reaches its capacity
//! first drops entries that no longer hold anything back, then the least recently used ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How many keys each map tracks at most (a few megabytes each).
pub const MAX_KEYS: usize = 100_000;

/// A key as stored: the first half of the SHA-256 of the caller's key, so an entry costs the
/// same whatever was typed.
type Key = [u8; 16];

fn key_of(parts: &[&str]) -> Key {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Makes room for one more key in a map at `cap`: drops the entries `done` says hold nothing
/// back any more and, if that leaves the map above nine tenths of `cap`, the least recently
/// `touched` ones down to that. So each call frees at least a tenth, and the work of a full
/// pass is spread over that many inserts.
fn make_room<V>(map: &mut HashMap<Key, V>, cap: usize, done: impl Fn(&V) -> bool, touched: impl Fn(&V) -> Instant) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| !done(v));
    let keep = cap - cap / 10 - 1;
    if map.len() <= keep {
        return;
    }
    let mut times: Vec<Instant> = map.values().map(&touched).collect();
    let drop = times.len() - keep;
    let (_, threshold, _) = times.select_nth_unstable(drop - 1);
    let threshold = *threshold;
    map.retain(|_, v| touched(v) > threshold);
    metrics::counter!("rate_limit_evictions_total").increment(1);
}

/// How fast a [`TokenBucket`] refills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }

    /// `per_minute` a minute, up to a minute's worth at once: a quiet caller can burst, a busy
    /// one is held to the rate.
    pub fn per_minute(per_minute: f64) -> Self {
        Self::new(per_minute / 60.0, per_minute)
    }
}

/// The one token bucket in the server: every limit, keyed or not, is made of these.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            updated: now,
        }
    }

    /// Tokens there are at `now` (below zero while a debt is being paid off).
    pub fn available(&mut self, rate: Rate, now: Instant) -> f64 {
        let refill = now.saturating_duration_since(self.updated).as_secs_f64() * rate.per_second;
        self.tokens = (self.tokens + refill).min(rate.burst);
        self.updated = self.updated.max(now);
        self.tokens
    }

    /// Takes `n` tokens, or says how long until there are that many. More than the bucket can
    /// ever hold waits for a full bucket (the caller splits its batch).
    pub fn take(&mut self, rate: Rate, n: f64, now: Instant) -> Result<(), Duration> {
        let tokens = self.available(rate, now);
        if tokens >= n {
            self.tokens -= n;
            return Ok(());
        }
        if rate.per_second <= 0.0 {
            return Err(Duration::MAX);
        }
        let missing = n.min(rate.burst) - tokens;
        Err(Duration::from_secs_f64(missing / rate.per_second))
    }

    /// Takes what was used after the fact, even below zero: the debt delays what follows.
    pub fn charge(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Full again at `now`: forgetting the bucket would change nothing.
    fn is_idle(&self, rate: Rate, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.updated).as_secs_f64() * rate.per_second >= rate.burst
    }
}

/// How often a keyed limiter drops the buckets that have filled up again.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Buckets {
    map: HashMap<Key, TokenBucket>,
    swept: Instant,
}

/// A keyed token bucket: `burst` requests at once, refilled at `per_second`. Keys that have
/// been idle long enough to fill up again are dropped (at most once a minute, and whenever the
/// map is full), so keys that stop coming (a removed installation, a client gone) cost nothing.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    cap: usize,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    /// `per_second <= 0` disables the limit.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            rate: Rate::new(per_second, f64::from(burst.max(1))),
            cap: MAX_KEYS,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate.per_second > 0.0
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one request from `key`'s budget, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Takes `n` at once (a batch of events), or says how long to wait for that many.
    pub fn check_n(&self, key: &str, n: u32) -> Result<(), Duration> {
        self.check_n_at(key, n, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.check_n_at(key, 1, now)
    }

    fn check_n_at(&self, key: &str, n: u32, now: Instant) -> Result<(), Duration> {
        if !self.enabled() || n == 0 {
            return Ok(());
        }
        let key = key_of(&[key]);
        let rate = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Buckets { map, swept } = &mut *buckets;
        if now.saturating_duration_since(*swept) >= SWEEP_EVERY {
            map.retain(|_, b| !b.is_idle(rate, now));
            *swept = now;
        }
        if !map.contains_key(&key) {
            // A full bucket is what a new key gets anyway: forgetting it changes nothing.
            make_room(map, self.cap, |b| b.is_idle(rate, now), |b| b.updated);
        }
        map.entry(key)
            .or_insert_with(|| TokenBucket::full(rate, now))
            .take(rate, f64::from(n), now)
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Consecutive failed sign-ins per account: after `free` failures each further attempt waits
/// twice as long as the one before (1 s, 2 s, 4 s … up to `max_delay`). Success resets it; so
/// does a quiet hour.
#[derive(Debug)]
pub struct Backoff {
    free: u32,
    max_delay: Duration,
    cap: usize,
    failures: Mutex<HashMap<Key, Failures>>,
}

const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl Backoff {
    pub fn new(free: u32, max_delay: Duration) -> Self {
        Self::with_capacity(free, max_delay, MAX_KEYS)
    }

    /// As [`new`](Self::new), tracking at most `cap` keys.
    pub fn with_capacity(free: u32, max_delay: Duration, cap: usize) -> Self {
        Self {
            free,
            max_delay,
            cap: cap.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops entries a quiet hour has forgotten, then the least recently failed ones, until
    /// there is room for a new key.
    fn make_room(&self, failures: &mut HashMap<Key, Failures>, now: Instant) {
        make_room(
            failures,
            self.cap,
            |f| now.duration_since(f.last) >= FORGET_AFTER,
            |f| f.last,
        );
    }

    /// `Err(wait)` while the account is locked.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn delay(&self, count: u32) -> Duration {
        if count < self.free {
            return Duration::ZERO;
        }
        let exponent = (count - self.free).min(20);
        Duration::from_secs(1u64 << exponent).min(self.max_delay)
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = failures.get(&key_of(&[key])) else {
            return Ok(());
        };
        let until = f.last + self.delay(f.count);
        if now < until { Err(until - now) } else { Ok(()) }
    }

    pub fn failed(&self, key: &str) {
        self.failed_at(key, Instant::now());
    }

    /// Checks and counts an attempt as failed in one step, so concurrent attempts cannot all
    /// pass the check before any is counted; call [`succeeded`](Self::succeeded) when it
    /// turns out well.
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let key = key_of(&[key]);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failures.get(&key) {
            let until = f.last + self.delay(f.count);
            if now < until && now.duration_since(f.last) < FORGET_AFTER {
                return Err(until - now);
            }
        } else {
            self.make_room(&mut failures, now);
        }
        let entry = failures.entry(key).or_insert(Failures { count: 0, last: now });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        Ok(())
    }

    fn failed_at(&self, key: &str, now: Instant) {
        let key = key_of(&[key]);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&key) {
            self.make_room(&mut failures, now);
        }
        let entry = failures.entry(key).or_insert(Failures { count: 0, last: now });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key_of(&[key]));
    }
}

/// An account's failures from all addresses together may reach this many times the per-address
/// allowance before everyone but its known clients is slowed down.
const ACCOUNT_FREE_FACTOR: u32 = 10;
/// The account-wide back-off slows guessing from many addresses; it never waits longer than
/// this, so the owner on a new address is held up, not locked out.
const ACCOUNT_MAX_DELAY: Duration = Duration::from_secs(60);
/// How long an address that signed in successfully stays a known client of the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Sign-in throttling as OWASP advises, so that guessing from one place cannot lock the owner
/// out: failures lock out the (client address, account) pair that made them, with a growing
/// back-off; the address's own budget across accounts is the caller's token bucket; and an
/// account failing from many addresses at once is slowed for every address except those that
/// recently signed in to it successfully.
#[derive(Debug)]
pub struct SignInThrottle {
    pair: Backoff,
    account: Backoff,
    cap: usize,
    known: Mutex<HashMap<Key, Instant>>,
}

/// The longest email address (RFC 5321's path limit less the angle brackets). Sign-in refuses
/// longer ones before they are looked at, so they never become keys here.
pub const MAX_EMAIL_LEN: usize = 254;

/// The account part of a key: addresses are compared trimmed and without case.
fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

fn pair_key(ip: &str, account: &str) -> String {
    // The length keeps ("a\nb", "c") and ("a", "b\nc") apart.
    format!("{}:{ip}\n{}", ip.len(), account_key(account))
}

impl SignInThrottle {
    pub fn new(free: u32, max_delay: Duration) -> Self {
        Self::with_capacity(free, max_delay, MAX_KEYS)
    }

    /// As [`new`](Self::new), each of its maps tracking at most `cap` keys.
    pub fn with_capacity(free: u32, max_delay: Duration, cap: usize) -> Self {
        Self {
            pair: Backoff::with_capacity(free, max_delay, cap),
            account: Backoff::with_capacity(
                free.saturating_mul(ACCOUNT_FREE_FACTOR),
                max_delay.min(ACCOUNT_MAX_DELAY),
                cap,
            ),
            cap: cap.max(1),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys each map tracks now: (address and account, account, known clients).
    pub fn tracked(&self) -> (usize, usize, usize) {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner()).len();
        (self.pair.len(), self.account.len(), known)
    }

    fn is_known(&self, ip: &str, account: &str, now: Instant) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(&key_of(&[&pair_key(ip, account)]))
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR)
    }

    /// Checks an attempt from `ip` on `account` and counts it as failed until
    /// [`succeeded`](Self::succeeded) says otherwise; `Err(wait)` while it must wait.
    pub fn attempt(&self, ip: &str, account: &str) -> Result<(), Duration> {
        let known = self.is_known(ip, account, Instant::now());
        let account_key = account_key(account);
        if !known {
            self.account.check(&account_key)?;
        }
        self.pair.attempt(&pair_key(ip, account))?;
        if !known {
            self.account.failed(&account_key);
        }
        Ok(())
    }

    /// The right password from `ip`: its failures are forgotten, and the address becomes a
    /// known client that an attack on the account from elsewhere does not slow down.
    pub fn succeeded(&self, ip: &str, account: &str) {
        let pair = pair_key(ip, account);
        self.pair.succeeded(&pair);
        self.account.succeeded(&account_key(account));
        let now = Instant::now();
        let key = key_of(&[&pair]);
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains_key(&key) {
            make_room(
                &mut known,
                self.cap,
                |at| now.duration_since(*at) >= KNOWN_FOR,
                |at| *at,
            );
        }
        known.insert(key, now);
    }
}

/// Rounds a wait up to whole seconds for `Retry-After`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The limits a server enforces, built from configuration.
#[derive(Debug)]
pub struct Limits {
    /// Sign-in attempts per client address.
    pub sign_in_per_ip: RateLimiter,
    /// Growing waits for failed sign-ins, per client address and account.
    pub sign_in: SignInThrottle,
    /// Growing waits for wrong current passwords on the account page, per account.
    pub password_change: Backoff,
    /// Requests per API credential.
    pub api: RateLimiter,
    /// Audit entries for failed API credentials, per client address.
    pub audit_failures: RateLimiter,
    /// Self-service reset emails per address: one, then one every five minutes.
    pub reset_emails: RateLimiter,
    /// Invitations per tenant (see [`super::invitations::PER_TENANT_PER_HOUR`]).
    pub invitations: RateLimiter,
    /// Audit entries for failed sign-ins, per account: a flood of wrong passwords for one
    /// account adds a few rows, not one per attempt.
    pub sign_in_audit: RateLimiter,
    /// Events per tenant, so one tenant's flood does not slow the others.
    pub ingest: RateLimiter,
}

impl Limits {
    pub fn new(config: &crate::config::AuthConfig) -> Self {
        let per_minute = f64::from(config.sign_in_per_minute_per_ip);
        Self {
            sign_in_per_ip: RateLimiter::new(per_minute / 60.0, config.sign_in_per_minute_per_ip.max(1)),
            sign_in: SignInThrottle::new(config.sign_in_free_failures, config.sign_in_max_delay),
            password_change: Backoff::new(config.sign_in_free_failures, config.sign_in_max_delay),
            api: RateLimiter::new(config.api_rate_per_second, config.api_burst),
            audit_failures: RateLimiter::new(1.0, 5),
            reset_emails: RateLimiter::new(1.0 / 300.0, 1),
            invitations: super::invitations::limiter(),
            sign_in_audit: RateLimiter::new(1.0 / 60.0, 5),
            ingest: RateLimiter::new(config.ingest_events_per_second, config.ingest_burst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let limiter = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("k", t0).is_ok());
        }
        let wait = limiter.check_at("k", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(limiter.check_at("other", t0).is_ok(), "keys are independent");
        assert!(limiter.check_at("k", t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.check_at("k", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn batches_take_several_tokens() {
        let limiter = RateLimiter::new(10.0, 100);
        let t0 = Instant::now();
        assert!(limiter.check_n_at("t", 60, t0).is_ok());
        let wait = limiter.check_n_at("t", 60, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-6, "{wait:?}");
        assert!(limiter.check_n_at("t", 40, t0).is_ok());
        assert!(limiter.check_n_at("other", 100, t0).is_ok(), "tenants are independent");
    }

    #[test]
    fn disabled_limiter_allows_everything() {
        let limiter = RateLimiter::new(0.0, 1);
        for _ in 0..100 {
            assert!(limiter.check("k").is_ok());
        }
    }

    #[test]
    fn backoff_doubles_after_free_attempts_and_resets_on_success() {
        let b = Backoff::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.check_at("a", t0).is_ok());
            b.failed_at("a", t0);
        }
        assert_eq!(b.check_at("a", t0).unwrap_err(), Duration::from_secs(1));
        b.failed_at("a", t0 + Duration::from_secs(1));
        assert_eq!(
            b.check_at("a", t0 + Duration::from_secs(1)).unwrap_err(),
            Duration::from_secs(2)
        );
        for i in 0..20 {
            b.failed_at("a", t0 + Duration::from_secs(2 + i));
        }
        assert_eq!(
            b.check_at("a", t0 + Duration::from_secs(21)).unwrap_err(),
            Duration::from_secs(60),
            "capped"
        );
        b.succeeded("a");
        assert!(b.check_at("a", t0 + Duration::from_secs(21)).is_ok());
    }

    #[test]
    fn failures_lock_the_address_not_the_owner() {
        let t = SignInThrottle::new(3, Duration::from_secs(900));
        for _ in 0..3 {
            assert!(t.attempt("10.0.0.66", "ana@example.com").is_ok());
        }
        assert!(
            t.attempt("10.0.0.66", "ana@example.com").is_err(),
            "the guessing address waits"
        );
        assert!(
            t.attempt("10.0.0.66", "bob@example.com").is_ok(),
            "other accounts are separate"
        );
        assert!(
            t.attempt("10.0.0.7", "ana@example.com").is_ok(),
            "the owner elsewhere is not"
        );
        t.succeeded("10.0.0.7", "ana@example.com");
        assert!(
            t.attempt("10.0.0.66", "ana@example.com").is_err(),
            "success elsewhere frees nobody else"
        );
    }

    #[test]
    fn many_addresses_slow_the_account_except_for_known_clients() {
        let t = SignInThrottle::new(2, Duration::from_secs(900));
        t.succeeded("10.0.0.7", "ana@example.com");
        for i in 0..(2 * ACCOUNT_FREE_FACTOR) {
            let ip = format!("192.0.2.{}", i / 2);
            assert!(t.attempt(&ip, "ana@example.com").is_ok());
        }
        let wait = t.attempt("198.51.100.1", "ana@example.com").unwrap_err();
        assert!(wait <= ACCOUNT_MAX_DELAY, "slowed, not locked: {wait:?}");
        assert!(
            t.attempt("10.0.0.7", "ana@example.com").is_ok(),
            "a known client still gets in"
        );
    }

    #[test]
    fn sign_in_maps_stay_bounded_under_anonymous_traffic() {
        let cap = 1_000;
        let t = SignInThrottle::with_capacity(3, Duration::from_secs(900), cap);
        // Someone is being held back; then a flood of new addresses and made-up accounts.
        for _ in 0..3 {
            assert!(t.attempt("10.0.0.66", "ana@example.com").is_ok());
        }
        for i in 0..(20 * cap) {
            let long = format!("{i}-{}@example.com", "x".repeat(200));
            let _ = t.attempt(&format!("192.0.2.{}", i % 250), &long);
            t.succeeded(&format!("198.51.100.{}", i % 250), &format!("{i}@example.com"));
            let (pair, account, known) = t.tracked();
            assert!(pair <= cap && account <= cap && known <= cap, "{:?}", t.tracked());
        }
        let (pair, account, known) = t.tracked();
        assert!(
            pair > cap / 2 && account > cap / 2 && known > cap / 2,
            "still tracks: {:?}",
            t.tracked()
        );
    }

    #[test]
    fn eviction_drops_the_least_recently_failed_first() {
        let b = Backoff::with_capacity(1, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        b.failed_at("early", t0);
        for i in 0..9 {
            b.failed_at(&format!("k{i}"), t0 + Duration::from_secs(1 + i));
        }
        b.failed_at("late", t0 + Duration::from_secs(20));
        b.failed_at("late", t0 + Duration::from_secs(20));
        assert!(b.len() <= 10);
        assert!(b.check_at("early", t0 + Duration::from_secs(20)).is_ok(), "evicted");
        assert!(b.check_at("late", t0 + Duration::from_secs(20)).is_err(), "kept");
    }

    #[test]
    fn limiter_keys_are_bounded() {
        let limiter = RateLimiter {
            cap: 100,
            ..RateLimiter::new(1.0, 1)
        };
        let t0 = Instant::now();
        for i in 0..10_000 {
            let _ = limiter.check_at(&format!("10.{}.{}.1", i / 256, i % 256), t0);
        }
        assert!(limiter.len() <= 100);
    }

    #[test]
    fn idle_keys_are_pruned_and_busy_ones_kept() {
        // A token every ten seconds, five at most.
        let limiter = RateLimiter::new(0.1, 5);
        let t0 = Instant::now();
        for i in 0..50 {
            assert!(limiter.check_at(&format!("gone-{i}"), t0).is_ok());
        }
        // One key keeps using its budget; the others stop coming.
        for _ in 0..5 {
            assert!(limiter.check_at("busy", t0).is_ok());
        }
        assert_eq!(limiter.len(), 51);
        // Before a sweep is due nothing is dropped, even keys that are full again.
        let soon = t0 + Duration::from_secs(30);
        for _ in 0..10 {
            let _ = limiter.check_at("busy", soon);
        }
        assert_eq!(limiter.len(), 51, "no sweep within a minute");
        // A minute on, the idle keys are full and dropped; the busy one still owes and stays.
        let later = t0 + SWEEP_EVERY + Duration::from_millis(1);
        for _ in 0..20 {
            let _ = limiter.check_at("busy", later);
        }
        assert_eq!(limiter.len(), 1, "only the busy key is left");
        assert!(limiter.check_at("busy", later).is_err(), "and it is still held back");
        // A dropped key comes back with a full bucket, as it would have had.
        for _ in 0..5 {
            assert!(limiter.check_at("gone-1", later).is_ok());
        }
        assert!(limiter.check_at("gone-1", later).is_err());
    }

    #[test]
    fn a_bucket_charged_after_the_fact_pays_its_debt_first() {
        let rate = Rate::per_minute(60.0);
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(rate, t0);
        assert!(bucket.take(rate, 1.0, t0).is_ok());
        bucket.charge(100.0);
        assert!(bucket.available(rate, t0) < 0.0);
        let wait = bucket.take(rate, 1.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 42.0).abs() < 1e-6, "{wait:?}");
        assert!(bucket.take(rate, 1.0, t0 + Duration::from_secs(42)).is_ok());
        // Refills stop at a full bucket.
        assert!((bucket.available(rate, t0 + Duration::from_secs(3600)) - 60.0).abs() < 1e-9);
    }

    #[test]
    fn account_keys_ignore_case_and_spaces() {
        let t = SignInThrottle::new(1, Duration::from_secs(900));
        assert!(t.attempt("10.0.0.66", " Ana@Example.com ").is_ok());
        assert!(t.attempt("10.0.0.66", "ana@example.com").is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    }
}
