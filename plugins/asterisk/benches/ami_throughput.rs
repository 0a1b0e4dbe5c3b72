//! AMI events per second through the Asterisk connector, on one core:
//! `cargo bench -p monti-plugin-asterisk --bench ami_throughput`.
//!
//! Traffic: 2,000 queue members taking calls — per call `QueueCallerJoin`, `AgentCalled`,
//! `AgentConnect`, `QueueMemberStatus` (in use), `AgentComplete`, `QueueMemberStatus` (free) —
//! as the PBX writes them (about 11 lines each). Measured:
//! - natively: the connector's own framing and floor (`monti_ami::Framer`, `Floor::apply`);
//! - in Monti's plugin host: the `.wasm` on a warm instance, lines delivered in runs of 1,024 as
//!   the server's stream worker hands them over, Monti events emitted.
//!
//! Target (issue 6): ≥ 100,000 events/s through the plugin. Applying the emitted events to the
//! live floor is measured by `cargo bench -p monti --bench live_apply` (millions a second).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use monti_ami::{Framed, Framer};
use monti_plugin_asterisk::floor::{Floor, MatchBy, Settings};
use monti_plugin_test::{Harness, StreamItem};

const MEMBERS: usize = 2_000;

fn message(out: &mut Vec<String>, lines: &[(&str, String)]) -> usize {
    for (key, value) in lines {
        out.push(format!("{key}: {value}"));
    }
    out.push(String::new());
    1
}

/// `calls` calls spread over the members: (lines, AMI events).
fn traffic(calls: usize) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut events = 0;
    for member in 0..MEMBERS {
        let interface = format!("PJSIP/{}", 1000 + member);
        events += message(
            &mut lines,
            &[
                ("Event", "QueueMemberAdded".into()),
                ("Privilege", "agent,all".into()),
                ("Queue", "sales".into()),
                ("MemberName", format!("Agent {member}")),
                ("Interface", interface.clone()),
                ("StateInterface", interface.clone()),
                ("Status", "1".into()),
                ("Paused", "0".into()),
            ],
        );
    }
    for n in 0..calls {
        let interface = format!("PJSIP/{}", 1000 + n % MEMBERS);
        let call = format!("1800000000.{n}");
        let caller = [
            ("Privilege", "agent,all".to_owned()),
            ("Channel", format!("PJSIP/trunk-{n:08x}")),
            ("CallerIDNum", format!("+4930{n:07}")),
            ("Uniqueid", call.clone()),
            ("Queue", "sales".into()),
        ];
        let with = |event: &str, extra: &[(&'static str, String)]| {
            let mut all = vec![("Event", event.to_owned())];
            all.extend(caller.iter().map(|(k, v)| (*k, v.clone())));
            all.extend(extra.iter().cloned());
            all
        };
        let member = |status: &str| {
            vec![
                ("Event", "QueueMemberStatus".to_owned()),
                ("Privilege", "agent,all".into()),
                ("Queue", "sales".into()),
                ("Interface", interface.clone()),
                ("StateInterface", interface.clone()),
                ("Status", status.into()),
                ("Paused", "0".into()),
                ("InCall", if status == "2" { "1" } else { "0" }.into()),
            ]
        };
        events += message(
            &mut lines,
            &with("QueueCallerJoin", &[("Position", "1".into()), ("Count", "1".into())]),
        );
        events += message(&mut lines, &with("AgentCalled", &[("Interface", interface.clone())]));
        events += message(
            &mut lines,
            &with(
                "AgentConnect",
                &[
                    ("Interface", interface.clone()),
                    ("HoldTime", "7".into()),
                    ("RingTime", "3".into()),
                ],
            ),
        );
        events += message(&mut lines, &member("2"));
        events += message(
            &mut lines,
            &with(
                "AgentComplete",
                &[
                    ("Interface", interface.clone()),
                    ("HoldTime", "7".into()),
                    ("TalkTime", "95".into()),
                    ("Reason", "caller".into()),
                ],
            ),
        );
        events += message(&mut lines, &member("1"));
    }
    (lines, events)
}

fn main() {
    let (lines, events) = traffic(30_000);
    println!(
        "ami_throughput: {events} AMI events ({} lines, {:.1} per event), {MEMBERS} members, one thread",
        lines.len(),
        lines.len() as f64 / events as f64
    );

    // Natively: the same framing and floor, compiled for this machine.
    let settings = Settings {
        match_by: MatchBy::Interface,
        ..Settings::default()
    };
    let mut best = Duration::MAX;
    let mut emitted = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let (mut framer, mut floor, mut out) = (Framer::default(), Floor::default(), Vec::new());
        for line in &lines {
            if let Some(Framed::Message(message)) = framer.push(line) {
                floor.apply(&settings, &message, 1_800_000_000_000, &mut out);
            }
        }
        best = best.min(started.elapsed());
        emitted = black_box(out).len();
    }
    println!(
        "  native framing + floor        {:>10.0} events/s   ({emitted} Monti events out)",
        events as f64 / best.as_secs_f64()
    );

    // In Monti's plugin host, on a warm instance, as the server's stream worker delivers.
    let mut plugin = Harness::build(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("the connector builds");
    plugin
        .configure(serde_json::json!({ "host": "pbx.example.com", "port": 5038, "username": "monti" }))
        .unwrap();
    plugin.set_secret("password", "pw").unwrap();
    plugin.handle_events(Vec::new()).expect("connects");
    let stream = plugin.streams().named("ami").expect("a stream").id;
    // Logged in and in step (a plain login, then an empty QueueStatus).
    plugin.deliver(stream, StreamItem::Opened).unwrap();
    plugin
        .deliver(stream, StreamItem::Line("Asterisk Call Manager/7.0.3".into()))
        .unwrap();
    let mut through = |items: Vec<String>| {
        let batch = items.into_iter().map(|l| (stream, StreamItem::Line(l))).collect();
        plugin.deliver_all(batch).expect("runs")
    };
    for (id, reply) in [
        ("monti-1", "Challenge: 1"),
        ("monti-2", "Message: Authentication accepted"),
    ] {
        through(vec![
            "Response: Success".into(),
            format!("ActionID: {id}"),
            reply.into(),
            String::new(),
        ]);
    }
    through(vec![
        "Event: QueueStatusComplete".into(),
        "ActionID: monti-3".into(),
        String::new(),
    ]);
    let started = Instant::now();
    let mut monti_events = 0;
    let mut cpu = Duration::ZERO;
    for chunk in lines.chunks(1_024) {
        let run = through(chunk.to_vec());
        assert_eq!(run.result, Ok(()), "{:?}", run.logs);
        monti_events += run.emitted.len();
        cpu += run.report.cpu;
    }
    let wall = started.elapsed();
    println!(
        "  through the plugin (warm)     {:>10.0} events/s   ({monti_events} Monti events out; {:.0} % of the time in the plugin)   target ≥ 100,000",
        events as f64 / wall.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
    );
}
