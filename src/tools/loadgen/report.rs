//! The figures of one run and how they print: the report, its
//! percentiles, the server process's usage, the latency timeline as CSV.

use std::fmt;
use std::time::Duration;

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
    /// Connections used (the option, raised to fit
    /// [`STREAMS_PER_CONNECTION`](super::STREAMS_PER_CONNECTION) streams on
    /// each).
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
