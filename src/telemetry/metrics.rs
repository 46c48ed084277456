//! Metric names in one place (`callguard_<noun>_<unit>[_total]`), with
//! bounded labels only: never a call id, tenant or caller. What each one
//! measures is its `# HELP` text in [`HELP`].

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS: &str = "callguard_events_total";
pub const REJECTIONS: &str = "callguard_rejections_total";
pub const ALERTS: &str = "callguard_alerts_total";
pub const ACTIVE_CALLS: &str = "callguard_active_calls";
pub const SUBSCRIBERS: &str = "callguard_subscribers";
pub const CONSOLE_STREAMS: &str = "callguard_console_streams";
pub const INGEST_TO_ALERT: &str = "callguard_ingest_to_alert_seconds";
pub const SUBSCRIBER_CATCHUPS: &str = "callguard_subscriber_catchups_total";
pub const ALERTS_UNSTORED: &str = "callguard_alerts_unstored_total";
pub const STORE_ERRORS: &str = "callguard_store_errors_total";
pub const COMMIT_GROUP: &str = "callguard_commit_group_alerts";
pub const CHECKPOINT_SECONDS: &str = "callguard_store_checkpoint_seconds";
pub const STORE_WRITE_SECONDS: &str = "callguard_store_write_seconds";
pub const CONNECTIONS: &str = "callguard_connections";
pub const CONNECTIONS_REFUSED: &str = "callguard_connections_refused_total";
pub const CONNECTIONS_TIMED_OUT: &str = "callguard_connections_timed_out_total";
pub const AUTH_FAILURES: &str = "callguard_auth_failures_total";
pub const WEBHOOK_DELIVERED: &str = "callguard_webhook_delivered_total";
pub const WEBHOOK_FAILURES: &str = "callguard_webhook_failures_total";
pub const WEBHOOK_REJECTED: &str = "callguard_webhook_rejected_total";
pub const WEBHOOK_RETRYING: &str = "callguard_webhook_retrying";
pub const WEBHOOK_LAG: &str = "callguard_webhook_lag_events";
pub const WEBHOOK_OFFSET_ERRORS: &str = "callguard_webhook_offset_errors_total";

/// How a metric is recorded (its Prometheus `# TYPE`).
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric with its `# HELP` text, described once when the recorder
/// is installed, so that `/metrics` explains itself to whoever scrapes it.
const HELP: &[(&str, Kind, &str)] = &[
    (EVENTS, Kind::Counter, "Events taken, by type (start, fragment, end)."),
    (REJECTIONS, Kind::Counter, "Events refused, by reason (the field, or limit)."),
    (ALERTS, Kind::Counter, "Alerts and alert updates, by category and severity."),
    (ACTIVE_CALLS, Kind::Gauge, "Calls open now."),
    (SUBSCRIBERS, Kind::Gauge, "Subscribe streams open now."),
    (CONSOLE_STREAMS, Kind::Gauge, "Console event streams (GET /api/v1/events) open now."),
    (INGEST_TO_ALERT, Kind::Histogram, "From an event's arrival to its alerts being committed and published."),
    (SUBSCRIBER_CATCHUPS, Kind::Counter, "Subscribers that fell behind the live buffer and went back to the store."),
    (ALERTS_UNSTORED, Kind::Counter, "Alerts the store refused that could not be kept to be raised again (their call ended, or too many for one call): lost, and logged."),
    (STORE_ERRORS, Kind::Counter, "Store failures, by op."),
    (COMMIT_GROUP, Kind::Histogram, "Alerts per store commit (group commit: one fsync each)."),
    (CHECKPOINT_SECONDS, Kind::Histogram, "Time of one WAL checkpoint (off the commit path)."),
    (
        STORE_WRITE_SECONDS,
        Kind::Histogram,
        "Time of one store commit transaction (alerts and caller counts).",
    ),
    (CONNECTIONS, Kind::Gauge, "gRPC connections open now."),
    (CONNECTIONS_REFUSED, Kind::Counter, "Connections closed at accept: limits.max_connections reached."),
    (CONNECTIONS_TIMED_OUT, Kind::Counter, "Connections closed by a timeout, by reason (first frame, idle)."),
    (AUTH_FAILURES, Kind::Counter, "Requests refused for a missing or unknown token."),
    (WEBHOOK_DELIVERED, Kind::Counter, "Alerts a webhook's endpoint accepted (2xx), by webhook."),
    (WEBHOOK_FAILURES, Kind::Counter, "Webhook attempts that failed and will be retried, by webhook and reason (connect, tls, http, timeout, status: 408, 429, 5xx)."),
    (WEBHOOK_REJECTED, Kind::Counter, "Alerts a webhook's endpoint refused for good (3xx, 4xx but 408 and 429): logged and skipped, by webhook."),
    (WEBHOOK_RETRYING, Kind::Gauge, "1 while a webhook is retrying an alert its endpoint has not taken, by webhook."),
    (WEBHOOK_LAG, Kind::Gauge, "Event ids between the alert log's head and what a webhook has finished with, by webhook."),
    (WEBHOOK_OFFSET_ERRORS, Kind::Counter, "Webhook offsets that could not be saved (a restart may send those alerts again), by webhook."),
];

/// Counters of rare events (failures, refusals, lost alerts) and gauges
/// of what may be idle, exported at 0 from the start: an absent series
/// leaves a dashboard panel blank and an alert rule such as
/// `increase(callguard_alerts_unstored_total[5m]) > 0` blind until the
/// first occurrence. Labelled ones with their fixed label values.
fn register_at_zero() {
    for name in [
        ALERTS_UNSTORED,
        SUBSCRIBER_CATCHUPS,
        CONNECTIONS_REFUSED,
        AUTH_FAILURES,
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [ACTIVE_CALLS, SUBSCRIBERS, CONSOLE_STREAMS, CONNECTIONS] {
        metrics::gauge!(name).increment(0.0);
    }
    // serve::conn's reasons, live::commit's and the store sweep's ops.
    for reason in ["first frame", "idle"] {
        metrics::counter!(CONNECTIONS_TIMED_OUT, "reason" => reason).increment(0);
    }
    for op in ["commit", "probe", "checkpoint", "purge"] {
        metrics::counter!(STORE_ERRORS, "op" => op).increment(0);
    }
}

fn describe() {
    for (name, kind, help) in HELP {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
}

/// The process-wide Prometheus recorder (installed once; test servers in
/// one process share it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ])
            .expect("static buckets are valid")
            .set_buckets_for_metric(
                Matcher::Full(COMMIT_GROUP.to_owned()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
            )
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program):
        // then our handle still renders what this recorder would have seen.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        register_at_zero();
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metric added without its `# HELP` text fails here.
    #[test]
    fn every_metric_has_help_text() {
        let source = include_str!("metrics.rs");
        let names: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert!(!names.is_empty());
        for name in names {
            assert!(
                HELP.iter()
                    .any(|(n, _, help)| *n == name && !help.is_empty()),
                "{name} has no # HELP text"
            );
        }
    }
}
