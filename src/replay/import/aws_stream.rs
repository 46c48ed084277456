//! Amazon Transcribe streaming output: `TranscriptEvent`s as the SDKs hand
//! them over, one JSON object a line (pretty-printed objects one after the
//! other, or a JSON array of them, are read too). An event is
//! `{"Transcript":{"Results":[...]}}`, optionally wrapped in
//! `TranscriptEvent` and `TranscriptResultStream`.
//!
//! Each result is a fragment: `ResultId` is the utterance id, `is_final` is
//! `!IsPartial`, the text is `Alternatives[0].Transcript`, the times are
//! `StartTime`/`EndTime`. The speaker label is `ChannelId` (`ch_0`), else the
//! items' `Speaker` ("0" → `spk_0`). A result whose items change speaker is
//! cut into one fragment per speaker run; runs after the first get the
//! utterance id `<ResultId>#<n>`.

use std::path::Path;

use serde::Deserialize;

use super::{
    check_span, from_json_stream, language_tag, parse_err, push_word, Parsed, Piece, Secs,
};
use crate::replay::ReplayError;

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "Transcript")]
    transcript: Option<Transcript>,
    #[serde(rename = "TranscriptEvent")]
    event: Option<Box<StreamEvent>>,
    #[serde(rename = "TranscriptResultStream")]
    stream: Option<Box<StreamEvent>>,
}

impl StreamEvent {
    fn into_transcript(self) -> Option<Transcript> {
        self.transcript
            .or_else(|| self.event.and_then(|e| e.into_transcript()))
            .or_else(|| self.stream.and_then(|e| e.into_transcript()))
    }
}

#[derive(Deserialize)]
struct Transcript {
    #[serde(rename = "Results", default)]
    results: Vec<StreamResult>,
}

#[derive(Deserialize)]
#[serde(try_from = "RawResult")]
struct StreamResult {
    result_id: Option<String>,
    is_partial: bool,
    start_ms: u64,
    end_ms: u64,
    alternative: Option<Alternative>,
    channel_id: Option<String>,
    language_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawResult {
    result_id: Option<String>,
    #[serde(default)]
    is_partial: bool,
    start_time: Secs,
    end_time: Secs,
    #[serde(default)]
    alternatives: Vec<Alternative>,
    channel_id: Option<String>,
    language_code: Option<String>,
}

impl TryFrom<RawResult> for StreamResult {
    type Error = String;
    fn try_from(raw: RawResult) -> Result<Self, String> {
        let what = format!(
            "result {}",
            raw.result_id.as_deref().unwrap_or("(without ResultId)")
        );
        check_span(&what, raw.start_time.0, raw.end_time.0)?;
        Ok(StreamResult {
            result_id: raw.result_id,
            is_partial: raw.is_partial,
            start_ms: raw.start_time.0,
            end_ms: raw.end_time.0,
            alternative: raw.alternatives.into_iter().next(),
            channel_id: raw.channel_id,
            language_code: raw.language_code,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Alternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    items: Vec<StreamItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamItem {
    #[serde(default)]
    content: String,
    #[serde(rename = "Type", default)]
    kind: String,
    speaker: Option<String>,
    start_time: Option<Secs>,
    end_time: Option<Secs>,
}

/// Whether a JSON value is a streaming transcript event.
pub(super) fn is_stream_event(value: &serde_json::Value) -> bool {
    let mut v = value;
    for _ in 0..3 {
        if v.get("Transcript")
            .and_then(|t| t.get("Results"))
            .is_some_and(|r| r.is_array())
        {
            return true;
        }
        match v
            .get("TranscriptEvent")
            .or_else(|| v.get("TranscriptResultStream"))
        {
            Some(inner) => v = inner,
            None => return false,
        }
    }
    false
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let events: Vec<(super::At, StreamEvent)> = from_json_stream(path, text)?;

    let mut pieces = Vec::new();
    let mut language = None;
    let mut anonymous = 0u64;
    for (at, event) in events {
        let transcript = event.into_transcript().ok_or_else(|| {
            parse_err(
                path,
                at.line,
                "not a transcript event (expected Transcript.Results)",
            )
        })?;
        for result in transcript.results {
            let lang = language_tag(result.language_code.clone());
            if language.is_none() {
                language = lang.clone();
            }
            // An empty ResultId is no id: kept, it would make every such
            // result one utterance, and a second final of it a duplicate
            // that the call ignores (found by fuzzing).
            let given = result.result_id.clone().filter(|id| !id.trim().is_empty());
            let result_id = given.unwrap_or_else(|| {
                anonymous += 1;
                format!("r{anonymous}")
            });
            for (i, run) in runs(&result).into_iter().enumerate() {
                if run.text.is_empty() {
                    continue;
                }
                pieces.push(Piece {
                    label: run.label,
                    text: run.text,
                    start_ms: run.start_ms,
                    end_ms: run.end_ms,
                    is_final: !result.is_partial,
                    utterance_id: Some(if i == 0 {
                        result_id.clone()
                    } else {
                        format!("{result_id}#{}", i + 1)
                    }),
                    language: lang.clone(),
                    call_id: None,
                });
            }
        }
    }
    Ok(Parsed { pieces, language })
}

struct Run {
    label: Option<String>,
    text: String,
    start_ms: u64,
    end_ms: u64,
}

fn runs(result: &StreamResult) -> Vec<Run> {
    let Some(alt) = &result.alternative else {
        return Vec::new();
    };
    let speaker = |s: &str| format!("spk_{s}");
    let mut speakers = alt.items.iter().filter_map(|i| i.speaker.as_deref());
    let first = speakers.next();
    let whole = |label: Option<String>| {
        vec![Run {
            label,
            text: alt.transcript.trim().to_owned(),
            start_ms: result.start_ms,
            end_ms: result.end_ms,
        }]
    };
    if let Some(channel) = &result.channel_id {
        return whole(Some(channel.clone()));
    }
    let Some(first) = first else {
        return whole(None);
    };
    if speakers.all(|s| s == first) {
        return whole(Some(speaker(first)));
    }
    // Several speakers in one result: one run each, text from the items.
    let mut out: Vec<Run> = Vec::new();
    for item in &alt.items {
        if item.kind == "speaker-change" {
            continue;
        }
        let content = item.content.trim();
        if content.is_empty() {
            continue;
        }
        let label = item.speaker.as_deref().map(speaker);
        let start = item.start_time.map_or(result.start_ms, |t| t.0);
        let end = item.end_time.map_or(start, |t| t.0).max(start);
        let same = out
            .last()
            .is_some_and(|r| label.is_none() || r.label == label);
        if item.kind == "punctuation" || same {
            if let Some(run) = out.last_mut() {
                if item.kind == "punctuation" {
                    run.text.push_str(content);
                } else {
                    push_word(&mut run.text, content);
                }
                run.end_ms = run.end_ms.max(end);
                continue;
            }
        }
        if item.kind == "punctuation" {
            continue;
        }
        out.push(Run {
            label,
            text: content.to_owned(),
            start_ms: start,
            end_ms: end,
        });
    }
    out
}
