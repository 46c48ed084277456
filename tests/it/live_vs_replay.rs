//! The same call gives the same alerts streamed live into `serve` and
//! replayed offline (DESIGN: one engine, two thin drivers).

use callguard::event::Event;
use callguard::grpc::pb;

use crate::support::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/abusive_call_ja.jsonl"
);

fn to_wire(event: &Event) -> pb::TranscriptEvent {
    use pb::transcript_event::Event as E;
    let event = match event {
        Event::Start(s) => E::Start(pb::CallStart {
            call_id: s.call_id.clone(),
            tenant: s.tenant.clone(),
            agent_id: s.agent_id.clone(),
            caller_id: s.caller_id.clone().unwrap_or_default(),
            language: s.language.clone().unwrap_or_default(),
            started_at: s.started_at.map(|t| prost_types::Timestamp {
                seconds: t.as_second(),
                nanos: t.subsec_nanosecond(),
            }),
            timezone: s.timezone.clone().unwrap_or_default(),
            labels: s.labels.clone().into_iter().collect(),
        }),
        Event::Fragment(f) => E::Fragment(pb::Fragment {
            call_id: f.call_id.clone(),
            seq: f.seq,
            speaker: match f.speaker {
                callguard::category::Speaker::Customer => pb::Speaker::Customer,
                callguard::category::Speaker::Agent => pb::Speaker::Agent,
            } as i32,
            text: f.text.clone(),
            is_final: f.is_final,
            utterance_id: f.utterance_id.clone(),
            start_ms: f.start_ms,
            end_ms: f.end_ms,
            language: f.language.clone().unwrap_or_default(),
            loudness_dbfs: f.loudness_dbfs,
        }),
        Event::End(e) => E::End(pb::CallEnd {
            call_id: e.call_id.clone(),
            end_ms: e.end_ms,
        }),
    };
    pb::TranscriptEvent { event: Some(event) }
}

/// Everything but the wall-clock `raised_at`.
fn comparable(a: &pb::Alert) -> pb::Alert {
    pb::Alert {
        raised_at: None,
        ..a.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_gives_the_same_alerts_live_and_replayed() {
    let events = callguard::replay::read_jsonl(std::path::Path::new(FIXTURE)).unwrap();

    let server = TestServer::spawn().await;
    let mut ingest = server.stream().await;
    let mut live = Vec::new();
    for event in &events {
        let replies = ingest.send(to_wire(event)).await;
        assert!(replies.ack.is_some(), "{replies:?}");
        live.extend(replies.alerts.iter().map(comparable));
    }
    ingest.close().await;
    server.stop().await;

    let engine =
        callguard::engine::Engine::build(callguard::lexicon::Lexicon::embedded().unwrap()).unwrap();
    let replayed =
        callguard::replay::replay(events, &engine, &callguard::policy::Policy::builtin());
    let replayed: Vec<pb::Alert> = replayed
        .alerts
        .iter()
        .map(|a| comparable(&pb::Alert::from(a)))
        .collect();

    assert!(live.len() >= 5, "the fixture is abusive: {live:?}");
    assert_eq!(live, replayed);
}

#[test]
fn replay_cli_prints_json_lines_and_names_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.jsonl"), "{\"type\":\"nonsense\"}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callguard"))
        .arg("replay")
        .arg(FIXTURE)
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad file fails the run: {stderr}"
    );
    assert!(stderr.contains("bad.jsonl:1:"), "{stderr}");
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        alerts.len() >= 5,
        "the good file's alerts are still printed"
    );
    assert_eq!(alerts[0]["event_id"], 1);
    assert_eq!(alerts[0]["call_id"], "fx-ja-1");
}
