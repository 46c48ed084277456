//! Alert store append cost: `AlertLog::append` (SQLite, WAL,
//! `synchronous = FULL`) beside appending the same alert as a JSON line to
//! a plain file, with and without `sync_data()`.
//!
//! Run: `cargo bench --bench alert_log -- --warm-up-time 1 --measurement-time 3`
//! (figures and how to read them: BENCHMARKS.md).
//!
//! Group `alert_log`, with `Throughput::Elements` = alerts:
//! - `sqlite_append`: `AlertLog::append` of one alert (one transaction,
//!   one commit, so one fsync of the WAL).
//! - `file_append_fsync`: the alert serialised to JSON, written as one line
//!   to a file opened for append, then `sync_data()`. That is the fair
//!   baseline: the store commits with `synchronous = FULL`, so it syncs too.
//! - `file_append`: the same without the sync, for scale: the cost of the
//!   serialisation and the `write` call alone (run last, on its own file,
//!   which is emptied every 4,096 lines so no gigabytes of dirty pages
//!   pile up).
//! - `sqlite_append_batch16`: `AlertLog::append` of 16 alerts in one call
//!   (one transaction).
//! - `file_append_batch16_fsync`: 16 JSON lines, 16 `write` calls, one
//!   `sync_data()`.
//!
//! The alerts are real: the engine and the call state machine raise them
//! from abusive customer fragments of 16 calls, with their evidence, and
//! they are turned into `Alert`s the way the service does. Each timed
//! append stores the next of the 16 (one alert per call). Files live in a
//! temporary directory under the system temporary directory; nothing else
//! is read or written.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;

use callguard::alert::{Alert, AlertFilter};
use callguard::call::{Applied, CallTable};
use callguard::category::Speaker;
use callguard::engine::{Engine, Scratch};
use callguard::event::{CallStart, Event, Fragment, DEFAULT_MAX_TEXT_BYTES};
use callguard::lexicon::Lexicon;
use callguard::policy::Policy;
use callguard::store::AlertLog;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Alerts in a batch, and distinct alerts (calls) the single appends cycle
/// through.
const BATCH: usize = 16;
/// `file_append` (no sync) empties its file every this many lines.
const UNSYNCED_KEEP: u64 = 4096;

/// Abusive customer utterances, one per call, in the call's language.
const UTTERANCES: &[(&str, &str)] = &[
    (
        "ja-JP",
        "ふざけるな、お前バカか。責任者を出せ、注文番号は12345だ。",
    ),
    (
        "en-US",
        "I'll kill you if this isn't fixed today, my order is 48213.",
    ),
    ("ja-JP", "このクズ野郎！もう三回も電話してるんだぞ。"),
    (
        "en-US",
        "You're a piece of shit. I was charged twice, $59.99.",
    ),
    ("ja-JP", "ぶっ殺すぞ。いい加減にしろ。"),
    (
        "en-US",
        "You're garbage, all of you. Cancel the contract now.",
    ),
    ("ja-JP", "お前人間のクズだな。返金はいつになるんだ。"),
    ("en-US", "you're trash, put your manager on the phone."),
];

/// `BATCH` alerts, one per call, raised by the call state machine.
fn alerts() -> Vec<Alert> {
    let engine = Engine::build(Lexicon::embedded().expect("embedded lexicons are valid"))
        .expect("engine builds");
    let policy = Policy::builtin();
    let mut scratch = Scratch::default();
    let mut table = CallTable::new(BATCH, DEFAULT_MAX_TEXT_BYTES);
    let raised_at: jiff::Timestamp = "2026-11-21T01:23:45.678Z".parse().expect("timestamp");
    let mut alerts = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let (language, text) = UTTERANCES[i % UTTERANCES.len()];
        let call_id = format!("call-{i:05}");
        let start = Event::Start(CallStart {
            call_id: call_id.clone(),
            tenant: "acme".into(),
            agent_id: format!("agent-{:03}", 7 * i),
            language: Some(language.into()),
            ..CallStart::default()
        });
        table
            .apply(&start, 0, &engine, &policy, &mut |_| 0, &mut scratch)
            .expect("call starts");
        let fragment = Event::Fragment(Fragment {
            call_id: call_id.clone(),
            seq: 1,
            speaker: Speaker::Customer,
            text: text.into(),
            is_final: true,
            utterance_id: "u7".into(),
            start_ms: 61_200,
            end_ms: 64_800,
            language: Some(language.into()),
            loudness_dbfs: None,
        });
        let routed = table
            .apply(&fragment, 0, &engine, &policy, &mut |_| 0, &mut scratch)
            .expect("fragment applies");
        let Applied::Accepted(events) = routed.applied else {
            panic!("fragment of {call_id} taken as a duplicate");
        };
        let event = events
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no alert for {text:?}"));
        let snapshot = routed.snapshot.expect("an alert comes with a snapshot");
        alerts.push(Alert {
            event_id: 0,
            alert_id: 0,
            status: event.status,
            call_id: snapshot.call_id,
            tenant: snapshot.tenant,
            agent_id: snapshot.agent_id,
            category: event.category.to_string(),
            severity: event.severity,
            rule: event.rule.to_string(),
            lexicon_version: engine.version().to_owned(),
            at_ms: event.at_ms,
            raised_at,
            evidence: event.evidence,
            action: event.action.to_string(),
            handling: None,
        });
    }
    alerts
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open plain file")
}

/// Appends one alert and returns its `event_id`.
fn sqlite_one(log: &mut AlertLog, alert: &mut Alert) -> u64 {
    alert.alert_id = 0;
    alert.event_id = 0;
    log.append(std::slice::from_mut(alert)).expect("append");
    alert.event_id
}

/// Appends a batch and returns the last `event_id`.
fn sqlite_batch(log: &mut AlertLog, alerts: &mut [Alert]) -> u64 {
    for alert in alerts.iter_mut() {
        alert.alert_id = 0;
        alert.event_id = 0;
    }
    log.append(alerts).expect("append");
    alerts[alerts.len() - 1].event_id
}

/// Writes one alert as a JSON line (one `write` call), with the reused
/// buffer `line`.
fn file_line(file: &mut File, alert: &Alert, line: &mut Vec<u8>) {
    line.clear();
    serde_json::to_writer(&mut *line, alert).expect("serialise");
    line.push(b'\n');
    file.write_all(line).expect("write");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn benches(c: &mut Criterion) {
    let mut alerts = alerts();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut log = AlertLog::open(&dir.path().join("sqlite")).expect("open alert log");
    let plain_path = dir.path().join("alerts.jsonl");
    let mut plain = open_append(&plain_path);
    let mut line = Vec::with_capacity(2048);
    let line_bytes: Vec<usize> = alerts
        .iter()
        .map(|a| serde_json::to_vec(a).expect("serialise").len() + 1)
        .collect();
    eprintln!(
        "alerts: {} (categories {:?}), {} evidence items, JSON lines of {}..{} bytes; \
         files in {}",
        alerts.len(),
        alerts
            .iter()
            .map(|a| a.category.as_str())
            .collect::<Vec<_>>(),
        alerts.iter().map(|a| a.evidence.len()).sum::<usize>(),
        line_bytes.iter().min().expect("alerts"),
        line_bytes.iter().max().expect("alerts"),
        dir.path().display(),
    );

    // Check the answers once before timing.
    assert!(
        alerts.iter().all(|a| !a.evidence.is_empty()),
        "alert without evidence"
    );
    let first = sqlite_one(&mut log, &mut alerts[0]);
    let second = sqlite_one(&mut log, &mut alerts[1]);
    assert!(first > 0 && second > first, "event ids {first}, {second}");
    let stored = log
        .read_after(0, &AlertFilter::default(), 10)
        .expect("read back");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1], alerts[1], "stored alert differs");
    let last = sqlite_batch(&mut log, &mut alerts);
    assert_eq!(last, second + BATCH as u64, "batch event ids");
    assert!(alerts
        .windows(2)
        .all(|w| w[1].event_id == w[0].event_id + 1));
    let before = file_len(&plain_path);
    file_line(&mut plain, &alerts[0], &mut line);
    plain.sync_data().expect("sync");
    let after = file_len(&plain_path);
    let line_len = |a: &Alert| serde_json::to_vec(a).expect("serialise").len() as u64 + 1;
    assert_eq!(after, before + line_len(&alerts[0]), "plain file length");
    for alert in &alerts {
        file_line(&mut plain, alert, &mut line);
    }
    plain.sync_data().expect("sync");
    assert_eq!(
        file_len(&plain_path),
        after + alerts.iter().map(line_len).sum::<u64>(),
        "plain file length after a batch"
    );
    eprintln!(
        "check: event ids {first}, {second}, then {}..={last}; plain file {} bytes",
        second + 1,
        file_len(&plain_path)
    );

    let mut group = c.benchmark_group("alert_log");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("sqlite_append", |b| {
        b.iter(|| {
            next = (next + 1) % BATCH;
            sqlite_one(&mut log, black_box(&mut alerts[next]))
        })
    });
    group.bench_function("file_append_fsync", |b| {
        b.iter(|| {
            next = (next + 1) % BATCH;
            file_line(&mut plain, black_box(&alerts[next]), &mut line);
            plain.sync_data().expect("sync");
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("sqlite_append_batch16", |b| {
        b.iter(|| sqlite_batch(&mut log, black_box(&mut alerts)))
    });
    group.bench_function("file_append_batch16_fsync", |b| {
        b.iter(|| {
            for alert in black_box(&alerts) {
                file_line(&mut plain, alert, &mut line);
            }
            plain.sync_data().expect("sync");
        })
    });
    // Last, and on a file of its own, cut back to empty every
    // `UNSYNCED_KEEP` lines: millions of unsynced appends would otherwise
    // leave gigabytes of dirty pages behind for the synced runs to flush.
    group.throughput(Throughput::Elements(1));
    let mut unsynced = open_append(&dir.path().join("unsynced.jsonl"));
    let mut lines = 0;
    group.bench_function("file_append", |b| {
        b.iter(|| {
            next = (next + 1) % BATCH;
            file_line(&mut unsynced, black_box(&alerts[next]), &mut line);
            lines += 1;
            if lines % UNSYNCED_KEEP == 0 {
                unsynced.set_len(0).expect("truncate");
            }
        })
    });
    group.finish();

    // The timed appends kept the ids increasing and the file growing.
    let after_timing = log.last_event_id();
    assert!(after_timing > last, "event ids stopped at {after_timing}");
    assert!(file_len(&plain_path) > after, "plain file did not grow");
    eprintln!(
        "after timing: last event id {after_timing}, plain file {} bytes",
        file_len(&plain_path)
    );
}

criterion_group!(alert_log_benches, benches);
criterion_main!(alert_log_benches);
