//! The ingest handler over a real socket: a stream's bad events are
//! answered in their place and change nothing for the calls beside them.

use callguard::grpc::pb;
use pb::stream_transcript_response::Response as Reply;

use crate::faults::open_ingest;
use crate::support::{end_event, fragment, TestServer};

const CALLS: usize = 6;

/// The calls of one stream, round-robin: a start, a provisional threat
/// settled by its final, a second threat, a benign line, an end. With
/// `bad`, call 2 also gets events that must be refused (a field that does
/// not decode, a text over the limit, a seq behind the call's), and call 4
/// an event for a call that never started.
fn events(prefix: &str, bad: bool) -> Vec<(pb::TranscriptEvent, bool)> {
    let call = |i: usize| format!("{prefix}{i}");
    let mut out = Vec::new();
    let mut each = |make: &dyn Fn(&str) -> pb::TranscriptEvent| {
        for i in 0..CALLS {
            out.push((make(&call(i)), true));
        }
    };
    each(&|id| start(id));
    each(&|id| fragment(id, 1, "u1", "お前ころすぞ", false));
    each(&|id| fragment(id, 2, "u1", "お前ころすぞ", true));
    each(&|id| fragment(id, 3, "u2", "ぶっ殺すぞ", true));
    each(&|id| fragment(id, 4, "u3", "よろしくお願いします", true));
    each(&|id| end_event(id, 60_000));
    if bad {
        let mut no_speaker = fragment(&call(2), 5, "u4", "もしもし", true);
        if let Some(pb::transcript_event::Event::Fragment(f)) = &mut no_speaker.event {
            f.speaker = pb::Speaker::Unspecified as i32;
        }
        let long = fragment(&call(2), 5, "u4", &"あ".repeat(10_000), true);
        let behind = fragment(&call(2), 1, "u9", "ぶっ殺すぞ", true);
        let stranger = fragment("never-started-", 1, "u1", "ぶっ殺すぞ", true);
        // After the call's second fragment, before its third; and mid-way.
        let at = 2 * CALLS + 2 + 1;
        for (offset, event) in [no_speaker, long, behind].into_iter().enumerate() {
            out.insert(at + offset, (event, false));
        }
        out.insert(3 * CALLS + 4, (stranger, true)); // opens a call of its own
    }
    out
}

fn call_id_of(event: &pb::TranscriptEvent) -> String {
    use pb::transcript_event::Event;
    match event.event.as_ref().expect("an event") {
        Event::Start(start) => start.call_id.clone(),
        Event::Fragment(fragment) => fragment.call_id.clone(),
        Event::End(end) => end.call_id.clone(),
    }
}

fn start(call_id: &str) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::Start(pb::CallStart {
            call_id: call_id.into(),
            agent_id: "a1".into(),
            language: "ja".into(),
            // A fixed weekday noon: both streams judge business hours alike.
            started_at: Some(prost_types::Timestamp {
                seconds: 1_791_201_600, // 2026-10-05T12:00:00Z
                nanos: 0,
            }),
            timezone: "UTC".into(),
            ..Default::default()
        })),
    }
}

/// What a stream answered, read until it ends: per event in order,
/// `Ok(call_id)` for an ack and `Err(field)` for a rejection; and every
/// alert, with the fields that must not depend on the stream.
struct Answered {
    heads: Vec<Result<String, String>>,
    alerts: Vec<pb::Alert>,
}

async fn run_stream(server: &TestServer, events: Vec<pb::TranscriptEvent>) -> Answered {
    let (tx, mut replies) = open_ingest(server.channel().await).await;
    let n = events.len();
    // Pipelined: everything is sent without waiting for answers, then the
    // sending side closes; the stream ends once every event is answered.
    let sender = tokio::spawn(async move {
        for event in events {
            tx.send(event).await.unwrap();
        }
    });
    let mut answered = Answered {
        heads: Vec::new(),
        alerts: Vec::new(),
    };
    let wait = std::time::Duration::from_secs(30);
    while let Some(reply) = tokio::time::timeout(wait, replies.message())
        .await
        .expect("a reply within 30 s")
        .unwrap()
    {
        match reply.response.expect("a reply") {
            Reply::Ack(ack) => answered.heads.push(Ok(ack.call_id)),
            Reply::Rejection(r) => answered.heads.push(Err(r.field)),
            Reply::Alert(alert) => answered.alerts.push(alert),
        }
    }
    sender.await.unwrap();
    assert_eq!(answered.heads.len(), n, "every event answered once");
    answered
}

/// An alert as a call raises it, whoever sent the call: no ids, no
/// stream prefix, no wall time.
fn as_raised(alert: &pb::Alert, prefix: &str) -> pb::Alert {
    pb::Alert {
        event_id: 0,
        alert_id: 0,
        raised_at: None,
        call_id: alert.call_id.trim_start_matches(prefix).to_owned(),
        ..alert.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_on_a_pipelined_stream_leave_every_other_call_as_a_clean_run_raises_it() {
    let server = TestServer::spawn().await;
    let clean: Vec<_> = events("clean-", false)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let (dirty, good): (Vec<_>, Vec<_>) = events("dirty-", true).into_iter().unzip();
    let dirty_calls: Vec<String> = dirty.iter().map(call_id_of).collect();
    let (clean, dirty) = tokio::join!(run_stream(&server, clean), run_stream(&server, dirty));

    // The clean stream: every event acked.
    assert!(clean.heads.iter().all(Result::is_ok), "{:?}", clean.heads);
    // The dirty one: each bad event refused in its place, naming the field,
    // and every other event acked, in the order sent.
    let refused: Vec<&str> = dirty
        .heads
        .iter()
        .filter_map(|h| h.as_ref().err().map(String::as_str))
        .collect();
    assert_eq!(refused, ["speaker", "text", "seq"]);
    for ((head, good), call_id) in dirty.heads.iter().zip(&good).zip(&dirty_calls) {
        match head {
            Ok(acked) => assert!(*good && acked == call_id, "{:?}", dirty.heads),
            Err(_) => assert!(!good, "{:?}", dirty.heads),
        }
    }

    // Every call raised exactly what the same call raised on the clean
    // stream, in the same order (the stranger's call: its own alert).
    let mut clean_alerts: Vec<pb::Alert> = clean
        .alerts
        .iter()
        .map(|a| as_raised(a, "clean-"))
        .collect();
    let (stranger, dirty_alerts): (Vec<_>, Vec<_>) = dirty
        .alerts
        .iter()
        .partition(|a| a.call_id == "never-started-");
    let mut dirty_alerts: Vec<pb::Alert> = dirty_alerts
        .iter()
        .map(|a| as_raised(a, "dirty-"))
        .collect();
    assert_eq!(stranger.len(), 1, "{stranger:?}");
    let calls: std::collections::BTreeSet<&str> =
        clean_alerts.iter().map(|a| a.call_id.as_str()).collect();
    assert_eq!(calls.len(), CALLS, "every call raised alerts: {calls:?}");
    let by_call = |a: &pb::Alert| a.call_id.clone();
    clean_alerts.sort_by_key(by_call);
    dirty_alerts.sort_by_key(by_call);
    assert_eq!(dirty_alerts, clean_alerts);
    server.stop().await;
}
