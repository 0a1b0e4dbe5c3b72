//! Plugin packages: what no installation uses is deleted, and a tenant's packages have a quota.

use monti::domain::Role;
use serde_json::Value;

use super::hooks::{hostile_webhook, upload};
use crate::common::{Backend, TestServer};

/// The component with a custom section of `padding` bytes appended: still the same plugin,
/// another package (digest).
fn padded(component: &[u8], padding: usize, tag: u8) -> Vec<u8> {
    let name = b"monti-test-padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend(std::iter::repeat_n(tag, padding));
    let mut out = component.to_vec();
    out.push(0); // custom section
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend(payload);
    out
}

async fn stored_packages(server: &TestServer) -> (i64, i64) {
    let raw = server.raw_db().await;
    let pool = raw.sqlite();
    sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM plugin_packages")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Five upgrades keep one package; removing the plugin leaves none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_and_removals_delete_unused_packages() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    let other = server.tenant("other", Role::TenantAdmin).await;
    let component = hostile_webhook();
    for version in 0..6u8 {
        let answer = upload(&server, &admin, padded(&component, 1000, version)).await;
        let expected = if version == 0 { 201 } else { 200 };
        assert_eq!(answer.status(), expected, "{:?}", answer.text().await);
    }
    let (count, _) = stored_packages(&server).await;
    assert_eq!(count, 1, "only the package in use is kept");
    // Another tenant on the same package keeps it when the first removes its plugin.
    assert_eq!(upload(&server, &other, padded(&component, 1000, 5)).await.status(), 201);
    server
        .delete("/api/v1/plugins/hostile-webhook", &admin)
        .await
        .expect(204);
    assert_eq!(stored_packages(&server).await.0, 1, "still used by the other tenant");
    server
        .delete("/api/v1/plugins/hostile-webhook", &other)
        .await
        .expect(204);
    assert_eq!(stored_packages(&server).await, (0, 0), "nothing left behind");
    server.stop().await;
}

/// A tenant's packages together stay under `plugins.tenant_package_bytes`; an upgrade counts
/// only the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_store_more_plugin_bytes_than_its_quota() {
    let component = hostile_webhook();
    let quota = component.len() as u64 + 64 * 1024;
    let server = TestServer::start_with(Backend::Sqlite, |c| c.plugins.tenant_package_bytes = quota)
        .await
        .unwrap();
    let admin = server.tenant("acme", Role::TenantAdmin).await;
    assert_eq!(upload(&server, &admin, padded(&component, 1000, 1)).await.status(), 201);
    assert_eq!(
        upload(&server, &admin, padded(&component, 2000, 2)).await.status(),
        200,
        "an upgrade replaces the old version in the count"
    );
    let refused = upload(&server, &admin, padded(&component, 128 * 1024, 3)).await;
    assert_eq!(refused.status(), 413);
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("per tenant"), "{problem}");
    server.stop().await;
}
