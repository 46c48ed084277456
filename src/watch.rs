//! `callguard watch`: a supervisor's live alert feed in the terminal.
//! Subscribes with the filters of `Alerts/Subscribe`, prints one readable
//! line per alert (coloured by severity on a terminal), and when the
//! connection drops reconnects with backoff and resumes after the last
//! event id it printed — nothing is missed, nothing printed twice.

use std::io::Write;
use std::time::Duration;

use crate::grpc::client::{ClientConfig, ClientError};
use crate::grpc::pb;

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub client: ClientConfig,
    pub request: pb::SubscribeRequest,
    pub colour: bool,
}

/// Formats one alert as a line.
pub fn format_alert(alert: &pb::Alert, colour: bool) -> String {
    let severity = match pb::Severity::try_from(alert.severity) {
        Ok(pb::Severity::Critical) => "CRITICAL",
        Ok(pb::Severity::Warning) => "WARNING ",
        Ok(pb::Severity::Info) => "info    ",
        _ => "?       ",
    };
    let status = match pb::AlertStatus::try_from(alert.status) {
        Ok(pb::AlertStatus::Provisional) => " (provisional)",
        Ok(pb::AlertStatus::Retracted) => " (RETRACTED)",
        _ => "",
    };
    let at = alert.at_ms / 1000;
    let excerpt = alert
        .evidence
        .last()
        .map(|e| e.excerpt.as_str())
        .unwrap_or("");
    let line = format!(
        "#{:<6} {severity} {:<17} call {} [{}:{:02}] {}{status} → {}  «{excerpt}»  ({})",
        alert.event_id,
        alert.category,
        alert.call_id,
        at / 60,
        at % 60,
        alert.agent_id,
        alert.action,
        alert.rule,
    );
    if !colour {
        return line;
    }
    let code = match pb::Severity::try_from(alert.severity) {
        Ok(pb::Severity::Critical) => "1;31",
        Ok(pb::Severity::Warning) => "33",
        _ => "2",
    };
    format!("\x1b[{code}m{line}\x1b[0m")
}

/// Runs until interrupted; returns only on a fatal error (bad request).
pub async fn watch(
    options: WatchOptions,
    out: &mut (dyn Write + Send),
) -> Result<(), tonic::Status> {
    let mut request = options.request.clone();
    let mut backoff = Duration::from_millis(200);
    loop {
        let stream = async {
            let mut client = pb::alerts_client::AlertsClient::new(
                options.client.connect().await.map_err(|e| match e {
                    ClientError::Connect { .. } => tonic::Status::unavailable(e.to_string()),
                    // Bad address, unreadable certificate: retrying will not help.
                    _ => tonic::Status::invalid_argument(e.to_string()),
                })?,
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
                        let _ = writeln!(out, "{}", format_alert(&alert, options.colour));
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
        assert_eq!(
            format_alert(&alert, false),
            "#42     CRITICAL violence          call c1 [0:48] a12 (provisional) → supervisor_takeover  «…ころすぞ…»  (ja/violence/korosu)"
        );
        assert!(format_alert(&alert, true).starts_with("\x1b[1;31m"));
    }
}
