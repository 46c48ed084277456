//! One webhook's task: the log follower with this webhook as its sink,
//! delivery with retries, the offset, and the webhook's metrics.
//!
//! The follower is given the match-everything filter and the webhook's
//! own filter runs here, so that every alert passes through the sink in
//! `event_id` order and the position (what the webhook is finished with)
//! moves past the alerts it does not want too: the offset and the lag
//! then mean "how far behind the log", not "how long since the last
//! match".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::body::{
    render, sign, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_HEADER,
};
use super::offset::{OffsetError, OffsetFile};
use super::Webhook;
use crate::alert::{Alert, AlertFilter};
use crate::live::follow::{follow, AlertSink};
use crate::live::Service;
use crate::store::StoreError;
use crate::telemetry::metrics;

/// How often the lag gauge is updated and a position moved only by
/// alerts the filter passed over is saved.
const TICK: Duration = Duration::from_secs(1);

/// Starts `hook`'s task. `saved` is its offset from the last run (or,
/// after a reload changed it, the position its previous task ended at);
/// without one it starts at the log's end, and says so in its offset file
/// at once (so that alerts raised before its first delivery are not
/// skipped by a restart). The task ends when the service stops or `stop`
/// fires (or its sender is dropped), after saving its offset, with the
/// last event id it finished with.
pub(super) fn spawn(
    service: Arc<Service>,
    runtime: &tokio::runtime::Handle,
    hook: Arc<Webhook>,
    file: Arc<OffsetFile>,
    saved: Option<u64>,
    stop: oneshot::Receiver<()>,
) -> Result<JoinHandle<u64>, OffsetError> {
    // Listen before reading the head: nothing after it is missed.
    let live = service.subscribe_live();
    let start = match saved {
        Some(offset) => offset,
        None => {
            let head = service.with_log(|log| log.last_event_id());
            file.save(head)?;
            head
        }
    };
    tracing::info!(
        webhook = %hook.name,
        endpoint = %hook.target.origin(),
        after_event_id = start,
        resumed = saved.is_some(),
        "webhook started"
    );
    let sink = Sink::new(hook, file, start);
    Ok(runtime.spawn(async move {
        tokio::select! {
            _ = run(&service, live, &sink) => {}
            _ = tick(&service, &sink) => {}
            // A delivery in flight is dropped: its alert was not finished
            // with, so the next run sends it again.
            _ = service.stopping() => {}
            _ = stop => {}
        }
        sink.save().await;
        // A removed webhook must not read as still retrying or behind. Its
        // series stay until the process restarts: the Prometheus exporter
        // has no way to drop one label set (metrics-rs/metrics#243).
        sink.retrying.set(0.0);
        sink.lag.set(0.0);
        sink.position()
    }))
}

/// Follows the log for ever: after a store failure, again from the
/// position once the first retry delay has passed.
async fn run(
    service: &Service,
    mut live: tokio::sync::broadcast::Receiver<Arc<Alert>>,
    sink: &Sink,
) {
    let everything = AlertFilter::default();
    loop {
        let _ = follow(service, live, sink.position(), &everything, sink).await;
        tokio::time::sleep(sink.hook.retry_min).await;
        live = service.subscribe_live();
    }
}

/// Updates the lag gauge and saves a position the filter moved.
async fn tick(service: &Service, sink: &Sink) {
    let mut every = tokio::time::interval(TICK);
    loop {
        every.tick().await;
        let head = service.with_log(|log| log.last_event_id());
        sink.lag.set(head.saturating_sub(sink.position()) as f64);
        if sink.position() > sink.file.saved() {
            sink.save().await;
        }
    }
}

/// The webhook as the follower's sink.
struct Sink {
    hook: Arc<Webhook>,
    file: Arc<OffsetFile>,
    /// The last `event_id` finished with (delivered, refused for good, or
    /// not wanted).
    position: AtomicU64,
    delivered: ::metrics::Counter,
    rejected: ::metrics::Counter,
    retrying: ::metrics::Gauge,
    lag: ::metrics::Gauge,
    offset_errors: ::metrics::Counter,
}

/// How one alert's delivery ended.
enum Delivery {
    Delivered {
        attempts: u32,
    },
    /// Refused for good by the endpoint (a 3xx or 4xx other than 408/429).
    Rejected(StatusCode),
}

impl Sink {
    fn new(hook: Arc<Webhook>, file: Arc<OffsetFile>, start: u64) -> Sink {
        let label = hook.name.clone();
        // Every failure reason at 0 from the start, so that a rate or an
        // alert rule on it has a series before the first failure.
        for reason in ["connect", "tls", "http", "timeout", "status"] {
            ::metrics::counter!(metrics::WEBHOOK_FAILURES, "webhook" => label.clone(), "reason" => reason)
                .increment(0);
        }
        Sink {
            delivered: ::metrics::counter!(metrics::WEBHOOK_DELIVERED, "webhook" => label.clone()),
            rejected: ::metrics::counter!(metrics::WEBHOOK_REJECTED, "webhook" => label.clone()),
            retrying: ::metrics::gauge!(metrics::WEBHOOK_RETRYING, "webhook" => label.clone()),
            lag: ::metrics::gauge!(metrics::WEBHOOK_LAG, "webhook" => label.clone()),
            offset_errors: ::metrics::counter!(metrics::WEBHOOK_OFFSET_ERRORS, "webhook" => label),
            hook,
            file,
            position: AtomicU64::new(start),
        }
    }

    fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Writes the position to the offset file, off the runtime's threads
    /// (an fsync). A failure is logged and counted: delivery goes on, and
    /// a restart sends again what the file does not cover.
    async fn save(&self) {
        let file = self.file.clone();
        let position = self.position();
        let saved = tokio::task::spawn_blocking(move || file.save(position)).await;
        let error = match saved {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.offset_errors.increment(1);
        tracing::warn!(webhook = %self.hook.name, %error, "cannot save webhook offset; a restart may send some alerts again");
    }

    /// Sends `alert` until it is delivered or refused for good.
    async fn deliver(&self, alert: &Alert) -> Delivery {
        let hook = &*self.hook;
        let body = Bytes::from(render(hook.body, alert));
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let headers = self.headers(alert, &body);
            let (label, error, asked) =
                match hook.target.post(headers, body.clone(), hook.timeout).await {
                    Ok(answer) if answer.status.is_success() => {
                        self.retrying.set(0.0);
                        return Delivery::Delivered { attempts: attempt };
                    }
                    Ok(answer) if retryable(answer.status) => (
                        "status",
                        format!("status {}", answer.status.as_u16()),
                        answer.retry_after,
                    ),
                    Ok(answer) => {
                        self.retrying.set(0.0);
                        return Delivery::Rejected(answer.status);
                    }
                    Err(e) => (e.reason(), e.to_string(), None),
                };
            ::metrics::counter!(metrics::WEBHOOK_FAILURES, "webhook" => hook.name.clone(), "reason" => label)
                .increment(1);
            self.retrying.set(1.0);
            let delay = backoff(hook.retry_min, hook.retry_max, attempt, asked, jitter());
            // One line when an endpoint starts failing, then ever rarer
            // (attempts 1, 2, 4, 8, …): an outage of hours is not a flood.
            if attempt.is_power_of_two() {
                tracing::warn!(
                    webhook = %hook.name,
                    endpoint = %hook.target.origin(),
                    event_id = alert.event_id,
                    attempt,
                    %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "webhook delivery failed; retrying"
                );
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn headers(&self, alert: &Alert, body: &[u8]) -> HeaderMap {
        let timestamp = jiff::Timestamp::now().as_second().max(0) as u64;
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put(SIGNATURE_HEADER, sign(&self.hook.secret, timestamp, body));
        put(TIMESTAMP_HEADER, timestamp.to_string());
        put(EVENT_ID_HEADER, alert.event_id.to_string());
        put(WEBHOOK_HEADER, self.hook.name.clone());
        headers
    }
}

impl AlertSink for Sink {
    /// Never fails: an alert is delivered, refused for good, or not
    /// wanted, and the position moves past it.
    async fn send(&self, alert: &Alert) -> Result<(), ()> {
        if !self.hook.filter.matches(alert) {
            self.position.store(alert.event_id, Ordering::Relaxed);
            return Ok(());
        }
        match self.deliver(alert).await {
            Delivery::Delivered { attempts } => {
                self.delivered.increment(1);
                if attempts > 1 {
                    tracing::info!(webhook = %self.hook.name, event_id = alert.event_id, attempts, "webhook delivered after retries");
                }
            }
            Delivery::Rejected(status) => {
                self.rejected.increment(1);
                tracing::error!(
                    webhook = %self.hook.name,
                    endpoint = %self.hook.target.origin(),
                    event_id = alert.event_id,
                    status = status.as_u16(),
                    "webhook endpoint refused the alert; skipped (check its URL and secret)"
                );
            }
        }
        self.position.store(alert.event_id, Ordering::Relaxed);
        self.save().await;
        Ok(())
    }

    async fn store_failed(&self, error: StoreError) {
        tracing::warn!(webhook = %self.hook.name, %error, "webhook cannot read the alert store; retrying");
    }
}

/// Worth sending again: the endpoint may take it later.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The wait after failed attempt `attempt` (1-based): `min` doubled per
/// attempt up to `max`, scaled by `jitter` in [0.5, 1] so that webhooks
/// failing together do not retry together, and never less than the
/// endpoint's `Retry-After` (itself capped at `max`).
fn backoff(
    min: Duration,
    max: Duration,
    attempt: u32,
    asked: Option<Duration>,
    jitter: f64,
) -> Duration {
    let doubled = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let delay = doubled.min(max).mul_f64(jitter.clamp(0.5, 1.0));
    match asked {
        Some(asked) => delay.max(asked.min(max)),
        None => delay,
    }
}

/// A factor in [0.5, 1] from the OS's random source.
fn jitter() -> f64 {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    0.5 + f64::from(byte[0]) / 510.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_honours_retry_after() {
        let ms = Duration::from_millis;
        let (min, max) = (ms(100), ms(1_000));
        let cases = [
            ("first", 1, None, 1.0, ms(100)),
            ("second", 2, None, 1.0, ms(200)),
            ("fourth", 4, None, 1.0, ms(800)),
            ("capped", 5, None, 1.0, ms(1_000)),
            ("far past the cap", 60, None, 1.0, ms(1_000)),
            ("jittered", 3, None, 0.5, ms(200)),
            ("jitter clamped", 3, None, 0.0, ms(200)),
            ("retry-after longer", 1, Some(ms(700)), 1.0, ms(700)),
            ("retry-after capped", 1, Some(ms(60_000)), 1.0, ms(1_000)),
            ("retry-after shorter", 4, Some(ms(10)), 1.0, ms(800)),
        ];
        for (name, attempt, asked, jitter, want) in cases {
            assert_eq!(backoff(min, max, attempt, asked, jitter), want, "{name}");
        }
        for _ in 0..100 {
            assert!((0.5..=1.0).contains(&jitter()));
        }
    }

    #[test]
    fn what_is_retried() {
        let cases = [
            (500, true),
            (502, true),
            (503, true),
            (408, true),
            (429, true),
            (400, false),
            (401, false),
            (404, false),
            (410, false),
            (301, false),
        ];
        for (code, want) in cases {
            assert_eq!(
                retryable(StatusCode::from_u16(code).unwrap()),
                want,
                "{code}"
            );
        }
    }
}
