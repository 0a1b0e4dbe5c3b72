//! The board's rows, tiles and groups as HTML. Written out directly rather than through Tera:
//! a 2,000-agent board is 2,000 rows, and the same function renders a row for the page and for
//! the live stream, so the bytes a viewer gets pushed are the bytes the page would show.

use std::fmt::Write as _;

use crate::domain::events::AgentState;
use crate::i18n::Locale;
use crate::kpi;
use crate::live::hub::QueueDelta;
use crate::live::{AgentLive, StateCounts};

/// Appends `text` with HTML's special characters escaped (safe in text and quoted attributes).
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Words the board needs in one language.
#[derive(Debug, Clone)]
pub struct Labels {
    pub states: [String; AgentState::ALL.len()],
    pub waiting: String,
    pub longest_wait: String,
    pub service_level: String,
    pub asa: String,
    pub aht: String,
    pub abandoned: String,
    pub offered: String,
    pub none: String,
}

impl Labels {
    pub fn new(locale: Locale) -> Self {
        Labels {
            states: AgentState::ALL.map(|s| locale.text(&format!("board.states.{}", s.as_str()))),
            waiting: locale.text("board.waiting"),
            longest_wait: locale.text("board.longest_wait"),
            service_level: locale.text("board.service_level"),
            asa: locale.text("board.asa"),
            aht: locale.text("board.aht"),
            abandoned: locale.text("board.abandoned"),
            offered: locale.text("board.offered"),
            none: locale.text("board.no_group"),
        }
    }

    pub fn state(&self, state: AgentState) -> &str {
        &self.states[state.index()]
    }
}

/// `m:ss` up to an hour, then `h:mm:ss`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 3600 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

/// The band an agent's time in state falls into (`""`, `warn` or `alert`).
pub fn band(bands: &std::collections::BTreeMap<String, [u32; 2]>, state: AgentState, seconds: i64) -> &'static str {
    match bands.get(state.as_str()) {
        Some([_, alert]) if seconds >= i64::from(*alert) => "alert",
        Some([warn, _]) if seconds >= i64::from(*warn) => "warn",
        _ => "",
    }
}

/// Where an agent belongs, for the browser to place a pushed row: dense group indexes.
pub struct RowGroups<'a> {
    pub team: Option<u32>,
    pub location: Option<u32>,
    pub queues: &'a [u32],
}

/// One agent's row. `band` is the time-in-state band at `now_ms` (pushed rows leave it to the
/// browser, which recomputes it every second).
pub fn agent_row(out: &mut String, labels: &Labels, agent: &AgentLive, groups: RowGroups<'_>, now_ms: i64, band: &str) {
    let state = agent.state.as_str();
    out.push_str("<li class=\"agent st-");
    out.push_str(state);
    if !band.is_empty() {
        out.push_str(" band-");
        out.push_str(band);
    }
    out.push_str("\" data-agent=\"");
    escape_into(out, &agent.id);
    out.push_str("\" data-name=\"");
    escape_into(out, &agent.name.to_lowercase());
    let _ = write!(out, "\" data-state=\"{state}\" data-since=\"{}\"", agent.since_ms);
    out.push_str(" data-team=\"");
    if let Some(t) = groups.team {
        let _ = write!(out, "{t}");
    }
    out.push_str("\" data-location=\"");
    if let Some(l) = groups.location {
        let _ = write!(out, "{l}");
    }
    out.push_str("\" data-queues=\"");
    for (i, q) in groups.queues.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{q}");
    }
    out.push_str("\"><a class=\"agent-name\" href=\"/board/agents/");
    escape_into(out, &agent.id);
    out.push_str("\" hx-get=\"/board/agents/");
    escape_into(out, &agent.id);
    out.push_str("\" hx-target=\"#drawer\" hx-swap=\"innerHTML\">");
    escape_into(out, &agent.name);
    out.push_str("</a><span class=\"agent-state\">");
    escape_into(out, labels.state(agent.state));
    out.push_str("</span><span class=\"agent-reason\">");
    if let Some(reason) = &agent.reason {
        escape_into(out, reason);
    }
    out.push_str("</span><time class=\"agent-tis\">");
    out.push_str(&duration((now_ms - agent.since_ms) / 1000));
    out.push_str("</time></li>");
}

/// A marker telling the browser to take an agent's row away (it left the viewer's filter).
pub fn removal(out: &mut String, agent_id: &str) {
    out.push_str("<i data-remove=\"");
    escape_into(out, agent_id);
    out.push_str("\"></i>");
}

/// A fraction as the board shows it: `91%`, or `–` when there is none.
pub fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| duration(v.round() as i64))
}

/// A queue's tile: callers waiting, the longest wait, today's KPIs, and (`with_agents`) its
/// agents by state — left out for viewers limited to some teams or locations, since a queue's
/// agents may belong to others.
pub fn queue_tile(out: &mut String, labels: &Labels, q: &QueueDelta, now_ms: i64, with_agents: bool) {
    let today = &q.today;
    let sl = kpi::service_level(today, q.settings.service_level);
    let target = f64::from(q.target_pct) / 100.0;
    let sl_class = match sl {
        Some(v) if v + 1e-9 >= target => "ok",
        Some(_) => "bad",
        None => "",
    };
    let _ = write!(
        out,
        "<article class=\"tile\" id=\"tile-{}\" hx-swap-oob=\"true\" data-queue=\"{}\"><h3>",
        q.slot, q.slot
    );
    escape_into(out, &q.name);
    out.push_str("</h3><dl class=\"tile-figures\">");
    let waiting_class = if q.waiting > 0 { " class=\"hot\"" } else { "" };
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd{waiting_class}>{}</dd></div>",
        escape(&labels.waiting),
        q.waiting
    );
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd><span class=\"wait\"",
        escape(&labels.longest_wait)
    );
    match q.oldest_join_ms {
        Some(joined) => {
            let _ = write!(
                out,
                " data-since=\"{joined}\">{}</span></dd></div>",
                duration((now_ms - joined) / 1000)
            );
        }
        None => out.push_str(">–</span></dd></div>"),
    }
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd class=\"sl {sl_class}\">{} <small>/ {}%</small></dd></div>",
        escape(&labels.service_level),
        percent(sl),
        q.target_pct
    );
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd>{}</dd></div><div><dt>{}</dt><dd>{}</dd></div>",
        escape(&labels.asa),
        seconds(kpi::asa(today)),
        escape(&labels.aht),
        seconds(kpi::aht(today))
    );
    let _ = write!(
        out,
        "<div><dt>{}</dt><dd>{}</dd></div><div><dt>{}</dt><dd>{}</dd></div>",
        escape(&labels.abandoned),
        percent(kpi::abandon_rate(today, q.settings.abandon_rate_counts_short)),
        escape(&labels.offered),
        today.offered
    );
    out.push_str("</dl>");
    if with_agents {
        state_counts(out, labels, &q.agents);
    }
    out.push_str("</article>");
}

/// Per-state counts as small badges (states with nobody in them left out).
pub fn state_counts(out: &mut String, labels: &Labels, counts: &StateCounts) {
    out.push_str("<ul class=\"counts\">");
    for state in AgentState::ALL {
        let n = counts[state.index()];
        if n == 0 {
            continue;
        }
        let _ = write!(
            out,
            "<li class=\"st-{}\" title=\"{}\"><b>{n}</b> {}</li>",
            state.as_str(),
            escape(labels.state(state)),
            escape(labels.state(state))
        );
    }
    out.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_html_specials() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn durations_and_bands() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(61), "1:01");
        assert_eq!(duration(3725), "1:02:05");
        assert_eq!(duration(-5), "0:00");
        let bands = [("paused".to_owned(), [60, 120])].into_iter().collect();
        assert_eq!(band(&bands, AgentState::Paused, 59), "");
        assert_eq!(band(&bands, AgentState::Paused, 60), "warn");
        assert_eq!(band(&bands, AgentState::Paused, 500), "alert");
        assert_eq!(band(&bands, AgentState::Available, 5000), "");
    }
}
