//! The same call gives the same alerts streamed live into `serve` and
//! replayed offline (DESIGN: one engine, two thin drivers).

use callguard::grpc::client::ClientConfig;
use callguard::grpc::pb;

use crate::support::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/abusive_call_ja.jsonl"
);

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
        let replies = ingest.send(pb::TranscriptEvent::from(event)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_a_server_streams_the_recording_and_gets_its_alerts() {
    let events = callguard::replay::read_jsonl(std::path::Path::new(FIXTURE)).unwrap();
    let server = TestServer::spawn().await;
    // 26 s of audio at 100x: about a quarter of a second.
    let stats = callguard::replay::stream::stream_calls(
        &ClientConfig::plain(server.url()),
        events.clone(),
        100.0,
    )
    .await;
    assert_eq!(
        (stats.calls, stats.events, stats.acks, stats.rejections),
        (1, events.len(), events.len(), 0)
    );
    assert!(stats.failed_calls.is_empty(), "{:?}", stats.failed_calls);

    let engine =
        callguard::engine::Engine::build(callguard::lexicon::Lexicon::embedded().unwrap()).unwrap();
    let offline = callguard::replay::replay(events, &engine, &callguard::policy::Policy::builtin());
    let offline: Vec<pb::Alert> = offline
        .alerts
        .iter()
        .map(|a| comparable(&pb::Alert::from(a)))
        .collect();
    let streamed: Vec<pb::Alert> = stats.alerts.iter().map(comparable).collect();
    assert_eq!(streamed, offline);
    server.stop().await;
}
