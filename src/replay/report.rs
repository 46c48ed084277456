//! `replay --output report`: a readable per-call timeline and a summary
//! across calls. Rendered with its styles ([`crate::style`]); the stream it
//! is written to keeps them on a terminal and strips them when piped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::alert::{Alert, AlertStatus};
use crate::category::Severity;
use crate::style::{self, paint};

/// How many alerts a replay raised, counted one way for the report's
/// summary and the command's closing line on stderr (they disagreed: one
/// counted alert events, updates included, the other alerts standing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Alerts whose last status is not `retracted`.
    pub standing: usize,
    /// Alerts whose last status is `retracted`.
    pub retracted: usize,
    /// Alert events written: every alert and every update of one.
    pub events: usize,
}

impl Counts {
    pub fn of(alerts: &[Alert]) -> Counts {
        let mut tally = Tally::default();
        alerts.iter().for_each(|a| tally.add(a));
        tally.counts()
    }
}

/// [`Counts`] of alerts seen one at a time (a replay that writes them out
/// as they come): an alert id and its last status each.
#[derive(Debug, Default)]
pub struct Tally {
    last: std::collections::HashMap<u64, AlertStatus>,
    events: usize,
}

impl Tally {
    pub fn add(&mut self, alert: &Alert) {
        self.last.insert(alert.alert_id, alert.status);
        self.events += 1;
    }

    pub fn counts(&self) -> Counts {
        let retracted = self
            .last
            .values()
            .filter(|s| **s == AlertStatus::Retracted)
            .count();
        Counts {
            standing: self.last.len() - retracted,
            retracted,
            events: self.events,
        }
    }
}

impl std::fmt::Display for Counts {
    /// `7 alert(s) (2 retracted; 9 alert events with updates)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} alert(s) ({} retracted; {} alert events with updates)",
            self.standing, self.retracted, self.events
        )
    }
}

/// Renders the report of `calls` replayed calls and their alerts (in
/// output order), styled: write it through an [`anstream::AutoStream`].
pub fn render(alerts: &[Alert], calls: usize) -> String {
    let mut out = String::new();
    let mut by_call: Vec<(&str, Vec<&Alert>)> = Vec::new();
    for alert in alerts {
        match by_call.last_mut() {
            Some((id, list)) if *id == alert.call_id => list.push(alert),
            _ => by_call.push((&alert.call_id, vec![alert])),
        }
    }
    for (call_id, list) in &by_call {
        let first = list[0];
        let _ = writeln!(
            out,
            "{}",
            paint(
                style::HEADING,
                &format!(
                    "call {call_id}  tenant {}  agent {}",
                    first.tenant, first.agent_id
                )
            )
        );
        for a in list {
            let at = a.at_ms / 1000;
            let evidence = a.evidence.last();
            let speaker = evidence.map_or("-", |e| e.speaker.as_str());
            let excerpt = evidence.map_or("", |e| e.excerpt.as_str());
            let status = match a.status {
                AlertStatus::Confirmed => "",
                AlertStatus::Provisional => " (provisional)",
                AlertStatus::Retracted => " (retracted)",
            };
            let line = format!(
                "  {:>3}:{:02}  {speaker:<8} {:<8} {:<18} {:<24} «{excerpt}»{status}",
                at / 60,
                at % 60,
                a.severity.as_str(),
                a.category,
                a.action,
            );
            let _ = writeln!(out, "{}", paint(style::severity(a.severity), &line));
        }
    }
    // Summary: what stands at the end (the last status of each alert).
    let mut last: BTreeMap<u64, &Alert> = BTreeMap::new();
    for a in alerts {
        last.insert(a.alert_id, a);
    }
    let standing: Vec<&Alert> = last
        .values()
        .copied()
        .filter(|a| a.status != AlertStatus::Retracted)
        .collect();
    let mut flagged: Vec<&str> = standing
        .iter()
        .filter(|a| a.severity >= Severity::Warning)
        .map(|a| a.call_id.as_str())
        .collect();
    flagged.sort_unstable();
    flagged.dedup();
    let mut per: BTreeMap<(&str, Severity), usize> = BTreeMap::new();
    for a in &standing {
        *per.entry((a.category.as_str(), a.severity)).or_default() += 1;
    }
    let _ = writeln!(out, "\n{}", paint(style::HEADING, "summary"));
    let _ = writeln!(out, "  calls read     {calls}");
    let _ = writeln!(
        out,
        "  calls flagged  {} (an alert at warning or above)",
        flagged.len()
    );
    let _ = writeln!(out, "  alerts         {}", Counts::of(alerts));
    for ((category, severity), n) in per {
        let _ = writeln!(out, "    {category:<18} {:<8} {n}", severity.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Evidence;
    use crate::category::Speaker;

    fn alert(alert_id: u64, status: AlertStatus, severity: Severity, category: &str) -> Alert {
        Alert {
            event_id: 0,
            alert_id,
            status,
            call_id: "c1".into(),
            tenant: "acme".into(),
            agent_id: "a1".into(),
            category: category.into(),
            severity,
            rule: "r".into(),
            lexicon_version: "v".into(),
            at_ms: 65_000,
            raised_at: jiff::Timestamp::UNIX_EPOCH,
            evidence: vec![Evidence {
                speaker: Speaker::Customer,
                utterance_id: "u1".into(),
                excerpt: "ころすぞ".into(),
                start_ms: 0,
                end_ms: 1,
                char_start: None,
                char_end: None,
            }],
            action: "supervisor_takeover".into(),
            handling: None,
        }
    }

    #[test]
    fn timeline_and_summary() {
        let alerts = [
            alert(1, AlertStatus::Provisional, Severity::Critical, "violence"),
            alert(1, AlertStatus::Retracted, Severity::Critical, "violence"),
            alert(2, AlertStatus::Confirmed, Severity::Warning, "verbal_abuse"),
        ];
        let styled = render(&alerts, 3);
        assert!(styled.contains(&style::severity(Severity::Critical).to_string()));
        let text = anstream::adapter::strip_str(&styled).to_string();
        assert!(text.contains("call c1  tenant acme  agent a1"), "{text}");
        assert!(
            text.contains("    1:05  customer critical violence"),
            "{text}"
        );
        assert!(text.contains("(retracted)"));
        assert!(text.contains("calls read     3"));
        assert!(text.contains("calls flagged  1"));
        assert!(
            text.contains("alerts         1 alert(s) (1 retracted; 3 alert events with updates)"),
            "{text}"
        );
        assert!(text.contains("verbal_abuse       warning  1"));
    }
}
