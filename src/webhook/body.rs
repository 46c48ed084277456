//! What a webhook POSTs, and how it is signed.
//!
//! The body is the alert's JSON exactly as the console's API and `replay`
//! write it (DESIGN section 3), or a Slack- or Teams-compatible message
//! built from it. Every request is signed over the exact bytes sent:
//!
//! ```text
//! X-Callguard-Timestamp: 1767225600
//! X-Callguard-Signature: sha256=<hex of HMAC-SHA256(secret, "1767225600." + body)>
//! ```
//!
//! The timestamp is inside the signed text so a captured request cannot be
//! replayed later with a fresh one; a receiver recomputes the HMAC, compares
//! in constant time, and refuses timestamps far from its clock (README.md,
//! "Webhooks", shows the check). The scheme is the one Stripe and Slack use
//! for their own callbacks, so receivers have code for it at hand.

use ring::hmac;
use serde_json::json;

use crate::alert::Alert;
use crate::config::webhook::BodyKind;

/// The signature header: `sha256=` and the lowercase hex HMAC.
pub const SIGNATURE_HEADER: &str = "x-callguard-signature";
/// Unix seconds when the request was signed (each attempt signs afresh).
pub const TIMESTAMP_HEADER: &str = "x-callguard-timestamp";
/// The alert's `event_id`: a receiver drops a second delivery of one
/// (delivery is at least once).
pub const EVENT_ID_HEADER: &str = "x-callguard-event-id";
/// The webhook's configured name.
pub const WEBHOOK_HEADER: &str = "x-callguard-webhook";

/// The bytes to POST for `alert`.
pub fn render(kind: BodyKind, alert: &Alert) -> Vec<u8> {
    let value = match kind {
        // An `Alert` is plain data: serialising it cannot fail.
        BodyKind::Json => return serde_json::to_vec(alert).unwrap_or_default(),
        BodyKind::Slack => json!({ "text": slack_escape(&summary(alert)) }),
        BodyKind::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": summary_lines(alert)
                        .into_iter()
                        .enumerate()
                        .map(|(i, line)| json!({
                            "type": "TextBlock",
                            "text": line,
                            "wrap": true,
                            "weight": if i == 0 { "Bolder" } else { "Default" },
                            "color": if i == 0 { teams_colour(alert) } else { "Default" },
                        }))
                        .collect::<Vec<_>>(),
                },
            }],
        }),
    };
    value.to_string().into_bytes()
}

/// `sha256=<hex>`: HMAC-SHA256 with `secret` over `"{timestamp}." + body`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("sha256={}", hex(context.sign().as_ref()))
}

/// Whether `signature` (a header value) is `secret`'s signature of
/// `timestamp` and `body`, compared in constant time: what a receiver
/// written in Rust calls. The receiver also bounds the timestamp's age.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], signature: &str) -> bool {
    let Some(tag) = signature.strip_prefix("sha256=").and_then(unhex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &tag).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The alert in a few lines of plain text, for chat: what, where, the
/// words, what to do. Chat messages leave the service: excerpts are the
/// stored ones (short, digits and e-mail addresses masked).
fn summary_lines(alert: &Alert) -> Vec<String> {
    let mut headline = format!(
        "[{}] {} on call {} (tenant {}, agent {}): {}",
        alert.severity.as_str().to_uppercase(),
        alert.category,
        alert.call_id,
        alert.tenant,
        alert.agent_id,
        alert.status.as_str(),
    );
    if let Some(h) = &alert.handling {
        headline.push_str(&format!(", {} by {}", h.state.as_str(), h.by));
        if !h.assignee.is_empty() {
            headline.push_str(&format!(" (assigned to {})", h.assignee));
        }
    }
    let mut lines = vec![headline];
    lines.extend(alert.evidence.iter().map(|e| format!("“{}”", e.excerpt)));
    if let Some(h) = alert.handling.as_ref().filter(|h| !h.note.is_empty()) {
        lines.push(format!("Note: {}", h.note));
    }
    lines.push(format!(
        "Action: {} · rule {} · alert {}, event {}",
        alert.action, alert.rule, alert.alert_id, alert.event_id
    ));
    lines
}

fn summary(alert: &Alert) -> String {
    summary_lines(alert).join("\n")
}

/// Slack reads `&`, `<` and `>` as markup (`<@U123>` mentions, `<!here>`):
/// a caller's words must not ping a channel.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn teams_colour(alert: &Alert) -> &'static str {
    match alert.severity {
        crate::category::Severity::Critical => "Attention",
        crate::category::Severity::Warning => "Warning",
        crate::category::Severity::Info => "Default",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertStatus, Evidence, Handling, HandlingState};
    use crate::category::{Severity, Speaker};

    fn alert() -> Alert {
        Alert {
            event_id: 42,
            alert_id: 17,
            status: AlertStatus::Confirmed,
            call_id: "c1".into(),
            tenant: "acme".into(),
            agent_id: "a12".into(),
            category: "violence".into(),
            severity: Severity::Critical,
            rule: "ja/violence/korosu".into(),
            lexicon_version: "2026.11.1".into(),
            at_ms: 48200,
            raised_at: "2026-10-05T05:03:48Z".parse().unwrap(),
            evidence: vec![Evidence {
                speaker: Speaker::Customer,
                utterance_id: "u9".into(),
                excerpt: "…ころすぞ <!here> & <@U1>…".into(),
                start_ms: 47000,
                end_ms: 48200,
                char_start: None,
                char_end: None,
            }],
            action: "supervisor_takeover".into(),
            handling: None,
        }
    }

    /// RFC 4231 test case 2 pins the HMAC itself; the signature is that
    /// HMAC over `"{timestamp}." + body`.
    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            hex(hmac::sign(&key, b"what do ya want for nothing?").as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let signed = sign(b"Jefe", 0, b"what do ya want for nothing?");
        let expected = hex(hmac::sign(&key, b"0.what do ya want for nothing?").as_ref());
        assert_eq!(signed, format!("sha256={expected}"));
        assert_eq!(signed.len(), "sha256=".len() + 64);
    }

    #[test]
    fn verify_accepts_the_signature_and_refuses_any_change() {
        let body = render(BodyKind::Json, &alert());
        let sig = sign(b"s3cret", 1_767_225_600, &body);
        assert!(verify(b"s3cret", 1_767_225_600, &body, &sig));
        /// Name, secret, timestamp, body, signature.
        type Case<'a> = (&'a str, &'a [u8], u64, &'a [u8], &'a str);
        let cases: &[Case] = &[
            ("other secret", b"s3cres", 1_767_225_600, &body, &sig),
            ("other timestamp", b"s3cret", 1_767_225_601, &body, &sig),
            ("other body", b"s3cret", 1_767_225_600, b"{}", &sig),
            ("no prefix", b"s3cret", 1_767_225_600, &body, &sig[7..]),
            (
                "odd hex",
                b"s3cret",
                1_767_225_600,
                &body,
                &sig[..sig.len() - 1],
            ),
            ("empty", b"s3cret", 1_767_225_600, &body, ""),
        ];
        for (name, secret, ts, body, sig) in cases {
            assert!(!verify(secret, *ts, body, sig), "{name}");
        }
    }

    #[test]
    fn json_body_is_the_alert_as_the_api_serves_it() {
        let a = alert();
        let body = render(BodyKind::Json, &a);
        let back: Alert = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, a);
        assert_eq!(body, serde_json::to_vec(&a).unwrap());
    }

    #[test]
    fn slack_body_is_escaped_text() {
        let body: serde_json::Value =
            serde_json::from_slice(&render(BodyKind::Slack, &alert())).unwrap();
        let text = body["text"].as_str().unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert!(
            text.starts_with(
                "[CRITICAL] violence on call c1 (tenant acme, agent a12): confirmed\n"
            ),
            "{text}"
        );
        assert!(text.contains("&lt;!here&gt; &amp; &lt;@U1&gt;"), "{text}");
        assert!(!text.contains('<'), "{text}");
        assert!(text.ends_with(
            "Action: supervisor_takeover · rule ja/violence/korosu · alert 17, event 42"
        ));
    }

    #[test]
    fn teams_body_is_one_adaptive_card() {
        let mut a = alert();
        a.handling = Some(Handling {
            state: HandlingState::Assigned,
            by: "sv-acme".into(),
            assignee: "Sato".into(),
            note: "taking over".into(),
            at: jiff::Timestamp::UNIX_EPOCH,
        });
        let body: serde_json::Value = serde_json::from_slice(&render(BodyKind::Teams, &a)).unwrap();
        assert_eq!(body["type"], "message");
        let card = &body["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        let blocks = card["content"]["body"].as_array().unwrap();
        let texts: Vec<&str> = blocks.iter().map(|b| b["text"].as_str().unwrap()).collect();
        assert!(
            texts[0].ends_with("confirmed, assigned by sv-acme (assigned to Sato)"),
            "{texts:?}"
        );
        assert_eq!(blocks[0]["color"], "Attention");
        assert!(texts.contains(&"Note: taking over"), "{texts:?}");
    }
}
