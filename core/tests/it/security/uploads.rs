//! Anonymous form posts: no large body is read before someone signed in, and refused posts
//! leave no rows in the append-only audit log.

use std::time::Duration;

use monti::domain::Role;

use crate::common::{Backend, TestServer, Visitor, account};

const PASSWORD: &str = "correct horse battery staple";
const CHUNK: usize = 64 * 1024;

/// Posts `chunks` chunks of 64 KiB, chunked and slowly, over a raw connection: the status the
/// server answered with (0 if it closed without one), and how many chunks it had taken by then.
async fn post_slowly(server: &TestServer, path: &str, chunks: usize, headers: &[(&str, String)]) -> (u16, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary=xyz\r\n\
         Transfer-Encoding: chunked\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'a', CHUNK));
    chunk.extend_from_slice(b"\r\n");
    let (mut reader, mut writer) = stream.into_split();
    let answer = tokio::spawn(async move {
        let mut first = [0u8; 12];
        match reader.read_exact(&mut first).await {
            Ok(_) => String::from_utf8_lossy(&first[9..12]).parse::<u16>().unwrap_or(0),
            Err(_) => 0,
        }
    });
    let mut taken = 0;
    while taken < chunks && !answer.is_finished() {
        if writer.write_all(&chunk).await.is_err() {
            break;
        }
        taken += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    (status, taken)
}

/// 30 MiB to the plugin upload form without a session: refused after the first few KiB, not
/// read whole (as it was, for every anonymous connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_uploads_are_refused_before_their_body_is_read() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let chunks = 30 * 1024 * 1024 / CHUNK;
    let (status, taken) = post_slowly(&server, "/admin/plugins", chunks, &[]).await;
    assert!(status == 413 || status == 0, "status {status}");
    assert!(
        taken < chunks / 4,
        "the server took {taken} of {chunks} chunks before answering"
    );
    // A declared length over the limit is refused before anything is read.
    let declared = server
        .client
        .post(server.url("/admin/plugins"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    // Signed in, without the right to install plugins: no plugin-sized body either.
    server.tenant("acme", Role::TenantAdmin).await;
    account(
        &server.store,
        "vic@acme.example",
        PASSWORD,
        Some(("acme", Role::Viewer)),
        false,
    )
    .await;
    let mut viewer = Visitor::new(&server);
    assert_eq!(viewer.sign_in("vic@acme.example", PASSWORD).await.status, 303);
    let cookie = viewer.cookie_header();
    let (status, taken) = post_slowly(&server, "/admin/plugins", chunks, &[("cookie", cookie)]).await;
    assert!(status == 413 || status == 0, "status {status}");
    assert!(
        taken < chunks / 4,
        "the server took {taken} of {chunks} chunks from a viewer"
    );
    server.stop().await;
}

async fn csrf_rows(server: &TestServer) -> i64 {
    let raw = server.raw_db().await;
    let pool = raw.sqlite();
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'security.csrf_rejected'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The `http_csrf_rejected_total` counter for anonymous visitors (0 before the first).
async fn anonymous_csrf_refusals(server: &TestServer) -> u64 {
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("http_csrf_rejected_total{signed_in=\"false\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Anonymous posts without a CSRF token are refused and counted, not audited; a signed-in
/// person's refused posts are audited, at most about once a second (after a burst of five).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_anonymous_posts_write_no_audit_rows() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    // The metrics recorder is shared by every server in this process: count the difference.
    let counted_before = anonymous_csrf_refusals(&server).await;
    for _ in 0..200 {
        let refused = server
            .client
            .post(server.url("/login"))
            .form(&[("email", "a@b.c"), ("password", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    assert_eq!(csrf_rows(&server).await, 0, "anonymous noise is not audited");
    assert!(
        anonymous_csrf_refusals(&server).await >= counted_before + 200,
        "counted instead"
    );

    server.tenant("acme", Role::TenantAdmin).await;
    account(
        &server.store,
        "ada@acme.example",
        PASSWORD,
        Some(("acme", Role::TenantAdmin)),
        false,
    )
    .await;
    let mut ada = Visitor::new(&server);
    assert_eq!(ada.sign_in("ada@acme.example", PASSWORD).await.status, 303);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let refused = ada
            .post_raw("/account/locale", &[("locale".into(), "de".into())], &[])
            .await;
        assert_eq!(refused.status, 403);
    }
    let audited = csrf_rows(&server).await;
    // A burst of five, then one a second.
    let most = 5 + started.elapsed().as_secs() as i64 + 1;
    assert!(
        (1..=most).contains(&audited),
        "{audited} rows for 50 refused posts of one person"
    );
    assert!(audited < 50, "not one row per refused post");
    server.stop().await;
}
