//! Replay in bounded memory: what `callguard replay` runs, for an archive
//! of any size. The output is byte for byte that of [`super::replay_named`]
//! (which holds every event in memory; `eval` and the tests use it), as
//! the test `bounded_replay_is_byte_identical` checks.
//!
//! Two passes over the files, each read as a stream:
//! 1. **Index**: every call's first appearance, input file, start time and
//!    caller (a few dozen bytes a call, no text). From it, the output
//!    order (start time, then first appearance) and the repeat-caller
//!    counts, decided in that order as before. Helper threads parse
//!    chunks of lines (fragment and end lines borrowed, not copied); one
//!    thread indexes their events in file order.
//! 2. **Replay**: a reader hands each line, unparsed, to one of the
//!    workers (by call: `route` reads the type and id from the line's
//!    first bytes); the workers parse it and keep only the calls in
//!    flight: a call ends at its `end` event, or at the end of its file.
//!    A collector numbers the finished calls' alerts in output order,
//!    holding back a call that finished before an earlier one (an archive
//!    in time order holds back little). Memory: the index, the calls in
//!    flight and the alerts held back — not the events.
//!
//! One difference from the in-memory replay, on input it never made sense
//! of: a call id used again after that call's `end` in the same file is a
//! new call (as in `serve`, and as archives that number calls per day
//! have it), where the in-memory replay merged both into one.
//! JSON Lines files are streamed; the other formats are one call per file
//! and are imported whole, as before. Standard input is read once and kept.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::{import, CallOutput, InputFile, Refused, ReplayError};
use crate::alert::{Alert, AlertOrigin};
use crate::call::{Applied, CallTable, CallerHasher, CallerHistory, CallerKey};
use crate::engine::{Engine, Scratch};
use crate::event::json::{self, EventRef, Peeked};
use crate::event::{CallEnd, CallStart, Event};
use crate::policy::Policy;
use crate::store::IdCounters;

/// How far a replay has come, for a progress line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Input bytes read so far, over both passes.
    pub bytes: u64,
    /// Input bytes both passes read in all (twice the files' size).
    pub total_bytes: u64,
    /// Fragment events replayed so far (second pass).
    pub fragments: u64,
}

/// What a bounded replay did besides the alerts it wrote.
#[derive(Debug, Default)]
pub struct Streamed {
    pub calls: usize,
    pub refused: Vec<Refused>,
    /// Files that could not be read or parsed (they are left out whole).
    pub failed: Vec<ReplayError>,
}

/// The input files and how to read them.
pub struct Inputs<'a> {
    pub paths: &'a [PathBuf],
    pub format: Option<import::Format>,
    pub options: &'a import::ImportOptions,
}

/// Replays `inputs` in bounded memory, giving every alert to `emit` in
/// output order; `progress` is called about twice a second.
pub fn replay_bounded(
    inputs: &Inputs,
    engine: &Engine,
    policy: &Policy,
    emit: &mut dyn FnMut(&Alert) -> std::io::Result<()>,
    progress: &dyn Fn(Progress),
) -> std::io::Result<Streamed> {
    replay_bounded_loading(inputs, || Ok(engine), policy, emit, progress)
}

/// [`replay_bounded`] with the engine loaded by `load` on another thread
/// while the first pass reads the files (the lexicon parse is a good part
/// of a short replay).
pub fn replay_bounded_loading<E, L>(
    inputs: &Inputs,
    load: L,
    policy: &Policy,
    emit: &mut dyn FnMut(&Alert) -> std::io::Result<()>,
    progress: &dyn Fn(Progress),
) -> std::io::Result<Streamed>
where
    E: std::borrow::Borrow<Engine> + Send,
    L: FnOnce() -> std::io::Result<E> + Send,
{
    let files = Files::open(inputs);
    let counters = Counters {
        bytes: AtomicU64::new(0),
        fragments: AtomicU64::new(0),
        total: files.total_bytes * 2,
    };
    let mut streamed = Streamed::default();
    // The first pass names each language as it first sees it, and the
    // loading thread, once the lexicon is in, compiles that language's
    // automaton while the pass goes on (it was after the pass, on the
    // critical path: ~0.1 s for English and Japanese).
    let (found, languages_found) = mpsc::channel::<Option<String>>();
    let (index, engine) = std::thread::scope(|scope| {
        let loading = scope.spawn(move || {
            let engine = load()?;
            for language in languages_found {
                // An error is reported by `prepare_languages` below.
                let _ = engine.borrow().prepare(language.as_deref());
            }
            Ok::<E, std::io::Error>(engine)
        });
        let index = Index::build(&files, policy, &counters, &mut streamed, &found);
        drop(found);
        (index, loading.join().expect("loading the engine panicked"))
    });
    let engine = engine?;
    let engine: &Engine = engine.borrow();
    // Only the automata of the languages in these calls.
    if let Err(e) = engine.prepare_languages(index.languages.iter().map(Option::as_deref)) {
        return Err(std::io::Error::other(e.to_string()));
    }
    streamed.calls = index.calls.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    run(
        &files,
        &index,
        engine,
        policy,
        threads,
        &counters,
        emit,
        progress,
        &mut streamed,
    )?;
    Ok(streamed)
}

struct Counters {
    bytes: AtomicU64,
    fragments: AtomicU64,
    total: u64,
}

impl Counters {
    fn progress(&self) -> Progress {
        Progress {
            bytes: self.bytes.load(Ordering::Relaxed),
            total_bytes: self.total,
            fragments: self.fragments.load(Ordering::Relaxed),
        }
    }
}

/// The files, with per-file call ids and standard input kept in memory.
struct Files<'a> {
    inputs: &'a Inputs<'a>,
    info: Vec<InputFile>,
    ids: Vec<String>,
    stdin: Option<String>,
    total_bytes: u64,
}

impl<'a> Files<'a> {
    fn open(inputs: &'a Inputs<'a>) -> Files<'a> {
        let stdin = inputs
            .paths
            .iter()
            .any(|p| p.as_os_str() == "-")
            .then(|| super::read_text(Path::new("-")).unwrap_or_default());
        let total_bytes = inputs
            .paths
            .iter()
            .map(|p| match p.as_os_str() == "-" {
                true => stdin.as_ref().map_or(0, |s| s.len() as u64),
                false => std::fs::metadata(p).map_or(0, |m| m.len()),
            })
            .sum();
        Files {
            inputs,
            info: inputs.paths.iter().map(|p| InputFile::of(p)).collect(),
            ids: super::file_call_ids(inputs.paths),
            stdin,
            total_bytes,
        }
    }

    /// File `i`, opened: JSON Lines is streamed; anything else (one call
    /// per file) and standard input are imported whole.
    fn open_file(&self, i: usize, counters: &Counters) -> Result<Source, ReplayError> {
        let path = &self.inputs.paths[i];
        let mut options = self.inputs.options.clone();
        if options.call_id.is_none() {
            options.call_id = Some(self.ids[i].clone());
        }
        if path.as_os_str() == "-" {
            let text = self.stdin.as_deref().unwrap_or("");
            counters
                .bytes
                .fetch_add(text.len() as u64, Ordering::Relaxed);
            let events = super::parse_text(path, text, self.inputs.format, &options)?;
            return Ok(Source::Whole(events));
        }
        let io = |source| ReplayError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        // The first line decides when no format is given.
        let streamed = match self.inputs.format {
            Some(format) => format == import::Format::Jsonl,
            None => {
                let head = reader.fill_buf().map_err(io)?;
                let head = String::from_utf8_lossy(&head[..head.len().min(1 << 16)]);
                let first = head.split_inclusive('\n').next().unwrap_or("");
                first.ends_with('\n') && import::detect(path, first) == Some(import::Format::Jsonl)
            }
        };
        if !streamed {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut reader, &mut text).map_err(io)?;
            counters
                .bytes
                .fetch_add(text.len() as u64, Ordering::Relaxed);
            let events = super::parse_text(path, &text, self.inputs.format, &options)?;
            return Ok(Source::Whole(events));
        }
        Ok(Source::Lines(reader))
    }

    /// What the first pass needs of every event of file `i`, in order;
    /// the first error ends the file. JSON Lines is cut into chunks of
    /// whole lines that helper threads parse ([`parse_chunk`]) while this
    /// thread reads on and hands `f` the chunks' events in file order.
    fn each_event(
        &self,
        i: usize,
        counters: &Counters,
        f: &mut dyn FnMut(Seen<'_>),
    ) -> Result<(), ReplayError> {
        let mut reader = match self.open_file(i, counters)? {
            Source::Whole(events) => {
                events.iter().for_each(|e| f(Seen::of(e)));
                return Ok(());
            }
            Source::Lines(reader) => reader,
        };
        let path = &self.inputs.paths[i];
        let error = |e| import::jsonl::error(path, e);
        let helpers = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            let mut to_helpers = Vec::new();
            let mut from_helpers = Vec::new();
            for _ in 0..helpers {
                let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(2);
                let (back_tx, back_rx) = mpsc::sync_channel::<ParsedChunk>(2);
                scope.spawn(move || {
                    for (raw, first_line) in rx {
                        if back_tx.send(parse_chunk(raw, first_line)).is_err() {
                            break;
                        }
                    }
                });
                to_helpers.push(tx);
                from_helpers.push(back_rx);
            }
            // Chunks sent and chunks handed to `f` so far; the k-th chunk
            // goes to helper k % helpers, which answers in order.
            let (mut sent, mut done) = (0usize, 0usize);
            let mut take = |done: &mut usize| -> Result<(), ReplayError> {
                let chunk = from_helpers[*done % helpers]
                    .recv()
                    .expect("a parsing helper stopped");
                *done += 1;
                counters.bytes.fetch_add(chunk.bytes, Ordering::Relaxed);
                chunk.each(&mut *f);
                chunk.error.map_or(Ok(()), |e| Err(error(e)))
            };
            let mut lines = 0usize;
            loop {
                let mut raw = Vec::with_capacity(CHUNK_BYTES + (1 << 12));
                let first_line = lines + 1;
                let read = loop {
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) => break Ok(false),
                        Ok(_) => lines += 1,
                        Err(e) => break Err(e),
                    }
                    if raw.len() >= CHUNK_BYTES {
                        break Ok(true);
                    }
                };
                if !raw.is_empty() {
                    if sent - done == 2 * helpers {
                        take(&mut done)?;
                    }
                    let _ = to_helpers[sent % helpers].send((raw, first_line));
                    sent += 1;
                }
                match read {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(source) => {
                        while done < sent {
                            take(&mut done)?;
                        }
                        let line = lines + 1;
                        return Err(error(json::JsonLinesError::Io { line, source }));
                    }
                }
            }
            while done < sent {
                take(&mut done)?;
            }
            Ok(())
        })
        // (Leaving the scope drops both ends of the helpers' channels
        // first, so a helper waiting on either stops.)
    }

    /// Every line of file `i` as it is, or the events of a file imported
    /// whole (the second pass: the first has read every line, so the
    /// workers parse them). A read error ends the file.
    fn each_line(&self, i: usize, counters: &Counters, f: &mut dyn FnMut(Item<'_>)) {
        let mut reader = match self.open_file(i, counters) {
            Ok(Source::Whole(events)) => {
                events.into_iter().for_each(|e| f(Item::Event(e)));
                return;
            }
            Ok(Source::Lines(reader)) => reader,
            Err(_) => return, // the file changed since the first pass
        };
        let mut line = Vec::new();
        let mut first = true;
        let mut counted = 0;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => counted += n as u64,
            }
            f(Item::Line { raw: &line, first });
            first = false;
            if counted >= PROGRESS_BYTES {
                counters.bytes.fetch_add(counted, Ordering::Relaxed);
                counted = 0;
            }
        }
        counters.bytes.fetch_add(counted, Ordering::Relaxed);
    }
}

/// Bytes read between two updates of the shared progress counter.
const PROGRESS_BYTES: u64 = 1 << 16;

/// An input file, opened.
enum Source {
    Lines(std::io::BufReader<std::fs::File>),
    Whole(Vec<Event>),
}

/// What the second pass reads: a line of a JSON Lines file (`first`: the
/// file's first line, where a byte order mark is skipped), or an event of
/// a file imported whole.
enum Item<'a> {
    Line { raw: &'a [u8], first: bool },
    Event(Event),
}

/// What the first pass needs of an event.
enum Seen<'a> {
    Start(&'a CallStart),
    Fragment {
        call_id: &'a str,
        language: Option<&'a str>,
    },
    End {
        call_id: &'a str,
    },
}

impl<'a> Seen<'a> {
    fn of(event: &'a Event) -> Seen<'a> {
        match event {
            Event::Start(s) => Seen::Start(s),
            Event::Fragment(f) => Seen::Fragment {
                call_id: &f.call_id,
                language: f.language.as_deref(),
            },
            Event::End(e) => Seen::End {
                call_id: &e.call_id,
            },
        }
    }

    fn call_id(&self) -> &'a str {
        match self {
            Seen::Start(s) => &s.call_id,
            Seen::Fragment { call_id, .. } | Seen::End { call_id } => call_id,
        }
    }
}

/// Bytes of whole lines the first pass parses as one piece.
const CHUNK_BYTES: usize = 1 << 18;

/// A chunk of lines parsed by a first-pass helper: the events up to the
/// first bad line, and its error.
struct ParsedChunk {
    raw: Vec<u8>,
    events: Vec<ParsedLine>,
    error: Option<json::JsonLinesError>,
    bytes: u64,
}

/// A line's event: a plain fragment or end as spans of the chunk (no
/// copy), anything else owned.
enum ParsedLine {
    Fragment {
        id: (u32, u32),
        language: Option<(u32, u32)>,
    },
    End {
        id: (u32, u32),
    },
    Owned(Event),
}

impl ParsedChunk {
    fn each(&self, f: &mut dyn FnMut(Seen<'_>)) {
        // The spans are of lines found to be UTF-8 and end at ASCII quotes.
        let text = |(start, end): (u32, u32)| {
            std::str::from_utf8(&self.raw[start as usize..end as usize]).expect("checked")
        };
        for event in &self.events {
            f(match event {
                ParsedLine::Fragment { id, language } => Seen::Fragment {
                    call_id: text(*id),
                    language: language.map(text),
                },
                ParsedLine::End { id } => Seen::End { call_id: text(*id) },
                ParsedLine::Owned(event) => Seen::of(event),
            })
        }
    }
}

/// Reads whole lines (`first_line` the number of the first) by the rules
/// of [`json::JsonLines`]: the same events and, at the first bad line, the same
/// error as reading them one by one.
fn parse_chunk(raw: Vec<u8>, first_line: usize) -> ParsedChunk {
    let mut events = Vec::new();
    let mut error = None;
    let mut at = 0;
    let mut line = first_line;
    let span = |s: &str| {
        let start = s.as_ptr() as usize - raw.as_ptr() as usize;
        (start as u32, (start + s.len()) as u32)
    };
    while at < raw.len() {
        let end = memchr::memchr(b'\n', &raw[at..]).map_or(raw.len(), |n| at + n + 1);
        let Ok(text) = std::str::from_utf8(&raw[at..end]) else {
            let source = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            );
            error = Some(json::JsonLinesError::Io { line, source });
            break;
        };
        if let Some(text) = json::line_text(text, line == 1) {
            match EventRef::scan(text) {
                Some(EventRef::Fragment(f)) => events.push(ParsedLine::Fragment {
                    id: span(f.call_id),
                    language: f.language.map(span),
                }),
                Some(EventRef::End { call_id, .. }) => {
                    events.push(ParsedLine::End { id: span(call_id) })
                }
                None => match json::read_line(text, line) {
                    Ok(event) => events.push(ParsedLine::Owned(event)),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                },
            }
        }
        at = end;
        line += 1;
    }
    ParsedChunk {
        bytes: raw.len() as u64,
        raw,
        events,
        error,
    }
}

/// The type and call id of a line the first pass has read whole, from its
/// first bytes when they are written as usual (`{"type":"…","call_id":"…"`,
/// no escape in the id): the second pass's reader routes a line to its
/// worker without parsing it. `None`: read the line in full.
///
/// The first pass parsed the same line: it is one JSON object, so its
/// first key's value is the type and the second's is the call id, and a
/// key is not repeated. (A file that changed between the passes can
/// route a line wrongly; the worker then fails to read it and skips it.)
fn route(raw: &[u8]) -> Option<(Kind, &[u8])> {
    let rest = raw.strip_prefix(b"{\"type\":\"")?;
    let (kind, rest) = [
        (Kind::Fragment, &b"fragment"[..]),
        (Kind::Start, b"start"),
        (Kind::End, b"end"),
    ]
    .into_iter()
    .find_map(|(kind, name)| {
        let rest = rest
            .strip_prefix(name)?
            .strip_prefix(b"\",\"call_id\":\"")?;
        Some((kind, rest))
    })?;
    let close = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[close] == b'"').then(|| (kind, &rest[..close]))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Start,
    Fragment,
    End,
}

impl Kind {
    fn of(event: &Peeked<'_>) -> Kind {
        match event {
            Peeked::Borrowed(EventRef::Fragment(_)) => Kind::Fragment,
            Peeked::Borrowed(EventRef::End { .. }) => Kind::End,
            Peeked::Owned(event) => Kind::of_event(event),
        }
    }

    fn of_event(event: &Event) -> Kind {
        match event {
            Event::Start(_) => Kind::Start,
            Event::Fragment(_) => Kind::Fragment,
            Event::End(_) => Kind::End,
        }
    }
}

/// A call id's bytes, hashed to 128 bits: the index keeps no id strings
/// (two ids colliding has a chance of about n² / 2^129).
fn id_key(id: &[u8]) -> u128 {
    let half = |seed: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        h.write(id);
        h.finish()
    };
    (u128::from(half(0x6361_6c6c)) << 64) | u128::from(half(0x6775_6172))
}

/// What the first pass learns of one call.
struct CallMeta {
    file: u32,
    started_at: Option<jiff::Timestamp>,
    /// The first `start` event was seen (it decides the caller).
    start_seen: bool,
    caller: Option<(CallerKey, jiff::SignedDuration, jiff::Timestamp)>,
    /// Its `end` was read: a later event of the id is a new call ...
    ended: bool,
    /// ... this one (`NONE` until then).
    next: u32,
}

const NONE: u32 = u32::MAX;

struct Index {
    /// By first appearance.
    calls: Vec<CallMeta>,
    /// An id's first call (later ones: `CallMeta::next`).
    by_id: HashMap<u128, u32>,
    /// Output position of each call, and its caller's call count.
    rank: Vec<u32>,
    caller_calls: Vec<u32>,
    /// Files that failed in the first pass: left out of the second.
    failed: Vec<bool>,
    languages: std::collections::BTreeSet<Option<String>>,
}

impl Index {
    fn build(
        files: &Files,
        policy: &Policy,
        counters: &Counters,
        streamed: &mut Streamed,
        found: &mpsc::Sender<Option<String>>,
    ) -> Index {
        let hasher = CallerHasher::new(b"callguard replay");
        let mut calls: Vec<CallMeta> = Vec::new();
        let mut by_id: HashMap<u128, u32> = HashMap::new();
        let mut failed = vec![false; files.inputs.paths.len()];
        let mut languages = std::collections::BTreeSet::new();
        let mut start_language: HashMap<u32, Option<String>> = HashMap::new();
        for (file, failed) in failed.iter_mut().enumerate() {
            // Calls of this file, in first appearance, before they join
            // the index: a file that fails adds none.
            let mut mine: Vec<CallMeta> = Vec::new();
            let mut local: HashMap<u128, u32> = HashMap::new();
            let mut duplicates: Vec<(String, usize, u32)> = Vec::new();
            let mut langs = std::collections::BTreeSet::new();
            let result = files.each_event(file, counters, &mut |event| {
                let key = id_key(event.call_id().as_bytes());
                if let Some(&first) = by_id.get(&key) {
                    // Used by an earlier file: refused, counted.
                    match duplicates.iter_mut().find(|d| d.0 == event.call_id()) {
                        Some(d) => d.1 += 1,
                        None => duplicates.push((event.call_id().to_owned(), 1, first)),
                    }
                    return;
                }
                let fresh = |mine: &mut Vec<CallMeta>| {
                    mine.push(CallMeta {
                        file: file as u32,
                        started_at: None,
                        start_seen: false,
                        caller: None,
                        ended: false,
                        next: NONE,
                    });
                    mine.len() as u32 - 1
                };
                let mut i = match local.get(&key) {
                    Some(&first) => first,
                    None => {
                        let first = fresh(&mut mine);
                        local.insert(key, first);
                        first
                    }
                };
                while mine[i as usize].next != NONE {
                    i = mine[i as usize].next;
                }
                if mine[i as usize].ended {
                    let again = fresh(&mut mine);
                    mine[i as usize].next = again;
                    i = again;
                }
                let meta = &mut mine[i as usize];
                match event {
                    Seen::Start(s) => {
                        if meta.started_at.is_none() {
                            meta.started_at = s.started_at;
                        }
                        if !meta.start_seen {
                            meta.start_seen = true;
                            let window = jiff::SignedDuration::from_hours(
                                policy.for_tenant(&s.tenant).repeat_callers.window_hours as i64,
                            );
                            if let (Some(key), Some(at)) = (
                                s.caller_id.as_deref().and_then(|c| hasher.key(c)),
                                s.started_at,
                            ) {
                                meta.caller = Some((key, window, at));
                            }
                            start_language.insert(i, s.language.clone());
                        }
                    }
                    Seen::Fragment { language, .. } => {
                        note_language(&mut langs, language, &start_language, i, found);
                    }
                    Seen::End { .. } => meta.ended = true,
                }
            });
            start_language.clear();
            match result {
                Err(e) => {
                    *failed = true;
                    streamed.failed.push(e);
                }
                Ok(()) => {
                    let base = calls.len() as u32;
                    for (key, i) in local {
                        by_id.insert(key, base + i);
                    }
                    for meta in &mut mine {
                        if meta.next != NONE {
                            meta.next += base;
                        }
                    }
                    calls.append(&mut mine);
                    languages.append(&mut langs);
                    for (call_id, events, first) in duplicates {
                        streamed.refused.push(Refused {
                            call_id,
                            reason: format!(
                                "call id also used in {}: the {events} event(s) of this call in {} were not replayed (give the calls distinct ids)",
                                files.info[calls[first as usize].file as usize].name,
                                files.info[file].name
                            ),
                        });
                    }
                }
            }
        }
        // Output order: start time, then first appearance (a stable sort).
        let mut order: Vec<u32> = (0..calls.len() as u32).collect();
        order.sort_by(|&a, &b| {
            match (calls[a as usize].started_at, calls[b as usize].started_at) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
        let mut rank = vec![0u32; calls.len()];
        let mut caller_calls = vec![0u32; calls.len()];
        let mut history = CallerHistory::default();
        for (position, &i) in order.iter().enumerate() {
            rank[i as usize] = position as u32;
            if let Some((key, window, at)) = calls[i as usize].caller {
                caller_calls[i as usize] = history.record(key, at, window);
            }
        }
        Index {
            calls,
            by_id,
            rank,
            caller_calls,
            failed,
            languages,
        }
    }
}

/// Adds a fragment's language (its own, else its call's start's) to the
/// languages of a file, and names a new one to `found` (at most once per
/// language and file); looked up before it is copied, as the set is tiny
/// and the same few languages come on every line.
fn note_language(
    langs: &mut std::collections::BTreeSet<Option<String>>,
    own: Option<&str>,
    start_language: &HashMap<u32, Option<String>>,
    call: u32,
    found: &mpsc::Sender<Option<String>>,
) {
    let language = own.or_else(|| start_language.get(&call).and_then(Option::as_deref));
    if !langs.iter().any(|l| l.as_deref() == language) {
        langs.insert(language.map(str::to_owned));
        // The loader may have failed and left: nothing to compile then.
        let _ = found.send(language.map(str::to_owned));
    }
}

/// Lines and events for a worker, in batches, so a channel send and a
/// wake-up are not per event: the lines' bytes in one buffer.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    items: Vec<(u32, Slot)>,
}

/// One event of a batch, for call `.0` of the index.
enum Slot {
    /// A line, `text[start..end]` of its batch, not parsed yet.
    Line { start: u32, end: u32, first: bool },
    /// An event of a file imported whole.
    Event(Event),
}

enum Work {
    Events(Batch),
    /// The file ended: its calls still in flight end at their last event.
    FileDone(u32),
}

/// A finished call on its way to the collector.
struct Finished {
    call: u32,
    call_id: String,
    output: CallOutput,
}

/// A batch goes to its worker when it holds this many bytes of lines or
/// this many events (a worker wakes about 3,000 times for 187 MB).
const BATCH_BYTES: usize = 1 << 16;
const BATCH_EVENTS: usize = 1024;

#[allow(clippy::too_many_arguments)] // the replay's parts, borrowed for the threads
fn run(
    files: &Files,
    index: &Index,
    engine: &Engine,
    policy: &Policy,
    threads: usize,
    counters: &Counters,
    emit: &mut dyn FnMut(&Alert) -> std::io::Result<()>,
    progress: &dyn Fn(Progress),
    streamed: &mut Streamed,
) -> std::io::Result<()> {
    let workers = threads.max(1);
    std::thread::scope(|scope| {
        // Finished calls come in batches too, one per batch of work.
        let (done_tx, done_rx) = mpsc::sync_channel::<Vec<Finished>>(64);
        let mut senders = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Work>(16);
            senders.push(tx);
            let done = done_tx.clone();
            scope.spawn(move || worker(rx, done, index, engine, policy));
        }
        drop(done_tx);
        // The reader: deals the lines out by call, unparsed where the
        // line's first bytes name its type and call (`route`).
        let reader = scope.spawn(move || {
            let mut batches: Vec<Batch> = (0..workers).map(|_| Batch::default()).collect();
            // Each id's call now (a later one after an `end`), and which
            // calls' `end` was read: as the first pass decided.
            let mut current: HashMap<u128, u32> = HashMap::new();
            let mut ended = vec![false; index.calls.len()];
            let mut fragments = 0u64;
            for file in 0..files.inputs.paths.len() {
                if index.failed[file] {
                    continue;
                }
                files.each_line(file, counters, &mut |item| {
                    let (kind, key) = match &item {
                        Item::Line { raw, first } => match route(raw) {
                            Some((kind, id)) => (kind, id_key(id)),
                            None => {
                                // Written some other way (or blank): read
                                // as the first pass read it.
                                let Ok(raw) = std::str::from_utf8(raw) else {
                                    return;
                                };
                                let Some(text) = json::line_text(raw, *first) else {
                                    return;
                                };
                                let event = match EventRef::scan(text) {
                                    Some(event) => Peeked::Borrowed(event),
                                    None => match json::read_line(text, 0) {
                                        Ok(event) => Peeked::Owned(event),
                                        Err(_) => return, // changed since the first pass
                                    },
                                };
                                (Kind::of(&event), id_key(event.call_id().as_bytes()))
                            }
                        },
                        Item::Event(event) => {
                            (Kind::of_event(event), id_key(event.call_id().as_bytes()))
                        }
                    };
                    let Some(&first) = index.by_id.get(&key) else {
                        return;
                    };
                    if index.calls[first as usize].file != file as u32 {
                        return; // a duplicate id, refused in the first pass
                    }
                    let mut call = current.get(&key).copied().unwrap_or(first);
                    if ended[call as usize] {
                        call = index.calls[call as usize].next;
                        if call == NONE {
                            return; // the file changed since the first pass
                        }
                        current.insert(key, call);
                    }
                    match kind {
                        Kind::End => ended[call as usize] = true,
                        Kind::Fragment => fragments += 1,
                        Kind::Start => {}
                    }
                    let w = call as usize % workers;
                    let batch = &mut batches[w];
                    match item {
                        Item::Line { raw, first } => {
                            let start = batch.text.len() as u32;
                            batch.text.extend_from_slice(raw);
                            let end = batch.text.len() as u32;
                            batch.items.push((call, Slot::Line { start, end, first }));
                        }
                        Item::Event(event) => batch.items.push((call, Slot::Event(event))),
                    }
                    if batch.text.len() >= BATCH_BYTES || batch.items.len() >= BATCH_EVENTS {
                        let _ = senders[w].send(Work::Events(std::mem::take(batch)));
                        counters
                            .fragments
                            .fetch_add(std::mem::take(&mut fragments), Ordering::Relaxed);
                    }
                });
                for (w, batch) in batches.iter_mut().enumerate() {
                    if !batch.items.is_empty() {
                        let _ = senders[w].send(Work::Events(std::mem::take(batch)));
                    }
                    let _ = senders[w].send(Work::FileDone(file as u32));
                }
                counters
                    .fragments
                    .fetch_add(std::mem::take(&mut fragments), Ordering::Relaxed);
            }
        });
        // The collector (this thread): numbers calls in output order.
        let mut held: BTreeMap<u32, Finished> = BTreeMap::new();
        let mut next_rank = 0u32;
        let mut numbering = IdCounters::default();
        let mut result = Ok(());
        let mut open = true;
        // Progress every half second (calls finish all the time, so a
        // timeout of the receive alone would not do).
        let every = std::time::Duration::from_millis(500);
        let mut last_progress = std::time::Instant::now();
        while open || !held.is_empty() {
            if last_progress.elapsed() >= every {
                progress(counters.progress());
                last_progress = std::time::Instant::now();
            }
            if open {
                match done_rx.recv_timeout(every) {
                    Ok(finished) => {
                        for finished in finished {
                            held.insert(index.rank[finished.call as usize], finished);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
                }
            }
            loop {
                let call = match held.first_key_value() {
                    Some((&rank, _)) if rank == next_rank || !open => {
                        // (When every call is in, one that never showed up
                        // in the second pass — its file changed meanwhile —
                        // no longer holds back the rest.)
                        held.pop_first().expect("not empty").1
                    }
                    _ => break,
                };
                next_rank = index.rank[call.call as usize] + 1;
                if result.is_err() {
                    continue; // output failed: drain the workers
                }
                let meta = &index.calls[call.call as usize];
                let base = meta
                    .started_at
                    .or(files.info[meta.file as usize].modified)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                let origin = AlertOrigin {
                    call_id: &call.call_id,
                    tenant: &call.output.tenant,
                    agent_id: &call.output.agent_id,
                    lexicon_version: engine.version(),
                };
                let mut ids: HashMap<u32, u64> = HashMap::new();
                for a in call.output.alerts {
                    let local_id = a.local_id;
                    let raised_at = base + jiff::SignedDuration::from_millis(a.at_ms as i64);
                    let alert = Alert::from_event(a, &origin, raised_at);
                    let alert = numbering.number(&mut ids, local_id, alert);
                    if let Err(e) = emit(&alert) {
                        result = Err(e);
                        break;
                    }
                }
                streamed.refused.extend(call.output.refused);
            }
        }
        progress(counters.progress());
        reader.join().expect("the replay reader panicked");
        result
    })
}

struct InFlight {
    table: CallTable,
    call_id: String,
    file: u32,
    output: CallOutput,
    last_ms: u64,
}

fn worker(
    rx: mpsc::Receiver<Work>,
    done: mpsc::SyncSender<Vec<Finished>>,
    index: &Index,
    engine: &Engine,
    policy: &Policy,
) {
    let mut scratch = Scratch::default();
    let mut calls: HashMap<u32, InFlight> = HashMap::new();
    // Plain fragment and end lines are read into these, over and over.
    let mut fragment = EventRef::Fragment(json::FragmentRef {
        call_id: "",
        seq: 0,
        speaker: crate::category::Speaker::Customer,
        text: "",
        is_final: true,
        utterance_id: "",
        start_ms: 0,
        end_ms: 0,
        language: None,
    })
    .to_event();
    let mut end = EventRef::End {
        call_id: "",
        end_ms: 0,
    }
    .to_event();
    let mut finished = Vec::new();
    let finish = |call: u32, mut flight: InFlight, scratch: &mut Scratch| {
        if !flight.table.is_empty() {
            // A call without an end ends at its last event (DESIGN section 2).
            let end = Event::End(CallEnd {
                call_id: flight.call_id.clone(),
                end_ms: flight.last_ms,
            });
            if let Ok(routed) = flight
                .table
                .apply(&end, 0, engine, policy, &mut |_| 0, scratch)
            {
                if let Applied::Accepted(alerts) = routed.applied {
                    flight.output.alerts.extend(alerts);
                }
            }
        }
        Finished {
            call,
            call_id: flight.call_id,
            output: flight.output,
        }
    };
    while let Ok(work) = rx.recv() {
        match work {
            Work::Events(batch) => {
                for (call, slot) in batch.items {
                    let owned;
                    let event: &Event = match slot {
                        Slot::Event(event) => {
                            owned = event;
                            &owned
                        }
                        Slot::Line {
                            start,
                            end: stop,
                            first,
                        } => {
                            // The first pass read this line: it is UTF-8
                            // and an event unless the file changed since.
                            let raw = &batch.text[start as usize..stop as usize];
                            let Some(text) = std::str::from_utf8(raw)
                                .ok()
                                .and_then(|raw| json::line_text(raw, first))
                            else {
                                continue;
                            };
                            match EventRef::scan(text) {
                                Some(read @ EventRef::Fragment(_)) => {
                                    read.write_to(&mut fragment);
                                    &fragment
                                }
                                Some(read @ EventRef::End { .. }) => {
                                    read.write_to(&mut end);
                                    &end
                                }
                                None => match json::read_line(text, 0) {
                                    Ok(event) => {
                                        owned = event;
                                        &owned
                                    }
                                    Err(_) => continue,
                                },
                            }
                        }
                    };
                    let flight = calls.entry(call).or_insert_with(|| InFlight {
                        table: CallTable::new(1, usize::MAX),
                        call_id: event.call_id().to_owned(),
                        file: index.calls[call as usize].file,
                        output: CallOutput {
                            alerts: Vec::new(),
                            tenant: String::new(),
                            agent_id: String::new(),
                            refused: Vec::new(),
                        },
                        last_ms: 0,
                    });
                    let mut ended = false;
                    match event {
                        Event::Start(s) => {
                            flight.output.tenant = s.tenant.clone();
                            flight.output.agent_id = s.agent_id.clone();
                        }
                        Event::Fragment(f) => flight.last_ms = flight.last_ms.max(f.end_ms),
                        Event::End(_) => ended = true,
                    }
                    let count = index.caller_calls[call as usize];
                    let caller_calls = &mut |_: &CallStart| count;
                    match flight
                        .table
                        .apply(event, 0, engine, policy, caller_calls, &mut scratch)
                    {
                        Ok(routed) => {
                            if let Applied::Accepted(alerts) = routed.applied {
                                flight.output.alerts.extend(alerts);
                            }
                        }
                        Err(e) => flight.output.refused.push(Refused {
                            call_id: flight.call_id.clone(),
                            reason: e.to_string(),
                        }),
                    }
                    if ended {
                        let mut flight = calls.remove(&call).expect("in flight");
                        // Ended: no synthetic end.
                        flight.table = CallTable::new(1, usize::MAX);
                        finished.push(finish(call, flight, &mut scratch));
                    }
                }
            }
            Work::FileDone(file) => {
                let mut ending: Vec<u32> = calls
                    .iter()
                    .filter(|(_, f)| f.file == file)
                    .map(|(&c, _)| c)
                    .collect();
                ending.sort_unstable();
                for call in ending {
                    let flight = calls.remove(&call).expect("in flight");
                    finished.push(finish(call, flight, &mut scratch));
                }
            }
        }
        if !finished.is_empty() {
            let _ = done.send(std::mem::take(&mut finished));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::Lexicon;

    /// Interleaved calls written out of start order, repeat callers, calls
    /// with no start or no end, an interim revised by its final, a bad
    /// event, two files, an id used in both, an imported file, and a file
    /// that cannot be parsed.
    fn archive(dir: &Path) -> Vec<PathBuf> {
        let texts = [
            ("ころすぞ", false),
            ("ぶっ殺すぞ", true),
            ("返金しろ", true),
            ("I will kill you", true),
            ("you idiot", true),
            ("土下座しろ", true),
            ("返金しろよ", true),
        ];
        // Each call's lines; then per file two calls at a time, their lines
        // interleaved.
        let mut calls: Vec<Vec<String>> = Vec::new();
        for c in 0..90 {
            let mut out = Vec::new();
            if c % 11 != 5 {
                let started = match c % 13 {
                    0 => String::new(),
                    _ => format!(
                        ",\"started_at\":\"2026-10-05T{:02}:{:02}:00Z\"",
                        (90 - c) % 24,
                        c % 60
                    ),
                };
                out.push(format!(
                    "{{\"type\":\"start\",\"call_id\":\"c{c}\",\"tenant\":\"t{}\",\"caller_id\":\"+81{}\"{started},\"language\":\"ja\"}}\n",
                    c % 3,
                    c % 7
                ));
            }
            for (i, (text, fin)) in texts.iter().enumerate().skip(c % 4) {
                out.push(format!(
                    "{{\"type\":\"fragment\",\"call_id\":\"c{c}\",\"speaker\":\"customer\",\"text\":\"{text}\",\"is_final\":{fin},\"utterance_id\":\"u{}\",\"end_ms\":{}}}\n",
                    i / 2,
                    (i + 1) * 1000
                ));
            }
            if c % 9 == 3 {
                // Refused: text longer than the limit.
                out.push(format!(
                    "{{\"type\":\"fragment\",\"call_id\":\"c{c}\",\"speaker\":\"customer\",\"text\":\"{}\",\"end_ms\":1}}\n",
                    "x".repeat(9000)
                ));
            }
            if c % 5 != 2 {
                out.push(format!(
                    "{{\"type\":\"end\",\"call_id\":\"c{c}\",\"end_ms\":60000}}\n"
                ));
            }
            calls.push(out);
        }
        let mut files = [String::new(), String::new()];
        for pair in calls.chunks(4) {
            for (f, file) in files.iter_mut().enumerate() {
                let (a, b) = (pair.get(f), pair.get(f + 2));
                let longest = a.map_or(0, Vec::len).max(b.map_or(0, Vec::len));
                for k in 0..longest {
                    for call in [a, b].into_iter().flatten() {
                        if let Some(line) = call.get(k) {
                            file.push_str(line);
                        }
                    }
                }
            }
        }
        // c1 again in the second file: refused, not merged.
        files[0].push_str("{\"type\":\"fragment\",\"call_id\":\"c1\",\"speaker\":\"customer\",\"text\":\"ぶっ殺すぞ\",\"end_ms\":1}\n");
        // Lines written other ways than `{"type":"…","call_id":"…"`, which
        // the second pass's reader reads in full: other key order, spaces,
        // an escaped id, CRLF, blank lines, and a byte order mark.
        files[0] = files[0]
            .lines()
            .enumerate()
            .map(|(n, line)| match n % 5 {
                1 => line.replacen("{\"type\":", "{ \"type\" : ", 1) + "\n",
                2 => line.replace("\"call_id\":\"c2", "\"call_id\":\"\\u0063\\\"2") + "\r\n",
                3 => format!("\n  \n{line}\n"),
                _ => line.to_owned() + "\n",
            })
            .collect();
        files[1].insert(0, '\u{feff}');
        assert!(files[0].contains("{ \"type\" : ") && files[0].contains("\\u0063\\\"2"));
        let mut paths = Vec::new();
        for (i, text) in files.iter().enumerate() {
            let path = dir.join(format!("day{i}.jsonl"));
            std::fs::write(&path, text).unwrap();
            paths.push(path);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import");
        for name in ["call.vtt", "call.srt", "call_aws.json"] {
            paths.push(root.join(name));
        }
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "{\"type\":\"end\",\"call_id\":\"z\"}\nnot json\n").unwrap();
        paths.push(bad);
        paths
    }

    /// The first pass, in chunks on helper threads, reads what `JsonLines`
    /// reads line by line: the same events in order, and at the first bad
    /// line the same error, also when it is chunks away from the start.
    #[test]
    fn first_pass_reads_like_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(
            "\u{feff}{\"type\":\"start\",\"call_id\":\"s\",\"language\":\"ja\"}\r\n\n".as_bytes(),
        );
        let pad = "あ".repeat(60);
        for n in 0..6000 {
            let line = match n % 4 {
                0 => format!("{{\"type\":\"fragment\",\"call_id\":\"c{n}\",\"speaker\":\"customer\",\"text\":\"{pad}\",\"language\":\"en\"}}\n"),
                1 => format!("{{ \"type\": \"fragment\", \"call_id\": \"c\\u00{:02x}\", \"speaker\": \"agent\", \"text\": \"\\\"{pad}\\\"\" }}\n", 0x30 + n % 10),
                2 => format!("{{\"type\":\"end\",\"call_id\":\"c{}\",\"end_ms\":{n}}}\r\n", n - 2),
                _ => "   \n".to_owned(),
            };
            body.extend_from_slice(line.as_bytes());
        }
        let good = body.clone();
        let mut bad_json = body.clone();
        bad_json.extend_from_slice(
            b"{\"type\":\"fragment\",\"call_id\":\"x\"}\n{\"type\":\"end\",\"call_id\":\"y\"}\n",
        );
        let mut bad_utf8 = body;
        bad_utf8.extend_from_slice(
            b"{\"type\":\"end\",\"call_id\":\"\xff\"}\n{\"type\":\"end\",\"call_id\":\"y\"}\n",
        );
        assert!(good.len() > 3 * CHUNK_BYTES);
        let options = import::ImportOptions::default();
        for (name, bytes) in [
            ("good", good),
            ("bad json", bad_json),
            ("bad utf-8", bad_utf8),
        ] {
            let path = dir.path().join("day.jsonl");
            std::fs::write(&path, &bytes).unwrap();
            let describe = |s: Seen<'_>| match s {
                Seen::Start(s) => format!("start {} {:?}", s.call_id, s.language),
                Seen::Fragment { call_id, language } => format!("fragment {call_id} {language:?}"),
                Seen::End { call_id } => format!("end {call_id}"),
            };
            let mut want = Vec::new();
            let mut want_error = None;
            for event in json::JsonLines::new(std::io::BufReader::new(&bytes[..])) {
                match event {
                    Ok(e) => want.push(describe(Seen::of(&e))),
                    Err(e) => want_error = Some(import::jsonl::error(&path, e).to_string()),
                }
            }
            let paths = [path.clone()];
            let inputs = Inputs {
                paths: &paths,
                format: None,
                options: &options,
            };
            let files = Files::open(&inputs);
            let counters = Counters {
                bytes: AtomicU64::new(0),
                fragments: AtomicU64::new(0),
                total: 0,
            };
            let mut got = Vec::new();
            let result = files.each_event(0, &counters, &mut |s| got.push(describe(s)));
            assert_eq!(got.len(), want.len(), "{name}");
            assert!(got == want, "{name}: events differ");
            assert_eq!(result.err().map(|e| e.to_string()), want_error, "{name}");
            assert_eq!(want_error.is_some(), name != "good");
        }
    }

    #[test]
    fn route_reads_type_and_id_of_plain_lines_only() {
        type Case<'a> = (&'a str, &'a str, Option<(Kind, &'a str)>);
        let cases: &[Case] = &[
            (
                "fragment",
                r#"{"type":"fragment","call_id":"c1","text":"x"}"#,
                Some((Kind::Fragment, "c1")),
            ),
            (
                "start",
                r#"{"type":"start","call_id":"日本"}"#,
                Some((Kind::Start, "日本")),
            ),
            (
                "end",
                r#"{"type":"end","call_id":""}"#,
                Some((Kind::End, "")),
            ),
            (
                "escape in the id",
                r#"{"type":"end","call_id":"a\"b"}"#,
                None,
            ),
            (
                "escape at the id's start",
                r#"{"type":"end","call_id":"\u0063"}"#,
                None,
            ),
            ("other order", r#"{"call_id":"c1","type":"end"}"#, None),
            ("spaces", r#"{ "type":"end","call_id":"c1"}"#, None),
            (
                "byte order mark",
                "\u{feff}{\"type\":\"end\",\"call_id\":\"c1\"}",
                None,
            ),
            ("unknown type", r#"{"type":"ending","call_id":"c1"}"#, None),
            ("id not closed", r#"{"type":"end","call_id":"c1"#, None),
            ("blank", "", None),
        ];
        for (name, line, want) in cases {
            let got = route(line.as_bytes()).map(|(k, id)| (k, std::str::from_utf8(id).unwrap()));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn bounded_replay_is_byte_identical() {
        let engine = Engine::build(Lexicon::embedded().unwrap()).unwrap();
        let policy = Policy::builtin();
        let dir = tempfile::tempdir().unwrap();
        let paths = archive(dir.path());
        let options = import::ImportOptions::default();

        // In memory, as `replay` ran before.
        let read = super::super::read_files(&paths, None, &options, &|_| {});
        let mut names = Vec::new();
        let mut files = Vec::new();
        let mut failed = 0;
        for (file, path) in read.into_iter().zip(&paths) {
            match file {
                Ok(events) => {
                    files.push(events);
                    names.push(InputFile::of(path));
                }
                Err(_) => failed += 1,
            }
        }
        let before = super::super::replay_named(&files, &names, &engine, &policy);
        let before_text: String = before
            .alerts
            .iter()
            .map(|a| serde_json::to_string(a).unwrap() + "\n")
            .collect();

        let mut after_text = String::new();
        let streamed = replay_bounded(
            &Inputs {
                paths: &paths,
                format: None,
                options: &options,
            },
            &engine,
            &policy,
            &mut |a| {
                after_text.push_str(&serde_json::to_string(a).unwrap());
                after_text.push('\n');
                Ok(())
            },
            &|_| {},
        )
        .unwrap();

        assert!(before.alerts.len() > 100, "{}", before.alerts.len());
        assert!(before_text == after_text, "outputs differ");
        assert_eq!(streamed.calls, before.calls);
        assert_eq!(streamed.failed.len(), failed);
        let reasons = |r: &[Refused]| -> Vec<String> {
            r.iter()
                .map(|r| format!("{}: {}", r.call_id, r.reason))
                .collect()
        };
        assert_eq!(reasons(&streamed.refused), reasons(&before.refused));
        assert!(reasons(&streamed.refused)
            .iter()
            .any(|r| r.starts_with("c1: call id also used in")));
    }

    #[test]
    fn a_call_id_used_again_after_its_end_is_a_new_call() {
        let engine = Engine::build(Lexicon::embedded().unwrap()).unwrap();
        let policy = Policy::builtin();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("day.jsonl");
        let call = "{\"type\":\"start\",\"call_id\":\"c1\",\"language\":\"ja\"}\n\
            {\"type\":\"fragment\",\"call_id\":\"c1\",\"speaker\":\"customer\",\"text\":\"ぶっ殺すぞ\",\"end_ms\":1000}\n\
            {\"type\":\"end\",\"call_id\":\"c1\",\"end_ms\":2000}\n";
        std::fs::write(&path, call.repeat(2)).unwrap();
        let mut alerts = Vec::new();
        let streamed = replay_bounded(
            &Inputs {
                paths: &[path],
                format: None,
                options: &import::ImportOptions::default(),
            },
            &engine,
            &policy,
            &mut |a| {
                alerts.push((a.alert_id, a.call_id.clone(), a.rule.clone()));
                Ok(())
            },
            &|_| {},
        )
        .unwrap();
        assert_eq!(streamed.calls, 2);
        assert!(streamed.refused.is_empty(), "{:?}", streamed.refused);
        let violence: Vec<u64> = alerts
            .iter()
            .filter(|a| a.2.contains("violence"))
            .map(|a| a.0)
            .collect();
        assert_eq!(violence.len(), 2, "{alerts:?}");
        assert_ne!(violence[0], violence[1]);
    }
}
