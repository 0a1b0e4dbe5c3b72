//! The supervisor board in real headless Chromium: an event posted to the ingest API shows on an
//! open board within a second without a reload; a viewer's filters and grouping decide what is
//! pushed to them; rows move between state groups and leave a filtered view; the agent drawer
//! opens; the page works as a plain page too.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{Backend, TestServer, account};
use monti::domain::Role;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(15);

struct Floor {
    admin: String,
    north: String,
    south: String,
    nina: String,
    sven: String,
}

async fn floor(server: &TestServer) -> Floor {
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let north = server
        .post("/api/v1/teams", &admin, json!({ "name": "North" }))
        .await
        .id();
    let south = server
        .post("/api/v1/teams", &admin, json!({ "name": "South" }))
        .await
        .id();
    let queue = server
        .post("/api/v1/queues", &admin, json!({ "name": "Sales" }))
        .await
        .id();
    let nina = server
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Nina North", "team_id": north, "extension": "201" }),
        )
        .await
        .id();
    let sven = server
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Sven South", "team_id": south, "extension": "301" }),
        )
        .await
        .id();
    server
        .put(
            &format!("/api/v1/queues/{queue}/members"),
            &admin,
            json!([{ "agent_id": nina }]),
        )
        .await
        .expect(200);
    Floor {
        admin,
        north,
        south,
        nina,
        sven,
    }
}

async fn post_state(server: &TestServer, token: &str, id: &str, agent: &str, state: &str, reason: Option<&str>) {
    let reply = server
        .post(
            "/api/v1/events",
            token,
            json!([{
                "id": id, "source": "test", "at": chrono::Utc::now().to_rfc3339(),
                "type": "agent_state", "agent": agent, "state": state, "reason": reason,
            }]),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.body["accepted"], json!(1), "{}", reply.body);
}

/// Records every SSE message the page receives (to see what was pushed to it).
const RECORD: &str = "window.__pushed = []; document.body.addEventListener('htmx:sseBeforeMessage', \
    e => window.__pushed.push(e.detail.data)); true";

async fn sign_in(page: &mut common::browser::Page, server: &TestServer, path: &str) {
    page.goto(&server.url(path)).await;
    assert_eq!(page.path().await, "/login", "sign in first");
    page.fill("#email", "sam@example.com").await;
    page.fill("#password", PASSWORD).await;
    page.click("#sign-in").await;
    assert!(
        page.wait_for("location.pathname === '/board'", WAIT).await,
        "back on the board"
    );
}

async fn wait_live(page: &mut common::browser::Page) {
    assert!(
        page.wait_for("document.getElementById('board').dataset.live === 'open'", WAIT)
            .await,
        "the board's stream opens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingested_state_change_reaches_an_open_board_within_a_second() {
    let Some(browser) = Browser::launch().await else { return };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let f = floor(&server).await;
    account(
        &server.store,
        "sam@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    post_state(&server, &f.admin, "e1", "201", "available", None).await;

    let mut page = browser.page().await;
    sign_in(&mut page, &server, "/board?group=state").await;
    let rows = page
        .eval("Array.from(document.querySelectorAll('#board-groups li.agent')).map(r => r.querySelector('.agent-name').textContent)")
        .await;
    assert_eq!(
        rows,
        json!(["Sven South", "Nina North"]),
        "every agent, server-rendered, Logged out before Available"
    );
    assert_eq!(
        page.eval(&format!(
            "document.querySelector('#g-state-available li[data-agent=\"{}\"]') !== null",
            f.nina
        ))
        .await,
        json!(true),
        "Nina starts in the Available group"
    );
    wait_live(&mut page).await;

    // The change is posted and the clock runs until the row shows it.
    let started = Instant::now();
    post_state(&server, &f.admin, "e2", "201", "paused", Some("lunch")).await;
    let moved = page
        .wait_for(
            &format!(
                "(() => {{ const r = document.querySelector('#g-state-paused li[data-agent=\"{}\"]'); \
                 return r !== null && r.querySelector('.agent-reason').textContent === 'lunch'; }})()",
                f.nina
            ),
            Duration::from_secs(5),
        )
        .await;
    let took = started.elapsed();
    assert!(moved, "the row moved to the Paused group with its reason");
    assert!(
        took < Duration::from_secs(1),
        "shown after {took:?}, not within a second"
    );
    assert_eq!(
        page.eval(&format!(
            "document.querySelectorAll('li[data-agent=\"{}\"]').length",
            f.nina
        ))
        .await,
        json!(1),
        "moved, not copied"
    );
    assert_eq!(
        page.eval("document.querySelector('[data-group-key=paused] .group-size').textContent")
            .await,
        json!("1"),
        "the group count follows"
    );
    // The queue tile counts its agents by state, and is pushed too.
    assert!(
        page.wait_for(
            "document.querySelector('.tile .counts .st-paused') !== null",
            Duration::from_secs(2)
        )
        .await,
        "the Sales tile shows one agent paused"
    );

    // The drawer shows the agent's day.
    page.click(&format!("li[data-agent=\"{}\"] .agent-name", f.nina)).await;
    assert!(
        page.wait_for(
            "document.querySelector('#drawer.open .agent-detail h2')?.textContent === 'Nina North'",
            WAIT
        )
        .await,
        "the drawer opens"
    );
    assert_eq!(
        page.eval("document.querySelectorAll('#drawer svg.timeline rect').length >= 2")
            .await,
        json!(true),
        "a timeline with the day's states"
    );
    if let Ok(dir) = std::env::var("MONTI_SCREENSHOTS") {
        page.screenshot(&Path::new(&dir).join("board-drawer.png")).await;
    }
    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_decide_what_is_pushed_to_each_viewer() {
    let Some(browser) = Browser::launch().await else { return };
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let f = floor(&server).await;
    account(
        &server.store,
        "sam@example.com",
        PASSWORD,
        Some(("acme", Role::Supervisor)),
        false,
    )
    .await;
    post_state(&server, &f.admin, "e1", "201", "available", None).await;
    post_state(&server, &f.admin, "e2", "301", "available", None).await;

    // One viewer watches team South only, another only available agents.
    let mut south = browser.page().await;
    sign_in(&mut south, &server, &format!("/board?team={}", f.south)).await;
    let shown = south
        .eval("Array.from(document.querySelectorAll('#board-groups li.agent')).map(r => r.dataset.agent)")
        .await;
    assert_eq!(shown, json!([f.sven]));
    wait_live(&mut south).await;
    south.eval(RECORD).await;

    let mut available = browser.new_page().await;
    available.goto(&server.url("/board?state=available&group=team")).await;
    wait_live(&mut available).await;
    available.eval(RECORD).await;
    assert_eq!(
        available
            .eval("document.querySelectorAll('#board-groups li.agent').length")
            .await,
        json!(2)
    );

    // Nina (North) goes paused, then Sven (South) rings.
    post_state(&server, &f.admin, "e3", "201", "paused", Some("break")).await;
    post_state(&server, &f.admin, "e4", "301", "ringing", None).await;
    assert!(
        south
            .wait_for(
                &format!("document.querySelector('li[data-agent=\"{}\"]')?.dataset.state === 'ringing'", f.sven),
                WAIT
            )
            .await,
        "the South viewer sees Sven ringing: {}",
        south.eval("JSON.stringify([window.__pushed, document.getElementById('board').dataset.live, document.getElementById('board-groups').innerHTML])").await
    );
    let pushed: Value = south.eval("window.__pushed.join('\\n')").await;
    let pushed = pushed.as_str().unwrap_or_default().to_owned();
    assert!(pushed.contains(&f.sven), "Sven's row was pushed");
    assert!(
        !pushed.contains(&f.nina),
        "nothing about Nina (team North) was pushed to a South-only viewer: {pushed}"
    );

    // The available-only viewer loses both rows: each was pushed as a removal.
    assert!(
        available
            .wait_for("document.querySelectorAll('#board-groups li.agent').length === 0", WAIT)
            .await,
        "agents that are no longer available leave the filtered board"
    );
    let pushed: Value = available.eval("window.__pushed.join('\\n')").await;
    let pushed = pushed.as_str().unwrap_or_default();
    assert!(
        pushed.contains(&format!("data-remove=\"{}\"", f.nina)) && !pushed.contains("agent-name"),
        "removals only, no rows outside the filter: {pushed}"
    );
    assert_eq!(
        available.eval("document.getElementById('board').dataset.live").await,
        json!("open")
    );
    let _ = f.north;
    browser.close().await;
    server.stop().await;
}

/// Acceptance: `monti demo` shows 2,000 simulated agents moving on the board in Chromium within
/// 10 s of start (the clock starts when the process is spawned; the build is not counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_two_thousand_agents_moving_within_ten_seconds() {
    let Some(browser) = Browser::launch().await else { return };
    // Timed from the demo's start: nothing else of the suite runs meanwhile.
    let _alone = common::alone().await;
    let started = Instant::now();
    let demo = common::Demo::start(&[]).await;
    let (port, password) = (demo.port, demo.admin_password.clone());
    let mut page = browser.page().await;
    page.goto(&format!("http://127.0.0.1:{port}/board")).await;
    page.fill("#email", "admin@demo.example").await;
    page.fill("#password", &password).await;
    page.click("#sign-in").await;
    assert!(page.wait_for("location.pathname === '/board'", WAIT).await);
    page.eval(RECORD).await;
    let moving = page
        .wait_for(
            "document.querySelectorAll('#board-groups li.agent').length === 2000 && \
             document.getElementById('board').dataset.live === 'open' && \
             window.__pushed.some(m => m.includes('data-agent='))",
            WAIT,
        )
        .await;
    let took = started.elapsed();
    assert!(moving, "2,000 agents on the board and rows pushed to it");
    let states: Value = page
        .eval("new Set(Array.from(document.querySelectorAll('#board-groups li.agent')).map(r => r.dataset.state)).size")
        .await;
    assert!(
        states.as_u64().unwrap_or(0) >= 4,
        "a living floor, not one state: {states}"
    );
    assert!(took < Duration::from_secs(10), "moving after {took:?}, not within 10 s");
    println!("the demo's board was moving {took:?} after start");
    drop(demo);
    browser.close().await;
}

/// Every figure of every queue tile fits inside its tile, on the board and the wallboard, from a
/// laptop to a 4K TV; screenshots of each are left in the target directory to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_tiles_show_every_figure_in_full_at_every_width() {
    let Some(browser) = Browser::launch().await else { return };
    let demo = common::Demo::start(&["--agents", "200"].map(std::ffi::OsStr::new)).await;
    let (port, password) = (demo.port, demo.admin_password.clone());
    let mut page = browser.page().await;
    page.goto(&format!("http://127.0.0.1:{port}/board")).await;
    page.fill("#email", "admin@demo.example").await;
    page.fill("#password", &password).await;
    page.click("#sign-in").await;
    assert!(page.wait_for("location.pathname === '/board'", WAIT).await);
    // Whatever of a tile's figures pokes out of it: a term or value wider than the tile's
    // inside, or cut short with an ellipsis.
    const OVERFLOWING: &str = "(() => { const out = []; \
        for (const tile of document.querySelectorAll('article.tile')) { \
          const box = tile.getBoundingClientRect(); \
          for (const el of tile.querySelectorAll('.tile-figures dt, .tile-figures dd')) { \
            const r = el.getBoundingClientRect(); \
            if (r.right > box.right - 1 || r.left < box.left || el.scrollWidth > el.clientWidth + 1) \
              out.push(tile.querySelector('h3').textContent + ': ' + el.textContent); } } \
        return out; })()";
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("board-tiles");
    std::fs::create_dir_all(&shots).unwrap();
    let mut found = Vec::new();
    for mode in ["", "?mode=wall"] {
        page.goto(&format!("http://127.0.0.1:{port}/board{mode}")).await;
        assert!(
            page.wait_for("document.querySelectorAll('article.tile dd').length > 0", WAIT)
                .await,
            "queue tiles with figures"
        );
        for (width, height) in [(1280, 800), (1600, 900), (1920, 1080), (3840, 2160)] {
            page.resize(width, height).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let name = if mode.is_empty() { "board" } else { "wall" };
            page.screenshot(&shots.join(format!("{name}-{width}.png"))).await;
            let overflowing = page.eval(OVERFLOWING).await;
            for figure in overflowing.as_array().cloned().unwrap_or_default() {
                found.push(format!("{name} at {width} px: {}", figure.as_str().unwrap_or_default()));
            }
        }
    }
    assert!(found.is_empty(), "figures cut off:\n{}", found.join("\n"));
    browser.close().await;
}
