//! Which format a file is in, and — when none fits — what it looked like,
//! so the error can say why instead of only "unknown".
//!
//! Subtitles are recognised by extension or first line. JSON is classified
//! by the marks each format's first value carries; a stream (JSON Lines,
//! concatenated objects, a JSON array) is classified by the first of its
//! first `LOOK_AHEAD` values that any format claims, because live captures
//! often open with a value of no transcript (a Contact Lens `STARTED`
//! event, a Deepgram `Metadata` message).

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::{aws_stream, strip_bom, Format};

/// How many values of a JSON stream are looked at.
const LOOK_AHEAD: usize = 8;

/// Guesses the format of a file from its extension and content; `None`
/// when nothing fits ([`classify`] says why).
pub fn detect(path: &Path, text: &str) -> Option<Format> {
    classify(path, text).ok()
}

/// What a file that no format claims looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undetected {
    /// What was seen: "not JSON (...)", "a JSON object with keys ...".
    pub seen: String,
    /// A suggestion, when one fits (`--map` for records with text).
    pub hint: Option<String>,
}

impl fmt::Display for Undetected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown transcript format: {}, with none of the marks of jsonl, aws, aws-stream, \
             aws-analytics, azure, deepgram, whisper, vtt or srt (README, \"Transcript formats\")",
            self.seen,
        )?;
        match &self.hint {
            Some(hint) => write!(f, "; {hint}"),
            None => write!(f, "; give --format NAME if it is one of them"),
        }
    }
}

/// Classifies a file; see the module doc.
pub fn classify(path: &Path, text: &str) -> Result<Format, Undetected> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("vtt") => return Ok(Format::Vtt),
        Some("srt") => return Ok(Format::Srt),
        _ => {}
    }
    let text = strip_bom(text);
    let trimmed = text.trim_start();
    if trimmed.starts_with("WEBVTT") {
        return Ok(Format::Vtt);
    }
    if looks_like_srt(trimmed) {
        return Ok(Format::Srt);
    }
    if trimmed.is_empty() {
        return Err(Undetected {
            seen: "the file is empty".into(),
            hint: None,
        });
    }
    let mut values = Vec::new();
    let mut in_list = false;
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    while values.len() < LOOK_AHEAD {
        match stream.next() {
            None => break,
            Some(Ok(Value::Array(items))) if values.is_empty() => {
                in_list = true;
                values.extend(items.into_iter().take(LOOK_AHEAD));
                break;
            }
            Some(Ok(v)) => values.push(v),
            Some(Err(e)) if values.is_empty() => {
                return Err(Undetected {
                    seen: format!(
                        "not JSON (line {} column {}: {}), no WEBVTT line, no SRT cue",
                        e.line(),
                        e.column(),
                        super::humanize(&strip_position(&e))
                    ),
                    hint: None,
                })
            }
            // A later value that does not parse: judge by what came before
            // (the importer reports the bad line).
            Some(Err(_)) => break,
        }
    }
    if let Some(format) = values.iter().find_map(claim) {
        return Ok(format);
    }
    let first = values.first();
    let seen = match first {
        None => "an empty JSON list".to_owned(),
        Some(v) if in_list => format!("a JSON list whose first item is {}", describe(v)),
        Some(v) => describe(v),
    };
    Err(Undetected {
        seen,
        hint: first.and_then(record_hint),
    })
}

fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// The format whose marks a value carries.
fn claim(value: &Value) -> Option<Format> {
    let obj = value.as_object()?;
    let has_array = |o: &Map<String, Value>, k: &str| o.get(k).is_some_and(Value::is_array);
    if let Some(results) = obj.get("results").and_then(Value::as_object) {
        if results.contains_key("transcripts")
            || results.contains_key("items")
            || results.contains_key("audio_segments")
        {
            return Some(Format::Aws);
        }
        if has_array(results, "channels") || has_array(results, "utterances") {
            return Some(Format::Deepgram);
        }
    }
    if aws_stream::is_stream_event(value) {
        return Some(Format::AwsStream);
    }
    if is_analytics(obj) {
        return Some(Format::AwsAnalytics);
    }
    if is_azure(obj) {
        return Some(Format::Azure);
    }
    if is_deepgram_message(obj) {
        return Some(Format::Deepgram);
    }
    if has_array(obj, "segments") {
        return Some(Format::Whisper);
    }
    if obj.get("type").is_some_and(Value::is_string) && obj.contains_key("call_id") {
        return Some(Format::Jsonl);
    }
    None
}

fn is_analytics(obj: &Map<String, Value>) -> bool {
    let obj = match obj
        .get("CallAnalyticsTranscriptResultStream")
        .and_then(Value::as_object)
    {
        Some(inner) => inner,
        None => obj,
    };
    if obj.contains_key("UtteranceEvent") || obj.contains_key("CategoryEvent") {
        return true;
    }
    // A bare UtteranceEvent as some SDKs print it.
    if obj.contains_key("UtteranceId") && obj.contains_key("ParticipantRole") {
        return true;
    }
    // Post-call: Transcript is a list of turns with a participant.
    if let Some(Value::Array(turns)) = obj.get("Transcript") {
        return turns.first().is_some_and(|t| {
            t.get("ParticipantRole").is_some() || t.get("ParticipantId").is_some()
        }) || (turns.is_empty() && obj.contains_key("JobStatus"));
    }
    // Contact Lens real-time: Segments, or a session event of that stream.
    if obj.get("Segments").is_some_and(Value::is_array) {
        return true;
    }
    obj.contains_key("ContactId")
        && obj
            .get("EventType")
            .and_then(Value::as_str)
            .is_some_and(|t| matches!(t, "STARTED" | "SEGMENTS" | "COMPLETED" | "FAILED"))
}

fn is_azure(obj: &Map<String, Value>) -> bool {
    if obj.get("recognizedPhrases").is_some_and(Value::is_array)
        || obj
            .get("combinedRecognizedPhrases")
            .is_some_and(Value::is_array)
    {
        return true;
    }
    if obj.get("RecognitionStatus").is_some_and(Value::is_string) {
        return true;
    }
    // An interim hypothesis of the Speech SDK: Text with Offset and Duration.
    if obj.get("Text").is_some_and(Value::is_string)
        && obj.contains_key("Offset")
        && obj.contains_key("Duration")
    {
        return true;
    }
    let conversation_items = |o: &Map<String, Value>| {
        o.get("conversationItems")
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items
                    .first()
                    .is_none_or(|i| i.get("participantId").is_some() || i.get("role").is_some())
            })
    };
    if conversation_items(obj) {
        return true;
    }
    obj.get("analysisInput")
        .and_then(|a| a.get("conversations"))
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .filter_map(Value::as_object)
                .any(conversation_items)
        })
}

fn is_deepgram_message(obj: &Map<String, Value>) -> bool {
    if obj.contains_key("call_id") {
        return false;
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("Results") => obj.get("channel").is_some(),
        Some("UtteranceEnd" | "SpeechStarted") => obj.get("channel").is_some(),
        Some("Metadata") => obj.contains_key("request_id"),
        // Older live messages carry no type.
        None => {
            obj.contains_key("is_final")
                && obj
                    .get("channel")
                    .and_then(|c| c.get("alternatives"))
                    .is_some()
        }
        _ => false,
    }
}

/// A short description of a JSON value: its kind and first keys.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(obj) => {
            let keys: Vec<String> = obj.keys().take(6).map(|k| format!("{k:?}")).collect();
            let more = if obj.len() > 6 { ", ..." } else { "" };
            if keys.is_empty() {
                "an empty JSON object".to_owned()
            } else {
                format!("a JSON object with keys {}{more}", keys.join(", "))
            }
        }
        Value::Array(_) => "a JSON list of lists".to_owned(),
        Value::String(_) => "a JSON string".to_owned(),
        Value::Number(_) => "a JSON number".to_owned(),
        Value::Bool(_) => "a JSON true/false".to_owned(),
        Value::Null => "JSON null".to_owned(),
    }
}

/// Field names that usually hold an utterance's text.
const TEXT_KEYS: [&str; 6] = [
    "text",
    "transcript",
    "content",
    "utterance",
    "sentence",
    "Transcript",
];

/// For records that hold text under a common name: the `--map` to try.
fn record_hint(value: &Value) -> Option<String> {
    let obj = value.as_object()?;
    let text = TEXT_KEYS
        .iter()
        .find(|k| obj.get(**k).is_some_and(Value::is_string))?;
    let speaker = ["speaker", "speaker_role", "role", "participant", "channel"]
        .iter()
        .find(|k| obj.contains_key(**k));
    let mut map = format!("text={text}");
    if let Some(s) = speaker {
        map.push_str(&format!(",speaker={s}"));
    }
    Some(format!(
        "these look like records with text in {text:?}: try --map {map}"
    ))
}

pub(super) fn looks_like_srt(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim);
    match (lines.next(), lines.next()) {
        (Some(index), Some(timing)) => {
            !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && timing.contains("-->")
        }
        _ => false,
    }
}
