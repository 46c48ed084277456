//! Scoring: a replay's alerts counted against the labels, per category and
//! per rule (found, missed, false alarm: the rules in the module's doc).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{CategoryStats, FalseAlarm, Labels, Miss, Report, RuleStats};
use crate::alert::{Alert, AlertStatus};
use crate::category::Severity;

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Scores replayed alerts against the labels. `calls` are the ids of the
/// calls replayed (a call that raised nothing has no alert to show it).
pub fn evaluate(alerts: &[Alert], calls: &[String], labels: &Labels) -> Report {
    // Last update of each alert.
    let mut order: Vec<u64> = Vec::new();
    let mut last: HashMap<u64, &Alert> = HashMap::new();
    for alert in alerts {
        if last.insert(alert.alert_id, alert).is_none() {
            order.push(alert.alert_id);
        }
    }
    let finals: Vec<&Alert> = order.iter().map(|id| last[id]).collect();

    let replayed: BTreeSet<&str> = calls.iter().map(String::as_str).collect();
    let mut report = Report {
        lexicon_version: alerts
            .first()
            .map(|a| a.lexicon_version.clone())
            .unwrap_or_default(),
        unlabelled: replayed
            .iter()
            .filter(|c| !labels.calls.contains_key(**c))
            .map(|c| (*c).to_owned())
            .collect(),
        not_replayed: labels
            .calls
            .keys()
            .filter(|c| !replayed.contains(c.as_str()))
            .cloned()
            .collect(),
        ..Report::default()
    };

    // Final alerts by call.
    let mut by_call: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for alert in &finals {
        by_call
            .entry(alert.call_id.as_str())
            .or_default()
            .push(alert);
    }
    let counts =
        |a: &&&Alert| a.status != AlertStatus::Retracted && a.severity >= Severity::Warning;

    let mut categories: BTreeMap<String, CategoryStats> = BTreeMap::new();
    let mut rules: BTreeMap<String, RuleStats> = BTreeMap::new();

    for (call_id, label) in &labels.calls {
        if !replayed.contains(call_id.as_str()) {
            continue;
        }
        report.calls += 1;
        if label.benign {
            report.benign_calls += 1;
        } else {
            report.abusive_calls += 1;
        }
        let alerts = by_call.get(call_id.as_str()).cloned().unwrap_or_default();
        let raising: Vec<&Alert> = alerts.iter().filter(counts).copied().collect();
        let raised: BTreeSet<&str> = raising.iter().map(|a| a.category.as_str()).collect();

        for category in &label.expected {
            let s = categories
                .entry(category.clone())
                .or_insert_with(|| CategoryStats {
                    category: category.clone(),
                    ..CategoryStats::default()
                });
            s.expected += 1;
            if raised.contains(category.as_str()) {
                s.found += 1;
            } else {
                s.missed += 1;
                // What the call did get of that category, if anything:
                // the strongest alert, retracted ones last.
                let near = alerts
                    .iter()
                    .filter(|a| a.category == *category)
                    .max_by_key(|a| (a.status != AlertStatus::Retracted, a.severity));
                report.misses.push(Miss {
                    call_id: call_id.clone(),
                    category: category.clone(),
                    rule: near.map(|a| a.rule.clone()),
                    severity: near.map(|a| a.severity),
                    status: near.map(|a| a.status),
                    excerpt: near.map(|a| excerpt_of(a)),
                });
            }
        }
        for category in &raised {
            if label.expected.contains(*category) || label.acceptable.contains(*category) {
                continue;
            }
            categories
                .entry((*category).to_owned())
                .or_insert_with(|| CategoryStats {
                    category: (*category).to_owned(),
                    ..CategoryStats::default()
                })
                .false_alarms += 1;
            let first = raising
                .iter()
                .filter(|a| a.category == *category)
                .max_by_key(|a| a.severity)
                .expect("raised categories come from alerts");
            report.false_alarms.push(FalseAlarm {
                call_id: call_id.clone(),
                benign: label.benign,
                category: (*category).to_owned(),
                rule: first.rule.clone(),
                severity: Some(first.severity),
                excerpt: excerpt_of(first),
            });
        }
        if label.benign {
            report.benign.calls += 1;
            if raised.iter().any(|c| !label.acceptable.contains(*c)) {
                report.benign.false_alarm_calls += 1;
            }
        }
        let fired: BTreeSet<(&str, &str)> = raising
            .iter()
            .map(|a| (a.rule.as_str(), a.category.as_str()))
            .collect();
        for (rule, category) in fired {
            let r = rules.entry(rule.to_owned()).or_insert_with(|| RuleStats {
                rule: rule.to_owned(),
                category: category.to_owned(),
                ..RuleStats::default()
            });
            r.calls += 1;
            if !label.expected.contains(category) && !label.acceptable.contains(category) {
                r.false_alarm_calls += 1;
            }
        }
    }

    for s in categories.values_mut() {
        s.precision = ratio(s.found, s.found + s.false_alarms);
        s.recall = ratio(s.found, s.expected);
        report.totals.expected += s.expected;
        report.totals.found += s.found;
        report.totals.missed += s.missed;
        report.totals.false_alarms += s.false_alarms;
    }
    let t = &mut report.totals;
    t.precision = ratio(t.found, t.found + t.false_alarms);
    t.recall = ratio(t.found, t.expected);
    report.benign.false_alarm_rate = ratio(report.benign.false_alarm_calls, report.benign.calls);
    report.categories = categories.into_values().collect();
    report.rules = rules.into_values().collect();
    report
}

fn excerpt_of(alert: &Alert) -> String {
    alert
        .evidence
        .iter()
        .map(|e| e.excerpt.as_str())
        .collect::<Vec<_>>()
        .join(" … ")
}
