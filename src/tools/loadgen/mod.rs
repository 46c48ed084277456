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

use std::time::Duration;

use tonic::Status;

use crate::grpc::client::{ClientConfig, ClientError};

mod command;
mod drive;
mod echo;
mod histogram;
mod procfs;
mod report;
mod script;
mod traffic;

pub use command::{command, CommandError};
use drive::drive;
use echo::{EchoServer, ECHO_THREAD};
use procfs::Measured;
pub use report::{LatencySample, LoadReport, Percentiles, ProcessUsage};

/// Most calls one run may simulate.
pub const MAX_CALLS: usize = 20_000;
/// Streams put on one connection at most: the server allows 1,024
/// concurrent streams per connection by default, and a stream over the
/// limit would wait for a free slot instead of running. More streams raise
/// the number of connections.
pub const STREAMS_PER_CONNECTION: usize = 1_000;

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

#[cfg(test)]
mod tests {
    use super::*;

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
