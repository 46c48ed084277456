//! One check per fuzz target (`fuzz/fuzz_targets/<name>.rs` is a one-line
//! call of the function of the same name): each takes arbitrary bytes and
//! panics exactly when an invariant is broken. Bad input must give an error,
//! never a panic. The regression test `tests/it/fuzz_regressions.rs` runs the
//! inputs kept in `fuzz/regressions/<name>/` through the same functions, so
//! the normal test suite keeps every input a fuzzer found. See fuzz/README.md.
//!
//! Not part of the API: hidden from the docs, may change at any time.

use std::path::Path;
use std::sync::OnceLock;

use crate::call::CallTable;
use crate::category::Speaker;
use crate::engine::{Engine, Scratch};
use crate::event::{Event, DEFAULT_MAX_TEXT_BYTES};
use crate::grpc::pb;
use crate::lexicon::{Lexicon, Source};
use crate::policy::Policy;
use crate::replay::import::{self, Format, ImportOptions};
use crate::text::normalize::{
    normalize_into, normalize_text_with, normalize_with, FoldSink, Normalized,
};

/// The engine of the embedded lexicons, built once per process.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::build(Lexicon::embedded().expect("embedded lexicons valid")).expect("compiles")
    })
}

fn builtin_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(Policy::builtin)
}

/// A sink that rebuilds the folded text from what the normaliser reports.
#[derive(Default)]
struct Mirror {
    text: Vec<u8>,
}

impl FoldSink for Mirror {
    fn appended(&mut self, text: &[u8], from: usize) {
        assert_eq!(
            from,
            self.text.len(),
            "appended from {from}, sink holds {}",
            self.text.len()
        );
        assert!(from <= text.len());
        assert_eq!(&text[..from], &self.text[..], "appended: prefix changed");
        self.text.extend_from_slice(&text[from..]);
    }
    fn truncated(&mut self, text: &[u8]) {
        assert!(text.len() <= self.text.len(), "truncated grew the text");
        assert_eq!(text, &self.text[..text.len()], "truncated: prefix changed");
        self.text.truncate(text.len());
    }
}

/// Offsets of a folded text: every folded byte maps to a range of `input`
/// on char boundaries, and the ranges never go backwards.
fn check_offsets(input: &str, folded: &Normalized) {
    let text = folded.as_str();
    let mut last = (0usize, 0usize);
    for i in 0..text.len() {
        let r = folded.original_range(i, i + 1);
        assert!(
            r.start <= r.end && r.end <= input.len(),
            "byte {i}: range {r:?} outside input of {} bytes",
            input.len()
        );
        assert!(
            input.is_char_boundary(r.start) && input.is_char_boundary(r.end),
            "byte {i}: range {r:?} not on char boundaries"
        );
        assert!(
            r.start >= last.0 && r.end >= last.1,
            "byte {i}: range {r:?} goes back from {last:?}"
        );
        last = (r.start, r.end);
    }
    // Whole characters of the folded text map to valid ranges too.
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    for w in bounds.windows(2) {
        let r = folded.original_range(w[0], w[1]);
        assert!(r.start <= r.end && r.end <= input.len());
        let _ = &input[r];
    }
    for pos in 0..=text.len() {
        let _ = folded.separator_before(pos);
    }
}

/// `text::normalize`: no panic; offsets inside the original on char
/// boundaries and monotone; the tight loop agrees with the general path
/// and folding without the map gives the same text; the sink sees exactly
/// the folded text; a reused buffer gives the same result as a fresh one.
pub fn normalize(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let fresh = crate::text::normalize(&input);
    check_offsets(&input, &fresh);
    assert_eq!(
        fresh,
        crate::text::normalize::normalize_general(&input),
        "the tight loop and the general path fold differently"
    );
    let mut unmapped = Normalized::default();
    normalize_text_with(&input, &mut unmapped, &mut ());
    assert_eq!(
        unmapped.as_str(),
        fresh.as_str(),
        "folding without the map differs"
    );

    let mut mirror = Mirror::default();
    // Reuse a buffer that held other text first.
    let mut reused = crate::text::normalize("前の断片 previous Fragment ＡＢＣ");
    normalize_with(&input, &mut reused, &mut mirror);
    assert_eq!(
        mirror.text,
        fresh.as_str().as_bytes(),
        "the sink's bytes differ from the folded text"
    );
    assert_eq!(reused.as_str(), fresh.as_str(), "reused buffer differs");
    for i in 0..fresh.as_str().len() {
        assert_eq!(
            reused.original_range(i, i + 1),
            fresh.original_range(i, i + 1)
        );
    }
    // And once more into the same buffer.
    normalize_into(&input, &mut reused);
    assert_eq!(reused.as_str(), fresh.as_str());
}

const LANGUAGES: [Option<&str>; 9] = [
    None,
    Some("ja"),
    Some("en"),
    Some("es"),
    Some("zh"),
    Some("ko"),
    Some("en-US"),
    Some("pt"),
    Some(""),
];

/// Hits of one fragment lie inside it, on char boundaries.
fn check_hits(text: &str, hits: &[crate::engine::Hit]) {
    for hit in hits {
        let span = &hit.span;
        assert!(
            span.start <= span.end && span.end <= text.len(),
            "hit {hit:?} outside text of {} bytes",
            text.len()
        );
        assert!(
            text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
            "hit {hit:?} not on char boundaries"
        );
        let _ = engine().term(hit.term);
    }
}

/// `Engine::scan` of the embedded lexicons. Input: a language byte, a
/// speaker/split byte, then text, scanned as one fragment and as two with
/// the carry between them.
pub fn engine_scan(data: &[u8]) {
    let (&lang, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&mode, rest) = rest.split_first().unwrap_or((&0, &[]));
    let language = LANGUAGES[usize::from(lang) % LANGUAGES.len()];
    let speaker = if mode & 1 == 0 {
        Speaker::Customer
    } else {
        Speaker::Agent
    };
    let text = String::from_utf8_lossy(rest);
    let engine = engine();
    let mut scratch = Scratch::default();

    let whole = engine.scan(&text, language, speaker, None, &mut scratch);
    check_hits(&text, &whole.hits);
    let terms = engine.matching_terms(&text, language, speaker, &mut scratch);
    for t in terms {
        let _ = engine.term(t);
    }

    // Split at a char boundary chosen by the mode byte.
    let mut cut = text.len() * usize::from(mode >> 1) / 127;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let (a, b) = text.split_at(cut);
    let first = engine.scan(a, language, speaker, None, &mut scratch);
    check_hits(a, &first.hits);
    let second = engine.scan(b, language, speaker, Some(&first.carry), &mut scratch);
    check_hits(b, &second.hits);
    // A carry across a language switch is ignored, not misused.
    let other = LANGUAGES[(usize::from(lang) + 1) % LANGUAGES.len()];
    let switched = engine.scan(b, other, speaker, Some(&first.carry), &mut scratch);
    check_hits(b, &switched.hits);
    // A third fragment after the second.
    let third = engine.scan(a, language, speaker, Some(&second.carry), &mut scratch);
    check_hits(a, &third.hits);
}

/// Structure every non-JSON-Lines importer promises: a start, fragments
/// numbered from 1 with sane times, an end at or after the last fragment.
fn check_imported(events: &[Event]) {
    assert!(events.len() >= 2, "fewer than start and end: {events:?}");
    let Event::Start(start) = &events[0] else {
        panic!("first event is not a start: {:?}", events[0]);
    };
    let Event::End(end) = &events[events.len() - 1] else {
        panic!("last event is not an end: {:?}", events.last());
    };
    assert_eq!(start.call_id, end.call_id);
    let mut last_end = 0;
    for (i, event) in events[1..events.len() - 1].iter().enumerate() {
        let Event::Fragment(f) = event else {
            panic!("event {} is not a fragment: {event:?}", i + 1);
        };
        assert_eq!(f.call_id, start.call_id);
        assert_eq!(f.seq, i as u64 + 1);
        assert!(f.start_ms <= f.end_ms, "fragment {f:?}: end before start");
        assert!(
            !f.utterance_id.is_empty(),
            "fragment {f:?}: no utterance id"
        );
        last_end = last_end.max(f.end_ms);
    }
    assert!(
        end.end_ms >= last_end,
        "end {end:?} before the last fragment"
    );
}

fn import_format(format: Format, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // files are read with read_to_string: not UTF-8 is an I/O error
    };
    let path = Path::new("fuzz-input");
    let _ = import::detect(path, text);
    match import::import(format, path, text, &ImportOptions::default()) {
        Ok(events) if format == Format::Jsonl => {
            for event in &events {
                // What we read, we can write and read back.
                let json = serde_json::to_string(event).expect("an event serialises");
                let back: Event = serde_json::from_str(&json)
                    .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
                assert_eq!(&back, event, "JSON round trip changed the event");
                let _ = event.validate(DEFAULT_MAX_TEXT_BYTES);
            }
        }
        Ok(events) => {
            check_imported(&events);
            for event in &events {
                let _ = event.validate(DEFAULT_MAX_TEXT_BYTES);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `replay::import` of Amazon Transcribe batch JSON.
pub fn import_aws(data: &[u8]) {
    import_format(Format::Aws, data);
}

/// `replay::import` of Amazon Transcribe streaming events.
pub fn import_aws_stream(data: &[u8]) {
    import_format(Format::AwsStream, data);
}

/// `replay::import` of Whisper JSON.
pub fn import_whisper(data: &[u8]) {
    import_format(Format::Whisper, data);
}

/// `replay::import` of WebVTT.
pub fn import_vtt(data: &[u8]) {
    import_format(Format::Vtt, data);
}

/// `replay::import` of SRT.
pub fn import_srt(data: &[u8]) {
    import_format(Format::Srt, data);
}

/// Our JSON Lines events (`event::Event` serde) as `replay` reads them.
pub fn import_jsonl(data: &[u8]) {
    import_format(Format::Jsonl, data);
}

/// `Event::from_json`, the hand reader `replay` uses for JSON Lines,
/// against serde's derive: the same event, or the same error.
pub fn event_json(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match (Event::from_json(line), serde_json::from_str::<Event>(line)) {
        (Ok(fast), Ok(serde)) => assert_eq!(fast, serde, "from_json differs from serde"),
        (Err(fast), Err(serde)) => assert_eq!(
            fast.to_string(),
            serde.to_string(),
            "from_json's error differs from serde's"
        ),
        (fast, serde) => panic!("from_json gave {fast:?}, serde {serde:?}"),
    }
}

const FUZZ_MANIFEST: &str = "version = \"fuzz\"\nextra_categories = []\n";

/// A lexicon file: as a term file (`en/fuzz.toml`) beside a fixed manifest,
/// and as the manifest itself. Errors, never panics; a set that loads
/// compiles and its examples run.
pub fn lexicon_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let as_terms = vec![
        Source {
            path: "lexicon.toml".into(),
            text: FUZZ_MANIFEST.into(),
        },
        Source {
            path: "en/fuzz.toml".into(),
            text: text.into(),
        },
    ];
    let as_manifest = vec![Source {
        path: "lexicon.toml".into(),
        text: text.into(),
    }];
    for sources in [as_terms, as_manifest] {
        match Lexicon::from_sources(sources) {
            Ok(lexicon) => {
                for term in &lexicon.terms {
                    assert!(!term.patterns.is_empty(), "term {} has no pattern", term.id);
                    for p in &term.patterns {
                        let folded = crate::text::normalize(&p.text);
                        assert!(!folded.is_empty(), "pattern {:?} folds to nothing", p.text);
                        assert!(folded.as_str().len() <= crate::lexicon::MAX_PATTERN_BYTES);
                    }
                }
                match crate::engine::check_examples(lexicon) {
                    Ok((engine, report)) => {
                        let _ = report.passed();
                        let mut scratch = Scratch::default();
                        for term in &engine.lexicon().terms {
                            for p in &term.patterns {
                                let scan =
                                    engine.scan(&p.text, None, term.speaker, None, &mut scratch);
                                check_hits(&p.text, &scan.hits);
                            }
                        }
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

const SAMPLE_CALL: &str = include_str!("../../tests/fixtures/abusive_call_ja.jsonl");

fn sample_events() -> &'static [Event] {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        SAMPLE_CALL
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("fixture event"))
            .collect()
    })
}

/// Runs events through a call table; refusals are fine, panics are not.
fn run_events(events: &[Event], policy: &Policy) {
    let mut table = CallTable::new(16, DEFAULT_MAX_TEXT_BYTES);
    let mut scratch = Scratch::default();
    let mut callers = 0u32;
    for (i, event) in events.iter().enumerate() {
        let _ = table.apply(
            event,
            i as u64 * 1000,
            engine(),
            policy,
            &mut |_| {
                callers = callers.saturating_add(1);
                callers
            },
            &mut scratch,
        );
    }
    let _ = table.close_idle(u64::MAX / 2, policy);
    let _ = table.snapshots();
}

/// A policy file: errors, never panics; a policy that loads drives a call.
pub fn policy_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::from_toml(text, "fuzz.toml") {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for tenant in ["", "acme", "other"] {
        let set = policy.for_tenant(tenant);
        for (category, ..) in crate::category::BUILTIN_CATEGORIES {
            let _ = set.category_severity(category);
            let _ = set.category_enabled(category);
            let _ = set.category_action(category, crate::category::Severity::Critical);
        }
        let _ = set.out_of_hours_severity();
        for secs in [0, 1_790_000_000, -86_400 * 365] {
            let at = jiff::Timestamp::from_second(secs).expect("in range");
            let _ = set.within_business_hours(at, None);
            let _ = set.within_business_hours(at, Some("Asia/Tokyo"));
        }
    }
    run_events(sample_events(), &policy);
}

/// Bytes from gRPC ingest: a stream of length-delimited `TranscriptEvent`s
/// (or one bare message). Decoding and conversion give errors, never
/// panics; a converted event converts back to itself and drives a call.
pub fn proto_event(data: &[u8]) {
    use prost::Message;

    let mut messages = Vec::new();
    if let Ok(one) = pb::TranscriptEvent::decode(data) {
        messages.push(one);
    }
    let mut buf = data;
    while !buf.is_empty() {
        match pb::TranscriptEvent::decode_length_delimited(&mut buf) {
            Ok(m) => messages.push(m),
            Err(_) => break,
        }
    }
    let mut events = Vec::new();
    for message in messages {
        let _ = crate::grpc::convert::event_ids(&message);
        let _ = message.encoded_len();
        match Event::try_from(message) {
            Ok(event) => {
                let wire = pb::TranscriptEvent::from(&event);
                let back = Event::try_from(wire.clone())
                    .unwrap_or_else(|e| panic!("{event:?} -> {wire:?} does not convert back: {e}"));
                assert_eq!(back, event, "wire round trip changed the event");
                let _ = event.validate(DEFAULT_MAX_TEXT_BYTES);
                events.push(event);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    run_events(&events, builtin_policy());
}
