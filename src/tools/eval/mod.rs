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
//!
//! One file a job: `labels` (the labels file: what each call is expected
//! to raise, checked against the known categories), `score` (a replay's
//! alerts counted against the labels), `baseline` (the comparison with a
//! committed baseline: the CI gate) and `render` (the report as text).
//! Here: [`run`] (a set replayed and scored, what `callguard eval` runs)
//! and the [`Report`] the jobs share, with its JSON form (a baseline).

mod baseline;
mod labels;
mod render;
mod score;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::alert::AlertStatus;
use crate::category::Severity;
use crate::engine::Engine;
use crate::event::Event;
use crate::policy::Policy;
use crate::replay::{self, ReplayError};

pub use baseline::{compare, compare_with_tolerance, TOLERANCE};
pub use labels::{Label, Labels, LabelsError};
pub use score::evaluate;

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::alert::{Alert, Evidence};
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
    /// `labels.json` and `baseline.json`: the team's own set, and every
    /// blind split written apart from the lexicons (eval/blind), so a new
    /// split is gated as soon as it is committed.
    fn sets() -> Vec<String> {
        let mut splits: Vec<String> = std::fs::read_dir(set_dir("eval/blind"))
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                path.join("labels.json").is_file().then(|| {
                    let name = path.file_name().unwrap().to_string_lossy();
                    format!("eval/blind/{name}")
                })
            })
            .collect();
        splits.sort();
        splits.insert(0, "eval/labelled".to_owned());
        splits
    }

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
        for set in &sets() {
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
        for set in &sets() {
            let report = run_set(set);
            std::fs::write(set_dir(set).join("baseline.json"), report.to_json()).unwrap();
            println!("== {set}\n{report}");
        }
    }
}
