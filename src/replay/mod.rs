//! Offline replay: recorded calls through exactly the engine, policy and
//! call table that `serve` uses, with deterministic output.
//!
//! Order: calls by start time (`started_at`, then first appearance), events
//! of a call in file order; alert and event ids are numbered in that output
//! order, so the same files always give byte-identical output. Calls that
//! share a `caller_id` share the repeat-caller count in start-time order.
//! `raised_at` is the call's `started_at` plus the alert's audio time; a
//! call with no start time (ASR output carries audio offsets only) is dated
//! by its file's modification time, and by the Unix epoch only when it has
//! none (standard input) — never by the wall clock.

pub mod bounded;
pub mod command;
pub mod import;
pub mod report;
pub mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::alert::{Alert, AlertEvent, AlertOrigin};
use crate::call::{Applied, CallTable, CallerHasher, CallerHistory};
use crate::engine::{Engine, Scratch};
use crate::event::{CallEnd, CallStart, Event};
use crate::policy::Policy;
use crate::store::IdCounters;

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

/// Reads one JSON Lines file of events, streamed
/// ([`crate::event::json::JsonLines`]). Blank lines are skipped; the first
/// bad line fails the file with its line number and the field.
pub fn read_jsonl(path: &Path) -> Result<Vec<Event>, ReplayError> {
    let file = std::fs::File::open(path).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })?;
    import::jsonl::read(path, std::io::BufReader::new(file))
}

/// Reads and imports files on all cores, like [`import::import_file`] on
/// each in turn: the results are in the order of `paths`. `progress` is
/// called with the number of files done so far.
pub fn read_files(
    paths: &[PathBuf],
    format: Option<import::Format>,
    options: &import::ImportOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<Result<Vec<Event>, ReplayError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let ids = file_call_ids(paths);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else {
                return out;
            };
            let mut options = options.clone();
            if options.call_id.is_none() {
                options.call_id = Some(ids[i].clone());
            }
            out.push((i, read_file(path, format, &options)));
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
        }
    };
    let mut results: Vec<Option<Result<Vec<Event>, ReplayError>>> =
        (0..paths.len()).map(|_| None).collect();
    let parts = on_threads(threads.min(paths.len()), work);
    for (i, result) in parts.into_iter().flatten() {
        results[i] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.expect("every file was read"))
        .collect()
}

/// The call id of each input file whose format does not name its calls
/// (every format but JSON Lines): the file stem (`call.vtt` → `call`),
/// unless another input of this run has the same stem, then the file name
/// (`call.vtt`), unless that is shared too, then the path as given. Two
/// files are never one call because their names look alike; standard
/// input (`-`) is `stdin`.
pub fn file_call_ids(paths: &[PathBuf]) -> Vec<String> {
    let stem = |p: &Path| -> String {
        if p.as_os_str() == "-" {
            return "stdin".to_owned();
        }
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "call".to_owned())
    };
    let name = |p: &Path| -> String {
        p.file_name()
            .map_or_else(|| stem(p), |s| s.to_string_lossy().into_owned())
    };
    let count = |key: &dyn Fn(&Path) -> String| {
        let mut n: HashMap<String, usize> = HashMap::new();
        for p in paths {
            *n.entry(key(p)).or_default() += 1;
        }
        n
    };
    let (stems, names) = (count(&stem), count(&name));
    paths
        .iter()
        .map(|p| {
            if stems[&stem(p)] == 1 {
                stem(p)
            } else if names[&name(p)] == 1 {
                name(p)
            } else {
                p.display().to_string()
            }
        })
        .collect()
}

/// A file's text; `-` is standard input (read once: a second `-` reads
/// nothing more).
fn read_text(path: &Path) -> Result<String, ReplayError> {
    let io = |source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map_err(io)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(io)
    }
}

/// [`import::import_file`], and standard input as `-`.
fn read_file(
    path: &Path,
    format: Option<import::Format>,
    options: &import::ImportOptions,
) -> Result<Vec<Event>, ReplayError> {
    let text = read_text(path)?;
    parse_text(path, &text, format, options)
}

/// A file's text as events: [`read_file`] after the read.
fn parse_text(
    path: &Path,
    text: &str,
    format: Option<import::Format>,
    options: &import::ImportOptions,
) -> Result<Vec<Event>, ReplayError> {
    let format = match format {
        Some(f) => f,
        None => import::classify(path, text).map_err(|why| import::undetected(path, &why))?,
    };
    import::import(format, path, text, options)
}

/// The languages the fragments of these files are scanned in (a
/// fragment's own, else its call's; `None`: no language, every
/// language's terms), so that only their automata are compiled.
pub fn languages<'a>(
    files: impl IntoIterator<Item = &'a Vec<Event>>,
) -> std::collections::BTreeSet<Option<&'a str>> {
    let mut call_language: HashMap<&str, Option<&str>> = HashMap::new();
    let mut out = std::collections::BTreeSet::new();
    for event in files.into_iter().flatten() {
        match event {
            Event::Start(s) => {
                call_language.insert(&s.call_id, s.language.as_deref());
            }
            Event::Fragment(f) => {
                let language = f
                    .language
                    .as_deref()
                    .or_else(|| call_language.get(f.call_id.as_str()).copied().flatten());
                out.insert(language);
            }
            Event::End(_) => {}
        }
    }
    out
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
    replay_files(std::slice::from_ref(&events), engine, policy)
}

/// [`replay`] of the events of many files, in file order, as if they
/// were one list: nothing is copied.
pub fn replay_files(files: &[Vec<Event>], engine: &Engine, policy: &Policy) -> Replayed {
    replay_named(files, &[], engine, policy)
}

/// What the driver knows of an input file besides its events.
#[derive(Clone, Debug, Default)]
pub struct InputFile {
    /// As the user gave it: a refusal quotes it.
    pub name: String,
    /// Dates its calls that have no start time (for `raised_at` only: the
    /// order of calls and the business-hours rule keep to `started_at`).
    pub modified: Option<jiff::Timestamp>,
}

impl InputFile {
    /// The file's name and modification time (none for `-`).
    pub fn of(path: &Path) -> InputFile {
        let modified = (path.as_os_str() != "-")
            .then(|| std::fs::metadata(path).ok()?.modified().ok())
            .flatten()
            .and_then(|t| jiff::Timestamp::try_from(t).ok());
        InputFile {
            name: path.display().to_string(),
            modified,
        }
    }
}

/// [`replay_files`] with what is known of the input files (in the same
/// order). A call id used in two input files is replayed from the first
/// only, and refused in the others by name — two recordings are not merged
/// into one call because their ids collide.
pub fn replay_named(
    files: &[Vec<Event>],
    names: &[InputFile],
    engine: &Engine,
    policy: &Policy,
) -> Replayed {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The automata these calls need, on all cores before the calls start
    // (else the first worker to need one compiles it while the others wait
    // or compile it too). A driver that must report a set too large to
    // compile calls `Engine::prepare_languages` itself first (the CLI does).
    if let Err(e) = engine.prepare_languages(languages(files)) {
        panic!("lexicon automaton does not compile: {e}");
    }
    let (calls, refused) = order_calls(files, names, policy, threads);
    let mut result = run_calls(calls, engine, policy, threads);
    result.refused.splice(0..0, refused);
    result
}

/// One call's events with what the calls before it decided (its caller's
/// call count).
struct CallInput<'a> {
    call_id: &'a str,
    started_at: Option<jiff::Timestamp>,
    /// Its file's modification time: `raised_at`'s base without `started_at`.
    dated: Option<jiff::Timestamp>,
    caller_calls: u32,
    events: Vec<&'a Event>,
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
    let files = std::slice::from_ref(&events);
    run_calls(
        order_calls(files, &[], policy, threads).0,
        engine,
        policy,
        threads,
    )
}

/// Calls this many at a time go to a worker: few enough that the cores
/// finish together, enough that taking them costs nothing.
const CALLS_PER_TAKE: usize = 8;

fn run_calls(calls: Vec<CallInput>, engine: &Engine, policy: &Policy, threads: usize) -> Replayed {
    let threads = threads.clamp(1, calls.len().max(1));
    // Workers take the next few calls in order (a busy core takes fewer);
    // each keeps its own scratch buffers.
    let next = AtomicUsize::new(0);
    let work = || {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        loop {
            let first = next.fetch_add(CALLS_PER_TAKE, Ordering::Relaxed);
            if first >= calls.len() {
                return out;
            }
            for (i, call) in calls.iter().enumerate().skip(first).take(CALLS_PER_TAKE) {
                out.push((i, run_call(call, engine, policy, &mut scratch)));
            }
        }
    };
    let parts: Vec<Vec<(usize, CallOutput)>> = on_threads(threads, work);
    let mut outputs: Vec<Option<CallOutput>> = (0..calls.len()).map(|_| None).collect();
    for (i, output) in parts.into_iter().flatten() {
        outputs[i] = Some(output);
    }
    number(calls, outputs, engine)
}

/// Groups events by call and orders the calls: by start time, then by first
/// appearance. Caller counts are decided here, in that order.
fn order_calls<'a>(
    files: &'a [Vec<Event>],
    names: &[InputFile],
    policy: &Policy,
    threads: usize,
) -> (Vec<CallInput<'a>>, Vec<Refused>) {
    // Each file's events by call on all cores, then the files' calls merged
    // in file order.
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(file) = files.get(i) else {
                return out;
            };
            out.push((i, group(file)));
        }
    };
    let mut grouped: Vec<(usize, Vec<CallInput<'a>>)> = on_threads(threads.min(files.len()), work)
        .into_iter()
        .flatten()
        .collect();
    grouped.sort_by_key(|(i, _)| *i);
    let mut calls: Vec<CallInput<'a>> = Vec::new();
    let mut refused = Vec::new();
    // Call id → (index in `calls`, the input file it came from).
    let mut by_id: HashMap<&'a str, (usize, usize)> = HashMap::new();
    let name = |file: usize| {
        names
            .get(file)
            .map_or_else(|| format!("input {}", file + 1), |f| f.name.clone())
    };
    for (file_index, file) in grouped {
        for call in file {
            match by_id.get(call.call_id) {
                Some(&(_, first)) if first != file_index => refused.push(Refused {
                    call_id: call.call_id.to_owned(),
                    reason: format!(
                        "call id also used in {}: the {} event(s) of this call in {} were not replayed (give the calls distinct ids)",
                        name(first),
                        call.events.len(),
                        name(file_index)
                    ),
                }),
                Some(&(i, _)) => calls[i].events.extend(call.events),
                None => {
                    by_id.insert(call.call_id, (calls.len(), file_index));
                    let dated = names.get(file_index).and_then(|f| f.modified);
                    calls.push(CallInput { dated, ..call });
                }
            }
        }
    }
    for call in &mut calls {
        call.started_at = call.events.iter().find_map(|e| match e {
            Event::Start(s) => s.started_at,
            _ => None,
        });
    }
    // Stable: calls with the same start time (or none) keep their order of
    // first appearance.
    calls.sort_by(|a, b| match (a.started_at, b.started_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    // Keys only live for this run; nothing is stored.
    let hasher = CallerHasher::new(b"callguard replay");
    let mut history = CallerHistory::default();
    for call in &mut calls {
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
    (calls, refused)
}

/// One list of events by call, in order of first appearance.
fn group(events: &[Event]) -> Vec<CallInput<'_>> {
    let mut calls: Vec<CallInput> = Vec::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    // A call's events mostly come together: look the id up only when it
    // changes.
    let mut last: Option<(&str, usize)> = None;
    for event in events {
        let id = event.call_id();
        let index = match last {
            Some((last_id, index)) if last_id == id => index,
            _ => *by_id.entry(id).or_insert_with(|| {
                calls.push(CallInput {
                    call_id: id,
                    started_at: None,
                    dated: None,
                    caller_calls: 0,
                    events: Vec::new(),
                });
                calls.len() - 1
            }),
        };
        last = Some((id, index));
        calls[index].events.push(event);
    }
    calls
}

/// Runs `work` on `threads` threads (this one included, at least one) and
/// returns what each returned; the work items are shared through `work`.
fn on_threads<T: Send>(threads: usize, work: impl Fn() -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut parts = vec![work()];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("a replay worker panicked")),
        );
        parts
    })
}

/// Runs one call through a table of its own.
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
    for &event in &call.events {
        match event {
            Event::Start(s) => {
                out.tenant = s.tenant.clone();
                out.agent_id = s.agent_id.clone();
            }
            Event::Fragment(f) => last_ms = last_ms.max(f.end_ms),
            Event::End(_) => ended = true,
        }
        let caller_calls = &mut |_: &CallStart| call.caller_calls;
        match table.apply(event, 0, engine, policy, caller_calls, scratch) {
            Ok(routed) => {
                if let Applied::Accepted(alerts) = routed.applied {
                    out.alerts.extend(alerts);
                }
            }
            Err(e) => out.refused.push(Refused {
                call_id: call.call_id.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    if !ended && !table.is_empty() {
        // A call without an end ends at its last event (DESIGN section 2).
        let end = Event::End(CallEnd {
            call_id: call.call_id.to_owned(),
            end_ms: last_ms,
        });
        if let Ok(routed) = table.apply(&end, 0, engine, policy, &mut |_| 0, scratch) {
            if let Applied::Accepted(alerts) = routed.applied {
                out.alerts.extend(alerts);
            }
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
    let mut counters = IdCounters::default();
    for (call, output) in calls.into_iter().zip(outputs) {
        let Some(output) = output else { continue };
        let base = call
            .started_at
            .or(call.dated)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let origin = AlertOrigin {
            call_id: call.call_id,
            tenant: &output.tenant,
            agent_id: &output.agent_id,
            lexicon_version: engine.version(),
        };
        let mut ids: HashMap<u32, u64> = HashMap::new();
        for a in output.alerts {
            let local_id = a.local_id;
            let raised_at = base + jiff::SignedDuration::from_millis(a.at_ms as i64);
            let alert = Alert::from_event(a, &origin, raised_at);
            result
                .alerts
                .push(counters.number(&mut ids, local_id, alert));
        }
        result.refused.extend(output.refused);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::Lexicon;

    #[test]
    fn file_call_ids_are_unique_per_run() {
        let paths: Vec<PathBuf> = ["a/call.vtt", "a/call.srt", "b/call.srt", "x/solo.json", "-"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            file_call_ids(&paths),
            ["call.vtt", "a/call.srt", "b/call.srt", "solo", "stdin"]
        );
    }

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
            // In the words every reader of the format uses (issue #17: one
            // reader; this one gave serde's raw message before).
            err.contains("bad.jsonl:2: field `speaker` is missing"),
            "{err}"
        );
    }

    /// `read_file` gives what `import::import_file` gives (events, or the
    /// error with its line), on the fixtures, the fuzz seeds and bad lines.
    #[test]
    fn read_file_reads_like_the_importer() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            "{\"type\":\"start\",\"call_id\":\"c\"}\n\n{\"type\":\"fragment\",\"call_id\":\"c\",\"speaker\":\"customer\",\"text\":\"x\",\"loudness_dbfs\":1e39}\n",
            "{\"type\":\"end\",\"call_id\":\"c\"}\n{\"type\":\"fragment\",\"call_id\":\"c\"}\n",
            "\u{feff}{\"type\":\"end\",\"call_id\":\"c\"}\r\n  \n{\"type\":\"end\",\"call_id\":\"c\",\"end_ms\":01}\n",
            "{\"type\":\"end\",\"call_id\":\"c\"}\n{\"type\":\"end\",\"call_id\":\"c\"",
        ];
        let mut paths: Vec<PathBuf> = bad
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = dir.path().join(format!("bad{i}.jsonl"));
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        paths.extend(
            collect_paths(&[
                root.join("tests/fixtures"),
                root.join("fuzz/regressions/import_jsonl"),
            ])
            .unwrap(),
        );
        let options = import::ImportOptions::default();
        for format in [None, Some(import::Format::Jsonl)] {
            for path in &paths {
                let ours = read_file(path, format, &options).map_err(|e| e.to_string());
                let theirs = import::import_file(format, path, &options).map_err(|e| e.to_string());
                assert_eq!(ours, theirs, "{}", path.display());
            }
        }
        let files = read_files(&paths, None, &options, &|_| {});
        assert_eq!(files.len(), paths.len());
        assert!(files[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("bad0.jsonl:3:"));
    }
}
