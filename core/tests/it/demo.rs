//! The demo's own housekeeping: a day with rushes, and no callers left waiting for ever by an
//! earlier run.

use serde_json::json;

use crate::common::{self, TestServer};
use monti::domain::Role;
use monti::store::{SystemActor, tenants};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_an_earlier_demo_run_left_waiting_leave_their_queues() {
    let s = TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    s.post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .expect(201);
    let joined = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    let joins: Vec<serde_json::Value> = (0..2)
        .map(|n| {
            json!({ "id": format!("j{n}"), "source": "simulator", "at": joined, "type": "caller_join",
                    "queue": "Sales", "call": format!("old-{n}") })
        })
        .collect();
    s.post("/api/v1/events", &admin, json!(joins)).await.expect(200);
    let scope = tenants::system_scope(&s.store, "acme", SystemActor::Demo)
        .await
        .unwrap();
    let ended = monti::demo::end_earlier_run(&s.app.live, &scope).await.unwrap();
    assert_eq!(ended, 2);
    let snapshot = s.get("/api/v1/live/snapshot", &admin).await.body;
    let sales = &snapshot["queues"][0];
    assert_eq!(sales["waiting"], json!(0), "{sales}");
    assert!(sales["longest_wait_s"].is_null(), "{sales}");
    // Nothing more to end the next time.
    assert_eq!(monti::demo::end_earlier_run(&s.app.live, &scope).await.unwrap(), 0);
    s.stop().await;
}

#[test]
fn the_demo_day_has_rushes_on_queues_it_has() {
    use monti::sim::{Scenario, ScenarioConfig};
    let floor = |agents| {
        Scenario::generate(&ScenarioConfig {
            agents,
            ..Default::default()
        })
    };
    let big = floor(2000);
    let surges = monti::demo::surges(&big);
    assert_eq!(surges.len(), 3, "{surges:?}");
    assert!(surges.iter().all(|s| big.queues.iter().any(|q| q.name == s.queue)));
    // The first rush is on at the board's first minutes (10:00 on the demo's clock).
    assert!(
        surges[0].from_s < 10 * 3600 && surges[0].to_s > 10 * 3600 + 10 * 60,
        "{surges:?}"
    );
    // A team's phones go down in the first minutes too: the team of the first queue.
    let outages = monti::demo::outages(&big);
    assert_eq!(outages.len(), 1);
    assert_eq!(outages[0].team, big.teams[big.queues[0].team]);
    assert!(outages[0].from_s > 10 * 3600 && outages[0].to_s < 10 * 3600 + 20 * 60);
    // A floor with one queue still gets its first rush, on that queue.
    let small = floor(20);
    let surges = monti::demo::surges(&small);
    assert_eq!(surges.len(), 1);
    assert_eq!(surges[0].queue, small.queues[0].name);
}
