//! Importers: recorded transcripts from common ASR tools mapped into the
//! transcript events of DESIGN section 2, so a recorded call can be
//! replayed like a live one.
//!
//! Formats ([`Format`], CLI names in brackets):
//!
//! - our own JSON Lines events (`jsonl`), read as they are;
//! - Amazon Transcribe batch output (`aws`): words grouped into utterances by
//!   speaker turn (`speaker_labels`, `channel_labels`, or labels on the
//!   items), or the `audio_segments` when present. Punctuation joins the word
//!   before it; masked (`***`) and redacted (`[PII]`) words are kept as they
//!   are. Without any speaker information each sentence is an utterance;
//!   long turns are cut at a sentence end so a fragment stays small;
//! - Amazon Transcribe streaming events (`aws-stream`): one `TranscriptEvent`
//!   a line (or concatenated JSON objects), partial and final results of a
//!   `ResultId` become interim and final fragments of one utterance;
//! - Whisper JSON (`whisper`): `segments[]` (a `speaker` field, as WhisperX
//!   writes, is used when present);
//! - WebVTT (`vtt`): cues, `<v Name>` voice tags name the speaker;
//! - SRT (`srt`): cues, an optional `Name: ` prefix names the speaker.
//!
//! Speakers: see [`SpeakerMap`]. Times are milliseconds of audio from the
//! start of the recording, rounded from the source's seconds.

mod aws;
mod aws_stream;
mod jsonl;
mod srt;
mod vtt;
mod whisper;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::ReplayError;
use crate::category::Speaker;
use crate::event::{CallEnd, CallStart, Event, Fragment};

/// A transcript file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Our own events, JSON Lines (DESIGN section 2).
    Jsonl,
    /// Amazon Transcribe batch job output (`results.items`).
    Aws,
    /// Amazon Transcribe streaming `TranscriptEvent`s, one a line.
    AwsStream,
    /// Whisper JSON (`segments[]`).
    Whisper,
    /// WebVTT subtitles.
    Vtt,
    /// SubRip subtitles.
    Srt,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Jsonl,
        Format::Aws,
        Format::AwsStream,
        Format::Whisper,
        Format::Vtt,
        Format::Srt,
    ];

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Aws => "aws",
            Format::AwsStream => "aws-stream",
            Format::Whisper => "whisper",
            Format::Vtt => "vtt",
            Format::Srt => "srt",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown transcript format {s:?} (expected jsonl, aws, aws-stream, whisper, vtt or srt)"
                )
            })
    }
}

/// Guesses the format of a file from its extension and content; `None`
/// when nothing fits.
///
/// `.vtt` or a leading `WEBVTT` is WebVTT; `.srt` or a numeric cue index
/// followed by a `-->` line is SRT. JSON is classified by its first value:
/// `results.transcripts` / `results.items` is AWS batch, `Transcript.Results`
/// (optionally inside `TranscriptEvent` / `TranscriptResultStream`) is AWS
/// streaming, `segments` is Whisper and a `type` field is our JSON Lines.
pub fn detect(path: &Path, text: &str) -> Option<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("vtt") => return Some(Format::Vtt),
        Some("srt") => return Some(Format::Srt),
        _ => {}
    }
    let text = strip_bom(text);
    let trimmed = text.trim_start();
    if trimmed.starts_with("WEBVTT") {
        return Some(Format::Vtt);
    }
    if looks_like_srt(trimmed) {
        return Some(Format::Srt);
    }
    let first: serde_json::Value = serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    let first = match &first {
        serde_json::Value::Array(items) => items.first()?,
        other => other,
    };
    let obj = first.as_object()?;
    if let Some(results) = obj.get("results").and_then(|r| r.as_object()) {
        if results.contains_key("transcripts")
            || results.contains_key("items")
            || results.contains_key("audio_segments")
        {
            return Some(Format::Aws);
        }
    }
    if aws_stream::is_stream_event(first) {
        return Some(Format::AwsStream);
    }
    if obj.get("segments").is_some_and(|s| s.is_array()) {
        return Some(Format::Whisper);
    }
    if obj.get("type").is_some_and(|t| t.is_string()) && obj.contains_key("call_id") {
        return Some(Format::Jsonl);
    }
    None
}

fn looks_like_srt(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim);
    match (lines.next(), lines.next()) {
        (Some(index), Some(timing)) => {
            !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && timing.contains("-->")
        }
        _ => false,
    }
}

pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Who a source speaker label is.
///
/// Labels are what the source calls a speaker: AWS `spk_0`, `spk_1` (batch
/// diarization; streaming `Speaker` "0" becomes `spk_0`), AWS channels
/// `ch_0`, `ch_1`, WebVTT voice names, Whisper `speaker` values, SRT/VTT
/// `Name:` prefixes. A label is resolved, in this order:
///
/// 1. by `labels` (exact match);
/// 2. role names, any case: `agent`, `operator`, `オペレーター`, `担当者` are
///    the agent; `customer`, `caller`, `client`, `顧客`, `お客様` the customer;
/// 3. when `auto` is on (the default): the first other label seen in the
///    call is the agent (contact centres answer first), the second the
///    customer;
/// 4. everything else, and text with no label at all, is
///    `default_speaker` (default customer: only customer speech raises
///    harassment alerts, so when in doubt nothing is hidden).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerMap {
    pub labels: BTreeMap<String, Speaker>,
    pub auto: bool,
    pub default_speaker: Speaker,
}

impl Default for SpeakerMap {
    fn default() -> Self {
        SpeakerMap {
            labels: BTreeMap::new(),
            auto: true,
            default_speaker: Speaker::Customer,
        }
    }
}

impl FromStr for SpeakerMap {
    type Err = String;

    /// `spk_0=agent,spk_1=customer`; `*=agent` sets the default speaker.
    /// Naming any label turns the first-seen rule off: labels not named go
    /// to the default speaker. An empty string is the default map.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = SpeakerMap::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (label, who) = pair
                .split_once('=')
                .ok_or_else(|| format!("speaker map: {pair:?} is not label=agent|customer"))?;
            let (label, who) = (label.trim(), who.trim());
            let speaker = Speaker::from_str(&who.to_ascii_lowercase())
                .map_err(|e| format!("speaker map: {label}: {e}"))?;
            if label == "*" {
                map.default_speaker = speaker;
            } else if label.is_empty() {
                return Err(format!("speaker map: empty label in {pair:?}"));
            } else {
                map.labels.insert(label.to_owned(), speaker);
                map.auto = false;
            }
        }
        Ok(map)
    }
}

impl SpeakerMap {
    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            map: self,
            seen: Vec::new(),
        }
    }
}

struct Resolver<'a> {
    map: &'a SpeakerMap,
    seen: Vec<(String, Speaker)>,
}

impl Resolver<'_> {
    fn resolve(&mut self, label: Option<&str>) -> Speaker {
        let Some(label) = label else {
            return self.map.default_speaker;
        };
        if let Some(s) = self.map.labels.get(label) {
            return *s;
        }
        if let Some(s) = role(label) {
            return s;
        }
        if !self.map.auto {
            return self.map.default_speaker;
        }
        if let Some((_, s)) = self.seen.iter().find(|(l, _)| l == label) {
            return *s;
        }
        let s = match self.seen.len() {
            0 => Speaker::Agent,
            1 => Speaker::Customer,
            _ => self.map.default_speaker,
        };
        self.seen.push((label.to_owned(), s));
        s
    }
}

fn role(label: &str) -> Option<Speaker> {
    let l = label.trim().to_lowercase();
    match l.as_str() {
        "agent" | "operator" | "オペレーター" | "担当者" => Some(Speaker::Agent),
        "customer" | "caller" | "client" | "顧客" | "お客様" => Some(Speaker::Customer),
        _ => None,
    }
}

/// How a file becomes a call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The call id; default the file stem. Ignored for `jsonl`, whose
    /// events name their calls.
    pub call_id: Option<String>,
    /// BCP-47 language of the call; overrides what the file says (AWS
    /// `language_code` / `LanguageCode`, Whisper `language`).
    pub language: Option<String>,
    pub speakers: SpeakerMap,
}

/// Imports one file's text into events: a `start` (call id, language),
/// the fragments in order (`seq` from 1) and an `end` at the last time.
pub fn import(
    format: Format,
    path: &Path,
    text: &str,
    options: &ImportOptions,
) -> Result<Vec<Event>, ReplayError> {
    let text = strip_bom(text);
    let parsed = match format {
        Format::Jsonl => return jsonl::parse(path, text),
        Format::Aws => aws::parse(path, text)?,
        Format::AwsStream => aws_stream::parse(path, text)?,
        Format::Whisper => whisper::parse(path, text)?,
        Format::Vtt => vtt::parse(path, text)?,
        Format::Srt => srt::parse(path, text)?,
    };
    Ok(finish(path, parsed, options))
}

/// Reads a file and imports it, detecting the format unless one is given.
pub fn import_file(
    format: Option<Format>,
    path: &Path,
    options: &ImportOptions,
) -> Result<Vec<Event>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let format =
        match format.or_else(|| detect(path, &text)) {
            Some(f) => f,
            None => return Err(parse_err(
                path,
                1,
                "unknown transcript format (give one of jsonl, aws, aws-stream, whisper, vtt, srt)",
            )),
        };
    import(format, path, &text, options)
}

/// One fragment as a format parser sees it, before speakers, sequence
/// numbers and ids are settled.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Piece {
    pub label: Option<String>,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub is_final: bool,
    /// `None`: a fresh `u<n>` id.
    pub utterance_id: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub pieces: Vec<Piece>,
    pub language: Option<String>,
}

fn finish(path: &Path, parsed: Parsed, options: &ImportOptions) -> Vec<Event> {
    let call_id = options.call_id.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "call".to_owned())
    });
    let language = options.language.clone().or(parsed.language);
    let mut events = Vec::with_capacity(parsed.pieces.len() + 2);
    events.push(Event::Start(CallStart {
        call_id: call_id.clone(),
        language: language.clone(),
        ..CallStart::default()
    }));
    let mut resolver = options.speakers.resolver();
    let mut last_ms = 0;
    let mut next_utterance = 0u64;
    for (i, p) in parsed.pieces.into_iter().enumerate() {
        last_ms = last_ms.max(p.end_ms);
        let utterance_id = p.utterance_id.unwrap_or_else(|| {
            next_utterance += 1;
            format!("u{next_utterance}")
        });
        events.push(Event::Fragment(Fragment {
            call_id: call_id.clone(),
            seq: i as u64 + 1,
            speaker: resolver.resolve(p.label.as_deref()),
            text: p.text,
            is_final: p.is_final,
            utterance_id,
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            language: options
                .language
                .clone()
                .or(p.language)
                .or_else(|| language.clone()),
            loudness_dbfs: None,
        }));
    }
    events.push(Event::End(CallEnd {
        call_id,
        end_ms: last_ms,
    }));
    events
}

pub(crate) fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> ReplayError {
    ReplayError::Parse {
        path: path.display().to_string(),
        line,
        message: message.into(),
    }
}

/// A serde_json error as a parse error; `first_line` is the line the
/// parsed text starts on in the file (1 for a whole file).
pub(crate) fn json_err(path: &Path, e: &serde_json::Error, first_line: usize) -> ReplayError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    parse_err(path, first_line + e.line().saturating_sub(1), message)
}

/// Largest time accepted, in seconds (about 11.5 days of audio).
const MAX_SECS: f64 = 1e6;

/// Seconds (a JSON number or a decimal string, as AWS writes them) as
/// milliseconds.
pub(crate) fn secs_to_ms(secs: f64) -> Option<u64> {
    if secs.is_finite() && (0.0..=MAX_SECS).contains(&secs) {
        Some((secs * 1000.0).round() as u64)
    } else {
        None
    }
}

/// A time in seconds in the source, held as milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Secs(pub u64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Secs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a time in seconds (number or decimal string)")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Secs, E> {
                secs_to_ms(v)
                    .map(Secs)
                    .ok_or_else(|| E::custom(format!("time {v} s is out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secs, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secs, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secs, E> {
                let secs: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("time {v:?} is not a number of seconds")))?;
                self.visit_f64(secs)
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks a span, naming what it belongs to.
pub(crate) fn check_span(what: &str, start_ms: u64, end_ms: u64) -> Result<(), String> {
    if end_ms < start_ms {
        Err(format!(
            "{what}: end {} s is before start {} s",
            end_ms as f64 / 1000.0,
            start_ms as f64 / 1000.0
        ))
    } else {
        Ok(())
    }
}

/// Accepts a language tag from a file when it looks like BCP-47 (Whisper
/// sometimes writes "english").
pub(crate) fn language_tag(tag: Option<String>) -> Option<String> {
    let tag = tag?;
    let primary = tag.split(['-', '_']).next().unwrap_or("");
    let ok = (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && tag.len() <= 35
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| tag.replace('_', "-"))
}

/// Appends `word` to `text`, with a space unless either side is CJK (or
/// `text` is empty).
pub(crate) fn push_word(text: &mut String, word: &str) {
    let word = word.trim_start();
    if word.is_empty() {
        return;
    }
    if let (Some(a), Some(b)) = (text.chars().last(), word.chars().next()) {
        if !(a.is_whitespace() || is_cjk(a) && is_cjk(b)) {
            text.push(' ');
        }
    }
    text.push_str(word);
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x30FF   // CJK punctuation, hiragana, katakana
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified
        | 0xAC00..=0xD7AF // Hangul
        | 0xF900..=0xFAFF // compatibility ideographs
        | 0xFF00..=0xFFEF // full-width forms
    )
}

/// Splits a `Name: text` speaker prefix off a line of subtitle text
/// (also the full-width colon `：`). The name must look like one: 1 to 32
/// bytes, starting with a letter, at most three words of letters, digits,
/// `_`, `-`, `.`, none starting in lower case ("Agent", "Speaker 1",
/// "SPEAKER_00", "お客様"; not "Note the time"); an ASCII colon must be
/// followed by a space (not "10:30", "http://").
pub(crate) fn speaker_prefix(line: &str) -> Option<(&str, &str)> {
    let (idx, colon) = line.char_indices().find(|(_, c)| *c == ':' || *c == '：')?;
    let name = line.get(..idx)?.trim();
    let after = line.get(idx + colon.len_utf8()..)?;
    if colon == ':' && !after.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = after.trim();
    let first = name.chars().next()?;
    let ok = !rest.is_empty()
        && name.len() <= 32
        && first.is_alphabetic()
        && name.split_whitespace().count() <= 3
        && name
            .split_whitespace()
            .all(|w| !w.chars().next().is_some_and(char::is_lowercase))
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '-' || c == '.');
    ok.then_some((name, rest))
}

#[cfg(test)]
mod tests;
