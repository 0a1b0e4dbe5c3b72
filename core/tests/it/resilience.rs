//! The server survives its PostgreSQL going away and coming back, without a restart.

use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use monti::domain::Role;
use sqlx::Connection;

async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(common::PG_ADMIN_URL)
        .await
        .expect("admin connection")
}

async fn cut_off(db: &str, allow: bool) {
    let mut conn = admin().await;
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS {allow}"))
        .execute(&mut conn)
        .await
        .unwrap();
    if !allow {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_clearly_and_recovers() {
    let Some(server) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let db = server.pg_database.clone().unwrap();
    let token = server.tenant("acme", Role::TenantAdmin).await;
    server.get("/api/v1/agents", &token).await.expect(200);

    cut_off(&db, false).await;
    let started = Instant::now();
    let reply = server.get("/api/v1/agents", &token).await;
    reply.expect_problem(503);
    assert!(reply.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fails within the acquire timeout"
    );
    let ready = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = server.client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process itself is fine");

    cut_off(&db, true).await;
    let mut recovered = false;
    for _ in 0..50 {
        if server.get("/api/v1/agents", &token).await.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the service recovers once the database is back");
    server
        .post("/api/v1/teams", &token, serde_json::json!({ "name": "After outage" }))
        .await
        .expect(201);
    let ready = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.stop().await;
}
