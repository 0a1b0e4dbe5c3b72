//! Files to and from Asterisk: CDR and queue_log imports, the configuration export, key
//! rotation on PostgreSQL.

use super::*;

#[test]
fn importing_cdrs_counts_what_the_file_holds_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        common::monti_cli(
            &data,
            &["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]
        )
        .0
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdr/cdr.csv");
    let file = file.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(&data, &["import", "cdr", file, "--tenant", "acme", "--timezone", "UTC"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("218 lines: 218 records added, 0 already there, 0 refused"),
        "{out}"
    );
    for line in ["     133 ANSWERED", "      83 NO ANSWER", "       2 BUSY"] {
        assert!(out.contains(line), "{line} in {out}");
    }
    // Again: nothing new.
    let (ok, out, _) = common::monti_cli(&data, &["import", "cdr", file, "--tenant", "acme", "--timezone", "UTC"]);
    assert!(ok);
    assert!(out.contains("218 lines: 0 records added, 218 already there"), "{out}");
    // The same CDRs written with other quoting (numbers quoted, empty fields bare) are the same
    // records: a CDR is identified by its fields, not by its line's text.
    let requoted: Vec<String> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            fields
                .iter()
                .map(|f| match *f {
                    "\"\"" => String::new(),
                    number if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                        format!("\"{number}\"")
                    }
                    other => other.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_ne!(requoted.join("\n"), std::fs::read_to_string(file).unwrap().trim_end());
    let requoted_file = dir.path().join("requoted.csv");
    std::fs::write(&requoted_file, requoted.join("\n")).unwrap();
    let requoted_file = requoted_file.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(
        &data,
        &["import", "cdr", requoted_file, "--tenant", "acme", "--timezone", "UTC"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("218 lines: 0 records added, 218 already there"), "{out}");

    // Broken lines are reported with their numbers; the good ones are imported once.
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<&str> = text.lines().take(3).collect();
    lines.insert(1, "\"\",\"only\",\"three\"");
    lines.insert(3, "\"\",\"791\",\"715\",\"hq\",\"\",\"x\",\"y\",\"Dial\",\"\",\"yesterday\",\"\",\"2017-06-20 09:49:32\",10,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1\",\"\"");
    lines.push("\"unterminated");
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, lines.join("\n")).unwrap();
    let other = common::monti_cli(
        &data,
        &["admin", "tenant", "create", "--slug", "beta", "--name", "Beta"],
    );
    assert!(other.0);
    let broken = broken.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(
        &data,
        &["import", "cdr", broken, "--tenant", "beta", "--timezone", "UTC"],
    );
    assert!(!ok, "a partial import says so");
    assert!(
        out.contains("6 lines: 3 records added, 0 already there, 3 refused"),
        "{out}"
    );
    assert!(err.contains("line 2: 3 columns"), "{err}");
    assert!(
        err.contains("line 4: start `yesterday` is not YYYY-MM-DD HH:MM:SS"),
        "{err}"
    );
    assert!(err.contains("line 6: field 1 has no closing quote"), "{err}");
    let (_, out, _) = common::monti_cli(
        &data,
        &["import", "cdr", broken, "--tenant", "beta", "--timezone", "UTC"],
    );
    assert!(out.contains("0 records added, 3 already there"), "{out}");
}

#[test]
fn a_hand_made_queue_log_gives_hand_computed_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(
        common::monti_cli(
            &data,
            &["admin", "tenant", "create", "--slug", "acme", "--name", "Acme"]
        )
        .0
    );
    // Four callers in `sales`: answered after 10 s (talk 100 s), answered after 30 s (talk
    // 200 s), abandoned after 5 s, timed out after 60 s. One caller in `support`, answered at
    // once. An agent logs in and pauses. A line of garbage.
    let log = "\
1700000000|NONE|NONE|NONE|QUEUESTART|
1700000001|MANAGER|sales|PJSIP/2001|ADDMEMBER|
1700000010|c1|sales|NONE|ENTERQUEUE||1001|1
1700000020|c1|sales|PJSIP/2001|CONNECT|10|c1.5|2
1700000120|c1|sales|PJSIP/2001|COMPLETECALLER|10|100|1
1700000200|c2|sales|NONE|ENTERQUEUE||1002|1
1700000230|c2|sales|PJSIP/2002|CONNECT|30|c2.5|3
1700000430|c2|sales|PJSIP/2002|COMPLETEAGENT|30|200|1
1700000300|c3|sales|NONE|ENTERQUEUE||1003|2
1700000305|c3|sales|NONE|ABANDON|2|2|5
this is not a queue_log line
1700000400|c4|sales|NONE|ENTERQUEUE||1004|1
1700000460|c4|sales|NONE|EXITWITHTIMEOUT|1|1|60
1700000500|c5|support|NONE|ENTERQUEUE||1005|1
1700000500|c5|support|PJSIP/2001|CONNECT|0|c5.5|1
1700000560|c5|support|PJSIP/2001|COMPLETECALLER|0|60|1
1700000600|MANAGER|sales|PJSIP/2001|PAUSE|lunch
";
    let file = dir.path().join("queue_log");
    std::fs::write(&file, log).unwrap();
    let file = file.to_str().unwrap();
    let (ok, out, err) = common::monti_cli(&data, &["import", "queue-log", file, "--tenant", "acme"]);
    assert!(!ok, "one line was refused");
    assert!(
        err.contains("line 11: 1 fields; a queue_log line has at least 5"),
        "{err}"
    );
    // 16 good lines: QUEUESTART says nothing; 5 joins, 3 answers (each with its call start),
    // 3 ends, 2 leaves, a login and a pause: 18 events.
    assert!(
        out.contains("17 lines: 18 events added, 0 already there, 1 refused"),
        "{out}"
    );
    // sales: offered 4, answered 2, abandoned 1; SL(20 s) = answered within 20 s / (answered +
    // abandoned) = 1/3; ASA = (10 + 30) / 2; AHT = (100 + 200) / 2; abandon rate = 1/4.
    let sales = out.lines().find(|l| l.starts_with("sales")).expect(&out);
    let fields: Vec<&str> = sales.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "sales", "4", "2", "1", "33.3", "%", "20.0", "s", "150.0", "s", "25.0", "%"
        ],
        "{out}"
    );
    let support = out.lines().find(|l| l.starts_with("support")).expect(&out);
    let fields: Vec<&str> = support.split_whitespace().collect();
    assert_eq!(
        fields,
        [
            "support", "1", "1", "0", "100.0", "%", "0.0", "s", "60.0", "s", "0.0", "%"
        ]
    );
    // Importing again adds nothing.
    let (_, out, _) = common::monti_cli(&data, &["import", "queue-log", file, "--tenant", "acme"]);
    assert!(out.contains("0 events added, 18 already there"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_telephony_is_exported_as_asterisk_configuration() {
    let server = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    let admin = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let supervisor = server.tenant("acme", monti::domain::Role::Supervisor).await;
    let ana = server
        .post(
            "/api/v1/agents",
            &admin,
            json!({ "name": "Ana", "extension": "1001", "interface": "PJSIP/ana-desk" }),
        )
        .await;
    ana.expect(201);
    let ben = server
        .post("/api/v1/agents", &admin, json!({ "name": "Ben", "extension": "1002" }))
        .await;
    ben.expect(201);
    server
        .post(
            "/api/v1/endpoints",
            &admin,
            json!({ "name": "ana-desk", "password": "a-long-sip-password", "codecs": ["opus"] }),
        )
        .await
        .expect(201);
    let queue = server
        .post("/api/v1/queues", &admin, json!({ "name": "sales", "wrap_up_s": 15 }))
        .await;
    queue.expect(201);
    let queue_id = queue.body["id"].as_str().unwrap().to_owned();
    server
        .put(
            &format!("/api/v1/queues/{queue_id}/members"),
            &admin,
            json!([{ "agent_id": ana.body["id"], "penalty": 1 }, { "agent_id": ben.body["id"] }]),
        )
        .await
        .expect(200);
    server
        .post(
            "/api/v1/dids",
            &admin,
            json!({ "number": "+4930123456", "description": "Hotline", "route_type": "queue", "route_target": queue_id }),
        )
        .await
        .expect(201);

    let get = |file: &str, token: &str| {
        server
            .client
            .get(server.url(&format!("/api/v1/telephony/asterisk/{file}")))
            .bearer_auth(token)
            .send()
    };
    let pjsip = get("pjsip.conf", &admin).await.unwrap();
    assert_eq!(pjsip.status(), 200);
    assert!(
        pjsip.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("pjsip.conf")
    );
    let pjsip = pjsip.text().await.unwrap();
    assert!(pjsip.contains("[ana-desk]\ntype = endpoint"), "{pjsip}");
    assert!(pjsip.contains("password = a-long-sip-password"), "{pjsip}");
    assert!(pjsip.contains("allow = opus"), "{pjsip}");
    let queues = get("queues.conf", &admin).await.unwrap().text().await.unwrap();
    assert!(
        queues.contains("[sales]\nstrategy = rrmemory\nservicelevel = 20\nwrapuptime = 15"),
        "{queues}"
    );
    assert!(
        queues.contains("member => PJSIP/ana-desk,1,Ana,PJSIP/ana-desk"),
        "{queues}"
    );
    assert!(queues.contains("; Ben has no interface"), "{queues}");
    let dialplan = get("extensions.conf", &admin).await.unwrap().text().await.unwrap();
    assert!(
        dialplan.contains("[monti-acme-dids]\nexten => +4930123456,1,NoOp(Hotline)\n same => n,Queue(sales)"),
        "{dialplan}"
    );
    // Passwords inside: a supervisor may not; unknown files are 404.
    assert_eq!(get("pjsip.conf", &supervisor).await.unwrap().status(), 403);
    assert_eq!(get("sip.conf", &admin).await.unwrap().status(), 404);
    // Every download is audited.
    let audit = server.get("/api/v1/audit?action=telephony.export", &admin).await.body;
    assert!(audit.to_string().contains("telephony.export"), "{audit}");
    server.stop().await;
}

/// The same stores on PostgreSQL: imported CDRs and queue_log events, capability approvals and
/// re-sealing secrets under a new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_approvals_and_key_rotation_work_on_postgres() {
    let Some(server) = common::TestServer::start(common::Backend::Postgres).await else {
        return;
    };
    let _ = server.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let scope = monti::store::tenants::system_scope(&server.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdr/cdr.csv")).unwrap();
    let (report, counts) = monti::import::cdr::import(&server.store, &scope, &text, chrono_tz::UTC, false)
        .await
        .unwrap();
    assert_eq!((report.added, report.refused.len()), (218, 0));
    assert_eq!(
        counts,
        [
            ("ANSWERED".to_owned(), 133),
            ("NO ANSWER".to_owned(), 83),
            ("BUSY".to_owned(), 2)
        ]
    );
    let (again, _) = monti::import::cdr::import(&server.store, &scope, &text, chrono_tz::UTC, false)
        .await
        .unwrap();
    assert_eq!((again.added, again.already), (0, 218));
    let stored = monti::store::call_records::dispositions(&server.store, &scope)
        .await
        .unwrap();
    assert_eq!(stored[0], ("ANSWERED".to_owned(), 133));
    let log = "1700000010|c1|sales|NONE|ENTERQUEUE||1001|1\n1700000020|c1|sales|PJSIP/2001|CONNECT|10|c1.5|2\n";
    let (report, figures) = monti::import::queue_log::import(&server.store, &scope, log, &Default::default(), false)
        .await
        .unwrap();
    assert_eq!(report.added, 3);
    assert_eq!(figures["sales"].counters.answered, 1);

    // Approvals: nothing approved, then everything the package asks for.
    let wasm = monti_plugin_test::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/asterisk"))
        .expect("the connector builds");
    let bytes = std::fs::read(wasm).unwrap();
    let engine = monti::plugins::PluginEngine::new(4).unwrap();
    let plugin = engine.validate(&bytes).unwrap();
    monti::store::plugins::store_package(&server.store, &plugin.digest, &plugin.manifest, &bytes)
        .await
        .unwrap();
    let installed = monti::store::plugins::install(&server.store, &scope, &plugin.digest, "{}")
        .await
        .unwrap();
    assert!(
        !monti::store::plugins::unapproved(&server.store, &installed)
            .await
            .unwrap()
            .is_empty()
    );
    let approved = monti::store::plugins::approve(&server.store, &scope, &installed.id)
        .await
        .unwrap();
    assert!(
        monti::store::plugins::unapproved(&server.store, &approved)
            .await
            .unwrap()
            .is_empty()
    );
    let tenants = monti::store::plugins::tenants_with_enabled(&server.store)
        .await
        .unwrap();
    assert!(tenants.is_empty(), "not enabled yet");

    // A secret sealed, re-sealed under a new key, still readable with it.
    monti::store::plugins::set_secret(&server.store, &scope, &installed.id, "password", "pw-1")
        .await
        .unwrap();
    let (new_key, _) = monti::secrets::SecretBox::generate();
    let resealed = monti::store::rekey::reseal_all(&server.store, &new_key).await.unwrap();
    assert!(resealed.contains(&("plugin secrets", 1)), "{resealed:?}");
    let reopened = server.store.with_secrets(new_key);
    let secrets = monti::store::plugins::secrets(&reopened, scope.tenant(), &installed.id)
        .await
        .unwrap();
    assert_eq!(secrets.get("password").map(String::as_str), Some("pw-1"));
    server.stop().await;
}

/// CDRs imported while records were keyed by their line's text get keys from their fields when
/// the server starts: importing the same lines again adds nothing, and two identical legs stay
/// two records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdrs_imported_before_are_identified_by_their_fields_too() {
    use monti::store::call_records;
    let s = common::TestServer::start(common::Backend::Sqlite).await.unwrap();
    s.tenant("acme", monti::domain::Role::TenantAdmin).await;
    let scope = monti::store::tenants::system_scope(&s.store, "acme", monti::store::SystemActor::Operator)
        .await
        .unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdr/cdr.csv");
    let line = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let record = monti::import::cdr::parse(&line, 0, chrono_tz::UTC).unwrap();
    // Two identical legs as the earlier import stored them: a digest of the text, counted.
    let legacy: Vec<call_records::CallRecord> = (0..2)
        .map(|n| call_records::CallRecord {
            key: format!("5f2d0c7e9a41b3d86e0f1a2b3c4d5e6f-{n}"),
            ..record.clone()
        })
        .collect();
    assert_eq!(call_records::insert(&s.store, &scope, &legacy).await.unwrap(), 2);
    monti::store::accounts::set_state(&s.store, "call_records.keys", "")
        .await
        .unwrap();
    assert_eq!(call_records::rekey_legacy(&s.store).await.unwrap(), 2);
    assert_eq!(call_records::rekey_legacy(&s.store).await.unwrap(), 0, "once");
    let text = format!("{line}\n{line}\n");
    let (report, _) = monti::import::cdr::import(&s.store, &scope, &text, chrono_tz::UTC, false)
        .await
        .unwrap();
    assert_eq!((report.added, report.already), (0, 2));
    let dispositions = call_records::dispositions(&s.store, &scope).await.unwrap();
    assert_eq!(dispositions, vec![("NO ANSWER".to_owned(), 2)]);
    s.stop().await;
}
