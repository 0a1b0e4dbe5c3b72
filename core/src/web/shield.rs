//! The budget of refusals an anonymous client gets: an address whose anonymous requests keep
//! being refused (unknown hooks, forms without a CSRF token, uploads before signing in, API
//! calls without a valid credential) is held off for a while.
//!
//! A refused request is cheap, but each still costs a connection, a parse and an answer; a
//! flood of them from one address takes the CPU other tenants need. Once an address has spent
//! its budget, new connections from it are closed as soon as they are accepted (no HTTP at
//! all), and requests it still sends on open connections get a bare 429, until the hold ends.
//!
//! Behind a proxy (`http.trust_forwarded_for`) every connection comes from the proxy, so the
//! connection-level check is off and only requests are held off, by forwarded address. Many
//! addresses at once (a botnet) are the job of the proxy or network in front of Monti.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::ratelimit::RateLimiter;
use crate::config::HttpConfig;

/// Marks a response as a refusal of an anonymous request; the shield charges its address.
#[derive(Debug, Clone, Copy)]
pub struct AnonymousRefusal;

/// Marks `response` as an anonymous refusal.
pub fn charge(mut response: Response) -> Response {
    response.extensions_mut().insert(AnonymousRefusal);
    response
}

/// How many addresses are held off at most; beyond that the ones whose hold ends first go.
const MAX_HELD: usize = 100_000;

#[derive(Debug)]
pub struct Shield {
    refusals: RateLimiter,
    hold: Duration,
    /// Connection-level checks, off behind a proxy.
    by_peer: bool,
    held: Mutex<HashMap<IpAddr, Instant>>,
}

impl Shield {
    pub fn new(config: &HttpConfig) -> Self {
        Self {
            refusals: RateLimiter::new(config.anonymous_refusals_per_second, config.anonymous_refusal_burst),
            hold: config.refused_client_hold,
            by_peer: !config.trust_forwarded_for,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        self.refusals.enabled() && !self.hold.is_zero()
    }

    /// How much longer `ip` is held off, if it is.
    pub fn held_off(&self, ip: IpAddr) -> Option<Duration> {
        if !self.enabled() {
            return None;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let until = *held.get(&ip)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            held.remove(&ip);
            return None;
        }
        Some(left)
    }

    /// Charges one refusal to `ip`; an address out of budget is held off.
    pub fn refused(&self, ip: IpAddr) {
        if !self.enabled() || self.refusals.check(&ip.to_string()).is_ok() {
            return;
        }
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.len() >= MAX_HELD {
            held.retain(|_, until| *until > now);
            if held.len() >= MAX_HELD {
                // Many addresses at once: let the tenth whose holds end first go early.
                let mut ends: Vec<Instant> = held.values().copied().collect();
                let (_, threshold, _) = ends.select_nth_unstable(MAX_HELD / 10);
                let threshold = *threshold;
                held.retain(|_, until| *until > threshold);
            }
        }
        if held.insert(ip, now + self.hold).is_none() {
            metrics::counter!("http_clients_held_off_total").increment(1);
            tracing::warn!(client = %ip, hold = ?self.hold, "holding off a client whose anonymous requests keep being refused");
        }
    }

    /// Whether a connection from `peer` is closed as soon as it is accepted.
    fn turns_away(&self, peer: SocketAddr) -> bool {
        self.by_peer && self.held_off(peer.ip()).is_some()
    }
}

/// The client address a request is charged to: the forwarded one behind a trusted proxy.
fn client_of(app: &AppState, req: &Request) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    super::session::origin_of(req.headers(), peer, app.config.http.trust_forwarded_for)
        .ip
        .and_then(|ip| ip.parse().ok())
}

/// Outermost middleware: answers a held-off client at once and charges anonymous refusals.
pub async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(client) = client_of(&app, &req) else {
        return next.run(req).await;
    };
    if let Some(left) = app.shield.held_off(client) {
        metrics::counter!("http_held_off_requests_total").increment(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many refused requests from this address\n",
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(left.as_secs().max(1)));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let response = next.run(req).await;
    if response.extensions().get::<AnonymousRefusal>().is_some() {
        app.shield.refused(client);
    }
    response
}

/// The server's listener: closes connections from held-off addresses as it accepts them.
pub struct ShieldedListener {
    inner: tokio::net::TcpListener,
    shield: Arc<Shield>,
}

impl ShieldedListener {
    pub fn new(inner: tokio::net::TcpListener, shield: Arc<Shield>) -> Self {
        Self { inner, shield }
    }
}

impl axum::serve::Listener for ShieldedListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = axum::serve::Listener::accept(&mut self.inner).await;
            if self.shield.turns_away(peer) {
                metrics::counter!("http_connections_turned_away_total").increment(1);
                // Closed at once: with the request unread, the client gets a reset.
                drop(stream);
                continue;
            }
            return (stream, peer);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shield(per_second: f64, burst: u32, hold: Duration) -> Shield {
        let config = HttpConfig {
            anonymous_refusals_per_second: per_second,
            anonymous_refusal_burst: burst,
            refused_client_hold: hold,
            ..HttpConfig::default()
        };
        Shield::new(&config)
    }

    #[test]
    fn an_address_is_held_off_once_its_budget_is_spent_and_others_are_not() {
        let shield = shield(1.0, 3, Duration::from_secs(30));
        let noisy: IpAddr = "203.0.113.7".parse().unwrap();
        let calm: IpAddr = "198.51.100.2".parse().unwrap();
        for _ in 0..3 {
            shield.refused(noisy);
            assert!(shield.held_off(noisy).is_none(), "within the burst");
        }
        shield.refused(noisy);
        let left = shield.held_off(noisy).expect("held off after the burst");
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        assert!(shield.turns_away(SocketAddr::new(noisy, 4000)));
        assert!(shield.held_off(calm).is_none());
        assert!(!shield.turns_away(SocketAddr::new(calm, 4000)));
    }

    #[test]
    fn the_hold_ends() {
        let shield = shield(1.0, 1, Duration::from_millis(20));
        let ip: IpAddr = "203.0.113.8".parse().unwrap();
        shield.refused(ip);
        shield.refused(ip);
        assert!(shield.held_off(ip).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(shield.held_off(ip).is_none());
    }

    #[test]
    fn a_zero_rate_or_hold_turns_the_shield_off() {
        for shield in [shield(0.0, 1, Duration::from_secs(30)), shield(1.0, 1, Duration::ZERO)] {
            let ip: IpAddr = "203.0.113.9".parse().unwrap();
            for _ in 0..10 {
                shield.refused(ip);
            }
            assert!(shield.held_off(ip).is_none());
        }
    }

    #[test]
    fn behind_a_proxy_connections_are_never_turned_away() {
        let config = HttpConfig {
            anonymous_refusals_per_second: 1.0,
            anonymous_refusal_burst: 1,
            trust_forwarded_for: true,
            ..HttpConfig::default()
        };
        let shield = Shield::new(&config);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        shield.refused(proxy);
        shield.refused(proxy);
        assert!(shield.held_off(proxy).is_some());
        assert!(!shield.turns_away(SocketAddr::new(proxy, 4000)));
    }

    #[test]
    fn the_held_map_stays_bounded() {
        let shield = shield(1.0, 1, Duration::from_secs(30));
        let held = |shield: &Shield| shield.held.lock().unwrap().len();
        for i in 0..(MAX_HELD as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            shield.refused(ip);
            shield.refused(ip);
        }
        assert!(held(&shield) <= MAX_HELD);
        assert!(held(&shield) > MAX_HELD / 2);
    }
}
