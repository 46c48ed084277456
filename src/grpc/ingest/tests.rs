//! The ingest handler's reply stream without a socket: events fed from a
//! channel, answers read as the connection would poll them. Checks the
//! order of answers while commits are pending, how far a stream reads
//! ahead, rejections in place, resends, a store that refuses, a broken
//! message, and the calls a vanished stream leaves behind.
//!
//! The service runs on a `ManualClock` at a weekday noon, so a start raises
//! no `out_of_hours` and the stream grace is stepped, not slept through.

use std::task::Waker;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;
use tonic::Code;

use super::*;
use crate::config::ServeConfig;
use crate::live::{ManualClock, Rules};
use crate::policy::Policy;
use crate::store::AlertLog;

const LEXICON: &[(&str, &str)] = &[
    ("lexicon.toml", "version = \"ingest-test.1\"\n"),
    (
        "ja/lex.toml",
        r#"
[[term]]
id = "korosu"
category = "violence"
patterns = ["殺すぞ", "ころすぞ"]
"#,
    ),
];

type Inbound = mpsc::UnboundedSender<Result<pb::TranscriptEvent, Status>>;
type Replies = IngestReplies<UnboundedReceiverStream<Result<pb::TranscriptEvent, Status>>>;

struct Harness {
    service: Arc<Service>,
    hand: ManualClock,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    harness_with(ServeConfig::default())
}

fn harness_with(mut config: ServeConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    config.data_dir = dir.path().join("data");
    let rules = Rules {
        engine: crate::engine::engine_from_files(LEXICON),
        policy: Policy::builtin(),
    };
    let log = AlertLog::open(&config.data_dir).unwrap();
    let hand = ManualClock::at("2026-10-05T12:00:00Z".parse().unwrap());
    let service = Service::with_clock(config, rules, log, hand.clock()).unwrap();
    Harness {
        service: Arc::new(service),
        hand,
        _dir: dir,
    }
}

impl Harness {
    /// A stream from an all-tenant sender.
    fn stream(&self) -> (Inbound, Replies) {
        self.stream_for(Principal::open())
    }

    fn stream_for(&self, who: Principal) -> (Inbound, Replies) {
        let (tx, rx) = mpsc::unbounded_channel();
        let replies = IngestReplies::new(
            self.service.clone(),
            Arc::new(who),
            UnboundedReceiverStream::new(rx),
        );
        (tx, replies)
    }

    fn live_ids(&self) -> Vec<String> {
        self.service
            .list_calls(None, false)
            .into_iter()
            .map(|(s, _)| s.call_id)
            .collect()
    }

    /// Takes the database file away (every commit refused) until dropped.
    fn unplug(&self) -> Unplugged {
        let db = self.service.with_log(|log| log.path().to_owned());
        let away = db.with_extension("away");
        std::fs::rename(&db, &away).unwrap();
        Unplugged(db, away)
    }
}

struct Unplugged(std::path::PathBuf, std::path::PathBuf);

impl Drop for Unplugged {
    fn drop(&mut self) {
        std::fs::rename(&self.1, &self.0).unwrap();
    }
}

fn start(call_id: &str, tenant: &str) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::Start(pb::CallStart {
            call_id: call_id.into(),
            tenant: tenant.into(),
            agent_id: "a1".into(),
            language: "ja".into(),
            ..Default::default()
        })),
    }
}

fn said(call_id: &str, seq: u64, text: &str) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::Fragment(pb::Fragment {
            call_id: call_id.into(),
            seq,
            speaker: pb::Speaker::Customer as i32,
            text: text.into(),
            is_final: true,
            utterance_id: format!("u{seq}"),
            start_ms: seq * 1000,
            end_ms: seq * 1000 + 900,
            language: "ja".into(),
            loudness_dbfs: None,
        })),
    }
}

fn end(call_id: &str) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::End(pb::CallEnd {
            call_id: call_id.into(),
            end_ms: 60_000,
        })),
    }
}

const THREAT: &str = "ぶっ殺すぞ";
const HELLO: &str = "もしもし";

/// An answer, short: `ack c1/2`, `dup c1/2`, `alert c1 violence`,
/// `reject c1/2 field CODE`.
fn short(response: &pb::StreamTranscriptResponse) -> String {
    match response.response.as_ref().expect("a response") {
        Reply::Ack(ack) if ack.duplicate => format!("dup {}/{}", ack.call_id, ack.seq),
        Reply::Ack(ack) => format!("ack {}/{}", ack.call_id, ack.seq),
        Reply::Alert(alert) => format!("alert {} {}", alert.call_id, alert.category),
        Reply::Rejection(r) => format!("reject {}/{} {} {}", r.call_id, r.seq, r.field, r.code),
    }
}

/// The next `n` answers (each must come: the test fed the events).
async fn answers(replies: &mut Replies, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = replies.next().await.expect("an answer owed");
        out.push(short(&next.unwrap_or_else(|status| panic!("{status}"))));
    }
    out
}

/// Polls once, as the connection does when it has room for a reply.
fn poll_once(replies: &mut Replies) -> Poll<Option<Result<pb::StreamTranscriptResponse, Status>>> {
    Pin::new(replies).poll_next(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn answers_leave_in_event_order_while_later_events_are_read_and_applied() {
    let h = harness();
    let (tx, mut replies) = h.stream();
    for event in [
        start("c1", "acme"),
        said("c1", 1, THREAT),
        start("c2", "acme"),
        said("c2", 1, HELLO),
    ] {
        tx.send(Ok(event)).unwrap();
    }
    // With the store held, c1's alert cannot be committed: its ack waits,
    // but the stream reads and applies the events behind it.
    h.service.with_log(|_| {
        let Poll::Ready(Some(Ok(first))) = poll_once(&mut replies) else {
            panic!("the start raised nothing: answered at once");
        };
        assert_eq!(short(&first), "ack c1/0");
        assert!(
            poll_once(&mut replies).is_pending(),
            "c1/1 waits for its commit"
        );
        assert_eq!(h.live_ids(), ["c1", "c2"], "c2 applied meanwhile");
    });
    // Once stored: c1's ack, its alert, then the answers held behind it.
    assert_eq!(
        answers(&mut replies, 4).await,
        ["ack c1/1", "alert c1 violence", "ack c2/0", "ack c2/1"]
    );
    drop(tx);
    assert!(
        replies.next().await.is_none(),
        "the client closed: the stream ends"
    );
}

#[tokio::test]
async fn a_stream_reads_at_most_max_in_flight_events_ahead_of_its_answers() {
    let h = harness();
    let (tx, mut replies) = h.stream();
    let n = MAX_IN_FLIGHT + 10;
    for i in 0..n {
        // A fragment opens its call; each raises an alert to commit.
        tx.send(Ok(said(&format!("c{i:03}"), 1, THREAT))).unwrap();
    }
    h.service.with_log(|_| {
        assert!(poll_once(&mut replies).is_pending());
        assert_eq!(
            h.live_ids().len(),
            MAX_IN_FLIGHT,
            "read ahead, then stopped"
        );
    });
    let mut expected = Vec::new();
    for i in 0..n {
        expected.push(format!("ack c{i:03}/1"));
        expected.push(format!("alert c{i:03} violence"));
    }
    assert_eq!(answers(&mut replies, 2 * n).await, expected);
    assert_eq!(h.live_ids().len(), n);
}

#[tokio::test]
async fn a_bad_event_is_rejected_in_its_place_and_disturbs_no_other_call() {
    let h = harness();
    let (tx, mut replies) = h.stream();
    let mut no_speaker = said("c2", 2, HELLO);
    if let Some(pb::transcript_event::Event::Fragment(f)) = &mut no_speaker.event {
        f.speaker = pb::Speaker::Unspecified as i32;
    }
    let long = "あ".repeat(ServeConfig::default().limits.max_text_bytes);
    let events = [
        start("c1", "acme"),
        start("c2", "acme"),
        said("c1", 1, THREAT),
        no_speaker,           // c2: bad field, decoded as nothing
        said("c2", 3, &long), // c2: too long for the table
        said("c1", 1, HELLO), // c1: a duplicate seq
        start("c1", "acme"),  // c1: started twice
        pb::TranscriptEvent { event: None },
        said("c2", 4, THREAT), // c2 goes on
        said("c2", 3, HELLO),  // behind c2's last seq
        end("c1"),
        said("c1", 2, HELLO), // c1 has ended
    ];
    for event in events {
        tx.send(Ok(event)).unwrap();
    }
    assert_eq!(
        answers(&mut replies, 13).await,
        [
            "ack c1/0",
            "ack c2/0",
            "ack c1/1",
            "alert c1 violence",
            "reject c2/2 speaker INVALID_ARGUMENT",
            "reject c2/3 text INVALID_ARGUMENT",
            "dup c1/1",
            "reject c1/0 call_id ALREADY_EXISTS",
            "reject /0 event INVALID_ARGUMENT",
            "ack c2/4",
            "alert c2 violence",
            "reject c2/3 seq INVALID_ARGUMENT",
            "ack c1/0",
        ]
    );
    assert_eq!(
        answers(&mut replies, 1).await,
        ["reject c1/2 call_id FAILED_PRECONDITION"]
    );
    assert_eq!(h.live_ids(), ["c2"]);
}

#[tokio::test]
async fn one_stream_s_bad_events_do_not_touch_another_stream_s_calls() {
    let h = harness();
    let (good_tx, mut good) = h.stream();
    let (bad_tx, mut bad) = h.stream();
    good_tx.send(Ok(start("g1", "acme"))).unwrap();
    bad_tx.send(Ok(start("b1", "acme"))).unwrap();
    assert_eq!(answers(&mut good, 1).await, ["ack g1/0"]);
    assert_eq!(answers(&mut bad, 1).await, ["ack b1/0"]);
    // The bad stream sends for the good stream's call out of order, then
    // breaks (a message that did not decode).
    bad_tx.send(Ok(said("b1", 2, HELLO))).unwrap();
    bad_tx.send(Ok(said("b1", 1, HELLO))).unwrap();
    bad_tx
        .send(Err(Status::internal("failed to decode Protobuf message")))
        .unwrap();
    assert_eq!(
        answers(&mut bad, 2).await,
        ["ack b1/2", "reject b1/1 seq INVALID_ARGUMENT"]
    );
    let status = bad
        .next()
        .await
        .expect("a status")
        .expect_err("the stream fails");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("malformed event"), "{status}");
    assert!(bad.next().await.is_none());
    // The good stream's call goes on as if nothing happened.
    good_tx.send(Ok(said("g1", 1, THREAT))).unwrap();
    good_tx.send(Ok(end("g1"))).unwrap();
    assert_eq!(
        answers(&mut good, 3).await,
        ["ack g1/1", "alert g1 violence", "ack g1/0"]
    );
}

#[tokio::test]
async fn a_client_that_goes_away_ends_the_stream_after_the_answers_owed() {
    let h = harness();
    let (tx, mut replies) = h.stream();
    tx.send(Ok(start("c1", "acme"))).unwrap();
    tx.send(Ok(said("c1", 1, THREAT))).unwrap();
    tx.send(Err(Status::cancelled("client went away"))).unwrap();
    assert_eq!(
        answers(&mut replies, 3).await,
        ["ack c1/0", "ack c1/1", "alert c1 violence"]
    );
    assert!(
        replies.next().await.is_none(),
        "no status: nobody is listening"
    );
}

#[tokio::test]
async fn a_refused_commit_is_answered_unavailable_and_the_resend_raises_the_alert() {
    let h = harness();
    let (tx, mut replies) = h.stream();
    tx.send(Ok(start("c1", "acme"))).unwrap();
    assert_eq!(answers(&mut replies, 1).await, ["ack c1/0"]);

    let unplugged = h.unplug();
    tx.send(Ok(said("c1", 1, THREAT))).unwrap();
    let refused = replies.next().await.unwrap().unwrap();
    assert_eq!(short(&refused), "reject c1/1 event UNAVAILABLE");
    let Some(Reply::Rejection(rejection)) = refused.response else {
        unreachable!()
    };
    assert!(
        rejection.reason.contains("resend the event"),
        "{}",
        rejection.reason
    );
    // The call's next event carries the kept alert: while the store
    // still refuses, it is refused too.
    tx.send(Ok(said("c1", 2, HELLO))).unwrap();
    assert_eq!(
        answers(&mut replies, 1).await,
        ["reject c1/2 event UNAVAILABLE"]
    );
    drop(unplugged);

    // The resend the rejection asked for: not a duplicate (nor behind c1's
    // last seq); the kept alert is raised and stored now, once.
    tx.send(Ok(said("c1", 1, THREAT))).unwrap();
    assert_eq!(
        answers(&mut replies, 2).await,
        ["ack c1/1", "alert c1 violence"]
    );
    // Once stored, the resends are ordinary events again: the call's last
    // seq is a duplicate, an earlier one is behind it.
    tx.send(Ok(said("c1", 2, HELLO))).unwrap();
    tx.send(Ok(said("c1", 1, THREAT))).unwrap();
    assert_eq!(
        answers(&mut replies, 2).await,
        ["dup c1/2", "reject c1/1 seq INVALID_ARGUMENT"]
    );
    let stored = h
        .service
        .with_log(|log| log.alerts_of_call("c1", 10))
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
}

#[tokio::test]
async fn a_scoped_sender_is_held_to_its_tenant() {
    let h = harness();
    let who = Principal {
        name: "gw".into(),
        role: crate::auth::Role::Ingest,
        tenant: Some("acme".into()),
    };
    let (tx, mut replies) = h.stream_for(who);
    tx.send(Ok(start("c1", "globex"))).unwrap();
    tx.send(Ok(start("c1", ""))).unwrap();
    assert_eq!(
        answers(&mut replies, 2).await,
        ["reject c1/0 tenant PERMISSION_DENIED", "ack c1/0"]
    );
    let (snapshot, _) = h.service.find_call(None, "c1").unwrap();
    assert_eq!(snapshot.tenant, "acme");
}

#[tokio::test]
async fn the_calls_a_stream_leaves_open_close_after_the_grace() {
    let h = harness();
    let grace = Duration::from_secs(h.service.config.limits.stream_grace_seconds);
    let (tx, mut replies) = h.stream();
    for event in [
        start("c1", "acme"),
        start("c2", "acme"),
        said("c3", 1, HELLO),
        end("c2"),
    ] {
        tx.send(Ok(event)).unwrap();
    }
    assert_eq!(
        answers(&mut replies, 4).await,
        ["ack c1/0", "ack c2/0", "ack c3/1", "ack c2/0"]
    );
    // The stream goes (however it goes: here the connection drops it).
    drop(replies);
    drop(tx);
    h.hand.advance(grace - Duration::from_millis(1));
    h.service.sweep();
    assert_eq!(h.live_ids(), ["c1", "c3"]);
    h.hand.advance(Duration::from_millis(1));
    h.service.sweep();
    assert!(
        h.live_ids().is_empty(),
        "closed at the grace, not the idle timeout"
    );
}
