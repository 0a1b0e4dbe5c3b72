//! Call recordings: a source the operator allows, a call's file found by the pattern, playback
//! links that answer byte ranges without a session, every play audited, and bad input refused.

use super::*;

use chrono::{Duration, Utc};
use monti::config::Config;

/// The directory the operator allows tenant acme in these tests.
pub(super) fn recordings_dir(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("recordings")
}

/// Acme may keep recordings in its directory, globex in one of its own.
pub(super) fn allow_recordings(config: &mut Config) {
    let dir = recordings_dir(config);
    let theirs = config.data_dir.join("globex-recordings");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    config.recordings.directories = [("acme".to_owned(), vec![dir]), ("globex".to_owned(), vec![theirs])].into();
}

/// `seconds` of a 440 Hz tone as 8 kHz, 16-bit mono PCM WAV, the format Asterisk records in.
pub(super) fn wav(seconds: f64) -> Vec<u8> {
    let samples = (8000.0 * seconds) as u32;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v = ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A queue call `call` answered by Ana in Sales an hour ago, and the path (inside the allowed
/// directory) where the pattern `acme/{year}/{month}/{day}/{call}.wav` finds its file.
async fn answered_call(s: &TestServer, admin: &str, call: &str) -> std::path::PathBuf {
    let base = Utc::now() - Duration::hours(1);
    send(
        s,
        admin,
        base,
        &[
            (0, json!({ "type": "caller_join", "queue": "Sales", "call": call })),
            (
                5,
                json!({ "type": "caller_answer", "queue": "Sales", "call": call, "agent": "1001", "wait_s": 5.0 }),
            ),
            (
                65,
                json!({ "type": "call_end", "call": call, "agent": "1001", "queue": "Sales", "talk_s": 60.0, "hold_s": 0.0 }),
            ),
        ],
    )
    .await;
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let day = base.with_timezone(&berlin).format("%Y/%m/%d").to_string();
    recordings_dir(&s.config)
        .join("acme")
        .join(day)
        .join(format!("{call}.wav"))
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A request without any credential, as a browser's `<audio>` element makes it.
async fn fetch(s: &TestServer, url: &str, range: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().get(s.url(url));
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

both_backends!(a_recording_plays_in_ranges_and_every_play_is_audited, allow_recordings);
async fn a_recording_plays_in_ranges_and_every_play_is_audited(s: &TestServer) {
    let (admin, north, _, _, _, _) = floor(s).await;
    let file = answered_call(s, &admin, "1733300000.42").await;
    let audio = wav(3.0);
    write(&file, &audio);
    let dir = recordings_dir(&s.config);

    // No source yet: the call has no recording to offer.
    s.get("/api/v1/calls/1733300000.42/recording", &admin)
        .await
        .expect_problem(404);
    let source = s
        .put(
            "/api/v1/recordings/source",
            &admin,
            json!({ "kind": "directory", "location": dir.display().to_string(), "pattern": "acme/{year}/{month}/{day}/{call}.wav" }),
        )
        .await;
    source.expect(200);
    assert_eq!(source.body["kind"], "directory", "{}", source.text);

    let found = s.get("/api/v1/calls/1733300000.42/recording", &admin).await;
    found.expect(200);
    assert_eq!(found.body["format"], "WAV", "{}", found.text);
    assert_eq!(found.body["bytes"], audio.len(), "{}", found.text);
    assert_eq!(found.body["playable"], true, "{}", found.text);
    assert_eq!(found.body["truncated"], false, "{}", found.text);
    assert!(
        (found.body["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.01,
        "{}",
        found.text
    );
    let url = found.body["url"].as_str().unwrap().to_owned();

    // Giving out the link is the play in the audit log.
    let count_plays = || async {
        common::audit_actions(s, Some("acme"))
            .await
            .iter()
            .filter(|(action, _)| action == "recordings.play")
            .count()
    };
    assert_eq!(count_plays().await, 1, "the link given out is audited");

    // The whole file, a first range, a later range, the last bytes: no session needed.
    let (status, headers, body) = fetch(s, &url, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, audio);
    assert_eq!(header(&headers, "content-type"), "audio/wav");
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    assert_eq!(header(&headers, "content-length"), audio.len().to_string());
    let (status, headers, body) = fetch(s, &url, Some("bytes=0-99")).await;
    assert_eq!(status, 206);
    assert_eq!(header(&headers, "content-range"), format!("bytes 0-99/{}", audio.len()));
    assert_eq!(header(&headers, "content-length"), "100");
    assert_eq!(body, audio[..100]);
    let middle = audio.len() / 2;
    let (status, headers, body) = fetch(s, &url, Some(&format!("bytes={middle}-"))).await;
    assert_eq!(status, 206);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes {middle}-{}/{}", audio.len() - 1, audio.len())
    );
    assert_eq!(body, audio[middle..]);
    let (status, _, body) = fetch(s, &url, Some("bytes=-10")).await;
    assert_eq!((status, body.as_slice()), (206, &audio[audio.len() - 10..]));
    assert_eq!(
        count_plays().await,
        1,
        "reading with the link (seeking) is not another play"
    );

    // Ranges that are malformed or beyond the file.
    for bad in [
        format!("bytes={}-", audio.len()),
        "bytes=abc".to_owned(),
        "bytes=5-1".to_owned(),
        "bytes=0-1,5-9".to_owned(),
        "items=0-1".to_owned(),
    ] {
        let (status, headers, _) = fetch(s, &url, Some(&bad)).await;
        assert_eq!(status, 416, "{bad}");
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes */{}", audio.len()),
            "{bad}"
        );
    }

    // A link altered, cut short, or expired.
    let altered = format!("{}x", url);
    assert_eq!(fetch(s, &altered, None).await.0, 404);
    assert_eq!(fetch(s, "/recordings/v1:abc:def", None).await.0, 404);
    let expired = s.store.secrets.seal(
        &json!({ "tenant": "t", "call": "c", "file": "f.wav", "actor": "a", "expires": 1, "content_type": "audio/wav" })
            .to_string(),
        "recording-link/v1",
    );
    assert_eq!(fetch(s, &format!("/recordings/{expired}"), None).await.0, 410);

    // A supervisor of Ana's team may play it; one of another team cannot see the call at all.
    let south = s
        .post("/api/v1/teams", &admin, json!({ "name": "East" }))
        .await
        .expect(201)
        .id();
    for (team, status) in [(&north, 200), (&south, 404)] {
        let token = s
            .post(
                "/api/v1/tokens",
                &admin,
                json!({ "name": format!("sup-{team}"), "role": "supervisor", "team_scope": [team] }),
            )
            .await
            .expect(201)
            .body["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = s.get("/api/v1/calls/1733300000.42/recording", &token).await;
        assert_eq!(reply.status.as_u16(), status, "{team}: {}", reply.text);
    }
    // The file gone since the link was made.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(fetch(s, &url, None).await.0, 404);
    let missing = s.get("/api/v1/calls/1733300000.42/recording", &admin).await;
    missing.expect_problem(404);
    assert!(missing.text.contains("1733300000.42.wav"), "{}", missing.text);

    // Another tenant's admin cannot reach the call, nor its recording, nor acme's directory.
    let other = s.tenant("globex", Role::TenantAdmin).await;
    s.get("/api/v1/calls/1733300000.42/recording", &other)
        .await
        .expect_problem(404);
    for location in [dir.clone(), dir.join("acme"), s.config.data_dir.clone()] {
        std::fs::create_dir_all(&location).unwrap();
        let refused = s
            .put(
                "/api/v1/recordings/source",
                &other,
                json!({ "kind": "directory", "location": location.display().to_string(), "pattern": "acme/{year}/{month}/{day}/{call}.wav" }),
            )
            .await;
        refused.expect_problem(422);
        assert!(
            refused.pointers().iter().any(|p| p.contains("location")),
            "{}",
            refused.text
        );
    }
    // Agents do not see the history.
    let agent = s.tenant("acme", Role::Agent).await;
    s.get("/api/v1/calls/1733300000.42/recording", &agent)
        .await
        .expect_problem(403);
    s.get("/api/v1/recordings/source", &agent).await.expect_problem(403);

    // Source changes are audited.
    let audit = common::audit_actions(s, Some("acme")).await;
    assert!(audit.iter().any(|(a, _)| a == "recordings.source.update"), "{audit:?}");
    s.delete("/api/v1/recordings/source", &admin).await.expect(204);
    s.get("/api/v1/recordings/source", &admin).await.expect_problem(404);
    assert_eq!(fetch(s, &url, None).await.0, 404, "no source, no playback");
}

both_backends!(files_that_are_not_whole_recordings_are_explained, allow_recordings);
async fn files_that_are_not_whole_recordings_are_explained(s: &TestServer) {
    let (admin, ..) = floor(s).await;
    let dir = recordings_dir(&s.config);
    s.put(
        "/api/v1/recordings/source",
        &admin,
        json!({ "kind": "directory", "location": dir.display().to_string(), "pattern": "acme/{year}/{month}/{day}/{call}.wav" }),
    )
    .await
    .expect(200);

    // Cut off: the header promises 10 s, the file holds 2.
    let mut cut = wav(10.0);
    cut.truncate(44 + 2 * 16_000);
    write(&answered_call(s, &admin, "cut.1").await, &cut);
    let found = s.get("/api/v1/calls/cut.1/recording", &admin).await;
    found.expect(200);
    assert_eq!(found.body["truncated"], true, "{}", found.text);
    assert!(found.body["note"].is_string(), "{}", found.text);

    // Not audio at all.
    write(&answered_call(s, &admin, "text.1").await, b"this is not a recording\n");
    let refused = s.get("/api/v1/calls/text.1/recording", &admin).await;
    refused.expect_problem(422);
    assert!(refused.text.contains("not"), "{}", refused.text);

    // Empty.
    write(&answered_call(s, &admin, "empty.1").await, b"");
    s.get("/api/v1/calls/empty.1/recording", &admin)
        .await
        .expect_problem(422);

    // A call id from the PBX that would leave the directory.
    answered_call(s, &admin, "a..b").await;
    s.get("/api/v1/calls/a..b/recording", &admin).await.expect_problem(422);
}

both_backends!(recording_sources_refuse_what_they_cannot_use, allow_recordings);
async fn recording_sources_refuse_what_they_cannot_use(s: &TestServer) {
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    let dir = recordings_dir(&s.config).display().to_string();
    let refused = |body: Value, field: &'static str| {
        let admin = admin.clone();
        async move {
            let reply = s.put("/api/v1/recordings/source", &admin, body.clone()).await;
            reply.expect_problem(422);
            assert!(
                reply.pointers().iter().any(|p| p.contains(field)),
                "{body}: {}",
                reply.text
            );
        }
    };
    refused(
        json!({ "kind": "directory", "location": dir, "pattern": "../{call}.wav" }),
        "pattern",
    )
    .await;
    refused(
        json!({ "kind": "directory", "location": dir, "pattern": "a/../../{call}.wav" }),
        "pattern",
    )
    .await;
    refused(
        json!({ "kind": "directory", "location": dir, "pattern": "/etc/{call}" }),
        "pattern",
    )
    .await;
    refused(
        json!({ "kind": "directory", "location": dir, "pattern": "{nope}.wav" }),
        "pattern",
    )
    .await;
    refused(
        json!({ "kind": "directory", "location": "/etc", "pattern": "{call}.wav" }),
        "location",
    )
    .await;
    refused(
        json!({ "kind": "directory", "location": format!("{dir}/../"), "pattern": "{call}.wav" }),
        "location",
    )
    .await;
    refused(
        json!({ "kind": "ftp", "location": dir, "pattern": "{call}.wav" }),
        "kind",
    )
    .await;
    refused(
        json!({ "kind": "s3", "location": "Bad_Bucket", "pattern": "{call}.wav", "access_key_id": "k", "secret_key": "s" }),
        "location",
    )
    .await;
    refused(
        json!({ "kind": "s3", "location": "calls", "pattern": "{call}.wav", "access_key_id": "k" }),
        "secret_key",
    )
    .await;
    refused(
        json!({ "kind": "s3", "location": "calls", "pattern": "{call}.wav", "region": "x@10.0.0.5:8443/#",
                "access_key_id": "k", "secret_key": "s" }),
        "region",
    )
    .await;
    // A path that does not exist says no more than one that is not allowed.
    let missing = s
        .put(
            "/api/v1/recordings/source",
            &admin,
            json!({ "kind": "directory", "location": "/root/.ssh", "pattern": "{call}.wav" }),
        )
        .await;
    let absent = s
        .put(
            "/api/v1/recordings/source",
            &admin,
            json!({ "kind": "directory", "location": "/no/such/place", "pattern": "{call}.wav" }),
        )
        .await;
    assert_eq!(missing.body["errors"], absent.body["errors"]);
    // Unknown fields are named too.
    let reply = s
        .put(
            "/api/v1/recordings/source",
            &admin,
            json!({ "kind": "directory", "location": dir, "pattern": "{call}.wav", "colour": "red" }),
        )
        .await;
    reply.expect_problem(422);
    // Nothing was kept.
    s.get("/api/v1/recordings/source", &admin).await.expect_problem(404);
}

/// A private S3 endpoint is refused unless the operator allows private networks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_on_a_private_address_is_refused() {
    let Some(s) = TestServer::start(common::Backend::Sqlite).await else {
        return;
    };
    let admin = s.tenant("acme", Role::TenantAdmin).await;
    for endpoint in ["http://127.0.0.1:9000", "https://10.1.2.3", "https://169.254.169.254"] {
        let reply = s
            .put(
                "/api/v1/recordings/source",
                &admin,
                json!({ "kind": "s3", "location": "calls", "pattern": "{call}.wav", "endpoint": endpoint,
                        "access_key_id": "k", "secret_key": "s" }),
            )
            .await;
        reply.expect_problem(422);
        assert!(
            reply.pointers().iter().any(|p| p.contains("endpoint")),
            "{}",
            reply.text
        );
    }
    s.stop().await;
}

/// An S3-compatible server of our own for the test (moto's, from PyPI), stopped when dropped.
struct S3Server {
    child: std::process::Child,
    url: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    async fn start() -> Option<S3Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                common::service_missing("moto_server (pip install 'moto[server]')", &e.to_string());
                return None;
            }
        };
        let server = S3Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if reqwest::get(&server.url).await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        common::service_missing("moto_server", "it did not answer within 10 s");
        None
    }
}

fn private_buckets(config: &mut Config) {
    config.auth.tenant_providers_private = true;
}

both_backends!(a_recording_in_an_s3_bucket_plays_in_ranges, private_buckets);
async fn a_recording_in_an_s3_bucket_plays_in_ranges(s: &TestServer) {
    let Some(bucket) = S3Server::start().await else {
        return;
    };
    let (admin, ..) = floor(s).await;
    let http = reqwest::Client::new();
    http.put(format!("{}/calls", bucket.url))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let audio = wav(2.0);
    let started = Utc::now() - Duration::hours(1);
    answered_call(s, &admin, "1733300001.7").await;
    // A FreePBX-style name: the queue, then parts the pattern does not know, then the id.
    let key = format!("monti/q-Sales-{}-1733300001.7.wav", started.format("%Y%m%d"));
    http.put(format!("{}/calls/{key}", bucket.url))
        .body(audio.clone())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    let set = s
        .put(
            "/api/v1/recordings/source",
            &admin,
            json!({ "kind": "s3", "location": "calls", "endpoint": bucket.url, "region": "eu-central-1",
                    "access_key_id": "monti", "secret_key": "secret", "prefix": "monti",
                    "pattern": "q-{queue}-*-{call}.wav" }),
        )
        .await;
    set.expect(200);
    assert_eq!(set.body["has_secret_key"], true, "{}", set.text);
    assert!(
        !set.text.contains("secret\""),
        "the secret key is never shown: {}",
        set.text
    );

    let found = s.get("/api/v1/calls/1733300001.7/recording", &admin).await;
    found.expect(200);
    assert_eq!(found.body["file"], key.trim_start_matches("monti/"), "{}", found.text);
    assert_eq!(found.body["bytes"], audio.len(), "{}", found.text);
    let url = found.body["url"].as_str().unwrap().to_owned();
    let (status, headers, body) = fetch(s, &url, Some("bytes=1000-1999")).await;
    assert_eq!(status, 206);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 1000-1999/{}", audio.len())
    );
    assert_eq!(body, audio[1000..2000]);
    let (status, _, body) = fetch(s, &url, None).await;
    assert_eq!((status, body.len()), (200, audio.len()));

    // Keeping the secret key: a change without one leaves it in place.
    let kept = s
        .put(
            "/api/v1/recordings/source",
            &admin,
            json!({ "kind": "s3", "location": "calls", "endpoint": bucket.url, "access_key_id": "monti",
                    "prefix": "monti", "pattern": "q-{queue}-*-{call}.wav" }),
        )
        .await;
    kept.expect(200);
    assert_eq!(kept.body["has_secret_key"], true, "{}", kept.text);

    // A bucket that does not answer is a 503, not a missing recording.
    drop(bucket);
    let down = s.get("/api/v1/calls/1733300001.7/recording", &admin).await;
    down.expect_problem(503);
}
