//! Amazon Transcribe Call Analytics and Amazon Connect Contact Lens: the
//! outputs that already know who is the agent and who the customer.
//!
//! - post-call JSON (Call Analytics jobs, Contact Lens post-call
//!   analysis): `Transcript[]` turns with `Content`, `BeginOffsetMillis`,
//!   `EndOffsetMillis`, `Id` and `ParticipantRole` (Contact Lens may give
//!   only `ParticipantId`, resolved through `Participants[]`). Each turn is
//!   one final fragment. `LoudnessScores` are not dBFS and are not used;
//! - real-time Call Analytics: `UtteranceEvent`s (optionally inside
//!   `CallAnalyticsTranscriptResultStream`), one a line or a JSON array;
//!   `UtteranceId` is the utterance, `IsPartial` an interim revision of it,
//!   `Transcript` its whole current text. `CategoryEvent`s and exceptions
//!   carry no words and are skipped;
//! - Contact Lens real-time segment streams (Kinesis events, or
//!   `ListRealtimeContactAnalysisSegments` pages): `Segments[]` of
//!   `Utterance` (a piece of a transcript still being said:
//!   `PartialContent`, linked by `TranscriptId`) and `Transcript` (the
//!   finished turn, `Content`, its `Id`). The pieces so far of one
//!   transcript are its interim text; the `Transcript` segment is final.
//!
//! The label is the role (`AGENT`, `CUSTOMER`), so no `--speakers` is
//! needed; `SYSTEM` and bot turns go to the default speaker unless mapped.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{
    check_span, from_field, from_json_stream, from_value, language_tag, push_word, At, Parsed,
    Piece,
};
use crate::replay::ReplayError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostCall {
    #[serde(default)]
    transcript: Vec<Turn>,
    #[serde(default)]
    participants: Vec<Participant>,
    language_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Participant {
    participant_id: Option<String>,
    participant_role: Option<String>,
}

/// A post-call turn, a Contact Lens `Transcript` segment or a streaming
/// `UtteranceEvent`: the same fields under slightly different names.
#[derive(Deserialize)]
#[serde(try_from = "RawTurn")]
struct Turn {
    id: Option<String>,
    role: Option<String>,
    participant: Option<String>,
    text: String,
    start_ms: u64,
    end_ms: u64,
    is_partial: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTurn {
    id: Option<String>,
    utterance_id: Option<String>,
    participant_role: Option<String>,
    participant_id: Option<String>,
    content: Option<String>,
    transcript: Option<String>,
    begin_offset_millis: Option<u64>,
    end_offset_millis: Option<u64>,
    #[serde(default)]
    is_partial: bool,
}

impl TryFrom<RawTurn> for Turn {
    type Error = String;
    fn try_from(raw: RawTurn) -> Result<Self, String> {
        let start_ms = raw
            .begin_offset_millis
            .ok_or("BeginOffsetMillis is missing")?;
        let end_ms = raw.end_offset_millis.ok_or("EndOffsetMillis is missing")?;
        check_span("turn", start_ms, end_ms)?;
        Ok(Turn {
            id: raw
                .utterance_id
                .or(raw.id)
                .filter(|id| !id.trim().is_empty()),
            role: raw.participant_role,
            participant: raw.participant_id,
            text: raw
                .content
                .or(raw.transcript)
                .unwrap_or_default()
                .trim()
                .to_owned(),
            start_ms,
            end_ms,
            is_partial: raw.is_partial,
        })
    }
}

/// A Contact Lens `Utterance` segment: a piece of a turn being said.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Partial {
    transcript_id: Option<String>,
    id: Option<String>,
    participant_role: Option<String>,
    participant_id: Option<String>,
    #[serde(default)]
    partial_content: String,
    begin_offset_millis: Option<u64>,
    end_offset_millis: Option<u64>,
}

fn post_call(path: &Path, at: At, value: Value) -> Result<Parsed, ReplayError> {
    let doc: PostCall = from_value(path, at, value)?;
    let roles: HashMap<String, String> = doc
        .participants
        .into_iter()
        .filter_map(|p| Some((p.participant_id?, p.participant_role?)))
        .collect();
    let mut pieces: Vec<Piece> = doc
        .transcript
        .into_iter()
        .filter(|t| !t.text.is_empty())
        .map(|t| Piece {
            label: t
                .role
                .or_else(|| t.participant.as_ref().and_then(|p| roles.get(p).cloned()))
                .or(t.participant),
            text: t.text,
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            is_final: true,
            utterance_id: t.id,
            ..Piece::default()
        })
        .collect();
    pieces.sort_by_key(|p| p.start_ms);
    Ok(Parsed {
        pieces,
        language: language_tag(doc.language_code),
    })
}

/// The turn of a streaming value, if it holds one: an `UtteranceEvent`
/// (wrapped or bare).
fn utterance_event(value: &Value) -> Option<&Value> {
    let inner = value
        .get("CallAnalyticsTranscriptResultStream")
        .unwrap_or(value);
    match inner.get("UtteranceEvent") {
        Some(event) => Some(event),
        None if inner.get("UtteranceId").is_some() => Some(inner),
        None => None,
    }
}

/// One turn being said, from Contact Lens `Utterance` pieces.
struct Building {
    text: String,
    start_ms: u64,
    end_ms: u64,
}

fn streaming(path: &Path, values: Vec<(At, Value)>) -> Result<Parsed, ReplayError> {
    let mut pieces = Vec::new();
    let mut language = None;
    let mut building: HashMap<String, Building> = HashMap::new();
    for (at, value) in values {
        if language.is_none() {
            language = language_tag(
                value
                    .get("LanguageCode")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
        }
        if let Some(event) = utterance_event(&value) {
            let turn: Turn = from_field(path, at, "UtteranceEvent", event.clone())?;
            if turn.text.is_empty() && turn.is_partial {
                continue;
            }
            pieces.push(Piece {
                label: turn.role.or(turn.participant),
                text: turn.text,
                start_ms: turn.start_ms,
                end_ms: turn.end_ms,
                is_final: !turn.is_partial,
                utterance_id: turn.id,
                ..Piece::default()
            });
            continue;
        }
        let Some(Value::Array(segments)) = value.get("Segments") else {
            // CategoryEvent, STARTED / COMPLETED, exceptions: no words.
            continue;
        };
        for (i, segment) in segments.iter().enumerate() {
            if let Some(partial) = segment.get("Utterance") {
                let partial: Partial = from_field(
                    path,
                    at,
                    &format!("Segments[{i}].Utterance"),
                    partial.clone(),
                )?;
                let Some(id) = partial.transcript_id.or(partial.id) else {
                    continue;
                };
                let start = partial.begin_offset_millis.unwrap_or(0);
                let end = partial.end_offset_millis.unwrap_or(start).max(start);
                let turn = building.entry(id.clone()).or_insert(Building {
                    text: String::new(),
                    start_ms: start,
                    end_ms: end,
                });
                push_word(&mut turn.text, partial.partial_content.trim());
                turn.start_ms = turn.start_ms.min(start);
                turn.end_ms = turn.end_ms.max(end);
                if turn.text.is_empty() {
                    continue;
                }
                pieces.push(Piece {
                    label: partial.participant_role.or(partial.participant_id),
                    text: turn.text.clone(),
                    start_ms: turn.start_ms,
                    end_ms: turn.end_ms,
                    is_final: false,
                    utterance_id: Some(id),
                    ..Piece::default()
                });
            } else if let Some(transcript) = segment.get("Transcript") {
                let turn: Turn = from_field(
                    path,
                    at,
                    &format!("Segments[{i}].Transcript"),
                    transcript.clone(),
                )?;
                if let Some(id) = &turn.id {
                    building.remove(id);
                }
                if turn.text.is_empty() {
                    continue;
                }
                pieces.push(Piece {
                    label: turn.role.or(turn.participant),
                    text: turn.text,
                    start_ms: turn.start_ms,
                    end_ms: turn.end_ms,
                    is_final: true,
                    utterance_id: turn.id,
                    ..Piece::default()
                });
            }
        }
    }
    Ok(Parsed { pieces, language })
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let values: Vec<(At, Value)> = from_json_stream(path, text)?;
    match values.first() {
        Some((at, first)) if first.get("Transcript").is_some_and(Value::is_array) => {
            let at = *at;
            if values.len() > 1 {
                return Err(super::parse_err(
                    path,
                    values[1].0.line,
                    "a post-call analytics file holds one JSON object; found more",
                ));
            }
            let value = values
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default();
            post_call(path, at, value)
        }
        _ => streaming(path, values),
    }
}
