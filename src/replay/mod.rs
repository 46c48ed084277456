//! Offline replay: recorded calls through exactly the engine, policy and
//! call table that `serve` uses, with deterministic output.
//!
//! Order: calls by start time (`started_at`, then first appearance), events
//! of a call in file order; alert and event ids are numbered in that output
//! order, so the same files always give byte-identical output. Calls that
//! share a `caller_id` share the repeat-caller count in start-time order.
//! `raised_at` is the call's `started_at` plus the alert's audio time (the
//! Unix epoch when the call has no start time) — never the wall clock.

pub mod import;
pub mod report;
pub mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::alert::{Alert, AlertEvent};
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

/// Expands files and directories (recursively: `*.jsonl`, `*.json`, `*.vtt`, `*.srt`
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
            .is_some_and(|e| ["jsonl", "json", "vtt", "srt"].iter().any(|x| e == *x))
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

/// Replays events (of one or many calls, interleaved or not) on all cores.
pub fn replay(events: Vec<Event>, engine: &Engine, policy: &Policy) -> Replayed {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    replay_with_threads(events, engine, policy, threads)
}

/// One call's events with what the calls before it decided (its caller's
/// call count).
struct CallInput {
    call_id: String,
    started_at: Option<jiff::Timestamp>,
    caller_calls: u32,
    events: Vec<Event>,
}

/// One call's result, before service-wide numbering.
struct CallOutput {
    alerts: Vec<AlertEvent>,
    tenant: String,
    agent_id: String,
    refused: Vec<Refused>,
}

/// [`replay`] with a given number of threads. The output does not depend
/// on it: calls run in parallel, numbering happens afterwards in call order.
pub fn replay_with_threads(
    events: Vec<Event>,
    engine: &Engine,
    policy: &Policy,
    threads: usize,
) -> Replayed {
    let calls = order_calls(events, policy);
    let threads = threads.clamp(1, calls.len().max(1));
    let mut outputs: Vec<Option<CallOutput>> = (0..calls.len()).map(|_| None).collect();
    if threads == 1 {
        let mut scratch = Scratch::default();
        for (i, call) in calls.iter().enumerate() {
            outputs[i] = Some(run_call(call, engine, policy, &mut scratch));
        }
    } else {
        // Round-robin over threads; each keeps its own scratch buffers.
        let results: Vec<Vec<(usize, CallOutput)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let calls = &calls;
                    scope.spawn(move || {
                        let mut scratch = Scratch::default();
                        (t..calls.len())
                            .step_by(threads)
                            .map(|i| (i, run_call(&calls[i], engine, policy, &mut scratch)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a replay worker panicked"))
                .collect()
        });
        for (i, output) in results.into_iter().flatten() {
            outputs[i] = Some(output);
        }
    }
    number(calls, outputs, engine)
}

/// Groups events by call and orders the calls: by start time, then by first
/// appearance. Caller counts are decided here, in that order.
fn order_calls(events: Vec<Event>, policy: &Policy) -> Vec<CallInput> {
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
    let mut calls: Vec<(usize, CallInput)> = order
        .into_iter()
        .enumerate()
        .map(|(i, call_id)| {
            let events = by_call.remove(&call_id).unwrap_or_default();
            let started_at = events.iter().find_map(|e| match e {
                Event::Start(s) => s.started_at,
                _ => None,
            });
            (
                i,
                CallInput {
                    call_id,
                    started_at,
                    caller_calls: 0,
                    events,
                },
            )
        })
        .collect();
    calls.sort_by(|(ia, a), (ib, b)| match (a.started_at, b.started_at) {
        (Some(x), Some(y)) => x.cmp(&y).then(ia.cmp(ib)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => ia.cmp(ib),
    });
    // Keys only live for this run; nothing is stored.
    let hasher = CallerHasher::new(b"callguard replay");
    let mut history = CallerHistory::default();
    let mut ordered: Vec<CallInput> = calls.into_iter().map(|(_, c)| c).collect();
    for call in &mut ordered {
        let start = call.events.iter().find_map(|e| match e {
            Event::Start(s) => Some(s),
            _ => None,
        });
        if let Some(start) = start {
            let window = jiff::SignedDuration::from_hours(
                policy.for_tenant(&start.tenant).repeat_callers.window_hours as i64,
            );
            if let (Some(key), Some(at)) = (
                start.caller_id.as_deref().and_then(|c| hasher.key(c)),
                start.started_at,
            ) {
                call.caller_calls = history.record(key, at, window);
            }
        }
    }
    ordered
}

/// Runs one call through a call table of its own.
fn run_call(
    call: &CallInput,
    engine: &Engine,
    policy: &Policy,
    scratch: &mut Scratch,
) -> CallOutput {
    let mut table = CallTable::new(1, usize::MAX);
    let mut out = CallOutput {
        alerts: Vec::new(),
        tenant: String::new(),
        agent_id: String::new(),
        refused: Vec::new(),
    };
    let mut last_ms = 0;
    let mut ended = false;
    let take = |applied: Applied, out: &mut CallOutput| {
        if let Applied::Accepted(alerts) = applied {
            out.alerts.extend(alerts);
        }
    };
    for event in &call.events {
        match event {
            Event::Start(s) => {
                out.tenant = s.tenant.clone();
                out.agent_id = s.agent_id.clone();
            }
            Event::Fragment(f) => last_ms = last_ms.max(f.end_ms),
            Event::End(_) => ended = true,
        }
        match table.apply(
            event,
            0,
            engine,
            policy,
            &mut |_| call.caller_calls,
            scratch,
        ) {
            Ok(routed) => take(routed.applied, &mut out),
            Err(e) => out.refused.push(Refused {
                call_id: call.call_id.clone(),
                reason: e.to_string(),
            }),
        }
    }
    if !ended && !table.is_empty() {
        // A call without an end ends at its last event (DESIGN section 2).
        let end = Event::End(CallEnd {
            call_id: call.call_id.clone(),
            end_ms: last_ms,
        });
        if let Ok(routed) = table.apply(&end, 0, engine, policy, &mut |_| 0, scratch) {
            take(routed.applied, &mut out);
        }
    }
    out
}

/// Service-wide ids in output order: calls in order, alerts in order.
fn number(calls: Vec<CallInput>, outputs: Vec<Option<CallOutput>>, engine: &Engine) -> Replayed {
    let mut result = Replayed {
        calls: calls.len(),
        ..Replayed::default()
    };
    let mut next_alert_id = 1u64;
    for (call, output) in calls.into_iter().zip(outputs) {
        let Some(output) = output else { continue };
        let base = call.started_at.unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut ids: HashMap<u32, u64> = HashMap::new();
        for a in output.alerts {
            let alert_id = *ids.entry(a.local_id).or_insert_with(|| {
                next_alert_id += 1;
                next_alert_id - 1
            });
            result.alerts.push(Alert {
                event_id: result.alerts.len() as u64 + 1,
                alert_id,
                status: a.status,
                call_id: call.call_id.clone(),
                tenant: output.tenant.clone(),
                agent_id: output.agent_id.clone(),
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
        result.refused.extend(output.refused);
    }
    result
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
    fn parallel_replay_gives_byte_identical_output() {
        let engine = Engine::build(Lexicon::embedded().unwrap()).unwrap();
        let policy = Policy::builtin();
        let texts = [
            "ぶっ殺すぞ",
            "返金しろ",
            "こんにちは",
            "I will kill you",
            "you idiot",
            "土下座しろ",
            "返金しろよ",
        ];
        let mut lines = String::new();
        for c in 0..60 {
            lines.push_str(&format!(
                "{{\"type\":\"start\",\"call_id\":\"c{c}\",\"caller_id\":\"+81{}\",\"started_at\":\"2026-10-05T{:02}:00:00Z\"}}\n",
                c % 7,
                c % 24
            ));
            for (i, text) in texts.iter().enumerate().skip(c % 3) {
                lines.push_str(&format!(
                    "{{\"type\":\"fragment\",\"call_id\":\"c{c}\",\"speaker\":\"customer\",\"text\":\"{text}\",\"utterance_id\":\"u{i}\",\"end_ms\":{}}}\n",
                    (i + 1) * 1000
                ));
            }
        }
        let render = |threads| {
            let r = replay_with_threads(events(&lines), &engine, &policy, threads);
            r.alerts
                .iter()
                .map(|a| serde_json::to_string(a).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let single = render(1);
        assert!(single.lines().count() > 60);
        assert_eq!(render(2), single);
        assert_eq!(render(5), single);
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
