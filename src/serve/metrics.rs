//! Metric names in one place (`callguard_<noun>_<unit>[_total]`), with
//! bounded labels only: never a call id, tenant or caller.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Events taken, by `type` (start, fragment, end).
pub const EVENTS: &str = "callguard_events_total";
/// Events refused, by `reason` (the field, or "limit").
pub const REJECTIONS: &str = "callguard_rejections_total";
/// Alerts and alert updates, by `category` and `severity`.
pub const ALERTS: &str = "callguard_alerts_total";
/// Calls open now.
pub const ACTIVE_CALLS: &str = "callguard_active_calls";
/// Subscribe streams open now.
pub const SUBSCRIBERS: &str = "callguard_subscribers";
/// Console event streams (`GET /api/v1/events`) open now.
pub const CONSOLE_STREAMS: &str = "callguard_console_streams";
/// From an event's arrival to its alerts being committed and published.
pub const INGEST_TO_ALERT: &str = "callguard_ingest_to_alert_seconds";
/// Subscribers that fell behind the live buffer and went back to the store.
pub const SUBSCRIBER_CATCHUPS: &str = "callguard_subscriber_catchups_total";
/// Alerts the store refused that could not be kept to be raised again
/// (their call ended, or too many for one call): lost, and logged.
pub const ALERTS_UNSTORED: &str = "callguard_alerts_unstored_total";
/// Store failures, by `op`.
pub const STORE_ERRORS: &str = "callguard_store_errors_total";
/// Alerts per store commit (group commit: one fsync each).
pub const COMMIT_GROUP: &str = "callguard_commit_group_alerts";
/// Time of one WAL checkpoint (off the commit path).
pub const CHECKPOINT_SECONDS: &str = "callguard_store_checkpoint_seconds";
/// gRPC connections open now.
pub const CONNECTIONS: &str = "callguard_connections";
/// Connections closed at accept: `limits.max_connections` reached.
pub const CONNECTIONS_REFUSED: &str = "callguard_connections_refused_total";
/// Connections closed by a timeout, by `reason` ("first frame", "idle").
pub const CONNECTIONS_TIMED_OUT: &str = "callguard_connections_timed_out_total";
/// Requests refused for a missing or unknown token.
pub const AUTH_FAILURES: &str = "callguard_auth_failures_total";

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
        handle
    })
}
