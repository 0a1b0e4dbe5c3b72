//! Server-sent event streams of the live floor: the plumbing shared by supervisor boards and
//! `GET /api/v1/live/stream`. A stream first sends what its subscriber missed (after its
//! `Last-Event-ID`), then every delta as it is published. One that falls behind gets a
//! `resync` event and ends, instead of holding anyone up.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use crate::live::hub::{Delta, Subscription};

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
}

/// Events a stream sends besides its deltas.
pub type Extra = std::pin::Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// What a stream waited for.
enum Next {
    Delta(Result<Result<Arc<Delta>, RecvError>, tokio::time::error::Elapsed>),
    Extra(Option<Event>),
}

/// A stream ends after this long; the client reconnects with `Last-Event-ID` and misses
/// nothing, and a session or token revoked meanwhile stops it.
const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The SSE response for a subscription. `render` turns a delta into this subscriber's event,
/// or `None` when nothing in it concerns them.
pub fn respond<F>(subscription: Subscription, start: Start, kind: &'static str, render: F) -> Response
where
    F: FnMut(&Delta) -> Option<Event> + Send + 'static,
{
    respond_with(subscription, start, kind, render, None)
}

/// As [`respond`], with `extra` events sent along as they come.
pub fn respond_with<F>(
    subscription: Subscription,
    start: Start,
    kind: &'static str,
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
    }
}

/// Counts the stream as closed when it is dropped (client gone, or finished).
struct Guard<F>(State<F>);

impl<F> Drop for Guard<F> {
    fn drop(&mut self) {
        metrics::gauge!("live_streams", "kind" => self.0.kind).decrement(1.0);
    }
}
