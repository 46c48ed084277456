//! `callguard watch`: a supervisor's live alert feed in the terminal.
//! Subscribes with the filters of `Alerts/Subscribe`, prints one readable
//! line per alert (styled by severity, [`crate::style`]), and when the
//! connection drops reconnects with backoff and resumes after the last
//! event id it printed — nothing is missed, nothing printed twice.
//!
//! Each (re)connection prints a `--` line saying where the feed starts
//! (live from now, the stored log from the start, or after an event id).
//! A line names its alert id: an update of an alert already shown (a
//! provisional alert confirmed or retracted) reads as that, not as a new
//! alert.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use crate::grpc::client::ClientConfig;
use crate::grpc::status;
use crate::grpc::{convert, pb};
use crate::style;

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub client: ClientConfig,
    pub request: pb::SubscribeRequest,
}

/// Formats one alert as a line, styled by its severity.
pub fn format_alert(alert: &pb::Alert) -> String {
    format_alert_seen(alert, false)
}

/// Formats one alert as a line, styled by its severity; `seen_before`: an
/// earlier event of the same alert id was shown, so this one is an update
/// of it.
pub fn format_alert_seen(alert: &pb::Alert, seen_before: bool) -> String {
    let severity = match pb::Severity::try_from(alert.severity) {
        Ok(pb::Severity::Critical) => "CRITICAL",
        Ok(pb::Severity::Warning) => "WARNING ",
        Ok(pb::Severity::Info) => "info    ",
        _ => "?       ",
    };
    let status = match (pb::AlertStatus::try_from(alert.status), seen_before) {
        (Ok(pb::AlertStatus::Provisional), _) => " (provisional)",
        (Ok(pb::AlertStatus::Retracted), _) => " (RETRACTED)",
        (Ok(pb::AlertStatus::Confirmed), true) => " (confirmed)",
        _ => "",
    };
    let at = alert.at_ms / 1000;
    let excerpt = alert
        .evidence
        .last()
        .map(|e| e.excerpt.as_str())
        .unwrap_or("");
    let line = format!(
        "#{:<6} alert {:<5} {severity} {:<17} call {} [{}:{:02}] {}{status} → {}  «{excerpt}»  ({})",
        alert.event_id,
        alert.alert_id,
        alert.category,
        alert.call_id,
        at / 60,
        at % 60,
        alert.agent_id,
        alert.action,
        alert.rule,
    );
    match convert::severity_from_wire(alert.severity, "severity") {
        Ok(Some(severity)) => style::paint(style::severity(severity), &line),
        _ => line,
    }
}

/// Runs until interrupted; returns only on a fatal error (bad request).
/// The alert lines are styled: give it an [`anstream::AutoStream`] (which
/// strips the styles off a terminal) unless the escape codes are wanted.
pub async fn watch(
    options: WatchOptions,
    out: &mut (dyn Write + Send),
) -> Result<(), tonic::Status> {
    let mut request = options.request.clone();
    let mut backoff = Duration::from_millis(200);
    let mut seen = SeenAlerts::default();
    let mut connected_before = false;
    loop {
        let stream = async {
            let mut client = pb::alerts_client::AlertsClient::new(
                // Bad address, unreadable certificate: retrying will not help.
                options
                    .client
                    .connect()
                    .await
                    .map_err(|e| status::client_failed(&e))?,
            );
            client
                .subscribe(request.clone())
                .await
                .map(|r| r.into_inner())
        }
        .await;
        let mut stream = match stream {
            Ok(stream) => {
                backoff = Duration::from_millis(200);
                let verb = if connected_before {
                    "reconnected to"
                } else {
                    "connected to"
                };
                connected_before = true;
                let _ = writeln!(
                    out,
                    "-- {verb} {}: {}",
                    options.client.server,
                    starting_point(&request)
                );
                let _ = out.flush();
                stream
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                ) =>
            {
                return Err(status)
            }
            Err(status) => {
                eprintln!(
                    "watch: {} — retrying in {:.1} s",
                    status.message(),
                    backoff.as_secs_f32()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(reply)) => {
                    if let Some(alert) = reply.alert {
                        // Resume after the last printed id when reconnecting.
                        request.after_event_id = alert.event_id;
                        request.from_start = false;
                        let update = seen.insert(alert.alert_id);
                        let line = format_alert_seen(&alert, update);
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                    }
                }
                Ok(None) | Err(_) => {
                    eprintln!("watch: connection lost — reconnecting");
                    break;
                }
            }
        }
    }
}

/// Where a subscription's feed starts, in words.
fn starting_point(request: &pb::SubscribeRequest) -> String {
    if request.after_event_id > 0 {
        format!("resuming after event {}", request.after_event_id)
    } else if request.from_start {
        "the stored alerts from the start, then live".to_owned()
    } else {
        "live alerts from now".to_owned()
    }
}

/// Alert ids shown, to tell an update from a new alert; the oldest are
/// forgotten past `SEEN_MAX` so a feed left open for weeks stays small.
#[derive(Default)]
struct SeenAlerts {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

const SEEN_MAX: usize = 100_000;

impl SeenAlerts {
    /// Records `id`; true when it was seen before.
    fn insert(&mut self, id: u64) -> bool {
        if !self.ids.insert(id) {
            return true;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_MAX {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_readable_line() {
        let alert = pb::Alert {
            event_id: 42,
            alert_id: 17,
            status: pb::AlertStatus::Provisional as i32,
            call_id: "c1".into(),
            agent_id: "a12".into(),
            category: "violence".into(),
            severity: pb::Severity::Critical as i32,
            rule: "ja/violence/korosu".into(),
            at_ms: 48_200,
            evidence: vec![pb::Evidence {
                excerpt: "…ころすぞ…".into(),
                ..Default::default()
            }],
            action: "supervisor_takeover".into(),
            ..Default::default()
        };
        let plain = |line: String| anstream::adapter::strip_str(&line).to_string();
        assert_eq!(
            plain(format_alert(&alert)),
            "#42     alert 17    CRITICAL violence          call c1 [0:48] a12 (provisional) → supervisor_takeover  «…ころすぞ…»  (ja/violence/korosu)"
        );
        // The confirmation of an alert already shown reads as its update.
        let confirmed = pb::Alert {
            event_id: 43,
            status: pb::AlertStatus::Confirmed as i32,
            ..alert.clone()
        };
        assert!(plain(format_alert_seen(&confirmed, true)).starts_with(
            "#43     alert 17    CRITICAL violence          call c1 [0:48] a12 (confirmed) →"
        ));
        assert!(!format_alert(&confirmed).contains("(confirmed)"));
        let critical = style::severity(crate::category::Severity::Critical);
        assert!(format_alert(&alert).starts_with(&critical.to_string()));
    }

    #[test]
    fn seen_alerts_tell_updates_and_stay_bounded() {
        let mut seen = SeenAlerts::default();
        assert!(!seen.insert(1));
        assert!(seen.insert(1));
        for id in 2..=(SEEN_MAX as u64 + 1) {
            seen.insert(id);
        }
        assert_eq!(seen.ids.len(), SEEN_MAX);
        assert!(!seen.insert(1), "the oldest id was forgotten");
    }

    #[test]
    fn starting_points() {
        let mut r = pb::SubscribeRequest::default();
        assert_eq!(starting_point(&r), "live alerts from now");
        r.from_start = true;
        assert_eq!(
            starting_point(&r),
            "the stored alerts from the start, then live"
        );
        r.after_event_id = 7;
        assert_eq!(starting_point(&r), "resuming after event 7");
    }
}
