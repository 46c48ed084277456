//! The run: connect, subscribe to the run's alerts, run one task per
//! stream, wait for the calls and the late alerts, and turn the shared
//! counters into a report. Each stream's reader times every answer against
//! the event it answers.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tonic::{Status, Streaming};

use super::histogram::{percentile, Histogram};
use super::procfs::{cpu_ticks, rss_kib, status_kib, Measured, CLOCK_TICKS_PER_SECOND};
use super::script::Rng;
use super::traffic::{lock, Outstanding, StreamTraffic};
use super::STREAMS_PER_CONNECTION;
use super::{validate, LatencySample, LoadError, LoadOptions, LoadReport, ProcessUsage};
use crate::grpc::client::{AuthChannel, ClientConfig};
use crate::grpc::pb;
use crate::grpc::pb::stream_transcript_response::Response as Reply;

/// How long a call waits for the server to answer its last events.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the Subscribe client waits for late alerts after the calls end.
const ALERT_GRACE: Duration = Duration::from_secs(2);
/// Error messages kept for the report.
const SAMPLE_ERRORS: usize = 8;

/// Counters shared by the calls and the Subscribe client.
pub(super) struct Shared {
    pub(super) sent: AtomicU64,
    acks: AtomicU64,
    rejections: AtomicU64,
    ingest_alerts: AtomicU64,
    pub(super) abusive: AtomicU64,
    /// Round trips of every answer, and of those sent at full load.
    round_trip: Histogram,
    round_trip_steady: Histogram,
    unmatched: AtomicU64,
    /// Send time of the first fragment carrying the words of an abusive
    /// utterance, by (call_id, utterance_id), until its alert arrives.
    pub(super) pending: Mutex<HashMap<(String, String), Instant>>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            sent: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            ingest_alerts: AtomicU64::new(0),
            abusive: AtomicU64::new(0),
            round_trip: Histogram::new(),
            round_trip_steady: Histogram::new(),
            unmatched: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn error(&self, message: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < SAMPLE_ERRORS {
            errors.push(message);
        }
    }
}

pub(super) async fn drive(
    options: &LoadOptions,
    target: &str,
    client: &ClientConfig,
    server: Option<Measured>,
    subscribe: bool,
) -> Result<LoadReport, LoadError> {
    let pid = server.map(|s| s.pid);
    validate(options)?;
    let streams = options.calls.div_ceil(options.calls_per_stream);
    let connections = options
        .connections
        .max(streams.div_ceil(STREAMS_PER_CONNECTION));
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(client.connect().await?);
    }
    // Call ids and the tenant are unique per run, so runs against one
    // long-lived server do not collide, and the subscription sees only
    // this run's alerts.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let run_id = format!("{:x}", Rng::new(nonce).next_u64() & 0xffff_ffff);
    let tenant = format!("loadgen-{run_id}");
    let shared = Arc::new(Shared::new());

    let (stop_alerts, stop_rx) = watch::channel(false);
    let subscriber = if subscribe {
        let mut client = pb::alerts_client::AlertsClient::new(client.connect().await?);
        let stream = client
            .subscribe(pb::SubscribeRequest {
                tenant: tenant.clone(),
                ..Default::default()
            })
            .await
            .map_err(LoadError::Subscribe)?
            .into_inner();
        Some(tokio::spawn(collect_alerts(
            stream,
            shared.clone(),
            stop_rx,
        )))
    } else {
        None
    };

    let before = server.and_then(Measured::cpu_ticks);
    let self_before = cpu_ticks(std::process::id());
    let started = Instant::now();
    let deadline = started + options.duration;
    // Every call is open from the end of the ramp-up to here.
    let full_load_ends = deadline - options.ramp_up;
    let full_load = started + options.ramp_up..full_load_ends;
    let mut stream_tasks = Vec::with_capacity(streams);
    for stream in 0..streams {
        let first = stream * options.calls_per_stream;
        let plans = (first..options.calls.min(first + options.calls_per_stream))
            .map(|index| CallPlan {
                call_id: format!("lg-{run_id}-{index}"),
                tenant: tenant.clone(),
                index,
                seed: options.seed,
                gap: Duration::from_secs_f64(1.0 / options.events_per_second_per_call),
                ramp_up: options.ramp_up,
                lasts: options.duration - options.ramp_up,
                abusive_share: options.abusive_share,
                deadline,
            })
            .collect();
        let channel = channels[stream % connections].clone();
        stream_tasks.push(tokio::spawn(run_stream(
            channel,
            plans,
            shared.clone(),
            full_load.clone(),
        )));
    }

    // Memory while every call is open: just before the first ends.
    let rss_at_full_load = {
        tokio::time::sleep_until(full_load_ends.into()).await;
        pid.and_then(rss_kib)
    };
    let mut failed_calls = 0;
    for (stream, task) in stream_tasks.into_iter().enumerate() {
        let calls_on_it = options
            .calls_per_stream
            .min(options.calls - stream * options.calls_per_stream);
        failed_calls += task.await.unwrap_or(calls_on_it);
    }
    let elapsed = started.elapsed();
    let after = server.and_then(Measured::cpu_ticks);
    let self_after = cpu_ticks(std::process::id());

    let mut samples = Vec::new();
    let mut subscribed_alerts = 0;
    if let Some(subscriber) = subscriber {
        // Late alerts: wait until every abusive utterance has its alert or
        // the grace period is over (a call's repeated threat never gets one).
        let grace = Instant::now() + ALERT_GRACE;
        while Instant::now() < grace
            && !shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = stop_alerts.send(true);
        match subscriber.await {
            Ok(Ok((alerts, received))) => {
                subscribed_alerts = alerts;
                samples = received;
            }
            Ok(Err(status)) => shared.error(format!("Subscribe: {status}")),
            Err(e) => shared.error(format!("Subscribe task: {e}")),
        }
    }
    let timeline: Vec<LatencySample> = samples
        .iter()
        .map(|&(sent, latency)| LatencySample {
            sent_at: sent.saturating_duration_since(started),
            latency,
        })
        .collect();
    let mut latencies: Vec<Duration> = timeline.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let mut steady: Vec<Duration> = timeline
        .iter()
        .filter(|s| s.sent_at >= options.ramp_up && s.sent_at < options.duration - options.ramp_up)
        .map(|s| s.latency)
        .collect();
    steady.sort_unstable();

    let server_ticks = before.zip(after).map(|(b, a)| a.saturating_sub(b));
    let process = server.and_then(|Measured { pid, threads }| {
        let (before, after) = (before?, after?);
        let rss = rss_at_full_load?;
        let cpu_seconds = after.saturating_sub(before) as f64 / CLOCK_TICKS_PER_SECOND;
        Some(ProcessUsage {
            pid,
            cpu_seconds,
            cpu_percent: cpu_seconds / elapsed.as_secs_f64() * 100.0,
            rss_kib: rss,
            peak_rss_kib: status_kib(pid, "VmHWM:").unwrap_or(rss),
            rss_kib_per_call: rss as f64 / options.calls as f64,
            includes_load_generator: pid == std::process::id(),
            threads,
        })
    });
    // This process's CPU, less the server's when it runs here too.
    let load_generator_cpu_percent = self_before.zip(self_after).and_then(|(b, a)| {
        let ours = a.saturating_sub(b);
        let theirs = match server {
            Some(s) if s.pid == std::process::id() => match s.threads {
                Some(_) => server_ticks?,
                None => return None, // cannot tell the two apart
            },
            _ => 0,
        };
        let seconds = ours.saturating_sub(theirs) as f64 / CLOCK_TICKS_PER_SECOND;
        Some(seconds / elapsed.as_secs_f64() * 100.0)
    });
    let acks = shared.acks.load(Ordering::Relaxed);
    let sample_errors =
        std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(LoadReport {
        target: target.to_owned(),
        server: client.url(),
        calls: options.calls,
        connections,
        streams,
        duration: options.duration,
        ramp_up: options.ramp_up,
        elapsed,
        failed_calls,
        sample_errors,
        events_sent: shared.sent.load(Ordering::Relaxed),
        acks,
        rejections: shared.rejections.load(Ordering::Relaxed),
        ingest_alerts: shared.ingest_alerts.load(Ordering::Relaxed),
        offered_events_per_second: options.calls as f64 * options.events_per_second_per_call,
        sent_events_per_second: shared.sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        events_per_second: acks as f64 / elapsed.as_secs_f64(),
        abusive_utterances: shared.abusive.load(Ordering::Relaxed),
        subscribed_alerts,
        latency_samples: latencies.len(),
        latency_p50: percentile(&latencies, 0.50),
        latency_p99: percentile(&latencies, 0.99),
        latency_p999: percentile(&latencies, 0.999),
        latency_max: latencies.last().copied(),
        steady_samples: steady.len(),
        steady_p50: percentile(&steady, 0.50),
        steady_p99: percentile(&steady, 0.99),
        steady_p999: percentile(&steady, 0.999),
        timeline,
        round_trip: shared.round_trip.percentiles(),
        round_trip_steady: shared.round_trip_steady.percentiles(),
        unmatched_answers: shared.unmatched.load(Ordering::Relaxed),
        process,
        load_generator_cpu_percent,
    })
}

/// Reads the subscription until told to stop: the number of alerts, and
/// the latency of each abusive utterance's first alert.
async fn collect_alerts(
    mut stream: Streaming<pb::SubscribeResponse>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<(u64, Vec<(Instant, Duration)>), Status> {
    let mut alerts = 0;
    let mut latencies = Vec::new();
    loop {
        let message = tokio::select! {
            m = stream.message() => m?,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(alert) = message.and_then(|m| m.alert) else {
            break; // the server ended the subscription
        };
        let arrived = Instant::now();
        alerts += 1;
        // The abusive templates are threats of violence, critical in the
        // built-in policy, and critical words raise a provisional alert on
        // the interim that brings them. Lesser alerts citing the same
        // utterance (intimidation on its final, out-of-hours) are counted,
        // not timed.
        if alert.severity != pb::Severity::Critical as i32 {
            continue;
        }
        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        for evidence in &alert.evidence {
            let key = (alert.call_id.clone(), evidence.utterance_id.clone());
            if let Some(sent) = pending.remove(&key) {
                latencies.push((sent, arrived.saturating_duration_since(sent)));
            }
        }
    }
    Ok((alerts, latencies))
}

pub(super) struct CallPlan {
    pub(super) call_id: String,
    pub(super) tenant: String,
    pub(super) index: usize,
    pub(super) seed: u64,
    /// Mean time between fragments.
    pub(super) gap: Duration,
    pub(super) ramp_up: Duration,
    /// How long the call lasts from its start (ends no later than `deadline`).
    pub(super) lasts: Duration,
    pub(super) abusive_share: f64,
    pub(super) deadline: Instant,
}

/// One `StreamTranscript` stream carrying `plans`' calls (one, normally).
/// It opens when its first call starts. Returns how many of its calls
/// failed: all of them when the stream does not open or breaks.
async fn run_stream(
    channel: AuthChannel,
    plans: Vec<CallPlan>,
    shared: Arc<Shared>,
    full_load: Range<Instant>,
) -> usize {
    let count = plans.len();
    let first_id = plans
        .first()
        .map_or_else(String::new, |plan| plan.call_id.clone());
    let answers = Answers {
        call_ids: plans.iter().map(|plan| plan.call_id.clone()).collect(),
        outstanding: Arc::new(Mutex::new(VecDeque::new())),
        full_load,
    };
    let (traffic, finished) =
        StreamTraffic::new(plans, shared.clone(), answers.outstanding.clone());
    let Some(opens) = traffic.next_due() else {
        return 0;
    };
    tokio::time::sleep_until(opens.into()).await;

    let mut client = pb::ingest_client::IngestClient::new(channel);
    let replies = match client.stream_transcript(traffic).await {
        Ok(replies) => replies.into_inner(),
        Err(status) => {
            shared.error(format!(
                "{first_id}: stream did not open: {}",
                status.message()
            ));
            return count;
        }
    };
    // The calls run their course; then the server has DRAIN_TIMEOUT to
    // answer the last events.
    let reader = read_replies(replies, shared.clone(), &answers);
    tokio::pin!(reader);
    let result = tokio::select! {
        result = &mut reader => result,
        _ = finished => match tokio::time::timeout(DRAIN_TIMEOUT, &mut reader).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "server did not finish answering within {} s",
                DRAIN_TIMEOUT.as_secs()
            )),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            shared.error(format!("{first_id}: {e}"));
            count
        }
    }
}

/// What a stream's reader needs to time its answers.
struct Answers {
    call_ids: Vec<String>,
    outstanding: Outstanding,
    full_load: Range<Instant>,
}

impl Answers {
    /// An ack or a rejection arrived: it answers the oldest event waiting
    /// (both services answer a stream's events in order).
    fn answered(&self, shared: &Shared, call_id: &str, seq: u64) {
        let arrived = Instant::now();
        let sent = lock(&self.outstanding).pop_front();
        match sent {
            Some(sent) if sent.seq == seq && self.call_ids[sent.call] == call_id => {
                let round_trip = arrived.saturating_duration_since(sent.at);
                shared.round_trip.record(round_trip);
                if self.full_load.contains(&sent.at) {
                    shared.round_trip_steady.record(round_trip);
                }
            }
            _ => {
                shared.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn read_replies(
    mut replies: Streaming<pb::StreamTranscriptResponse>,
    shared: Arc<Shared>,
    answers: &Answers,
) -> Result<(), String> {
    loop {
        match replies.message().await {
            Ok(Some(reply)) => match reply.response {
                Some(Reply::Ack(ack)) => {
                    shared.acks.fetch_add(1, Ordering::Relaxed);
                    answers.answered(&shared, &ack.call_id, ack.seq);
                }
                Some(Reply::Rejection(r)) => {
                    shared.rejections.fetch_add(1, Ordering::Relaxed);
                    answers.answered(&shared, &r.call_id, r.seq);
                    shared.error(format!(
                        "rejected {} seq {}: {}: {} ({})",
                        r.call_id, r.seq, r.field, r.reason, r.code
                    ));
                }
                Some(Reply::Alert(_)) => {
                    shared.ingest_alerts.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            },
            Ok(None) => return Ok(()),
            Err(status) => return Err(format!("stream broke: {status}")),
        }
    }
}
