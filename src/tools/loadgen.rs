//! `loadgen`: a load generator for a running `serve`.
//!
//! N simulated calls, round-robin over a configurable number of HTTP/2
//! connections, each on its own `StreamTranscript` stream: a start, then
//! utterances of 2–4 interim fragments and a final (Japanese or English,
//! agent and customer, a configurable share of the utterances abusive),
//! paced per call, then an end. A Subscribe client on its own connection
//! times every abusive utterance from the send of the first fragment that
//! carries the words to the arrival of its alert. The server's CPU and RSS
//! come from /proc when its pid is known (same machine).
//!
//! Every answer is timed too: from the moment the event is handed to its
//! stream to the arrival of its ack (or rejection) on the same stream, the
//! round trip.
//!
//! [`run_echo_baseline`] runs the same traffic (same seed, streams, pace)
//! against a minimal tonic echo service started in this process on a
//! runtime of its own: the framework's own round trip, to put the
//! callguard figure in proportion (`round trip p99 callguard / echo`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::grpc::client::{AuthChannel, ClientConfig, ClientError};
use crate::grpc::convert::event_ids;
use crate::grpc::pb;
use crate::grpc::pb::stream_transcript_response::Response as Reply;

/// Most calls one run may simulate.
pub const MAX_CALLS: usize = 20_000;
/// Streams put on one connection at most: the server allows 1,024
/// concurrent streams per connection by default, and a stream over the
/// limit would wait for a free slot instead of running. More streams raise
/// the number of connections.
pub const STREAMS_PER_CONNECTION: usize = 1_000;
/// How long a call waits for the server to answer its last events.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the Subscribe client waits for late alerts after the calls end.
const ALERT_GRACE: Duration = Duration::from_secs(2);
/// Error messages kept for the report.
const SAMPLE_ERRORS: usize = 8;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The server: address, TLS, token.
    pub client: ClientConfig,
    /// Concurrent simulated calls (1 to [`MAX_CALLS`]).
    pub calls: usize,
    /// HTTP/2 connections the calls are spread over (round-robin).
    pub connections: usize,
    /// Calls sharing one `StreamTranscript` stream (DESIGN: one per call is
    /// normal, several may share one, as a media gateway would). 1 = a
    /// stream per call.
    pub calls_per_stream: usize,
    /// How long the calls stream before they end.
    pub duration: Duration,
    /// Mean transcript fragments per second per call (jittered ±50 %).
    pub events_per_second_per_call: f64,
    /// Share of utterances that are abusive (0 to 1).
    pub abusive_share: f64,
    /// The server's process id, to read its CPU and RSS from /proc.
    pub server_pid: Option<u32>,
    /// Seed of the traffic (texts, pacing jitter).
    pub seed: u64,
    /// The calls' starts are spread evenly at random over this time (at
    /// least over one fragment gap), and so are their ends over the same
    /// time before the run ends: each call lasts `duration - ramp_up`.
    /// Zero is the worst case: every call starts at once (each start costs
    /// the server store writes), and every call ends at once.
    pub ramp_up: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            client: ClientConfig::plain("http://127.0.0.1:50051"),
            calls: 1_000,
            connections: 4,
            calls_per_stream: 1,
            duration: Duration::from_secs(30),
            events_per_second_per_call: 3.0,
            abusive_share: 0.01,
            server_pid: None,
            seed: 1,
            ramp_up: Duration::ZERO,
        }
    }
}

/// Why a run could not take place. A call that fails is counted in the
/// report, not an error.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load options: {0}")]
    Options(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("alert subscription failed: {0}")]
    Subscribe(#[source] Status),
    #[error("cannot start the echo service: {0}")]
    Echo(#[source] std::io::Error),
}

/// CPU and memory of the server process over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessUsage {
    pub pid: u32,
    /// User + system CPU time used during the run.
    pub cpu_seconds: f64,
    /// `cpu_seconds` over the run's wall time, in percent (above 100 on
    /// several cores).
    pub cpu_percent: f64,
    /// Resident memory while all calls were open.
    pub rss_kib: u64,
    /// Peak resident memory of the process's life (VmHWM).
    pub peak_rss_kib: u64,
    /// `rss_kib` / calls.
    pub rss_kib_per_call: f64,
    /// The process is this one: the figures include the load generator
    /// (the RSS always; the CPU unless `threads` names the server's own).
    pub includes_load_generator: bool,
    /// The CPU figures are those of this process's threads of that name
    /// only (the in-process echo service's runtime), not the whole process.
    pub threads: Option<&'static str>,
}

/// Percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub p999: Option<Duration>,
    pub max: Option<Duration>,
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p99 {}, p99.9 {}, max {}",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// The figures of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    /// "callguard" or "echo baseline".
    pub target: String,
    pub server: String,
    pub calls: usize,
    /// Connections used (the option, raised to fit [`STREAMS_PER_CONNECTION`]
    /// streams on each).
    pub connections: usize,
    /// `StreamTranscript` streams the calls used.
    pub streams: usize,
    /// The configured streaming time.
    pub duration: Duration,
    /// Over which the calls started.
    pub ramp_up: Duration,
    /// From the first call's start to the last call's last answer.
    pub elapsed: Duration,
    /// Calls whose stream could not open or broke.
    pub failed_calls: usize,
    /// A few of the errors behind failed calls and rejections.
    pub sample_errors: Vec<String>,
    /// Events handed to the streams (starts, fragments, ends).
    pub events_sent: u64,
    pub acks: u64,
    pub rejections: u64,
    /// Alerts received on the ingest streams.
    pub ingest_alerts: u64,
    /// calls × fragments per second per call: the rate once every call
    /// has started.
    pub offered_events_per_second: f64,
    /// events sent / elapsed: what was offered on average over the run,
    /// ramp-up and drain included.
    pub sent_events_per_second: f64,
    /// acks / elapsed. Equal to `sent_events_per_second` when the server
    /// kept up (every event answered).
    pub events_per_second: f64,
    /// Abusive utterances sent.
    pub abusive_utterances: u64,
    /// Alerts of this run received by the Subscribe client.
    pub subscribed_alerts: u64,
    /// Ingest-to-alert latency samples (abusive utterances whose alert
    /// arrived; a call's repeated threat is held back by the cooldown).
    pub latency_samples: usize,
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
    pub latency_p999: Option<Duration>,
    pub latency_max: Option<Duration>,
    /// The same for the utterances sent while every call was open (after
    /// the ramp-up, before the first call ended): the sustained load.
    pub steady_samples: usize,
    pub steady_p50: Option<Duration>,
    pub steady_p99: Option<Duration>,
    pub steady_p999: Option<Duration>,
    /// Every sample in the order the alerts arrived, for a latency log.
    pub timeline: Vec<LatencySample>,
    /// Round trip of every answered event: from the moment the event was
    /// handed to its stream to the arrival of its ack or rejection (to
    /// within 1 %: a histogram). The same measure on callguard and on the
    /// echo baseline, so the two compare directly.
    pub round_trip: Percentiles,
    /// The same for the events sent while every call was open.
    pub round_trip_steady: Percentiles,
    /// Answers that did not match the oldest unanswered event of their
    /// stream (call id and seq): not timed. 0 when answers keep event
    /// order, as both services promise.
    pub unmatched_answers: u64,
    pub process: Option<ProcessUsage>,
    /// CPU of the load generator itself (this process, less the server's
    /// threads when it runs here), in percent of one core over the run.
    pub load_generator_cpu_percent: Option<f64>,
}

impl LoadReport {
    /// This report's events/s over `baseline`'s (callguard / echo).
    pub fn ratio_to(&self, baseline: &LoadReport) -> Option<f64> {
        (baseline.events_per_second > 0.0)
            .then(|| self.events_per_second / baseline.events_per_second)
    }

    /// This report's round-trip p99 at full load over `baseline`'s
    /// (callguard / echo).
    pub fn round_trip_p99_ratio(&self, baseline: &LoadReport) -> Option<f64> {
        let ours = self.round_trip_steady.p99?.as_secs_f64();
        let theirs = baseline.round_trip_steady.p99?.as_secs_f64();
        (theirs > 0.0).then(|| ours / theirs)
    }
}

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} calls on {} streams over {} connections, {:.1} s with {:.1} s ramp-up (elapsed {:.1} s), {}",
            self.target,
            self.calls,
            self.streams,
            self.connections,
            self.duration.as_secs_f64(),
            self.ramp_up.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            self.server
        )?;
        writeln!(
            f,
            "  events      sent {}, acked {}, rejected {}; failed calls {}",
            self.events_sent, self.acks, self.rejections, self.failed_calls
        )?;
        writeln!(
            f,
            "  throughput  {:.0} events/s acked of {:.0} sent, over the run (full load: {:.0} events/s)",
            self.events_per_second, self.sent_events_per_second, self.offered_events_per_second
        )?;
        writeln!(
            f,
            "  alerts      {} abusive utterances; {} alerts on ingest streams, {} on Subscribe",
            self.abusive_utterances, self.ingest_alerts, self.subscribed_alerts
        )?;
        writeln!(
            f,
            "  latency     p50 {}, p99 {}, p99.9 {}, max {} ({} samples, ingest to Subscribe)",
            ms(self.latency_p50),
            ms(self.latency_p99),
            ms(self.latency_p999),
            ms(self.latency_max),
            self.latency_samples
        )?;
        writeln!(
            f,
            "  full load   p50 {}, p99 {}, p99.9 {} ({} samples sent while every call was open)",
            ms(self.steady_p50),
            ms(self.steady_p99),
            ms(self.steady_p999),
            self.steady_samples
        )?;
        writeln!(
            f,
            "  round trip  {} ({} answers, send to ack); {} unmatched",
            self.round_trip, self.round_trip.samples, self.unmatched_answers
        )?;
        writeln!(
            f,
            "  rt at full  {} ({} answers to events sent while every call was open)",
            self.round_trip_steady, self.round_trip_steady.samples
        )?;
        match &self.process {
            Some(p) => writeln!(
                f,
                "  server      pid {}{}: CPU {:.2} s ({:.0} % of the run), RSS {} KiB ({:.1} KiB per call), peak {} KiB",
                p.pid,
                match (p.threads, p.includes_load_generator) {
                    (Some(_), _) => " (CPU: its own threads; RSS: the process, load generator included)",
                    (None, true) => " (this process, load generator included)",
                    (None, false) => "",
                },
                p.cpu_seconds,
                p.cpu_percent,
                p.rss_kib,
                p.rss_kib_per_call,
                p.peak_rss_kib
            )?,
            None => writeln!(f, "  server      CPU and RSS unknown (no pid or no /proc)")?,
        }
        if let Some(cpu) = self.load_generator_cpu_percent {
            writeln!(f, "  loadgen     CPU {cpu:.0} % of the run")?;
        }
        for e in &self.sample_errors {
            writeln!(f, "  error       {e}")?;
        }
        Ok(())
    }
}

/// Runs the traffic against `options.client` and measures it.
pub async fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    let server = options
        .server_pid
        .map(|pid| Measured { pid, threads: None });
    drive(options, "callguard", &options.client, server, true).await
}

/// Starts a minimal tonic echo service (every event answered with one ack,
/// made when the connection asks for it: no task, no queue) on
/// 127.0.0.1:0 in this process, on a runtime and threads of its own as a
/// server process would have, runs the same traffic against it (same seed,
/// streams, connections, pace), stops it. `options.client` and
/// `options.server_pid` are not used; the CPU is the echo threads', the
/// RSS this process's (load generator included).
pub async fn run_echo_baseline(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    let echo = EchoServer::start()?;
    let echo_client = ClientConfig::plain(format!("http://{}", echo.addr));
    let server = Measured {
        pid: std::process::id(),
        threads: Some(ECHO_THREAD),
    };
    let report = drive(options, "echo baseline", &echo_client, Some(server), false).await;
    echo.stop().await;
    report
}

/// Whose CPU and RSS a run reports: a process, or the threads of one name
/// in it.
#[derive(Clone, Copy)]
struct Measured {
    pid: u32,
    threads: Option<&'static str>,
}

impl Measured {
    fn cpu_ticks(self) -> Option<u64> {
        match self.threads {
            None => cpu_ticks(self.pid),
            Some(name) => threads_cpu_ticks(name),
        }
    }
}

// ---------------------------------------------------------------------------
// The run.

/// Counters shared by the calls and the Subscribe client.
struct Shared {
    sent: AtomicU64,
    acks: AtomicU64,
    rejections: AtomicU64,
    ingest_alerts: AtomicU64,
    abusive: AtomicU64,
    /// Round trips of every answer, and of those sent at full load.
    round_trip: Histogram,
    round_trip_steady: Histogram,
    unmatched: AtomicU64,
    /// Send time of the first fragment carrying the words of an abusive
    /// utterance, by (call_id, utterance_id), until its alert arrives.
    pending: Mutex<HashMap<(String, String), Instant>>,
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

fn validate(options: &LoadOptions) -> Result<(), LoadError> {
    let bad = |m: String| Err(LoadError::Options(m));
    if options.calls == 0 || options.calls > MAX_CALLS {
        return bad(format!(
            "calls must be 1 to {MAX_CALLS}, not {}",
            options.calls
        ));
    }
    if options.connections == 0 {
        return bad("connections must be at least 1".to_owned());
    }
    if options.calls_per_stream == 0 {
        return bad("calls per stream must be at least 1".to_owned());
    }
    let eps = options.events_per_second_per_call;
    if !(eps > 0.0 && eps <= 100.0) {
        return bad(format!(
            "events per second per call must be above 0 and at most 100, not {eps}"
        ));
    }
    if !(0.0..=1.0).contains(&options.abusive_share) {
        return bad(format!(
            "abusive share must be between 0 and 1, not {}",
            options.abusive_share
        ));
    }
    if options.duration.is_zero() {
        return bad("duration must be above 0".to_owned());
    }
    if options.ramp_up * 2 >= options.duration {
        return bad(
            "the ramp-up (and the ramp-down, as long) must leave time at full load: \
             make it less than half the duration"
                .to_owned(),
        );
    }
    Ok(())
}

async fn drive(
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

/// One abusive utterance's alert: when its words were sent (from the start
/// of the run) and how long the alert took to reach the Subscribe client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySample {
    pub sent_at: Duration,
    pub latency: Duration,
}

impl LoadReport {
    /// The samples as CSV (`sent_s,latency_ms`), to plot latency over a run.
    pub fn write_timeline(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "sent_s,latency_ms")?;
        for sample in &self.timeline {
            writeln!(
                out,
                "{:.3},{:.3}",
                sample.sent_at.as_secs_f64(),
                sample.latency.as_secs_f64() * 1e3
            )?;
        }
        out.flush()
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
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

// ---------------------------------------------------------------------------
// One call.

struct CallPlan {
    call_id: String,
    tenant: String,
    index: usize,
    seed: u64,
    /// Mean time between fragments.
    gap: Duration,
    ramp_up: Duration,
    /// How long the call lasts from its start (ends no later than `deadline`).
    lasts: Duration,
    abusive_share: f64,
    deadline: Instant,
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

/// The events of one stream's calls, made when the connection asks for
/// the next one: each call's start at its start time, its fragments at its
/// pace, its end once it has lasted its time. One task and one timer per
/// stream, not per call, so the load generator leaves the CPU it shares
/// with the server to the server; and a pull, so a server that falls
/// behind slows the calls down instead of queueing their events.
struct StreamTraffic {
    calls: Vec<CallTraffic>,
    /// (due, index into `calls`), earliest first.
    schedule: BinaryHeap<Reverse<(Instant, usize)>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    shared: Arc<Shared>,
    /// Events handed to the stream and not yet answered, oldest first.
    outstanding: Outstanding,
    /// Told (or dropped) when the last call has ended.
    finished: Option<oneshot::Sender<()>>,
}

struct CallTraffic {
    plan: CallPlan,
    language: Lang,
    phase: Phase,
    /// When the next event is due.
    due: Instant,
    /// When the call stops talking and ends.
    ends: Instant,
    started: Instant,
    seq: u64,
}

enum Phase {
    /// The start is next; the script will take the generator.
    Starting(Rng),
    Talking(Script),
    Ending,
    Done,
}

impl StreamTraffic {
    fn new(
        plans: Vec<CallPlan>,
        shared: Arc<Shared>,
        outstanding: Outstanding,
    ) -> (StreamTraffic, oneshot::Receiver<()>) {
        let now = Instant::now();
        let calls: Vec<CallTraffic> = plans
            .into_iter()
            .map(|plan| {
                let mut rng =
                    Rng::new(plan.seed ^ (plan.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                // Spread the calls' starts over the ramp-up (at least the first gap).
                let due = now + plan.ramp_up.max(plan.gap).mul_f64(rng.unit());
                let language = if rng.chance(0.6) { Lang::Ja } else { Lang::En };
                CallTraffic {
                    ends: (due + plan.lasts).min(plan.deadline),
                    plan,
                    language,
                    phase: Phase::Starting(rng),
                    due,
                    started: due,
                    seq: 0,
                }
            })
            .collect();
        let schedule = calls
            .iter()
            .enumerate()
            .map(|(i, call)| Reverse((call.due, i)))
            .collect();
        let (finished, finished_rx) = oneshot::channel();
        let traffic = StreamTraffic {
            calls,
            schedule,
            timer: Box::pin(tokio::time::sleep_until(now.into())),
            shared,
            outstanding,
            finished: Some(finished),
        };
        (traffic, finished_rx)
    }

    fn next_due(&self) -> Option<Instant> {
        self.schedule.peek().map(|Reverse((due, _))| *due)
    }
}

impl Stream for StreamTraffic {
    type Item = pb::TranscriptEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(due) = this.next_due() else {
                if let Some(finished) = this.finished.take() {
                    let _ = finished.send(());
                }
                return Poll::Ready(None);
            };
            if this.timer.deadline() != due.into() {
                this.timer.as_mut().reset(due.into());
            }
            ready!(this.timer.as_mut().poll(cx));
            let Some(Reverse((_, index))) = this.schedule.pop() else {
                continue;
            };
            let call = &mut this.calls[index];
            let event = call.next_event(&this.shared);
            if !matches!(call.phase, Phase::Done) {
                this.schedule.push(Reverse((call.due, index)));
            }
            if let Some(event) = event {
                this.shared.sent.fetch_add(1, Ordering::Relaxed);
                let seq = match &event {
                    pb::transcript_event::Event::Fragment(f) => f.seq,
                    _ => 0, // what the service acks a start or an end with
                };
                lock(&this.outstanding).push_back(Sent {
                    call: index,
                    seq,
                    at: Instant::now(),
                });
                return Poll::Ready(Some(pb::TranscriptEvent { event: Some(event) }));
            }
        }
    }
}

impl CallTraffic {
    /// The call's event that is due now, and when its next one is.
    fn next_event(&mut self, shared: &Shared) -> Option<pb::transcript_event::Event> {
        let now = Instant::now();
        let event = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Starting(rng) => {
                self.started = now;
                self.phase =
                    Phase::Talking(Script::new(self.language, self.plan.abusive_share, rng));
                pb::transcript_event::Event::Start(pb::CallStart {
                    call_id: self.plan.call_id.clone(),
                    tenant: self.plan.tenant.clone(),
                    agent_id: format!("agent-{}", self.plan.index % 200),
                    // Unique per run: a caller seen in an earlier run would be a
                    // repeat caller and raise alerts of its own.
                    caller_id: format!("{}-caller", self.plan.call_id),
                    language: self.language.code().to_owned(),
                    ..Default::default()
                })
            }
            Phase::Talking(mut script) => {
                self.seq += 1;
                let audio_ms = self.started.elapsed().as_millis() as u64;
                let (fragment, abusive_now) = script.next(&self.plan.call_id, self.seq, audio_ms);
                if abusive_now {
                    shared.abusive.fetch_add(1, Ordering::Relaxed);
                    shared
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry((self.plan.call_id.clone(), fragment.utterance_id.clone()))
                        .or_insert(now);
                }
                self.phase = Phase::Talking(script);
                pb::transcript_event::Event::Fragment(fragment)
            }
            Phase::Ending => {
                return Some(pb::transcript_event::Event::End(pb::CallEnd {
                    call_id: self.plan.call_id.clone(),
                    end_ms: self.started.elapsed().as_millis() as u64,
                }));
            }
            Phase::Done => return None,
        };
        // The next fragment, jittered ±50 % around the pace; past the
        // call's time, its end at once.
        if let Phase::Talking(script) = &mut self.phase {
            self.due += self.plan.gap.mul_f64(0.5 + script.rng.unit());
            if self.due >= self.ends {
                self.phase = Phase::Ending;
                self.due = now;
            } else if now > self.due + Duration::from_secs(1) {
                // A call that fell far behind (slow server) does not burst
                // to catch up.
                self.due = now;
            }
        }
        Some(event)
    }
}

/// An event handed to its stream, waiting for its answer.
struct Sent {
    /// Index of its call among the stream's.
    call: usize,
    seq: u64,
    at: Instant,
}

type Outstanding = Arc<Mutex<VecDeque<Sent>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

// ---------------------------------------------------------------------------
// Traffic: built-in utterance templates, split into ASR-like fragments.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    Ja,
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    fn separator(self) -> &'static str {
        match self {
            Lang::Ja => "",
            Lang::En => " ",
        }
    }
}

/// An utterance, in the pieces an ASR hypothesis grows by; `abusive` is the
/// index of the piece carrying the abusive words.
struct Template {
    parts: &'static [&'static str],
    abusive: Option<usize>,
}

const fn plain(parts: &'static [&'static str]) -> Template {
    Template {
        parts,
        abusive: None,
    }
}

const fn abusive(parts: &'static [&'static str], at: usize) -> Template {
    Template {
        parts,
        abusive: Some(at),
    }
}

const JA_CUSTOMER: &[Template] = &[
    plain(&[
        "すみません、",
        "先月の請求について",
        "確認したいことが",
        "あるんですが",
    ]),
    plain(&[
        "注文した商品が",
        "まだ届いていなくて",
        "どうなっているのか",
        "教えてください",
    ]),
    plain(&[
        "昨日も電話したんですけど",
        "折り返しの連絡が",
        "なかったんです",
    ]),
    plain(&["ログインしようとすると", "エラーが出て", "先に進めません"]),
    plain(&["契約内容を", "変更したいので", "手続きを教えてもらえますか"]),
    plain(&["はい、", "そうです、", "その番号で合っています"]),
];
const JA_AGENT: &[Template] = &[
    plain(&["お電話ありがとうございます、", "担当の佐藤でございます"]),
    plain(&["ご不便をおかけして", "大変申し訳ございません"]),
    plain(&["確認いたしますので", "少々お待ちいただけますか"]),
    plain(&["お客様の", "ご登録番号を", "お伺いしてもよろしいでしょうか"]),
    plain(&["お待たせいたしました、", "ただいま確認が取れました"]),
];
const JA_ABUSIVE: &[Template] = &[
    abusive(&["いい加減にしろよ、", "ぶっ殺すぞ"], 1),
    abusive(&["ふざけるな、", "お前", "ぶっ殺すぞ"], 2),
    abusive(&["今からそっちに行って", "ぶっ殺してやる"], 1),
];
const EN_CUSTOMER: &[Template] = &[
    plain(&[
        "Hi, I'm calling about",
        "my last bill,",
        "there's a charge I don't recognise",
    ]),
    plain(&[
        "I ordered a laptop",
        "two weeks ago",
        "and it still hasn't arrived",
    ]),
    plain(&["I already called yesterday", "and nobody called me back"]),
    plain(&["the app keeps showing an error", "when I try to log in"]),
    plain(&["yes,", "that's right,", "the number ends in four two"]),
];
const EN_AGENT: &[Template] = &[
    plain(&[
        "Thank you for calling,",
        "my name is Alex,",
        "how can I help you today?",
    ]),
    plain(&[
        "I'm sorry for the inconvenience,",
        "let me check that for you",
    ]),
    plain(&["Could you confirm", "the account number", "for me please?"]),
    plain(&["Thanks for waiting,", "I can see the order now"]),
];
const EN_ABUSIVE: &[Template] = &[
    abusive(
        &[
            "Listen to me,",
            "I will kill you",
            "if this isn't fixed today",
        ],
        1,
    ),
    abusive(&["I'm telling you,", "I will kill you"], 1),
];

/// The utterance being spoken.
struct Current {
    template: &'static Template,
    speaker: pb::Speaker,
    id: String,
    /// Interim fragments before the final (2 to 4).
    interims: usize,
    /// Fragments sent so far.
    sent: usize,
    start_ms: u64,
}

/// A call's conversation, one fragment at a time.
struct Script {
    language: Lang,
    abusive_share: f64,
    rng: Rng,
    utterances: u64,
    current: Option<Current>,
}

impl Script {
    fn new(language: Lang, abusive_share: f64, rng: Rng) -> Script {
        Script {
            language,
            abusive_share,
            rng,
            utterances: 0,
            current: None,
        }
    }

    fn begin(&mut self, now_ms: u64) -> Current {
        let (customer, agent, abuse) = match self.language {
            Lang::Ja => (JA_CUSTOMER, JA_AGENT, JA_ABUSIVE),
            Lang::En => (EN_CUSTOMER, EN_AGENT, EN_ABUSIVE),
        };
        let (list, speaker) = if self.rng.chance(self.abusive_share) {
            (abuse, pb::Speaker::Customer)
        } else if self.rng.chance(0.5) {
            (customer, pb::Speaker::Customer)
        } else {
            (agent, pb::Speaker::Agent)
        };
        self.utterances += 1;
        Current {
            template: &list[self.rng.below(list.len())],
            speaker,
            id: format!("u{}", self.utterances),
            interims: 2 + self.rng.below(3),
            sent: 0,
            start_ms: now_ms,
        }
    }

    /// The next fragment, and whether it is the first to carry the words of
    /// an abusive utterance.
    fn next(&mut self, call_id: &str, seq: u64, now_ms: u64) -> (pb::Fragment, bool) {
        let mut current = match self.current.take() {
            Some(c) => c,
            None => self.begin(now_ms),
        };
        let parts = current.template.parts;
        let shown_before = shown(parts.len(), current.interims, current.sent);
        current.sent += 1;
        let is_final = current.sent > current.interims;
        let shown_now = shown(parts.len(), current.interims, current.sent);
        let abusive_now = current
            .template
            .abusive
            .is_some_and(|at| shown_before <= at && at < shown_now);
        let fragment = pb::Fragment {
            call_id: call_id.to_owned(),
            seq,
            speaker: current.speaker as i32,
            text: parts[..shown_now].join(self.language.separator()),
            is_final,
            utterance_id: current.id.clone(),
            start_ms: current.start_ms,
            end_ms: now_ms.max(current.start_ms),
            language: String::new(), // the call's
            loudness_dbfs: None,
        };
        if !is_final {
            self.current = Some(current);
        }
        (fragment, abusive_now)
    }
}

/// Parts shown by the `sent`-th fragment of an utterance of `parts` pieces
/// with `interims` interim fragments (the final shows them all).
fn shown(parts: usize, interims: usize, sent: usize) -> usize {
    if sent == 0 {
        0
    } else if sent > interims {
        parts
    } else {
        (sent * parts).div_ceil(interims + 1).clamp(1, parts)
    }
}

/// SplitMix64: small, seedable, good enough for traffic shapes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// Server process figures from /proc (Linux; None elsewhere).

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ). It is 100 on
/// every mainstream Linux build; reading sysconf(_SC_CLK_TCK) would need
/// libc and unsafe code, which this crate forbids.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces;
    // the fields after its closing parenthesis start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// utime + stime of this process's threads called `name`, in clock ticks.
fn threads_cpu_ticks(name: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let comm = stat
            .find('(')
            .zip(stat.rfind(')'))
            .map(|(open, close)| &stat[open + 1..close]);
        if comm == Some(name) {
            total += parse_cpu_ticks(&stat)?;
        }
    }
    Some(total)
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A "Key:   123 kB" line of /proc/<pid>/status.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------
// Round-trip histogram.

/// Values below this are counted one microsecond per bucket.
const LINEAR_US: u64 = 256;
/// Buckets per doubling above that: 1/128 wide, under 0.8 % error.
const SUB_BUCKETS: usize = 128;
const BUCKETS: usize = LINEAR_US as usize + 56 * SUB_BUCKETS;

/// Latencies in microseconds, counted with atomics so that every stream's
/// reader records into one without a lock or a sample kept: millions of
/// answers a run.
struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Nearest-rank percentiles, each the low edge of its bucket; the
    /// maximum is exact.
    fn percentiles(&self) -> Percentiles {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let samples: u64 = counts.iter().sum();
        let at = |p: f64| -> Option<Duration> {
            if samples == 0 {
                return None;
            }
            let rank = ((p * samples as f64).ceil() as u64).clamp(1, samples);
            let mut seen = 0;
            counts.iter().enumerate().find_map(|(i, &n)| {
                seen += n;
                (seen >= rank).then(|| Duration::from_micros(bucket_floor(i)))
            })
        };
        Percentiles {
            samples,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: (samples > 0).then(|| Duration::from_micros(self.max_us.load(Ordering::Relaxed))),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR_US {
        return us as usize;
    }
    // us >> shift is in [128, 256): its top 8 bits.
    let shift = 63 - us.leading_zeros() as usize - 7;
    let index =
        LINEAR_US as usize + (shift - 1) * SUB_BUCKETS + ((us >> shift) as usize - SUB_BUCKETS);
    index.min(BUCKETS - 1)
}

fn bucket_floor(index: usize) -> u64 {
    if index < LINEAR_US as usize {
        return index as u64;
    }
    let above = index - LINEAR_US as usize;
    let shift = above / SUB_BUCKETS + 1;
    ((SUB_BUCKETS + above % SUB_BUCKETS) as u64) << shift
}

// ---------------------------------------------------------------------------
// The echo baseline.

/// Name of the echo service's runtime threads, to tell their CPU from the
/// load generator's (/proc/self/task/*/comm).
const ECHO_THREAD: &str = "cg-echo";

/// Answers every event with one ack and does nothing else: no task and no
/// queue of its own, each ack made when the connection polls for the next
/// reply. The least a tonic service can do for a stream.
struct Echo;

type EchoReplies = Pin<Box<dyn Stream<Item = Result<pb::StreamTranscriptResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ingest_server::Ingest for Echo {
    type StreamTranscriptStream = EchoReplies;

    async fn stream_transcript(
        &self,
        request: Request<Streaming<pb::TranscriptEvent>>,
    ) -> Result<Response<Self::StreamTranscriptStream>, Status> {
        let replies = request.into_inner().map(|event| {
            let (call_id, seq) = event_ids(&event?);
            Ok(pb::StreamTranscriptResponse {
                response: Some(Reply::Ack(pb::Ack {
                    call_id,
                    seq,
                    duplicate: false,
                })),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// The echo service on a multi-threaded runtime of its own (as many
/// workers as cores, like `serve`'s), so that it is scheduled as a server
/// process would be, not on the load generator's workers.
struct EchoServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Runtime,
}

impl EchoServer {
    fn start() -> Result<EchoServer, LoadError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(LoadError::Echo)?;
        listener.set_nonblocking(true).map_err(LoadError::Echo)?;
        let addr = listener.local_addr().map_err(LoadError::Echo)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(ECHO_THREAD)
            .build()
            .map_err(LoadError::Echo)?;
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(LoadError::Echo)?
        };
        let (stop, mut stop_rx) = watch::channel(false);
        // The same stream limit per connection as `serve`.
        let streams = crate::config::Limits::default().max_streams_per_connection;
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(streams))
            .add_service(pb::ingest_server::IngestServer::new(Echo));
        let task = runtime.spawn(async move {
            let stopped = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = server
                .serve_with_incoming_shutdown(crate::serve::no_delay(listener), stopped)
                .await
            {
                tracing::warn!(error = %e, "echo service failed");
            }
        });
        Ok(EchoServer {
            addr,
            stop,
            task,
            runtime,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        // Dropping a runtime would block this one's worker.
        self.runtime.shutdown_background();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Some(Duration::from_millis(500)));
        assert_eq!(percentile(&samples, 0.99), Some(Duration::from_millis(990)));
        assert_eq!(
            percentile(&samples, 0.999),
            Some(Duration::from_millis(999))
        );
        assert_eq!(
            percentile(&samples[..1], 0.999),
            Some(Duration::from_millis(1))
        );
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn the_histogram_is_within_one_percent() {
        for us in (0..5_000).chain([65_535, 65_536, 1_000_000, 123_456_789, u64::MAX]) {
            let floor = bucket_floor(bucket_of(us));
            assert!(floor <= us, "{us}: {floor}");
            assert!(us - floor <= us / 128, "{us}: {floor}");
        }
        for pair in (0..BUCKETS).collect::<Vec<_>>().windows(2) {
            assert!(bucket_floor(pair[0]) < bucket_floor(pair[1]), "{pair:?}");
            assert_eq!(bucket_of(bucket_floor(pair[1])), pair[1]);
        }
        let histogram = Histogram::new();
        assert_eq!(histogram.percentiles(), Percentiles::default());
        for ms in 1..=1000 {
            histogram.record(Duration::from_millis(ms));
        }
        let p = histogram.percentiles();
        assert_eq!(p.samples, 1000);
        assert_eq!(p.max, Some(Duration::from_millis(1000)));
        for (got, want) in [(p.p50, 500_000.0), (p.p99, 990_000.0), (p.p999, 999_000.0)] {
            let got = got.unwrap().as_micros() as f64;
            assert!(got <= want && got >= want * 0.99, "{got} for {want}");
        }
    }

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (tokio rt (x)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 37 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(187));
        let status = "Name:\tcallguard\nVmHWM:\t   81234 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(51_200));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(81_234));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn utterances_grow_to_a_final_and_flag_the_abusive_fragment_once() {
        let mut script = Script::new(Lang::Ja, 1.0, Rng::new(7));
        let mut flagged = 0;
        let mut texts = Vec::new();
        for seq in 1..=10 {
            let (f, abusive_now) = script.next("c", seq, seq * 300);
            flagged += usize::from(abusive_now);
            texts.push(f.text.clone());
            if f.is_final {
                assert!(f.text.contains("殺"), "{}", f.text);
                assert!((3..=5).contains(&seq), "2 to 4 interims, then the final");
                break;
            }
        }
        assert_eq!(flagged, 1, "{texts:?}");
        for pair in texts.windows(2) {
            assert!(pair[1].starts_with(pair[0].as_str()), "{pair:?}");
        }
    }

    #[test]
    fn bad_options_are_refused() {
        for options in [
            LoadOptions {
                calls: 0,
                ..LoadOptions::default()
            },
            LoadOptions {
                calls: MAX_CALLS + 1,
                ..LoadOptions::default()
            },
            LoadOptions {
                connections: 0,
                ..LoadOptions::default()
            },
            LoadOptions {
                calls_per_stream: 0,
                ..LoadOptions::default()
            },
            LoadOptions {
                events_per_second_per_call: 0.0,
                ..LoadOptions::default()
            },
            LoadOptions {
                abusive_share: 1.5,
                ..LoadOptions::default()
            },
            LoadOptions {
                duration: Duration::from_secs(20),
                ramp_up: Duration::from_secs(10),
                ..LoadOptions::default()
            },
        ] {
            assert!(matches!(validate(&options), Err(LoadError::Options(_))));
        }
        assert!(validate(&LoadOptions::default()).is_ok());
    }
}
