//! Faults over a real socket (issue #7 item 5): a client that vanishes
//! mid-call, a subscriber that stops reading, SIGKILL mid-stream and a
//! restart on the same data dir, the store failing to write, 10,000 streams
//! on one connection, oversize and malformed events.
//!
//! Tests that assert on process-wide metrics (`/metrics` is one recorder
//! per process, shared by every in-process test server) or that kill the
//! server run the real binary as a child process ([`ChildServer`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callguard::grpc::pb;
use callguard::grpc::pb::stream_transcript_response::Response as Reply;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::support::*;

/// Built-in policy, except that no call raises out_of_hours (whatever the
/// time the tests run), so every alert below is one the test asked for.
pub(crate) const QUIET_POLICY: &str = "[business_hours]\nout_of_hours = \"off\"\n";

// ---------------------------------------------------------------------------
// 1. A client that vanishes mid-call

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_client_s_calls_close_by_idle_timeout_and_settle_their_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!("{QUIET_POLICY}[session]\nidle_timeout_seconds = 2\n"),
        "",
    );
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;
    let mut sub = pb::alerts_client::AlertsClient::new(connect(server.grpc).await)
        .subscribe(subscribe_request(0))
        .await
        .unwrap()
        .into_inner();

    // The client reaches the server through a relay, so its connection can
    // be cut at the TCP level: no END_STREAM, no RST_STREAM, no GOAWAY.
    let (relay_addr, relay) = relay(server.grpc).await;
    let (tx, mut replies) = open_ingest(connect(relay_addr).await).await;
    // "kept": its latest interim still holds the threat -> confirmed.
    // "reworded": the threat was reworded away -> retracted.
    let events = [
        start_event("kept", "acme"),
        fragment("kept", 1, "u1", "お前ころすぞ", false),
        start_event("reworded", "acme"),
        fragment("reworded", 1, "u1", "お前ころすぞ", false),
        fragment("reworded", 2, "u1", "お前のところに行くよ", false),
    ];
    let mut provisional = Vec::new();
    for event in events {
        tx.send(event).await.unwrap();
        // Its ack (after the alerts of the event before).
        loop {
            match next_reply(&mut replies).await {
                Reply::Ack(_) => break,
                Reply::Alert(a) => provisional.push(a),
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }
    while provisional.len() < 2 {
        match next_reply(&mut replies).await {
            Reply::Alert(a) => provisional.push(a),
            other => panic!("expected an alert, got {other:?}"),
        }
    }
    assert!(provisional
        .iter()
        .all(|a| a.status == pb::AlertStatus::Provisional as i32));
    assert_eq!(
        metric(server.http, "callguard_active_calls").await,
        Some(2.0)
    );
    assert_eq!(take(&mut sub, 2).await, provisional);

    relay.abort(); // the client vanishes
    drop((tx, replies));

    // The sweeper (every 5 s) closes both calls after 2 s of silence.
    let settled = tokio::time::timeout(Duration::from_secs(30), async {
        let mut settled = BTreeMap::new();
        while settled.len() < 2 {
            let alert = sub.message().await.unwrap().unwrap().alert.unwrap();
            settled.insert(alert.call_id.clone(), alert);
        }
        settled
    })
    .await
    .expect("the calls of the vanished client settle within 30 s");
    let by_call: BTreeMap<&str, &pb::Alert> = provisional
        .iter()
        .map(|a| (a.call_id.as_str(), a))
        .collect();
    for (call, status) in [
        ("kept", pb::AlertStatus::Confirmed),
        ("reworded", pb::AlertStatus::Retracted),
    ] {
        let alert = &settled[call];
        assert_eq!(alert.alert_id, by_call[call].alert_id, "{call}: same alert");
        assert_eq!(alert.status, status as i32, "{call}: {alert:?}");
        assert!(alert.event_id > by_call[call].event_id);
    }
    assert_quiet(&mut sub).await;

    let mut alerts = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    let active = alerts
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert!(active.is_empty(), "no call stays active: {active:?}");
    let all = alerts
        .list_calls(pb::ListCallsRequest {
            include_ended: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|c| c.status == pb::CallStatus::Ended as i32));
    // The gauge is set at the end of the sweep that published the updates.
    eventually("callguard_active_calls == 0", || async {
        metric(server.http, "callguard_active_calls").await == Some(0.0)
    })
    .await;
    assert_eq!(
        metric(server.http, "callguard_subscribers").await,
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------
// 2. A subscriber that stops reading

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_blocks_no_ingest_and_later_gets_every_alert_once() {
    const STREAMS: usize = 4;
    const CALLS_PER_STREAM: usize = 375;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), QUIET_POLICY, "subscriber_buffer = 16\n");
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;

    // The subscriber's own connection, with the HTTP/2 default stream
    // window (64 KiB) instead of tonic's 2 MiB, so the stall reaches the
    // server. (The connection window stays large: h2 >= 0.4.20 clients
    // budget buffered small DATA frames at half of it, and one alert is
    // one small frame.)
    let small_window = Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .initial_stream_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut stalled = pb::alerts_client::AlertsClient::new(small_window)
        .subscribe(subscribe_request(0))
        .await
        .unwrap()
        .into_inner();

    // ~1,500 calls, one violent final fragment each, over four streams.
    let produce = flood_violent_calls(server.grpc, STREAMS, CALLS_PER_STREAM);
    let produced = tokio::time::timeout(Duration::from_secs(240), produce)
        .await
        .expect("every event acknowledged although a subscriber stopped reading");
    let ids: BTreeSet<u64> = produced.iter().map(|a| a.event_id).collect();
    assert_eq!(ids.len(), STREAMS * CALLS_PER_STREAM);

    let received = take(&mut stalled, ids.len()).await;
    assert!(
        received
            .windows(2)
            .all(|w| w[1].event_id == w[0].event_id + 1),
        "event ids strictly increasing, no gap"
    );
    assert_eq!(
        received.iter().map(|a| a.event_id).collect::<BTreeSet<_>>(),
        ids,
        "every alert exactly once"
    );
    let mut expected = produced.clone();
    expected.sort_by_key(|a| a.event_id);
    assert_eq!(
        received, expected,
        "the same alerts as on the ingest streams"
    );
    assert_quiet(&mut stalled).await;
    let catchups = metric(server.http, "callguard_subscriber_catchups_total").await;
    assert!(
        catchups.is_some_and(|n| n >= 1.0),
        "the stalled subscriber fell back to the store: {catchups:?}"
    );
}

// ---------------------------------------------------------------------------
// 3. SIGKILL in the middle of a stream, restart on the same data dir

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_alert_the_client_was_sent() {
    const KILL_AFTER: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), QUIET_POLICY, "");
    let data = tmp.path().join("data");
    let mut first = ChildServer::spawn(&data, Some(&config)).await;

    let (tx, mut replies) = open_ingest(connect(first.grpc).await).await;
    let sender = tokio::spawn(async move {
        // Far more than will be taken before the kill; stops when it fails.
        for c in 0..100_000 {
            let event = fragment(&format!("k{c}"), 1, "u1", "ぶっ殺すぞ", true);
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut sent = Vec::new();
    let mut killed = false;
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.message())
            .await
            .expect("a reply or the end of the stream within 30 s");
        match reply {
            Ok(Some(pb::StreamTranscriptResponse {
                response: Some(Reply::Alert(a)),
            })) => sent.push(a),
            Ok(Some(pb::StreamTranscriptResponse {
                response: Some(Reply::Rejection(r)),
            })) => panic!("rejected: {r:?}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
        if sent.len() == KILL_AFTER && !killed {
            first.kill(); // SIGKILL, mid-stream
            killed = true;
        }
    }
    assert!(killed, "the stream ended before the kill");
    sender.abort();
    drop(first);

    let second = ChildServer::spawn(&data, Some(&config)).await;
    let mut alerts = pb::alerts_client::AlertsClient::new(connect(second.grpc).await);
    let mut history = alerts
        .subscribe(pb::SubscribeRequest {
            from_start: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Everything committed before the kill (at least what was sent).
    let mut stored = Vec::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_secs(2), history.message()).await {
        stored.push(next.unwrap().expect("stream open").alert.unwrap());
    }
    assert!(
        stored.len() >= sent.len(),
        "{} < {}",
        stored.len(),
        sent.len()
    );
    assert!(
        stored
            .iter()
            .enumerate()
            .all(|(i, a)| a.event_id == i as u64 + 1),
        "stored event ids run 1, 2, 3… without a gap"
    );
    let by_event: BTreeMap<u64, &pb::Alert> = stored.iter().map(|a| (a.event_id, a)).collect();
    for alert in &sent {
        assert_eq!(
            by_event.get(&alert.event_id).copied(),
            Some(alert),
            "an alert the client was sent is stored with the same ids"
        );
    }
    let old_event = stored.last().unwrap().event_id;
    let old_alert = stored.iter().map(|a| a.alert_id).max().unwrap();

    let mut ingest = IngestStream::open_plain(second.grpc).await;
    let after = ingest
        .send(fragment("after-restart", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(after.len(), 1, "{after:?}");
    // After a kill the ids skip past the lease (store_sync = "normal"), so
    // no id an alert lost with the OS's unsynced writes could have carried
    // is handed out again; by at most one lease.
    let lease = callguard::store::LEASE_BLOCK;
    assert!(
        (old_event + 1..=old_event + lease + 1).contains(&after[0].event_id),
        "{} after {old_event}",
        after[0].event_id
    );
    assert!(after[0].alert_id > old_alert);
    assert_eq!(
        take(&mut history, 1).await,
        after,
        "and live after the history"
    );
}

// ---------------------------------------------------------------------------
// 4. The store failing to write

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_database_file_refuses_alerts_loudly_and_reports_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(quiet_config(tmp.path())).await;
    let mut sub = server.subscription(0).await;
    let mut ingest = server.stream().await;
    let before = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(take(&mut sub, 1).await, before);

    let db = server.server.service.config.data_dir.join("callguard.db");
    std::fs::remove_file(&db).unwrap();

    for (call, seq, text) in [("c2", 1, "ぶっ殺すぞ"), ("c1", 2, "ネットに晒してやる")]
    {
        let failed = ingest.send(fragment(call, seq, "u2", text, true)).await;
        assert!(failed.alerts.is_empty(), "{failed:?}");
        let rejection = failed
            .rejection
            .unwrap_or_else(|| panic!("{call}: not refused"));
        assert_eq!(rejection.code, "UNAVAILABLE", "{rejection:?}");
        assert_eq!((rejection.call_id.as_str(), rejection.seq), (call, seq));
        assert!(
            rejection.reason.contains("not delivered"),
            "{}",
            rejection.reason
        );
    }
    assert_quiet(&mut sub).await; // nothing published that is not stored

    let http = server.server.http_addr;
    assert!(http_get(http, "/readyz").await.starts_with("HTTP/1.1 503"));
    assert!(http_get(http, "/healthz").await.starts_with("HTTP/1.1 200"));
    // Exported at 0 from the start: the failures counted are what matters.
    let store_errors: f64 = http_get(http, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("callguard_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(store_errors >= 1.0, "store errors counted: {store_errors}");

    // Other requests are answered, and none takes the server down.
    let benign = ingest
        .send(fragment("c3", 1, "u1", "よろしくお願いします", true))
        .await;
    assert!(benign.ack.is_some(), "{benign:?}");
    let mut with_caller = start_event("c4", "acme");
    if let Some(pb::transcript_event::Event::Start(s)) = &mut with_caller.event {
        s.caller_id = "+81-3-0000-0000".into(); // counted in the store
    }
    let counted = ingest.send(with_caller).await;
    assert!(counted.ack.is_some() || counted.rejection.is_some());
    let mut alerts = server.alerts().await;
    let calls = alerts
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert!(calls.iter().any(|c| c.call_id == "c3"), "{calls:?}");
    let history = alerts
        .get_call(pb::GetCallRequest {
            call_id: "c1".into(),
        })
        .await;
    assert!(
        history.is_ok() || history.as_ref().unwrap_err().code() == tonic::Code::Unavailable,
        "{history:?}"
    );
    let replay = alerts
        .subscribe(pb::SubscribeRequest {
            from_start: true,
            ..Default::default()
        })
        .await;
    match replay {
        Ok(replay) => {
            let mut replay = replay.into_inner();
            let first = tokio::time::timeout(Duration::from_secs(5), replay.message())
                .await
                .expect("an answer within 5 s");
            match first {
                Ok(Some(a)) => assert_eq!(a.alert, before.first().cloned()),
                Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
                Ok(None) => panic!("subscription ended without a status"),
            }
        }
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
    }
    assert_serving(&server).await;
    assert!(http_get(http, "/readyz").await.starts_with("HTTP/1.1 503"));
    drop((sub, ingest));
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 5. 10,000 streams opened at once by one client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_on_one_connection_are_all_answered() {
    const STREAMS: usize = 10_000;
    const MAX_CALLS: usize = 2_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = quiet_config(tmp.path());
    config.limits.max_active_calls = MAX_CALLS;
    let server = TestServer::spawn_with(config).await;
    let channel = server.channel().await; // one connection for all

    let answered = tokio::time::timeout(Duration::from_secs(300), async {
        let tasks: Vec<_> = (0..STREAMS)
            .map(|i| {
                let channel = channel.clone();
                tokio::spawn(async move {
                    let mut client = pb::ingest_client::IngestClient::new(channel);
                    let (tx, rx) = mpsc::channel(1);
                    tx.send(start_event(&format!("m{i}"), "acme"))
                        .await
                        .unwrap();
                    let mut replies = client
                        .stream_transcript(ReceiverStream::new(rx))
                        .await
                        .unwrap()
                        .into_inner();
                    let first = replies.message().await.unwrap().unwrap().response;
                    drop(tx);
                    while replies.message().await.unwrap().is_some() {}
                    (i, first.expect("a reply"))
                })
            })
            .collect();
        let mut out = Vec::with_capacity(STREAMS);
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    })
    .await
    .expect("every stream answered within 300 s");

    let mut acked = Vec::new();
    let mut refused = 0;
    for (i, reply) in answered {
        match reply {
            Reply::Ack(a) => {
                assert_eq!(a.call_id, format!("m{i}"));
                acked.push(a.call_id);
            }
            Reply::Rejection(r) => {
                assert_eq!(r.code, "RESOURCE_EXHAUSTED", "{r:?}");
                refused += 1;
            }
            other => panic!("stream {i}: {other:?}"),
        }
    }
    assert_eq!((acked.len(), refused), (MAX_CALLS, STREAMS - MAX_CALLS));
    assert_serving(&server).await;
    let mut ingest = server.stream().await;
    let full = ingest.send(start_event("one-more", "acme")).await;
    assert_eq!(full.rejection.unwrap().code, "RESOURCE_EXHAUSTED");

    // End the calls (pipelined on one stream); then there is room again.
    let (tx, mut replies) = open_ingest(server.channel().await).await;
    let ends = acked.clone();
    let sender = tokio::spawn(async move {
        for call in ends {
            tx.send(end_event(&call, 1_000)).await.unwrap();
        }
    });
    for _ in 0..acked.len() {
        match next_reply(&mut replies).await {
            Reply::Ack(_) => {}
            other => panic!("an end not acknowledged: {other:?}"),
        }
    }
    sender.await.unwrap();
    let again = ingest.send(start_event("one-more", "acme")).await;
    assert!(again.ack.is_some(), "{again:?}");
    assert_serving(&server).await;
    drop((ingest, replies, channel));
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 6. Oversize and malformed events

/// Not a TranscriptEvent: field 1 (`start`, a message) as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(uint64, tag = "1")]
    start: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_events_end_only_their_own_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = quiet_config(tmp.path());
    config.limits.max_text_bytes = 1024;
    config.limits.max_message_bytes = 16 * 1024;
    let server = TestServer::spawn_with(config).await;
    let mut good = server.stream().await;
    let mut seq = 0;
    still_good(&mut good, &mut seq).await;

    // Text over limits.max_text_bytes: a rejection naming `text`, the stream goes on.
    let mut long = server.stream().await;
    let refused = long
        .send(fragment("long", 1, "u1", &"あ".repeat(400), true))
        .await
        .rejection
        .expect("refused");
    assert_eq!(
        (refused.field.as_str(), refused.code.as_str()),
        ("text", "INVALID_ARGUMENT")
    );
    let next = long
        .send(fragment("long", 2, "u2", "ぶっ殺すぞ", true))
        .await;
    assert!(next.ack.is_some() && next.alerts.len() == 1, "{next:?}");
    still_good(&mut good, &mut seq).await;

    // A message over limits.max_message_bytes: the stream ends with
    // RESOURCE_EXHAUSTED.
    let (tx, mut replies) = open_ingest(server.channel().await).await;
    tx.send(fragment("huge", 1, "u1", &"a".repeat(20_000), true))
        .await
        .unwrap();
    let status = stream_status(&mut replies).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    drop(tx);
    still_good(&mut good, &mut seq).await;

    // Bytes that are no TranscriptEvent: the stream ends with INVALID_ARGUMENT.
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<WrongWireType, pb::StreamTranscriptResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/callguard.v1.Ingest/StreamTranscript",
    );
    let (bad_tx, bad_rx) = mpsc::channel(1);
    bad_tx.send(WrongWireType { start: 7 }).await.unwrap();
    let mut bad = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(bad_rx)),
            path,
            codec,
        )
        .await
        .unwrap()
        .into_inner();
    let status = stream_status(&mut bad).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed"), "{status:?}");
    drop(bad_tx);
    still_good(&mut good, &mut seq).await;

    assert_serving(&server).await;
    good.close().await;
    long.close().await;
    server.stop().await;
}

/// A benign fragment on the well-behaved stream is still acknowledged.
async fn still_good(ingest: &mut IngestStream, seq: &mut u64) {
    *seq += 1;
    let utterance = format!("u{seq}");
    let replies = ingest
        .send(fragment(
            "good",
            *seq,
            &utterance,
            "よろしくお願いします",
            true,
        ))
        .await;
    assert!(replies.ack.is_some(), "the other stream: {replies:?}");
}

/// The error status a stream ends with (its first answer).
pub(crate) async fn stream_status<T>(stream: &mut tonic::Streaming<T>) -> tonic::Status
where
    T: std::fmt::Debug,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        match stream.message().await {
            Ok(Some(reply)) => panic!("a reply to a bad message: {reply:?}"),
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => status,
        }
    })
    .await
    .expect("the stream ends within 10 s")
}

// ---------------------------------------------------------------------------
// Helpers

/// The test configuration with [`QUIET_POLICY`] (written into `dir`).
pub(crate) fn quiet_config(dir: &Path) -> callguard::serve::ServeConfig {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, QUIET_POLICY).unwrap();
    let mut config = config(&dir.join("data"));
    config.policy = Some(policy);
    config
}

/// Writes `policy.toml` and a `serve --config` file using it, with extra
/// `[limits]` lines; returns the config file.
pub(crate) fn write_config(dir: &Path, policy: &str, limits: &str) -> PathBuf {
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let config = dir.join("callguard.toml");
    std::fs::write(
        &config,
        format!(
            "policy = {:?}\n[limits]\n{limits}",
            policy_path.display().to_string()
        ),
    )
    .unwrap();
    config
}

pub(crate) async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// An ingest stream whose sending and receiving sides are used separately
/// (to pipeline events instead of one request-reply at a time).
pub(crate) async fn open_ingest(
    channel: Channel,
) -> (
    mpsc::Sender<pb::TranscriptEvent>,
    tonic::Streaming<pb::StreamTranscriptResponse>,
) {
    let (tx, rx) = mpsc::channel(64);
    let replies = pb::ingest_client::IngestClient::new(channel)
        .stream_transcript(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, replies)
}

/// Sends `calls_per_stream` calls of one violent final fragment each over
/// each of `streams` ingest streams, pipelined, and returns every alert
/// the streams answered with once each event is acknowledged.
pub(crate) async fn flood_violent_calls(
    grpc: SocketAddr,
    streams: usize,
    calls_per_stream: usize,
) -> Vec<pb::Alert> {
    let mut tasks = Vec::new();
    for s in 0..streams {
        let (tx, mut replies) = open_ingest(connect(grpc).await).await;
        tasks.push(tokio::spawn(async move {
            let sender = tokio::spawn(async move {
                for c in 0..calls_per_stream {
                    let call = format!("s{s}-c{c}");
                    tx.send(fragment(&call, 1, "u1", "ぶっ殺すぞ", true))
                        .await
                        .unwrap();
                }
            });
            let (mut acks, mut alerts) = (0, Vec::new());
            while acks < calls_per_stream || alerts.len() < calls_per_stream {
                match next_reply(&mut replies).await {
                    Reply::Ack(_) => acks += 1,
                    Reply::Alert(a) => alerts.push(a),
                    Reply::Rejection(r) => panic!("rejected: {r:?}"),
                }
            }
            sender.await.unwrap();
            alerts
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

pub(crate) async fn next_reply(
    replies: &mut tonic::Streaming<pb::StreamTranscriptResponse>,
) -> Reply {
    tokio::time::timeout(Duration::from_secs(30), replies.message())
        .await
        .expect("a reply within 30 s")
        .unwrap()
        .expect("stream open")
        .response
        .expect("a reply")
}

pub(crate) async fn assert_serving(server: &TestServer) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "callguard.v1.Ingest".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// A TCP relay for one connection to `target`; aborting the task drops both
/// sockets at once.
pub(crate) async fn relay(target: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    (addr, task)
}

/// The value of an unlabelled metric in /metrics (None when absent).
pub(crate) async fn metric(http: SocketAddr, name: &str) -> Option<f64> {
    let body = http_get(http, "/metrics").await;
    body.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        Some(value.trim().parse().unwrap())
    })
}

/// Polls `check` until it holds (up to 10 s).
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}
