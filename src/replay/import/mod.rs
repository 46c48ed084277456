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
//! - SRT (`srt`): cues, an optional `Name: ` prefix names the speaker;
//! - Azure Speech (`azure`): batch transcription results
//!   (`recognizedPhrases`), real-time recognizer results (`RecognitionStatus`
//!   / `NBest`, interim `Text` hypotheses) and the conversation items given
//!   to Azure Language (`conversationItems` with `participantId` / `role`);
//! - Deepgram (`deepgram`): pre-recorded REST responses (`results.channels`,
//!   `results.utterances`) and live websocket messages (`type: Results` with
//!   `is_final` / `speech_final`, `UtteranceEnd`);
//! - Amazon Transcribe Call Analytics and Amazon Connect Contact Lens
//!   (`aws-analytics`): post-call JSON (`Transcript[]` with
//!   `ParticipantRole`), streaming `UtteranceEvent`s and Contact Lens
//!   real-time `Segments` (`Utterance` partials, `Transcript` finals);
//! - any JSON records (`map`): a JSON array, JSON Lines or concatenated
//!   objects, fields named by a [`FieldMap`] (`--map text=transcript,...`).
//!
//! Speakers: see [`SpeakerMap`]. Times are milliseconds of audio from the
//! start of the recording, rounded from the source's seconds.

mod aws;
mod aws_analytics;
mod aws_stream;
mod azure;
mod deepgram;
mod detect;
pub(crate) mod jsonl;
mod map;
mod srt;
mod vtt;
mod whisper;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

pub use detect::{classify, detect, Undetected};
pub use map::FieldMap;

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
    /// Azure Speech batch or real-time results.
    Azure,
    /// Deepgram REST responses or live `Results` messages.
    Deepgram,
    /// Amazon Transcribe Call Analytics / Contact Lens output.
    AwsAnalytics,
    /// JSON records mapped by [`ImportOptions::map`].
    Map,
}

impl Format {
    pub const ALL: [Format; 10] = [
        Format::Jsonl,
        Format::Aws,
        Format::AwsStream,
        Format::Whisper,
        Format::Vtt,
        Format::Srt,
        Format::Azure,
        Format::Deepgram,
        Format::AwsAnalytics,
        Format::Map,
    ];

    /// The CLI names, for help and error text.
    pub const NAMES: &'static str =
        "jsonl, aws, aws-stream, aws-analytics, azure, deepgram, whisper, vtt, srt, map";

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Aws => "aws",
            Format::AwsStream => "aws-stream",
            Format::Whisper => "whisper",
            Format::Vtt => "vtt",
            Format::Srt => "srt",
            Format::Azure => "azure",
            Format::Deepgram => "deepgram",
            Format::AwsAnalytics => "aws-analytics",
            Format::Map => "map",
        }
    }
}

impl Format {
    /// What a file of this format holds, for error text.
    pub fn marks(self) -> &'static str {
        match self {
            Format::Jsonl => "events with \"type\" and \"call_id\"",
            Format::Aws => "results.items or results.audio_segments",
            Format::AwsStream => "Transcript.Results",
            Format::Whisper => "segments",
            Format::Vtt => "a WEBVTT line and cues",
            Format::Srt => "numbered cues with a \"-->\" line",
            Format::Azure => "recognizedPhrases, RecognitionStatus results or conversationItems",
            Format::Deepgram => "results.channels or \"Results\" messages",
            Format::AwsAnalytics => "Transcript[] with ParticipantRole, UtteranceEvent or Segments",
            Format::Map => "records with the --map fields",
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
                    "unknown transcript format {s:?} (expected one of {})",
                    Format::NAMES
                )
            })
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
    /// Field names for [`Format::Map`] (`--map`).
    pub map: Option<FieldMap>,
}

/// Imports one file's text into events: a `start` (call id, language),
/// the fragments in order (`seq` from 1) and an `end` at the last time;
/// for a file of several calls (Azure conversations, `--map call=...`),
/// that for each call in the order they first appear.
///
/// When the file does not fit `format` but looks like another format, the
/// error says so ("looks like azure; try --format azure").
pub fn import(
    format: Format,
    path: &Path,
    text: &str,
    options: &ImportOptions,
) -> Result<Vec<Event>, ReplayError> {
    let raw = text;
    let text = strip_bom(text);
    let parsed = match format {
        // The one JSON Lines reader (it skips the byte order mark itself,
        // on the first line only); no "looks like" hint: our own format
        // has its own errors.
        Format::Jsonl => return jsonl::parse(path, raw),
        Format::Aws => aws::parse(path, text),
        Format::AwsStream => aws_stream::parse(path, text),
        Format::Whisper => whisper::parse(path, text),
        Format::Vtt => vtt::parse(path, text),
        Format::Srt => srt::parse(path, text),
        Format::Azure => azure::parse(path, text),
        Format::Deepgram => deepgram::parse(path, text),
        Format::AwsAnalytics => aws_analytics::parse(path, text),
        Format::Map => match &options.map {
            Some(map) => map::parse(path, text, map),
            None => Err(parse_err(
                path,
                1,
                "format map needs the field names: give --map text=FIELD,...",
            )),
        },
    }
    .map_err(|e| with_hint(e, format, path, text))?;
    if parsed.pieces.is_empty() {
        // Read as the wrong format, a file can fit with all its fields
        // ignored: say so rather than replay an empty call.
        if let Ok(other) = classify(path, text) {
            if other != format {
                return Err(parse_err(
                    path,
                    1,
                    format!(
                        "no transcript found reading it as {format} (expected {}); \
                         the file looks like {other}: try --format {other}",
                        format.marks()
                    ),
                ));
            }
        }
    }
    Ok(finish(path, parsed, options))
}

/// Adds "this file looks like X" to an error when the content says another
/// format than the one it was read as.
fn with_hint(e: ReplayError, format: Format, path: &Path, text: &str) -> ReplayError {
    match (e, classify(path, text)) {
        (ReplayError::Parse { path, line, message }, Ok(other)) if other != format => {
            ReplayError::Parse {
                path,
                line,
                message: format!(
                    "{message} (read as {format}, but the file looks like {other}: try --format {other})"
                ),
            }
        }
        (e, _) => e,
    }
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
    let format = match format {
        Some(f) => f,
        None => classify(path, &text).map_err(|why| undetected(path, &why))?,
    };
    import(format, path, &text, options)
}

/// The error for a file no format claims: what was seen and why it fits
/// none.
pub fn undetected(path: &Path, why: &Undetected) -> ReplayError {
    parse_err(path, 1, why.to_string())
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
    /// The call this piece belongs to, for files of several calls; `None`:
    /// the file's call ([`ImportOptions::call_id`] or the file stem).
    pub call_id: Option<String>,
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
    // Pieces per call, calls in the order they first appear.
    let mut calls: Vec<(String, Vec<Piece>)> = Vec::new();
    for mut piece in parsed.pieces {
        let id = piece.call_id.take().unwrap_or_else(|| call_id.clone());
        match calls.iter_mut().find(|(c, _)| *c == id) {
            Some((_, pieces)) => pieces.push(piece),
            None => calls.push((id, vec![piece])),
        }
    }
    if calls.is_empty() {
        calls.push((call_id, Vec::new()));
    }
    let mut events = Vec::new();
    for (call_id, pieces) in calls {
        finish_call(&mut events, call_id, pieces, language.as_deref(), options);
    }
    events
}

fn finish_call(
    events: &mut Vec<Event>,
    call_id: String,
    pieces: Vec<Piece>,
    language: Option<&str>,
    options: &ImportOptions,
) {
    let language = language.map(str::to_owned);
    events.reserve(pieces.len() + 2);
    events.push(Event::Start(CallStart {
        call_id: call_id.clone(),
        language: language.clone(),
        ..CallStart::default()
    }));
    let mut resolver = options.speakers.resolver();
    let mut last_ms = 0;
    let mut next_utterance = 0u64;
    for (i, p) in pieces.into_iter().enumerate() {
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
}

pub(crate) fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> ReplayError {
    ReplayError::Parse {
        path: path.display().to_string(),
        line,
        message: message.into(),
    }
}

/// A serde_json error as a parse error; `first_line` is the line the
/// parsed text starts on in the file (1 for a whole file). The message is
/// put in plain words ([`humanize`]), without serde's position suffix.
pub(crate) fn json_err(path: &Path, e: &serde_json::Error, first_line: usize) -> ReplayError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let message = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not valid JSON: {message}")
        }
        _ => humanize(message),
    };
    parse_err(path, first_line + e.line().saturating_sub(1), message)
}

/// Deserialises `text` (starting on line `first_line` of the file), naming
/// the field that did not fit: `results.items[3].start_time: expected a
/// number of seconds, found true`.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    first_line: usize,
) -> Result<T, ReplayError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| field_err(path, &e, first_line))?;
    // Trailing text is an error, as in serde_json::from_str.
    de.end().map_err(|e| json_err(path, &e, first_line))?;
    Ok(value)
}

/// Where a value of a JSON stream starts: its line, and its index when
/// the file is one JSON array (every element then starts on "line 1").
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    pub line: usize,
    pub index: Option<usize>,
}

/// Each JSON value of a stream — JSON Lines, objects one after the other,
/// or one JSON array of them — with where it starts.
pub(crate) fn from_json_stream<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<Vec<(At, T)>, ReplayError> {
    if text.trim_start().starts_with('[') {
        let all: Vec<T> = from_json(path, text, 1)?;
        return Ok(all
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let at = At {
                    line: 1,
                    index: Some(i),
                };
                (at, v)
            })
            .collect());
    }
    let mut out = Vec::new();
    let mut rest = text;
    let mut consumed = 0usize;
    loop {
        let skipped = rest.len() - rest.trim_start().len();
        consumed += skipped;
        rest = &rest[skipped..];
        if rest.is_empty() {
            return Ok(out);
        }
        let line = line_at(text, consumed);
        // Find where this value ends, then read it with field paths.
        let mut probe =
            serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
        match probe.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(json_err(path, &e, line)),
            None => return Ok(out),
        }
        let len = probe.byte_offset();
        let at = At { line, index: None };
        out.push((at, from_json(path, &rest[..len], line)?));
        consumed += len;
        rest = &rest[len..];
    }
}

/// A value of a stream as `T`, naming the field that did not fit.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    path: &Path,
    at: At,
    value: serde_json::Value,
) -> Result<T, ReplayError> {
    from_field(path, at, "", value)
}

/// A value found at `field` (e.g. `Segments[2].Transcript`) of the value at
/// `at`, as `T`; errors name the whole field path.
pub(crate) fn from_field<T: serde::de::DeserializeOwned>(
    path: &Path,
    at: At,
    field: &str,
    value: serde_json::Value,
) -> Result<T, ReplayError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let err = field_err(path, &e, at.line);
        let ReplayError::Parse {
            path,
            line,
            message,
        } = err
        else {
            return err;
        };
        let mut location = at.index.map(|i| format!("[{i}]")).unwrap_or_default();
        if !field.is_empty() {
            if !location.is_empty() {
                location.push('.');
            }
            location.push_str(field);
        }
        let message = match (location.is_empty(), message.strip_prefix("the top level: ")) {
            (true, _) => message,
            (false, Some(m)) => format!("{location}: {m}"),
            (false, None) => format!("{location}.{message}"),
        };
        ReplayError::Parse {
            path,
            line,
            message,
        }
    })
}

/// The 1-based line of byte `offset`.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

fn field_err(
    path: &Path,
    e: &serde_path_to_error::Error<serde_json::Error>,
    first_line: usize,
) -> ReplayError {
    let inner = e.inner();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return json_err(path, inner, first_line);
    }
    let full = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = humanize(full.strip_suffix(&suffix).unwrap_or(&full));
    let field = e.path().to_string();
    // A problem with the whole value is reported where it starts (serde
    // is at its end by then).
    let (line, message) = if field == "." {
        (first_line, format!("the top level: {message}"))
    } else {
        (
            first_line + inner.line().saturating_sub(1),
            format!("{field}: {message}"),
        )
    };
    parse_err(path, line, message)
}

/// Serde's wording in plain words: "invalid type: map, expected a
/// sequence" becomes "expected a list, found an object"; "missing field
/// `end`" becomes "field `end` is missing". Other messages (ours) pass.
pub(crate) fn humanize(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "expected {}, found {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "expected {}, found {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        if let Some((n, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {n} items");
        }
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("field {field} is missing");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    message.to_owned()
}

fn found_words(found: &str) -> String {
    match found {
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        "null" | "unit" => "null".into(),
        _ => {
            for (serde, ours) in [
                ("string ", "the text "),
                ("integer ", "the number "),
                ("floating point ", "the number "),
                ("boolean ", ""),
            ] {
                if let Some(v) = found.strip_prefix(serde) {
                    return format!("{ours}{}", v.trim_matches('`'));
                }
            }
            found.to_owned()
        }
    }
}

fn expected_words(expected: &str) -> String {
    if expected.starts_with("struct ") || expected == "a map" {
        return "an object".into();
    }
    match expected {
        "a sequence" => "a list".into(),
        "a string" => "text".into(),
        "a boolean" => "true or false".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        _ => expected.to_owned(),
    }
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
