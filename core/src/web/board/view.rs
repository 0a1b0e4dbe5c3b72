//! What a supervisor asked to see, as the board's URL holds it: grouping, filters, sort and
//! wallboard mode. Filters name teams, locations and queues by id (stable, so a link can be
//! shared); against a floor they become dense indexes.

use serde::Deserialize;

use crate::domain::events::AgentState;
use crate::live::AgentLive;
use crate::live::registry::Floor;
use crate::store::Visibility;

/// The query string of `/board` (and of its stream, which must filter the same way).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BoardQuery {
    pub group: Option<String>,
    pub team: Option<String>,
    pub location: Option<String>,
    pub queue: Option<String>,
    pub state: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub mode: Option<String>,
    /// Wallboard: seconds between the queue and agent views (0 or absent: no rotation).
    pub rotate: Option<u32>,
    /// The stream resumes after this delta (the page's position when it was rendered).
    pub after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Team,
    Location,
    Queue,
    State,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Team => "team",
            GroupBy::Location => "location",
            GroupBy::Queue => "queue",
            GroupBy::State => "state",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    State,
    /// Longest in their state first.
    Time,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::State => "state",
            Sort::Time => "time",
        }
    }
}

/// Which agents a viewer sees: their scope, then their filters.
#[derive(Debug, Clone)]
pub struct Filter {
    visibility: Visibility,
    /// Dense indexes; `Some(None)` when the filter names something that does not exist (it
    /// then admits nobody, rather than everybody).
    team: Option<Option<u32>>,
    location: Option<Option<u32>>,
    queue: Option<Option<u32>>,
    pub state: Option<AgentState>,
    search: Option<String>,
}

#[derive(Debug, Clone)]
pub struct View {
    pub group: GroupBy,
    pub sort: Sort,
    pub filter: Filter,
    pub wall: bool,
    pub rotate: Option<u32>,
    /// The filters as given (ids), for the form and the stream URL.
    pub query: BoardQuery,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl View {
    pub fn parse(query: &BoardQuery, floor: &Floor, visibility: &Visibility) -> View {
        let group = match non_empty(&query.group) {
            Some("location") => GroupBy::Location,
            Some("queue") => GroupBy::Queue,
            Some("state") => GroupBy::State,
            _ => GroupBy::Team,
        };
        let sort = match non_empty(&query.sort) {
            Some("state") => Sort::State,
            Some("time") => Sort::Time,
            _ => Sort::Name,
        };
        let position =
            |ids: &[String], wanted: Option<&str>| wanted.map(|w| ids.iter().position(|id| id == w).map(|i| i as u32));
        let queue_ids: Vec<String> = floor.queues.iter().map(|q| q.id.clone()).collect();
        let filter = Filter {
            visibility: visibility.clone(),
            team: position(&floor.teams, non_empty(&query.team)),
            location: position(&floor.locations, non_empty(&query.location)),
            queue: position(&queue_ids, non_empty(&query.queue)),
            state: non_empty(&query.state).and_then(|s| AgentState::ALL.into_iter().find(|a| a.as_str() == s)),
            search: non_empty(&query.q).map(str::to_lowercase),
        };
        let wall = non_empty(&query.mode) == Some("wall");
        View {
            group,
            sort,
            filter,
            wall,
            rotate: query.rotate.filter(|r| wall && *r > 0).map(|r| r.clamp(5, 3600)),
            query: query.clone(),
        }
    }

    /// The view as a query string (without the stream position), for links and the stream.
    pub fn query_string(&self) -> String {
        let q = &self.query;
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        pairs.append_pair("group", self.group.as_str());
        pairs.append_pair("sort", self.sort.as_str());
        for (key, value) in [
            ("team", &q.team),
            ("location", &q.location),
            ("queue", &q.queue),
            ("state", &q.state),
            ("q", &q.q),
        ] {
            if let Some(v) = non_empty(value) {
                pairs.append_pair(key, v);
            }
        }
        if self.wall {
            pairs.append_pair("mode", "wall");
            if let Some(r) = self.rotate {
                pairs.append_pair("rotate", &r.to_string());
            }
        }
        pairs.finish()
    }
}

impl Filter {
    /// Whether the viewer may and wants to see this agent, whatever its state.
    pub fn admits_agent(&self, agent: &AgentLive, team_id: Option<&str>, location_id: Option<&str>) -> bool {
        if !self.visibility.admits(team_id, location_id) {
            return false;
        }
        let member = &agent.member;
        if let Some(team) = self.team
            && (team.is_none() || member.team != team)
        {
            return false;
        }
        if let Some(location) = self.location
            && (location.is_none() || member.location != location)
        {
            return false;
        }
        if let Some(queue) = self.queue
            && !queue.is_some_and(|q| member.queues.contains(&q))
        {
            return false;
        }
        if let Some(search) = &self.search
            && !agent.name.to_lowercase().contains(search.as_str())
        {
            return false;
        }
        true
    }

    /// Whether the viewer sees only some teams or locations.
    pub fn scoped(&self) -> bool {
        self.visibility.is_limited()
    }

    /// Whether a team or location is within the viewer's scope.
    pub fn visible_group(&self, dimension: crate::store::Dimension, id: &str) -> bool {
        self.visibility.includes(dimension, id)
    }

    pub fn admits_state(&self, state: AgentState) -> bool {
        self.state.is_none_or(|s| s == state)
    }

    /// Whether a queue's tile is shown.
    pub fn admits_queue(&self, slot: u32) -> bool {
        self.queue.is_none_or(|q| q == Some(slot))
    }
}
