//! Whisper JSON (`whisper --output_format json`, the OpenAI API's
//! `verbose_json`, WhisperX): `segments[]` with `start`/`end` in seconds and
//! `text`; a segment's `speaker` (WhisperX `SPEAKER_00`) is its label. Each
//! segment is one final fragment; empty segments are skipped.

use std::path::Path;

use serde::Deserialize;

use super::{check_span, from_json, language_tag, Parsed, Piece, Secs};
use crate::replay::ReplayError;

#[derive(Deserialize)]
struct Doc {
    segments: Vec<Segment>,
    language: Option<String>,
}

#[derive(Deserialize)]
#[serde(try_from = "RawSegment")]
struct Segment {
    start_ms: u64,
    end_ms: u64,
    text: String,
    speaker: Option<String>,
}

#[derive(Deserialize)]
struct RawSegment {
    start: Secs,
    end: Secs,
    #[serde(default)]
    text: String,
    speaker: Option<String>,
}

impl TryFrom<RawSegment> for Segment {
    type Error = String;
    fn try_from(raw: RawSegment) -> Result<Self, String> {
        check_span("segment", raw.start.0, raw.end.0)?;
        Ok(Segment {
            start_ms: raw.start.0,
            end_ms: raw.end.0,
            text: raw.text,
            speaker: raw.speaker,
        })
    }
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let doc: Doc = from_json(path, text, 1)?;
    let pieces = doc
        .segments
        .into_iter()
        .filter(|s| !s.text.trim().is_empty())
        .map(|s| Piece {
            label: s.speaker,
            text: s.text.trim().to_owned(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            is_final: true,
            ..Piece::default()
        })
        .collect();
    Ok(Parsed {
        pieces,
        language: language_tag(doc.language),
    })
}
