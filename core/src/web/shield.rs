//! The budget of refusals an anonymous client gets: an address whose anonymous requests keep
//! being refused (unknown hooks, forms without a CSRF token, uploads before signing in, API
//! calls without a valid credential) is held off for a while.
//!
//! A refused request is cheap, but each still costs a connection, a parse and an answer; a
//! flood of them from one address takes the CPU other tenants need. Once an address has spent
//! its budget, requests it still sends on open connections get a bare 429 until the hold ends,
//! and it gets no new connection: on Linux the listening socket's own filter drops its
//! connection attempts in the kernel (IPv4, up to [`MAX_FILTERED`] addresses), so a flood costs
//! neither an accept nor a reset and the attacker's connect waits for its retransmissions;
//! otherwise its connections are closed as soon as they are accepted.
//!
//! Behind a proxy (`http.trust_forwarded_for`) every connection comes from the proxy, so the
//! connection-level check is off and only requests are held off, by forwarded address. Many
//! addresses at once (a botnet) are the job of the proxy or network in front of Monti.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// Woken when an address is newly held off, so the listener's filter follows at once.
    newly_held: tokio::sync::Notify,
}

impl Shield {
    pub fn new(config: &HttpConfig) -> Self {
        Self {
            refusals: RateLimiter::new(config.anonymous_refusals_per_second, config.anonymous_refusal_burst),
            hold: config.refused_client_hold,
            by_peer: !config.trust_forwarded_for,
            held: Mutex::new(HashMap::new()),
            newly_held: tokio::sync::Notify::new(),
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
            self.newly_held.notify_one();
            metrics::counter!("http_clients_held_off_total").increment(1);
            tracing::warn!(client = %ip, hold = ?self.hold, "holding off a client whose anonymous requests keep being refused");
        }
    }

    /// Whether a connection from `peer` is closed as soon as it is accepted.
    fn turns_away(&self, peer: SocketAddr) -> bool {
        self.by_peer && self.held_off(peer.ip()).is_some()
    }

    /// The IPv4 addresses held off now (holds that ended are let go), in order, at most
    /// [`MAX_FILTERED`] of them.
    fn held_v4(&self) -> Vec<Ipv4Addr> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, until| *until > now);
        let mut v4: Vec<Ipv4Addr> = held
            .keys()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                // An IPv4 client of a dual-stack listener: its packets are IPv4.
                IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            })
            .take(MAX_FILTERED)
            .collect();
        v4.sort_unstable();
        v4
    }
}

/// How many held-off addresses the listening socket's filter drops itself at most: two
/// instructions each, within the kernel's limit of 4,096. The kernel may take fewer (a filter
/// is charged to `net.core.optmem_max`); the rest are turned away at accept.
pub const MAX_FILTERED: usize = 1_000;

/// Classic BPF, as the kernel runs it on every packet reaching the listening socket: the
/// packet is dropped when it is IPv4 and comes from one of `held`. Offsets are relative to the
/// network header (`SKF_NET_OFF`), since a TCP socket's filter sees the packet from its TCP header.
fn drop_program(held: &[Ipv4Addr]) -> Vec<socket2::SockFilter> {
    use socket2::SockFilter;
    // Instruction classes and modes, as in <linux/bpf_common.h>.
    const LD: u16 = 0x00;
    const ALU: u16 = 0x04;
    const JMP: u16 = 0x05;
    const RET: u16 = 0x06;
    const W: u16 = 0x00;
    const B: u16 = 0x10;
    const ABS: u16 = 0x20;
    const AND: u16 = 0x50;
    const JEQ: u16 = 0x10;
    const K: u16 = 0x00;
    const LD_ABS_B: u16 = LD | B | ABS;
    const LD_ABS_W: u16 = LD | W | ABS;
    const AND_K: u16 = ALU | AND | K;
    const JEQ_K: u16 = JMP | JEQ | K;
    const RET_K: u16 = RET | K;
    const NET: i32 = -0x100000; // SKF_NET_OFF
    const KEEP: u32 = u32::MAX;
    const DROP: u32 = 0;
    let at = |offset: i32| (NET + offset) as u32;
    let mut program = vec![
        // The IP version, in the high nibble of the first byte: anything but IPv4 is kept.
        SockFilter::new(LD_ABS_B, 0, 0, at(0)),
        SockFilter::new(AND_K, 0, 0, 0xf0),
        SockFilter::new(JEQ_K, 1, 0, 0x40),
        SockFilter::new(RET_K, 0, 0, KEEP),
        // The source address (bytes 12–15, loaded in host order).
        SockFilter::new(LD_ABS_W, 0, 0, at(12)),
    ];
    for address in held {
        // A match falls through to the drop; otherwise skip it. Jumps stay short (a jump
        // offset is one byte), however long the list.
        program.push(SockFilter::new(JEQ_K, 0, 1, u32::from(*address)));
        program.push(SockFilter::new(RET_K, 0, 0, DROP));
    }
    program.push(SockFilter::new(RET_K, 0, 0, KEEP));
    program
}

/// Keeps the listening socket's filter in step with the addresses held off, until the
/// listener is gone (`closed`). When the kernel will not take the whole list, it gets as much of
/// it as it takes; the rest are turned away at accept.
async fn keep_filter(socket: socket2::Socket, shield: Arc<Shield>, mut closed: tokio::sync::oneshot::Receiver<()>) {
    // The held-off addresses last asked for, and whether a filter is on the socket.
    let mut asked: Vec<Ipv4Addr> = Vec::new();
    let mut attached = false;
    // Holds end on their own: looked at once a second.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'follow: loop {
        tokio::select! {
            _ = &mut closed => return,
            () = shield.newly_held.notified() => {}
            _ = tick.tick() => {}
        }
        let held = shield.held_v4();
        if held == asked {
            continue;
        }
        let mut list = held.as_slice();
        loop {
            if list.is_empty() {
                if attached && let Err(e) = socket.detach_filter() {
                    // Tried again on the next tick: a stale filter would keep dropping
                    // addresses whose hold has ended.
                    tracing::warn!(error = %e, "cannot remove the held-off clients' filter");
                    continue 'follow;
                }
                attached = false;
                break;
            }
            match socket.attach_filter(&drop_program(list)) {
                Ok(()) => {
                    attached = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, addresses = list.len(), "the kernel will not take the held-off clients' filter; trying a shorter one");
                    list = &list[..list.len() / 2];
                }
            }
        }
        asked = held;
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

/// The server's listener: has the kernel drop connection attempts from held-off addresses,
/// and closes those that still arrive as it accepts them.
pub struct ShieldedListener {
    inner: tokio::net::TcpListener,
    shield: Arc<Shield>,
    /// Dropped with the listener, which ends the task keeping its filter.
    _filter_kept: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ShieldedListener {
    /// Call from within the runtime: the socket's filter is kept by a task of its own.
    pub fn new(inner: tokio::net::TcpListener, shield: Arc<Shield>) -> Self {
        let mut filter_kept = None;
        if shield.by_peer && shield.enabled() {
            use std::os::fd::AsFd;
            // The same socket through a second descriptor: the filter is the socket's.
            match inner.as_fd().try_clone_to_owned() {
                Ok(fd) => {
                    let (kept, closed) = tokio::sync::oneshot::channel();
                    tokio::spawn(keep_filter(socket2::Socket::from(fd), shield.clone(), closed));
                    filter_kept = Some(kept);
                }
                Err(e) => tracing::warn!(error = %e, "cannot filter held-off clients in the kernel"),
            }
        }
        Self {
            inner,
            shield,
            _filter_kept: filter_kept,
        }
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
    fn the_kernel_filter_lists_the_ipv4_addresses_held_off_until_their_hold_ends() {
        let shield = shield(1.0, 1, Duration::from_millis(100));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        for ip in [v4, v6] {
            shield.refused(ip);
            shield.refused(ip);
        }
        assert!(shield.held_off(v6).is_some());
        assert_eq!(shield.held_v4(), vec!["203.0.113.7".parse::<Ipv4Addr>().unwrap()]);
        // Two instructions per address between the version check and the final keep.
        assert_eq!(drop_program(&shield.held_v4()).len(), 5 + 2 + 1);
        std::thread::sleep(Duration::from_millis(150));
        assert!(shield.held_v4().is_empty(), "let go when the hold ends");
    }

    /// The kernel checks a filter when it is attached: an invalid program is refused (EINVAL).
    /// A long one may be refused for memory (`net.core.optmem_max`), which `keep_filter` meets
    /// by attaching a shorter one.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_takes_the_drop_program() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = socket2::SockRef::from(&listener);
        let few: Vec<Ipv4Addr> = (1..=3).map(|n| Ipv4Addr::new(203, 0, 113, n)).collect();
        socket.attach_filter(&drop_program(&few)).expect("a valid filter");
        let many: Vec<Ipv4Addr> = (0..MAX_FILTERED as u32)
            .map(|n| Ipv4Addr::from(0x0a00_0000 + n))
            .collect();
        match socket.attach_filter(&drop_program(&many)) {
            Ok(()) => {}
            // 12 is ENOMEM.
            Err(e) => assert_eq!(e.raw_os_error(), Some(12), "only memory may refuse it: {e}"),
        }
        socket.detach_filter().expect("removed");
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
