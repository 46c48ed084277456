//! `replay --server ADDR --speed N`: streams recorded calls into a running
//! `serve` over gRPC, each call on its own stream, paced by its audio times
//! at N× real time — a recording can drive a demo or a load test.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::event::Event;
use crate::grpc::client::ClientConfig;
use crate::grpc::pb;

/// What streaming the calls produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StreamStats {
    pub calls: usize,
    pub events: usize,
    pub acks: usize,
    pub rejections: usize,
    /// Alerts received on the ingest streams, in arrival order per call.
    pub alerts: Vec<pb::Alert>,
    /// Calls whose stream failed (connection refused, broken stream).
    pub failed_calls: Vec<(String, String)>,
}

/// Audio time of an event, for pacing.
fn audio_ms(event: &Event) -> u64 {
    match event {
        Event::Start(_) => 0,
        Event::Fragment(f) => f.end_ms,
        Event::End(e) => e.end_ms,
    }
}

/// Streams `events` (grouped by call) to the server; `speed` 0 means as fast
/// as the server answers.
pub async fn stream_calls(client: &ClientConfig, events: Vec<Event>, speed: f64) -> StreamStats {
    let mut calls: Vec<(String, Vec<Event>)> = Vec::new();
    for event in events {
        let id = event.call_id().to_owned();
        match calls.iter_mut().find(|(c, _)| *c == id) {
            Some((_, list)) => list.push(event),
            None => calls.push((id, vec![event])),
        }
    }
    let mut tasks = Vec::with_capacity(calls.len());
    for (call_id, events) in calls {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let result = stream_one(&client, &events, speed).await;
            (call_id, events.len(), result)
        }));
    }
    let mut stats = StreamStats::default();
    for task in tasks {
        let Ok((call_id, n, result)) = task.await else {
            continue;
        };
        stats.calls += 1;
        stats.events += n;
        match result {
            Ok((acks, rejections, alerts)) => {
                stats.acks += acks;
                stats.rejections += rejections;
                stats.alerts.extend(alerts);
            }
            Err(e) => stats.failed_calls.push((call_id, e)),
        }
    }
    stats
}

type CallResult = Result<(usize, usize, Vec<pb::Alert>), String>;

async fn stream_one(client: &ClientConfig, events: &[Event], speed: f64) -> CallResult {
    let mut client =
        pb::ingest_client::IngestClient::new(client.connect().await.map_err(|e| e.to_string())?);
    let (tx, rx) = mpsc::channel(64);
    let mut replies = client
        .stream_transcript(ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    let wire: Vec<pb::TranscriptEvent> = events.iter().map(pb::TranscriptEvent::from).collect();
    let times: Vec<u64> = events.iter().map(audio_ms).collect();
    let sender = tokio::spawn(async move {
        let started = Instant::now();
        for (event, at_ms) in wire.into_iter().zip(times) {
            if speed > 0.0 {
                let due = Duration::from_secs_f64(at_ms as f64 / 1000.0 / speed);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let (mut acks, mut rejections, mut alerts) = (0, 0, Vec::new());
    use pb::stream_transcript_response::Response;
    loop {
        match replies.message().await {
            Ok(Some(reply)) => match reply.response {
                Some(Response::Ack(_)) => acks += 1,
                Some(Response::Rejection(_)) => rejections += 1,
                Some(Response::Alert(a)) => alerts.push(a),
                None => {}
            },
            Ok(None) => break,
            Err(status) => return Err(status.message().to_owned()),
        }
    }
    let _ = sender.await;
    Ok((acks, rejections, alerts))
}
