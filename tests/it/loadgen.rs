//! Load generator smoke runs: a few calls for a few seconds against an
//! in-process server and the echo baseline. Only that events flowed and
//! alerts arrived is asserted; no timing (machines are noisy).

use callguard::grpc::client::ClientConfig;
use std::time::Duration;

use callguard::tools::loadgen::{run, run_echo_baseline, LoadOptions};

use crate::support::TestServer;

fn smoke(server: String) -> LoadOptions {
    LoadOptions {
        client: ClientConfig::plain(server),
        calls: 20,
        connections: 2,
        duration: Duration::from_secs(3),
        events_per_second_per_call: 5.0,
        abusive_share: 0.2,
        server_pid: Some(std::process::id()),
        seed: 7,
        ..LoadOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_run_streams_events_and_times_alerts() {
    let server = TestServer::spawn().await;
    let report = run(&smoke(server.url())).await.expect("the run completes");
    println!("{report}");
    assert_eq!(report.failed_calls, 0, "{:?}", report.sample_errors);
    assert!(report.acks > 0, "{report}");
    assert_eq!(report.rejections, 0, "{:?}", report.sample_errors);
    assert!(report.abusive_utterances > 0, "{report}");
    assert!(report.latency_samples > 0, "{report}");
    assert!(report.latency_p50 <= report.latency_p999);
    // No ramp-up: every sample is at full load; the log has them all.
    assert_eq!(report.steady_samples, report.latency_samples);
    let mut log = Vec::new();
    report.write_timeline(&mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert_eq!(log.lines().next(), Some("sent_s,latency_ms"));
    assert_eq!(log.lines().count(), report.latency_samples + 1);
    let process = report.process.as_ref().expect("/proc figures on Linux");
    assert!(process.rss_kib > 0 && process.includes_load_generator);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_can_share_a_stream() {
    // 20 calls, 7 per stream: 3 streams, the last with 6 calls.
    let server = TestServer::spawn().await;
    let options = LoadOptions {
        calls_per_stream: 7,
        ..smoke(server.url())
    };
    let report = run(&options).await.expect("the run completes");
    println!("{report}");
    assert_eq!(report.streams, 3);
    assert_eq!(report.failed_calls, 0, "{:?}", report.sample_errors);
    assert_eq!(report.rejections, 0, "{:?}", report.sample_errors);
    // Every event answered: 20 starts, the fragments, 20 ends; and every
    // answer timed against its own event, though calls share the stream.
    assert_eq!(report.acks, report.events_sent, "{report}");
    assert_eq!(report.round_trip.samples, report.acks, "{report}");
    assert_eq!(report.unmatched_answers, 0, "{report}");
    assert!(report.events_sent > 40, "{report}");
    assert!(report.latency_samples > 0, "{report}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_echo_baseline_answers_the_same_traffic() {
    let report = run_echo_baseline(&smoke(String::new()))
        .await
        .expect("the baseline completes");
    println!("{report}");
    assert_eq!(report.failed_calls, 0, "{:?}", report.sample_errors);
    assert!(report.events_sent > 0 && report.acks > 0, "{report}");
    assert_eq!(report.latency_samples, 0, "the echo raises no alerts");
    // Every ack timed, in order; the CPU is the echo's own threads'.
    assert_eq!(report.round_trip.samples, report.acks, "{report}");
    assert_eq!(report.round_trip_steady.samples, report.acks, "{report}");
    assert_eq!(report.unmatched_answers, 0, "{report}");
    assert!(report.round_trip.p50 <= report.round_trip.p99);
    let process = report.process.as_ref().expect("/proc figures on Linux");
    assert_eq!(process.threads, Some("cg-echo"));
    assert!(report.load_generator_cpu_percent.is_some(), "{report}");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_panic() {
    // Bind and drop a listener: a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let options = LoadOptions {
        client: ClientConfig::plain(format!("http://{addr}")),
        calls: 1,
        connections: 1,
        duration: Duration::from_millis(100),
        ..LoadOptions::default()
    };
    let error = run(&options).await.unwrap_err();
    assert!(
        error.to_string().starts_with("cannot connect to"),
        "{error}"
    );
}

/// A real measurement, by hand: start `callguard serve` and run
/// `LOADGEN_SERVER=http://127.0.0.1:PORT LOADGEN_PID=PID LOADGEN_CALLS=1000
/// LOADGEN_SECONDS=10 cargo test --release --test it loadgen::measure --
/// --ignored --nocapture` (LOADGEN_CONNECTIONS, LOADGEN_RATE, LOADGEN_RAMP_UP optional).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement against a server started by hand"]
async fn measure() {
    let var = |name: &str| std::env::var(name).ok();
    let number = |name: &str, default: f64| var(name).map_or(default, |v| v.parse().unwrap());
    let options = LoadOptions {
        client: ClientConfig::plain(
            var("LOADGEN_SERVER").expect("LOADGEN_SERVER=http://HOST:PORT"),
        ),
        calls: number("LOADGEN_CALLS", 1_000.0) as usize,
        connections: number("LOADGEN_CONNECTIONS", 4.0) as usize,
        duration: Duration::from_secs_f64(number("LOADGEN_SECONDS", 10.0)),
        events_per_second_per_call: number("LOADGEN_RATE", 3.0),
        server_pid: var("LOADGEN_PID").map(|p| p.parse().unwrap()),
        ramp_up: Duration::from_secs_f64(number("LOADGEN_RAMP_UP", 0.0)),
        ..LoadOptions::default()
    };
    let real = run(&options).await.unwrap();
    println!("{real}");
    let echo = run_echo_baseline(&options).await.unwrap();
    println!("{echo}");
    if let Some(ratio) = real.ratio_to(&echo) {
        println!("events/s callguard / echo: {ratio:.2}");
    }
}
