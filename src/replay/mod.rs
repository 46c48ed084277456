//! Offline replay: recorded calls through exactly the engine, policy and
//! call table that `serve` uses, with deterministic output.
//!
//! Order: calls by start time (`started_at`, then first appearance), events
//! of a call in file order; alert and event ids are numbered in that output
//! order, so the same files always give byte-identical output. Calls that
//! share a `caller_id` share the repeat-caller count in start-time order.
//! `raised_at` is the call's `started_at` plus the alert's audio time (the
//! Unix epoch when the call has no start time) — never the wall clock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::alert::Alert;
use crate::call::{Applied, CallTable, CallerHasher, CallerHistory};
use crate::engine::{Engine, Scratch};
use crate::event::{CallEnd, Event};
use crate::policy::Policy;

/// A problem with one input file; the others are still replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
}

/// Expands files and directories (recursively, `*.jsonl` and `*.json`
/// files inside directories), sorted for a stable order.
pub fn collect_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut out)?;
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    let io = |source| ReplayError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "jsonl" || e == "json")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads one JSON Lines file of events. Blank lines are skipped; the first
/// bad line fails the file with its line number and the field.
pub fn read_jsonl(path: &Path) -> Result<Vec<Event>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| ReplayError::Parse {
            path: path.display().to_string(),
            line: i + 1,
            message: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}

/// An event refused during replay (it is reported; the call goes on).
#[derive(Debug)]
pub struct Refused {
    pub call_id: String,
    pub reason: String,
}

/// The result of a replay.
#[derive(Debug, Default)]
pub struct Replayed {
    pub alerts: Vec<Alert>,
    pub calls: usize,
    pub refused: Vec<Refused>,
}

/// Replays events (of one or many calls, interleaved or not).
pub fn replay(events: Vec<Event>, engine: &Engine, policy: &Policy) -> Replayed {
    // Group by call, keeping file order within each call.
    let mut order: Vec<String> = Vec::new();
    let mut by_call: HashMap<String, Vec<Event>> = HashMap::new();
    for event in events {
        let id = event.call_id().to_owned();
        by_call
            .entry(id.clone())
            .or_insert_with(|| {
                order.push(id.clone());
                Vec::new()
            })
            .push(event);
    }
    let start_of = |events: &[Event]| {
        events.iter().find_map(|e| match e {
            Event::Start(s) => s.started_at,
            _ => None,
        })
    };
    let mut calls: Vec<(Option<jiff::Timestamp>, usize, String)> = order
        .iter()
        .enumerate()
        .map(|(i, id)| (start_of(&by_call[id]), i, id.clone()))
        .collect();
    // Calls with a start time first, by time; then the others in file order.
    calls.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });

    // Keys only live for this run; nothing is stored.
    let hasher = CallerHasher::new(b"callguard replay");
    let mut history = CallerHistory::default();
    let mut scratch = Scratch::default();
    let mut out = Replayed::default();
    let mut next_alert_id = 1u64;
    for (started_at, _, call_id) in calls {
        let events = by_call.remove(&call_id).unwrap_or_default();
        let mut table = CallTable::new(1, usize::MAX);
        let mut ids: HashMap<u32, u64> = HashMap::new();
        let mut tenant = String::new();
        let mut agent_id = String::new();
        let mut last_ms = 0;
        let mut ended = false;
        let base = started_at.unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        out.calls += 1;
        let mut emit = |applied: Applied, tenant: &str, agent_id: &str, out: &mut Replayed| {
            let Applied::Accepted(alerts) = applied else {
                return;
            };
            for a in alerts {
                let alert_id = *ids.entry(a.local_id).or_insert_with(|| {
                    next_alert_id += 1;
                    next_alert_id - 1
                });
                out.alerts.push(Alert {
                    event_id: out.alerts.len() as u64 + 1,
                    alert_id,
                    status: a.status,
                    call_id: call_id.clone(),
                    tenant: tenant.to_owned(),
                    agent_id: agent_id.to_owned(),
                    category: a.category.to_string(),
                    severity: a.severity,
                    rule: a.rule.to_string(),
                    lexicon_version: engine.version().to_owned(),
                    at_ms: a.at_ms,
                    raised_at: base + jiff::SignedDuration::from_millis(a.at_ms as i64),
                    evidence: a.evidence,
                    action: a.action.to_string(),
                });
            }
        };
        for event in &events {
            if let Event::Start(s) = event {
                tenant = s.tenant.clone();
                agent_id = s.agent_id.clone();
            }
            if let Event::Fragment(f) = event {
                last_ms = last_ms.max(f.end_ms);
            }
            ended |= matches!(event, Event::End(_));
            let mut caller_calls = |start: &crate::event::CallStart| {
                let window = jiff::SignedDuration::from_hours(
                    policy.for_tenant(&start.tenant).repeat_callers.window_hours as i64,
                );
                match (
                    start.caller_id.as_deref().and_then(|c| hasher.key(c)),
                    start.started_at,
                ) {
                    (Some(key), Some(at)) => history.record(key, at, window),
                    _ => 0,
                }
            };
            match table.apply(event, 0, engine, policy, &mut caller_calls, &mut scratch) {
                Ok(routed) => emit(routed.applied, &tenant, &agent_id, &mut out),
                Err(e) => out.refused.push(Refused {
                    call_id: call_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        if !ended && !table.is_empty() {
            // A call without an end ends at its last event (DESIGN section 2).
            let end = Event::End(CallEnd {
                call_id: call_id.clone(),
                end_ms: last_ms,
            });
            if let Ok(routed) = table.apply(&end, 0, engine, policy, &mut |_| 0, &mut scratch) {
                emit(routed.applied, &tenant, &agent_id, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::Lexicon;

    fn events(jsonl: &str) -> Vec<Event> {
        jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn calls_in_start_order_share_caller_counts_and_ids_are_sequential() {
        let engine = Engine::build(Lexicon::embedded().unwrap()).unwrap();
        let policy = Policy::builtin();
        let mut lines = String::new();
        // Three calls from one caller, written out of order; the third by
        // start time raises persistence.
        for (id, hour) in [("c3", 12), ("c1", 10), ("c2", 11)] {
            lines.push_str(&format!(
                "{{\"type\":\"start\",\"call_id\":\"{id}\",\"caller_id\":\"+8190\",\"started_at\":\"2026-10-05T{hour}:00:00+09:00\",\"timezone\":\"Asia/Tokyo\"}}\n"
            ));
        }
        lines.push_str("{\"type\":\"fragment\",\"call_id\":\"c1\",\"speaker\":\"customer\",\"text\":\"ぶっ殺すぞ\",\"language\":\"ja\",\"end_ms\":5000}\n");
        let result = replay(events(&lines), &engine, &policy);
        let summary: Vec<(u64, u64, &str, &str)> = result
            .alerts
            .iter()
            .map(|a| (a.event_id, a.alert_id, a.call_id.as_str(), a.rule.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 1, "c1", "ja/violence/bukkorosu"),
                (2, 2, "c3", "counter/persistence/repeat_caller"),
            ]
        );
        assert_eq!(result.calls, 3);
        // raised_at is the call's start plus the audio time: reproducible.
        assert_eq!(
            result.alerts[0].raised_at.to_string(),
            "2026-10-05T01:00:05Z"
        );
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(
            &path,
            "{\"type\":\"end\",\"call_id\":\"c\"}\n{\"type\":\"fragment\",\"call_id\":\"c\"}\n",
        )
        .unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.jsonl:2: missing field `speaker`"),
            "{err}"
        );
    }
}
