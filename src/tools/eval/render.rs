//! The report as text (what `callguard eval` prints): the per-category
//! table, benign calls, rules, then every miss and false alarm.

use std::fmt;

use super::Report;
use crate::category::Severity;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
        writeln!(
            f,
            "{} labelled call(s): {} abusive, {} benign{}",
            self.calls,
            self.abusive_calls,
            self.benign_calls,
            if self.lexicon_version.is_empty() {
                String::new()
            } else {
                format!(" (lexicon {})", self.lexicon_version)
            }
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:>8} {:>6} {:>6} {:>6} {:>9} {:>7}",
            "category", "expected", "found", "missed", "false", "precision", "recall"
        )?;
        for c in &self.categories {
            writeln!(
                f,
                "{:<20} {:>8} {:>6} {:>6} {:>6} {:>9} {:>7}",
                c.category,
                c.expected,
                c.found,
                c.missed,
                c.false_alarms,
                pct(c.precision),
                pct(c.recall)
            )?;
        }
        let t = &self.totals;
        writeln!(
            f,
            "{:<20} {:>8} {:>6} {:>6} {:>6} {:>9} {:>7}",
            "all",
            t.expected,
            t.found,
            t.missed,
            t.false_alarms,
            pct(t.precision),
            pct(t.recall)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "benign calls: {} of {} raised something at warning or above ({})",
            self.benign.false_alarm_calls,
            self.benign.calls,
            pct(self.benign.false_alarm_rate)
        )?;
        if !self.rules.is_empty() {
            writeln!(f)?;
            let width = self
                .rules
                .iter()
                .map(|r| r.rule.len())
                .max()
                .unwrap_or(4)
                .max(4);
            writeln!(
                f,
                "{:<width$} {:>6} {:>12}",
                "rule", "calls", "false alarms"
            )?;
            for r in &self.rules {
                writeln!(
                    f,
                    "{:<width$} {:>6} {:>12}",
                    r.rule, r.calls, r.false_alarm_calls
                )?;
            }
        }
        if !self.misses.is_empty() {
            writeln!(f)?;
            writeln!(f, "misses:")?;
            for m in &self.misses {
                match (&m.rule, m.severity, m.status) {
                    (Some(rule), Some(severity), Some(status)) => writeln!(
                        f,
                        "  {} {}: only {} {} via {}: {:?}",
                        m.call_id,
                        m.category,
                        status.as_str(),
                        severity,
                        rule,
                        m.excerpt.as_deref().unwrap_or("")
                    )?,
                    _ => writeln!(f, "  {} {}: nothing raised", m.call_id, m.category)?,
                }
            }
        }
        if !self.false_alarms.is_empty() {
            writeln!(f)?;
            writeln!(f, "false alarms:")?;
            for a in &self.false_alarms {
                writeln!(
                    f,
                    "  {}{} {} ({}) via {}: {:?}",
                    a.call_id,
                    if a.benign { " [benign]" } else { "" },
                    a.category,
                    a.severity.map_or("-", Severity::as_str),
                    a.rule,
                    a.excerpt
                )?;
            }
        }
        for (title, list) in [
            ("replayed but not labelled (not counted)", &self.unlabelled),
            (
                "labelled but not replayed (not counted)",
                &self.not_replayed,
            ),
            ("refused events", &self.refused),
        ] {
            if !list.is_empty() {
                writeln!(f)?;
                writeln!(f, "{title}:")?;
                for item in list {
                    writeln!(f, "  {item}")?;
                }
            }
        }
        Ok(())
    }
}
