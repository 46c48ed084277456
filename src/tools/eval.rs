//! `callguard eval` (DESIGN section 5): replays labelled calls and reports,
//! per category and per rule, what was found, missed and falsely raised, so
//! a lexicon or policy change can be judged before it goes live.
//!
//! A call *raises* a category when it has an alert of that category that is
//! not retracted (the last status of each `alert_id` counts) at `warning` or
//! above. Against the labels, per call and category:
//!
//! - expected and raised: found (true positive);
//! - expected and not raised: missed (false negative);
//! - raised and not expected: false alarm (false positive).
//!
//! A benign call must raise nothing at `warning` or above; the share of
//! benign calls that do is the benign false-alarm rate. [`compare`] is the
//! CI gate against a committed baseline report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertStatus};
use crate::category::{CategoryKind, Severity, BUILTIN_CATEGORIES};
use crate::engine::Engine;
use crate::event::Event;
use crate::policy::Policy;
use crate::replay::{self, ReplayError};

/// How far overall recall may fall, or the benign false-alarm rate rise,
/// before [`compare`] fails (half a percentage point).
pub const TOLERANCE: f64 = 0.005;

/// Why a labels file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read labels {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("labels: not valid JSON: {0}")]
    Json(String),
    #[error("labels: the top level must be an object of call id -> label")]
    NotAnObject,
    #[error("labels: call {call_id:?}: {field}: {message}")]
    Field {
        call_id: String,
        field: String,
        message: String,
    },
}

/// What one call is expected to raise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Categories the call must raise at warning or above.
    pub expected: BTreeSet<String>,
    /// A benign call must raise nothing at warning or above.
    pub benign: bool,
    /// Categories the call may also raise without it counting as a false
    /// alarm (intimidation beside a threat): neither found nor false.
    pub acceptable: BTreeSet<String>,
}

/// The labels of a set of calls, by call id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Labels {
    pub calls: BTreeMap<String, Label>,
}

/// Category ids a label may expect: the built-in harassment categories and
/// `self_harm` (signals and agent markers never raise at warning).
fn alerting_builtin(id: &str) -> Option<bool> {
    BUILTIN_CATEGORIES
        .iter()
        .find(|(name, ..)| *name == id)
        .map(|(_, kind, ..)| matches!(kind, CategoryKind::Harassment | CategoryKind::Welfare))
}

impl Labels {
    /// Parses labels against the built-in categories.
    pub fn parse(json: &str) -> Result<Labels, LabelsError> {
        Labels::parse_with_categories(json, &[])
    }

    /// Parses labels; `extra` are a tenant lexicon's `extra_categories`.
    pub fn parse_with_categories(json: &str, extra: &[String]) -> Result<Labels, LabelsError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| LabelsError::Json(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(LabelsError::NotAnObject);
        };
        let mut calls = BTreeMap::new();
        for (call_id, label) in map {
            let err = |field: &str, message: String| LabelsError::Field {
                call_id: call_id.clone(),
                field: field.to_owned(),
                message,
            };
            if call_id.is_empty() {
                return Err(err("call_id", "must not be empty".into()));
            }
            let serde_json::Value::Object(fields) = label else {
                return Err(err(
                    "label",
                    "must be an object like {\"expected\": [...], \"benign\": false}".into(),
                ));
            };
            let mut parsed = Label::default();
            let mut saw_expected = false;
            for (field, value) in fields {
                match field.as_str() {
                    "expected" => {
                        saw_expected = true;
                        parsed.expected = category_list(&value, extra)
                            .map_err(|message| err("expected", message))?;
                    }
                    "acceptable" => {
                        parsed.acceptable = category_list(&value, extra)
                            .map_err(|message| err("acceptable", message))?;
                    }
                    "benign" => {
                        parsed.benign = value
                            .as_bool()
                            .ok_or_else(|| err("benign", "must be true or false".into()))?;
                    }
                    // Notes, authors, splits: what the people who write
                    // labels keep beside them is theirs.
                    _ => {}
                }
            }
            if let Some(both) = parsed.expected.intersection(&parsed.acceptable).next() {
                return Err(err(
                    "acceptable",
                    format!("{both:?} is also expected: list it in one of the two"),
                ));
            }
            if parsed.benign && !parsed.expected.is_empty() {
                return Err(err(
                    "benign",
                    "a benign call cannot expect categories".into(),
                ));
            }
            if !saw_expected && !parsed.benign {
                return Err(err(
                    "expected",
                    "missing (list the categories, or set \"benign\": true)".into(),
                ));
            }
            calls.insert(call_id, parsed);
        }
        Ok(Labels { calls })
    }

    /// Reads and parses a labels file against the built-in categories.
    pub fn load(path: &Path) -> Result<Labels, LabelsError> {
        Labels::load_with_categories(path, &[])
    }

    /// Reads and parses a labels file; `extra` as in [`Labels::parse_with_categories`].
    pub fn load_with_categories(path: &Path, extra: &[String]) -> Result<Labels, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Labels::parse_with_categories(&text, extra)
    }
}

/// A list of category ids that a call may raise at warning: the built-in
/// harassment categories, `self_harm` and the lexicon's extra ones.
fn category_list(value: &serde_json::Value, extra: &[String]) -> Result<BTreeSet<String>, String> {
    let serde_json::Value::Array(items) = value else {
        return Err("must be an array of category ids".into());
    };
    let mut ids = BTreeSet::new();
    for item in items {
        let Some(id) = item.as_str() else {
            return Err(format!("{item} is not a category id string"));
        };
        match alerting_builtin(id) {
            Some(true) => {}
            Some(false) => {
                return Err(format!(
                    "{id:?} is a signal or agent marker, never raised at warning; \
                     expect a harassment category"
                ))
            }
            None if extra.iter().any(|e| e == id) => {}
            None => {
                return Err(format!(
                    "unknown category {id:?} (known: {})",
                    known_categories(extra).join(", ")
                ))
            }
        }
        if !ids.insert(id.to_owned()) {
            return Err(format!("{id:?} listed twice"));
        }
    }
    Ok(ids)
}

fn known_categories(extra: &[String]) -> Vec<String> {
    BUILTIN_CATEGORIES
        .iter()
        .filter(|(_, kind, ..)| matches!(kind, CategoryKind::Harassment | CategoryKind::Welfare))
        .map(|(id, ..)| (*id).to_owned())
        .chain(extra.iter().cloned())
        .collect()
}

/// Found, missed and false alarms of one category.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CategoryStats {
    pub category: String,
    /// Labelled calls that expect it.
    pub expected: usize,
    pub found: usize,
    pub missed: usize,
    pub false_alarms: usize,
    /// found / (found + false alarms); `None` when never raised.
    pub precision: Option<f64>,
    /// found / expected; `None` when no call expects it.
    pub recall: Option<f64>,
}

/// Calls a rule fired in (warning or above, not retracted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleStats {
    pub rule: String,
    pub category: String,
    pub calls: usize,
    /// Of those, calls that did not expect the rule's category.
    pub false_alarm_calls: usize,
}

/// All categories together (micro-averaged over call × category).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub expected: usize,
    pub found: usize,
    pub missed: usize,
    pub false_alarms: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// Benign calls and those that raised something anyway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenignStats {
    pub calls: usize,
    pub false_alarm_calls: usize,
    /// false_alarm_calls / calls; `None` without benign calls.
    pub false_alarm_rate: Option<f64>,
}

/// An expected category a call did not raise. When the call has an alert of
/// that category that did not count (info, or retracted), it is named.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Miss {
    pub call_id: String,
    pub category: String,
    pub rule: Option<String>,
    pub severity: Option<Severity>,
    pub status: Option<AlertStatus>,
    pub excerpt: Option<String>,
}

/// A category a call raised without being expected to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FalseAlarm {
    pub call_id: String,
    pub benign: bool,
    pub category: String,
    pub rule: String,
    pub severity: Option<Severity>,
    pub excerpt: String,
}

/// The result of an evaluation: readable with `Display`, JSON with serde.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Lexicon version quoted by the alerts (empty when none were raised).
    pub lexicon_version: String,
    /// Labelled calls that were replayed (the ones counted).
    pub calls: usize,
    pub abusive_calls: usize,
    pub benign_calls: usize,
    pub totals: Totals,
    pub categories: Vec<CategoryStats>,
    pub rules: Vec<RuleStats>,
    pub benign: BenignStats,
    pub misses: Vec<Miss>,
    pub false_alarms: Vec<FalseAlarm>,
    /// Replayed calls without a label (not counted).
    pub unlabelled: Vec<String>,
    /// Labelled calls absent from the replay (not counted).
    pub not_replayed: Vec<String>,
    /// Events the replay refused ("call: reason").
    pub refused: Vec<String>,
}

impl Report {
    /// Reads a report written as JSON (a baseline).
    pub fn from_json(json: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The report as pretty JSON with a final newline (the baseline format).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report always serialises");
        s.push('\n');
        s
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Call ids in order of first appearance (the `calls` of [`evaluate`]).
pub fn call_ids(events: &[Event]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for event in events {
        if seen.insert(event.call_id()) {
            out.push(event.call_id().to_owned());
        }
    }
    out
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

/// Replays the calls in `inputs` (files or folders, as `callguard replay`
/// reads them) through `engine` and `policy` and scores them. Any unreadable
/// file fails the run: figures from part of a set would mislead.
pub fn run(
    inputs: &[PathBuf],
    labels: &Labels,
    engine: &Engine,
    policy: &Policy,
) -> Result<Report, ReplayError> {
    let mut events = Vec::new();
    for path in replay::collect_paths(inputs)? {
        events.append(&mut replay::read_jsonl(&path)?);
    }
    let calls = call_ids(&events);
    let replayed = replay::replay(events, engine, policy);
    let mut report = evaluate(&replayed.alerts, &calls, labels);
    report.refused = replayed
        .refused
        .iter()
        .map(|r| format!("{}: {}", r.call_id, r.reason))
        .collect();
    Ok(report)
}

/// The CI gate: fails when overall recall fell, or the benign false-alarm
/// rate rose, by more than [`TOLERANCE`] against `baseline`. Each failure
/// names the figure and what changed (categories that lost recall, benign
/// calls that newly raise something).
pub fn compare(report: &Report, baseline: &Report) -> Result<(), Vec<String>> {
    compare_with_tolerance(report, baseline, TOLERANCE)
}

/// [`compare`] with an explicit tolerance (a fraction, 0.005 = 0.5 point).
pub fn compare_with_tolerance(
    report: &Report,
    baseline: &Report,
    tolerance: f64,
) -> Result<(), Vec<String>> {
    let mut failures = Vec::new();
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));

    let recall_now = report.totals.recall.unwrap_or(0.0);
    if let Some(before) = baseline.totals.recall {
        if recall_now < before - tolerance {
            let mut detail = Vec::new();
            for b in &baseline.categories {
                let now = report
                    .categories
                    .iter()
                    .find(|c| c.category == b.category)
                    .and_then(|c| c.recall);
                if let Some(was) = b.recall {
                    if now.unwrap_or(0.0) < was - 1e-9 {
                        detail.push(format!("{} {} -> {}", b.category, pct(Some(was)), pct(now)));
                    }
                }
            }
            let new_misses: Vec<String> = report
                .misses
                .iter()
                .filter(|m| {
                    !baseline
                        .misses
                        .iter()
                        .any(|b| b.call_id == m.call_id && b.category == m.category)
                })
                .map(|m| format!("{}/{}", m.call_id, m.category))
                .collect();
            failures.push(format!(
                "overall recall fell from {} to {} (tolerance {:.1} points){}{}",
                pct(Some(before)),
                pct(report.totals.recall),
                tolerance * 100.0,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!("; by category: {}", detail.join(", "))
                },
                if new_misses.is_empty() {
                    String::new()
                } else {
                    format!("; new misses: {}", new_misses.join(", "))
                },
            ));
        }
    }

    let rate_now = report.benign.false_alarm_rate.unwrap_or(0.0);
    let rate_before = baseline.benign.false_alarm_rate.unwrap_or(0.0);
    if rate_now > rate_before + tolerance {
        let new_alarms: Vec<String> = report
            .false_alarms
            .iter()
            .filter(|f| f.benign)
            .filter(|f| {
                !baseline
                    .false_alarms
                    .iter()
                    .any(|b| b.call_id == f.call_id && b.category == f.category)
            })
            .map(|f| format!("{}/{} ({}: {:?})", f.call_id, f.category, f.rule, f.excerpt))
            .collect();
        failures.push(format!(
            "benign false-alarm rate rose from {} to {} (tolerance {:.1} points){}",
            pct(baseline.benign.false_alarm_rate),
            pct(report.benign.false_alarm_rate),
            tolerance * 100.0,
            if new_alarms.is_empty() {
                String::new()
            } else {
                format!("; new: {}", new_alarms.join(", "))
            },
        ));
    }

    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Evidence;
    use crate::category::Speaker;
    use crate::lexicon::Lexicon;

    fn alert(
        alert_id: u64,
        call_id: &str,
        category: &str,
        rule: &str,
        severity: Severity,
        status: AlertStatus,
    ) -> Alert {
        Alert {
            event_id: 0,
            alert_id,
            status,
            call_id: call_id.into(),
            tenant: String::new(),
            agent_id: String::new(),
            category: category.into(),
            severity,
            rule: rule.into(),
            lexicon_version: "test".into(),
            at_ms: 1000,
            raised_at: jiff::Timestamp::UNIX_EPOCH,
            evidence: vec![Evidence {
                speaker: Speaker::Customer,
                utterance_id: "u1".into(),
                excerpt: format!("words of {rule}"),
                start_ms: 0,
                end_ms: 1000,
                char_start: None,
                char_end: None,
            }],
            action: "log_only".into(),
            handling: None,
        }
    }

    fn ids(calls: &[&str]) -> Vec<String> {
        calls.iter().map(|c| (*c).to_owned()).collect()
    }

    const LABELS: &str = r#"{
        "c1": {"expected": ["violence", "threat"], "benign": false},
        "c2": {"expected": ["verbal_abuse"]},
        "b1": {"benign": true},
        "b2": {"expected": [], "benign": true}
    }"#;

    #[test]
    fn counts_found_missed_and_false_alarms() {
        use AlertStatus::*;
        use Severity::*;
        let labels = Labels::parse(LABELS).unwrap();
        let alerts = vec![
            // c1: violence found, threat missed (only info), intimidation unexpected.
            alert(
                1,
                "c1",
                "violence",
                "ja/violence/korosu",
                Critical,
                Confirmed,
            ),
            alert(2, "c1", "threat", "ja/threat/oboetoke", Info, Confirmed),
            alert(
                3,
                "c1",
                "intimidation",
                "ja/intimidation/fuzakeru",
                Warning,
                Confirmed,
            ),
            // c2: verbal_abuse raised twice by two rules: one call found.
            alert(
                4,
                "c2",
                "verbal_abuse",
                "en/verbal_abuse/en_idiot",
                Warning,
                Confirmed,
            ),
            alert(
                5,
                "c2",
                "verbal_abuse",
                "en/verbal_abuse/en_stupid",
                Warning,
                Confirmed,
            ),
            // b1: a benign call with a false alarm; b2 clean.
            alert(
                6,
                "b1",
                "violence",
                "en/violence/en_kill_you",
                Critical,
                Confirmed,
            ),
            // An unlabelled call does not count.
            alert(
                7,
                "x9",
                "violence",
                "ja/violence/korosu",
                Critical,
                Confirmed,
            ),
        ];
        let report = evaluate(&alerts, &ids(&["c1", "c2", "b1", "b2", "x9"]), &labels);
        assert_eq!(report.calls, 4);
        assert_eq!((report.abusive_calls, report.benign_calls), (2, 2));
        let cat = |id: &str| {
            report
                .categories
                .iter()
                .find(|c| c.category == id)
                .unwrap()
                .clone()
        };
        let v = cat("violence");
        assert_eq!(
            (v.expected, v.found, v.missed, v.false_alarms),
            (1, 1, 0, 1)
        );
        assert_eq!((v.precision, v.recall), (Some(0.5), Some(1.0)));
        let t = cat("threat");
        assert_eq!(
            (t.expected, t.found, t.missed, t.false_alarms),
            (1, 0, 1, 0)
        );
        assert_eq!((t.precision, t.recall), (None, Some(0.0)));
        let i = cat("intimidation");
        assert_eq!((i.expected, i.false_alarms, i.recall), (0, 1, None));
        assert_eq!(cat("verbal_abuse").found, 1);
        assert_eq!(
            (
                report.totals.expected,
                report.totals.found,
                report.totals.missed
            ),
            (3, 2, 1)
        );
        assert_eq!(report.totals.false_alarms, 2);
        assert_eq!(report.totals.recall, Some(2.0 / 3.0));
        assert_eq!(report.totals.precision, Some(0.5));
        // The miss names what the call did get of the category.
        assert_eq!(report.misses.len(), 1);
        let miss = &report.misses[0];
        assert_eq!(
            (miss.call_id.as_str(), miss.category.as_str()),
            ("c1", "threat")
        );
        assert_eq!(miss.rule.as_deref(), Some("ja/threat/oboetoke"));
        assert_eq!(miss.severity, Some(Info));
        assert_eq!(miss.excerpt.as_deref(), Some("words of ja/threat/oboetoke"));
        // Per rule: calls fired in, and false alarms among them.
        let rule = |id: &str| report.rules.iter().find(|r| r.rule == id).unwrap();
        assert_eq!(rule("ja/violence/korosu").calls, 1); // x9 not counted
        assert_eq!(rule("ja/intimidation/fuzakeru").false_alarm_calls, 1);
        assert_eq!(rule("en/violence/en_kill_you").false_alarm_calls, 1);
        assert_eq!(rule("en/verbal_abuse/en_idiot").false_alarm_calls, 0);
        assert!(report.rules.iter().all(|r| r.rule != "ja/threat/oboetoke"));
        // Benign calls.
        assert_eq!(report.benign.calls, 2);
        assert_eq!(report.benign.false_alarm_calls, 1);
        assert_eq!(report.benign.false_alarm_rate, Some(0.5));
        let fa: Vec<(&str, &str, bool)> = report
            .false_alarms
            .iter()
            .map(|f| (f.call_id.as_str(), f.category.as_str(), f.benign))
            .collect();
        assert_eq!(
            fa,
            [("b1", "violence", true), ("c1", "intimidation", false)]
        );
        assert_eq!(report.unlabelled, ["x9"]);
        assert!(report.not_replayed.is_empty());
        // Both renderings hold the figures; JSON round-trips.
        let text = report.to_string();
        assert!(text.contains("benign calls: 1 of 2"), "{text}");
        assert!(
            text.contains("c1 threat: only confirmed info via ja/threat/oboetoke"),
            "{text}"
        );
        assert_eq!(Report::from_json(&report.to_json()).unwrap(), report);
    }

    #[test]
    fn last_status_counts_and_retracted_alerts_are_ignored() {
        use AlertStatus::*;
        use Severity::*;
        let labels = Labels::parse(LABELS).unwrap();
        let alerts = vec![
            // Provisional then retracted: the words were never said.
            alert(
                1,
                "b1",
                "violence",
                "ja/violence/korosu_bare",
                Critical,
                Provisional,
            ),
            alert(
                1,
                "b1",
                "violence",
                "ja/violence/korosu_bare",
                Critical,
                Retracted,
            ),
            // Provisional then confirmed: found.
            alert(
                2,
                "c1",
                "violence",
                "ja/violence/korosu",
                Critical,
                Provisional,
            ),
            alert(
                2,
                "c1",
                "violence",
                "ja/violence/korosu",
                Critical,
                Confirmed,
            ),
            // Retracted is not a find either.
            alert(
                3,
                "c1",
                "threat",
                "ja/threat/oboetoke",
                Critical,
                Provisional,
            ),
            alert(3, "c1", "threat", "ja/threat/oboetoke", Critical, Retracted),
        ];
        let report = evaluate(&alerts, &ids(&["c1", "c2", "b1", "b2"]), &labels);
        assert_eq!(report.benign.false_alarm_calls, 0);
        assert!(report.false_alarms.is_empty());
        let missed: Vec<(&str, &str, Option<AlertStatus>)> = report
            .misses
            .iter()
            .map(|m| (m.call_id.as_str(), m.category.as_str(), m.status))
            .collect();
        assert_eq!(
            missed,
            [
                ("c1", "threat", Some(Retracted)),
                ("c2", "verbal_abuse", None)
            ]
        );
        assert_eq!(report.totals.found, 1);
        assert!(report
            .rules
            .iter()
            .all(|r| r.rule != "ja/violence/korosu_bare"));
    }

    #[test]
    fn calls_missing_from_the_replay_are_listed_not_counted() {
        let labels = Labels::parse(LABELS).unwrap();
        let report = evaluate(&[], &ids(&["c2", "b2"]), &labels);
        assert_eq!(report.calls, 2);
        assert_eq!(report.not_replayed, ["b1", "c1"]);
        assert_eq!(report.totals.expected, 1);
        assert_eq!(report.benign.false_alarm_rate, Some(0.0));
    }

    #[test]
    fn acceptable_categories_are_neither_found_nor_false() {
        use AlertStatus::*;
        use Severity::*;
        let labels = Labels::parse(
            r#"{"c1": {"expected": ["threat"], "acceptable": ["intimidation"], "note": "x"},
                "b1": {"benign": true, "acceptable": ["verbal_abuse"], "author": "y"}}"#,
        )
        .unwrap();
        let alerts = vec![
            alert(1, "c1", "threat", "en/threat/a", Critical, Confirmed),
            alert(
                2,
                "c1",
                "intimidation",
                "en/intimidation/b",
                Warning,
                Confirmed,
            ),
            alert(
                3,
                "b1",
                "verbal_abuse",
                "en/verbal_abuse/c",
                Warning,
                Confirmed,
            ),
        ];
        let report = evaluate(&alerts, &ids(&["c1", "b1"]), &labels);
        assert_eq!(report.totals.expected, 1);
        assert_eq!(report.totals.found, 1);
        assert_eq!(report.totals.false_alarms, 0);
        assert!(report.false_alarms.is_empty(), "{:?}", report.false_alarms);
        assert_eq!(report.benign.false_alarm_calls, 0);
        assert!(report.rules.iter().all(|r| r.false_alarm_calls == 0));
    }

    #[test]
    fn labels_errors_name_the_call_and_field() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"c1": {"expected": ["violense"]}}"#,
                r#"labels: call "c1": expected: unknown category "violense" (known: violence,"#,
            ),
            (
                r#"{"c1": {"expected": ["demand"]}}"#,
                r#"labels: call "c1": expected: "demand" is a signal"#,
            ),
            (
                r#"{"c1": {"expected": "violence"}}"#,
                r#"labels: call "c1": expected: must be an array"#,
            ),
            (
                r#"{"c1": {"expected": [], "benign": "no"}}"#,
                r#"labels: call "c1": benign: must be true or false"#,
            ),
            (
                r#"{"c1": {"expected": ["threat"], "benign": true}}"#,
                r#"labels: call "c1": benign: a benign call cannot expect"#,
            ),
            (
                // A misspelt field is ignored like any note, so the label
                // has no `expected` at all.
                r#"{"c1": {"expect": ["threat"]}}"#,
                r#"labels: call "c1": expected: missing"#,
            ),
            (
                r#"{"c1": {"expected": ["threat"], "acceptable": ["threat"]}}"#,
                r#"labels: call "c1": acceptable: "threat" is also expected"#,
            ),
            (
                r#"{"c1": {"expected": [], "benign": true, "acceptable": ["demand"]}}"#,
                r#"labels: call "c1": acceptable: "demand" is a signal"#,
            ),
            (
                r#"{"c1": {"benign": false}}"#,
                r#"labels: call "c1": expected: missing"#,
            ),
            (
                r#"{"c1": {"expected": ["threat", "threat"]}}"#,
                "listed twice",
            ),
            (r#"["c1"]"#, "labels: the top level must be an object"),
            (r#"{"c1": "#, "labels: not valid JSON"),
        ];
        for (json, want) in cases {
            let err = Labels::parse(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
        let extra = vec!["fraud".to_owned()];
        let labels =
            Labels::parse_with_categories(r#"{"c1": {"expected": ["fraud"]}}"#, &extra).unwrap();
        assert!(labels.calls["c1"].expected.contains("fraud"));
    }

    #[test]
    fn compare_fails_on_lost_recall_or_new_benign_alarms() {
        use AlertStatus::*;
        use Severity::*;
        let labels = Labels::parse(LABELS).unwrap();
        let calls = ids(&["c1", "c2", "b1", "b2"]);
        let good = evaluate(
            &[
                alert(1, "c1", "violence", "r/v", Critical, Confirmed),
                alert(2, "c1", "threat", "r/t", Critical, Confirmed),
                alert(3, "c2", "verbal_abuse", "r/a", Warning, Confirmed),
            ],
            &calls,
            &labels,
        );
        assert_eq!(compare(&good, &good), Ok(()));
        // Worse recall, and a benign call now raises something.
        let worse = evaluate(
            &[
                alert(1, "c1", "violence", "r/v", Critical, Confirmed),
                alert(3, "c2", "verbal_abuse", "r/a", Warning, Confirmed),
                alert(4, "b2", "verbal_abuse", "r/a", Warning, Confirmed),
            ],
            &calls,
            &labels,
        );
        let failures = compare(&worse, &good).unwrap_err();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].starts_with("overall recall fell from 100.0% to 66.7%"));
        assert!(
            failures[0].contains("threat 100.0% -> 0.0%"),
            "{}",
            failures[0]
        );
        assert!(
            failures[0].contains("new misses: c1/threat"),
            "{}",
            failures[0]
        );
        assert!(failures[1].starts_with("benign false-alarm rate rose from 0.0% to 50.0%"));
        assert!(failures[1].contains("b2/verbal_abuse"), "{}", failures[1]);
        // Better than the baseline passes; so does a change within tolerance.
        assert_eq!(compare(&good, &worse), Ok(()));
        let mut nearly = good.clone();
        nearly.totals.recall = Some(0.998);
        assert_eq!(compare(&nearly, &good), Ok(()));
        // A baseline read back from JSON compares the same.
        let baseline = Report::from_json(&good.to_json()).unwrap();
        assert!(compare(&worse, &baseline).is_err());
    }

    /// The labelled sets in the repository, each a folder with `calls/`,
    /// `labels.json` and `baseline.json`: the team's own set, and the blind
    /// dev and test splits written apart from the lexicons (eval/blind).
    const SETS: &[&str] = &[
        "eval/labelled",
        "eval/blind/dev",
        "eval/blind/dev2",
        "eval/blind/dev3",
        "eval/blind/dev4",
        "eval/blind/dev5",
        "eval/blind/dev6",
        "eval/blind/dev7",
        "eval/blind/dev8",
        "eval/blind/dev9",
        "eval/blind/dev10",
        "eval/blind/dev11",
        "eval/blind/dev12",
        "eval/blind/dev13",
        "eval/blind/dev14",
        "eval/blind/dev15",
        "eval/blind/dev16",
        "eval/blind/dev17",
        "eval/blind/dev18",
        "eval/blind/dev19",
        "eval/blind/dev20",
        "eval/blind/dev21",
        "eval/blind/dev22",
        "eval/blind/dev23",
        "eval/blind/dev24",
        "eval/blind/dev25",
        "eval/blind/dev26",
        "eval/blind/dev27",
        "eval/blind/test",
    ];

    fn set_dir(set: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(set)
    }

    fn run_set(set: &str) -> Report {
        let dir = set_dir(set);
        let labels = Labels::load(&dir.join("labels.json")).unwrap();
        let engine = Engine::build(Lexicon::embedded().unwrap()).unwrap();
        run(&[dir.join("calls")], &labels, &engine, &Policy::builtin()).unwrap()
    }

    #[test]
    fn shipped_labelled_sets_meet_their_baselines() {
        for set in SETS {
            let report = run_set(set);
            assert!(
                report.unlabelled.is_empty(),
                "{set}: {:?}",
                report.unlabelled
            );
            assert!(
                report.not_replayed.is_empty(),
                "{set}: {:?}",
                report.not_replayed
            );
            assert!(report.refused.is_empty(), "{set}: {:?}", report.refused);
            // Every set is a real sample (the smallest splits have two
            // authors' 32 calls), so a baseline never rests on a handful.
            assert!(
                report.abusive_calls >= 12 && report.benign_calls >= 12,
                "{set}: {} abusive, {} benign calls",
                report.abusive_calls,
                report.benign_calls
            );
            let text = std::fs::read_to_string(set_dir(set).join("baseline.json")).unwrap();
            let baseline = Report::from_json(&text).unwrap();
            if let Err(failures) = compare(&report, &baseline) {
                panic!(
                    "{set} got worse than its baseline.json:\n{}\n\n{report}",
                    failures.join("\n")
                );
            }
        }
    }

    /// Rewrites every set's baseline.json from the current lexicons:
    /// `cargo test --lib eval::tests::write_baseline -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn write_baseline() {
        for set in SETS {
            let report = run_set(set);
            std::fs::write(set_dir(set).join("baseline.json"), report.to_json()).unwrap();
            println!("== {set}\n{report}");
        }
    }
}
