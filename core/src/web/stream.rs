//! Server-sent event streams of the live floor: the plumbing shared by supervisor boards and
//! `GET /api/v1/live/stream`. A stream first sends what its subscriber missed (after its
//! `Last-Event-ID`), then every delta as it is published. One that falls behind gets a
//! `resync` event and ends, instead of holding anyone up.
//!
//! Every stream watches the credential it was opened with ([`Watch`]) and ends within seconds
//! of it being revoked or signed out, or of the role or scopes it was opened with changing: at
//! once when this instance makes the change, within `auth.stream_recheck_interval` (plus the
//! token cache's `auth.token_cache_ttl`) when another instance or the CLI does.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::problem::ApiError;
use crate::auth::{self, AuthError, Principal};
use crate::live::hub::{Delta, Subscription};
use crate::store::TenantScope;
use crate::store::credentials::{self, Change};

/// What a stream was opened with.
#[derive(Clone)]
pub enum Credential {
    /// `Authorization: Bearer`: an API token or a JWT access token.
    Bearer(String),
    /// A browser session, by the request's cookies.
    Session {
        cookies: HeaderMap,
        session_id: String,
        user_id: String,
    },
}

impl Credential {
    /// The bearer credential of an API request (which its `Caller` has verified).
    pub fn bearer(headers: &HeaderMap) -> Result<Self, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        Ok(Credential::Bearer(auth::bearer(value)?.to_owned()))
    }

    /// A browser session's credential: only its cookies are kept.
    pub fn session(headers: &HeaderMap, session_id: &str, user_id: &str) -> Self {
        let mut cookies = HeaderMap::new();
        for value in headers.get_all(header::COOKIE) {
            cookies.append(header::COOKIE, value.clone());
        }
        Credential::Session {
            cookies,
            session_id: session_id.to_owned(),
            user_id: user_id.to_owned(),
        }
    }
}

/// A stream's credential and what it granted when the stream opened.
#[derive(Clone)]
pub struct Watch {
    pub app: AppState,
    pub credential: Credential,
    pub scope: TenantScope,
}

/// What a check of the credential found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// It still grants what the stream was opened with.
    Holds,
    /// Revoked, expired, signed out, or it grants something else now.
    Ended,
    /// The database or the token's issuer could not answer; asked again at the next check.
    Unknown,
}

impl Watch {
    pub fn new(app: &AppState, credential: Credential, scope: &TenantScope) -> Self {
        Watch {
            app: app.clone(),
            credential,
            scope: scope.clone(),
        }
    }

    /// Whether a change concerns this stream's credential.
    fn concerns(&self, change: &Change) -> bool {
        match (change, &self.credential) {
            (Change::Tenant(id), _) => id == self.scope.tenant_id(),
            (Change::Token(id), Credential::Bearer(_)) => {
                self.scope.actor().strip_prefix("token:") == Some(id.as_str())
            }
            (Change::Session(id), Credential::Session { session_id, .. }) => id == session_id,
            (Change::Account(id), Credential::Session { user_id, .. }) => id == user_id,
            _ => false,
        }
    }

    /// Checks the credential; `fresh` asks the database even if the token cache holds it.
    async fn check(&self, fresh: bool) -> Check {
        let app = &self.app;
        let principal = match &self.credential {
            Credential::Bearer(token) => {
                let result = if app.jwt.is_enabled() && auth::jwt::looks_like_jwt(token) {
                    app.jwt.authenticate(&app.store, token).await
                } else if fresh {
                    auth::authenticate_fresh(&app.store, &app.tokens, token).await
                } else {
                    auth::authenticate(&app.store, &app.tokens, token).await
                };
                match result {
                    Ok(principal) => Some(principal),
                    Err(AuthError::Store(_) | AuthError::IssuerUnavailable) => return Check::Unknown,
                    Err(_) => None,
                }
            }
            Credential::Session { cookies, .. } => match super::session::principal_now(app, cookies).await {
                Ok(principal) => principal,
                Err(_) => return Check::Unknown,
            },
        };
        match principal {
            Some(Principal::Tenant(scope)) if scope == self.scope => Check::Holds,
            _ => Check::Ended,
        }
    }

    /// Whether the credential still grants what the stream was opened with, asking the database
    /// (for a ticket about to be used). Unknown counts as no.
    pub async fn holds_now(&self) -> bool {
        self.check(true).await == Check::Holds
    }

    /// Resolves when the credential no longer grants what the stream was opened with.
    pub fn ended(self) -> Ended {
        // Listening starts now, not when the stream first waits: a change made meanwhile counts.
        let changes = credentials::subscribe();
        Box::pin(async move {
            let mut changes = Some(changes);
            // Also for changes this instance does not hear of (another instance, the CLI). Never
            // zero, which the timer refuses, whatever a hand-built configuration says.
            let every = self.app.config.auth.stream_recheck_interval;
            let every = every.max(Duration::from_millis(100));
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let heard = async {
                    match changes.as_mut() {
                        Some(rx) => Some(rx.recv().await),
                        None => std::future::pending().await,
                    }
                };
                let heard = tokio::select! {
                    _ = ticker.tick() => None,
                    heard = heard => heard,
                };
                let fresh = match heard {
                    None => false,
                    Some(Ok(change)) if self.concerns(&change) => true,
                    Some(Ok(_)) => continue,
                    // Missed some: one of them may have been about us.
                    Some(Err(RecvError::Lagged(_))) => true,
                    Some(Err(RecvError::Closed)) => {
                        changes = None;
                        continue;
                    }
                };
                if self.check(fresh).await == Check::Ended {
                    metrics::counter!("live_streams_ended_total", "reason" => "credential").increment(1);
                    return;
                }
            }
        })
    }
}

/// Resolves when a stream must end because of its credential.
pub type Ended = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The `Last-Event-ID` a reconnecting `EventSource` sends, else `fallback` (the page's position).
pub fn resume_from(headers: &HeaderMap, fallback: Option<&str>) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| fallback.map(str::to_owned))
        .filter(|v| !v.is_empty())
}

fn resync() -> Event {
    Event::default().event("resync").data("resync")
}

/// How a stream begins.
pub enum Start {
    /// With the next delta (or the backlog).
    Continue,
    /// With this event (a snapshot for a machine stream that starts over).
    With(Event),
    /// With `resync`, and ends there: the subscriber missed something it cannot be sent.
    Resync,
}

struct State<F> {
    receiver: tokio::sync::broadcast::Receiver<Arc<Delta>>,
    backlog: VecDeque<Arc<Delta>>,
    start: Option<Start>,
    done: bool,
    render: F,
    kind: &'static str,
    /// When the stream ends so the client reconnects (and is authenticated again).
    deadline: tokio::time::Instant,
    /// Other events sent along (a board's alert banner).
    extra: Option<Extra>,
    /// Ends the stream when its credential no longer holds.
    ended: Ended,
}

/// Events a stream sends besides its deltas.
pub type Extra = std::pin::Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// What a stream waited for.
enum Next {
    Delta(Result<Result<Arc<Delta>, RecvError>, tokio::time::error::Elapsed>),
    Extra(Option<Event>),
    Ended,
}

/// A stream ends after this long; the client reconnects with `Last-Event-ID` and misses
/// nothing (and is authenticated again).
const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The SSE response for a subscription. `render` turns a delta into this subscriber's event,
/// or `None` when nothing in it concerns them; the stream ends with `watch`'s credential.
pub fn respond<F>(subscription: Subscription, start: Start, kind: &'static str, watch: Watch, render: F) -> Response
where
    F: FnMut(&Delta) -> Option<Event> + Send + 'static,
{
    respond_with(subscription, start, kind, watch, render, None)
}

/// As [`respond`], with `extra` events sent along as they come.
pub fn respond_with<F>(
    subscription: Subscription,
    start: Start,
    kind: &'static str,
    watch: Watch,
    render: F,
    extra: Option<Extra>,
) -> Response
where
    F: FnMut(&Delta) -> Option<Event> + Send + 'static,
{
    metrics::gauge!("live_streams", "kind" => kind).increment(1.0);
    let state = Guard(State {
        receiver: subscription.receiver,
        backlog: subscription.backlog.into(),
        start: Some(start),
        done: false,
        render,
        kind,
        deadline: tokio::time::Instant::now() + MAX_AGE,
        extra,
        ended: watch.ended(),
    });
    let stream = futures_util::stream::unfold(state, next);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn next<F>(mut guard: Guard<F>) -> Option<(Result<Event, Infallible>, Guard<F>)>
where
    F: FnMut(&Delta) -> Option<Event> + Send + 'static,
{
    let st = &mut guard.0;
    if st.done {
        return None;
    }
    match st.start.take() {
        Some(Start::Resync) => {
            st.done = true;
            return Some((Ok(resync()), guard));
        }
        Some(Start::With(event)) => return Some((Ok(event), guard)),
        Some(Start::Continue) | None => {}
    }
    loop {
        let delta = match st.backlog.pop_front() {
            Some(d) => d,
            None => {
                let waited = wait(st).await;
                let received = match waited {
                    Next::Extra(Some(event)) => return Some((Ok(event), guard)),
                    Next::Extra(None) => {
                        st.extra = None;
                        continue;
                    }
                    Next::Delta(delta) => delta,
                    Next::Ended => return None,
                };
                match received {
                    Err(_) => return None,
                    Ok(Ok(d)) => d,
                    Ok(Err(RecvError::Lagged(missed))) => {
                        metrics::counter!("live_streams_lagged_total", "kind" => st.kind).increment(1);
                        tracing::debug!(missed, "a live stream fell behind and is told to resync");
                        st.done = true;
                        return Some((Ok(resync()), guard));
                    }
                    Ok(Err(RecvError::Closed)) => return None,
                }
            }
        };
        if delta.resync {
            st.done = true;
            return Some((Ok(resync()), guard));
        }
        if let Some(event) = (st.render)(&delta) {
            return Some((Ok(event.id(delta.id())), guard));
        }
    }
}

/// The next delta (within the stream's deadline), or an extra event, whichever comes first.
async fn wait<F>(st: &mut State<F>) -> Next {
    let State {
        receiver,
        extra,
        deadline,
        ended,
        ..
    } = st;
    let more = async {
        match extra.as_mut() {
            Some(extra) => futures_util::StreamExt::next(extra).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        delta = tokio::time::timeout_at(*deadline, receiver.recv()) => Next::Delta(delta),
        event = more => Next::Extra(event),
        () = ended => Next::Ended,
    }
}

/// Counts the stream as closed when it is dropped (client gone, or finished).
struct Guard<F>(State<F>);

impl<F> Drop for Guard<F> {
    fn drop(&mut self) {
        metrics::gauge!("live_streams", "kind" => self.0.kind).decrement(1.0);
    }
}
