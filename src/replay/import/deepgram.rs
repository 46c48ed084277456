//! Deepgram output, pre-recorded and live.
//!
//! Pre-recorded (`POST /v1/listen` response, `results.channels[]`): with
//! `utterances=true`, each of `results.utterances` is a fragment; else each
//! paragraph of `alternatives[0].paragraphs` (cut at a sentence once it
//! holds `SOFT_MAX_BYTES`); else the words, grouped by speaker as the AWS
//! batch words are; else the whole transcript. Every fragment is final.
//!
//! Live (websocket messages, one JSON object a line, or a JSON array):
//! `Results` messages for a stretch of audio arrive as interim
//! (`is_final: false`) until one with `is_final: true` fixes that
//! stretch's words; `speech_final: true` (or an `UtteranceEnd` message)
//! marks the end of what the speaker said. One utterance is everything up
//! to `speech_final`: its text is the fixed stretches so far plus the
//! current interim words, sent as interim fragments, and the last stretch
//! makes it final. Utterances still open at the end of the file are
//! closed with the text they have. Other messages (`Metadata`,
//! `SpeechStarted`) carry no words and are skipped.
//!
//! Speakers: channel `N` of a multichannel request is `ch_N`; a diarized
//! speaker `N` (`diarize=true`, on words, paragraphs and utterances) is
//! `spk_N`; a single channel without diarization has no label.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::aws::{group, Word};
use super::{
    check_span, from_field, from_json_stream, from_value, language_tag, push_word, At, Parsed,
    Piece, Secs,
};
use crate::replay::ReplayError;

const SOFT_MAX_BYTES: usize = 1000;

// ---- pre-recorded -------------------------------------------------------

#[derive(Deserialize)]
struct Response {
    results: Results,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    channels: Vec<Channel>,
    utterances: Option<Vec<Utterance>>,
}

#[derive(Deserialize)]
struct Channel {
    #[serde(default)]
    alternatives: Vec<Alternative>,
    detected_language: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    words: Vec<DgWord>,
    paragraphs: Option<Paragraphs>,
}

#[derive(Deserialize)]
#[serde(try_from = "RawWord")]
struct DgWord {
    start_ms: u64,
    end_ms: u64,
    text: String,
    speaker: Option<u64>,
}

#[derive(Deserialize)]
struct RawWord {
    #[serde(default)]
    word: String,
    punctuated_word: Option<String>,
    start: Secs,
    end: Secs,
    speaker: Option<u64>,
}

impl TryFrom<RawWord> for DgWord {
    type Error = String;
    fn try_from(raw: RawWord) -> Result<Self, String> {
        check_span("word", raw.start.0, raw.end.0)?;
        Ok(DgWord {
            start_ms: raw.start.0,
            end_ms: raw.end.0,
            text: raw.punctuated_word.unwrap_or(raw.word),
            speaker: raw.speaker,
        })
    }
}

#[derive(Deserialize)]
struct Paragraphs {
    #[serde(default)]
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    #[serde(default)]
    sentences: Vec<Sentence>,
    speaker: Option<u64>,
}

#[derive(Deserialize)]
#[serde(try_from = "RawSentence")]
struct Sentence {
    text: String,
    start_ms: u64,
    end_ms: u64,
}

#[derive(Deserialize)]
struct RawSentence {
    #[serde(default)]
    text: String,
    start: Secs,
    end: Secs,
}

impl TryFrom<RawSentence> for Sentence {
    type Error = String;
    fn try_from(raw: RawSentence) -> Result<Self, String> {
        check_span("sentence", raw.start.0, raw.end.0)?;
        Ok(Sentence {
            text: raw.text,
            start_ms: raw.start.0,
            end_ms: raw.end.0,
        })
    }
}

#[derive(Deserialize)]
#[serde(try_from = "RawUtterance")]
struct Utterance {
    start_ms: u64,
    end_ms: u64,
    transcript: String,
    channel: u64,
    speaker: Option<u64>,
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawUtterance {
    start: Secs,
    end: Secs,
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    channel: u64,
    speaker: Option<u64>,
    id: Option<String>,
}

impl TryFrom<RawUtterance> for Utterance {
    type Error = String;
    fn try_from(raw: RawUtterance) -> Result<Self, String> {
        check_span("utterance", raw.start.0, raw.end.0)?;
        Ok(Utterance {
            start_ms: raw.start.0,
            end_ms: raw.end.0,
            transcript: raw.transcript,
            channel: raw.channel,
            speaker: raw.speaker,
            id: raw.id,
        })
    }
}

fn label(multichannel: bool, channel: u64, speaker: Option<u64>) -> Option<String> {
    match (multichannel, speaker) {
        (true, _) => Some(format!("ch_{channel}")),
        (false, Some(s)) => Some(format!("spk_{s}")),
        (false, None) => None,
    }
}

fn pre_recorded(path: &Path, at: At, value: Value) -> Result<Parsed, ReplayError> {
    let response: Response = from_value(path, at, value)?;
    let results = response.results;
    let multichannel = results.channels.len() > 1;
    let language = results
        .channels
        .iter()
        .find_map(|c| language_tag(c.detected_language.clone()));
    if let Some(utterances) = results.utterances.filter(|u| !u.is_empty()) {
        let mut pieces: Vec<Piece> = utterances
            .into_iter()
            .filter(|u| !u.transcript.trim().is_empty())
            .map(|u| Piece {
                label: label(multichannel, u.channel, u.speaker),
                text: u.transcript.trim().to_owned(),
                start_ms: u.start_ms,
                end_ms: u.end_ms,
                is_final: true,
                utterance_id: u.id.filter(|id| !id.trim().is_empty()),
                ..Piece::default()
            })
            .collect();
        pieces.sort_by_key(|p| p.start_ms);
        return Ok(Parsed { pieces, language });
    }
    let mut pieces = Vec::new();
    for (n, channel) in results.channels.into_iter().enumerate() {
        let Some(alt) = channel.alternatives.into_iter().next() else {
            continue;
        };
        let n = n as u64;
        let paragraphs = alt.paragraphs.map(|p| p.paragraphs).unwrap_or_default();
        if !paragraphs.is_empty() {
            for paragraph in paragraphs {
                let label = label(multichannel, n, paragraph.speaker);
                let mut current: Option<Piece> = None;
                for sentence in paragraph.sentences {
                    let piece = current.get_or_insert_with(|| Piece {
                        label: label.clone(),
                        start_ms: sentence.start_ms,
                        is_final: true,
                        ..Piece::default()
                    });
                    push_word(&mut piece.text, sentence.text.trim());
                    piece.end_ms = piece.end_ms.max(sentence.end_ms);
                    if piece.text.len() >= SOFT_MAX_BYTES {
                        pieces.extend(current.take());
                    }
                }
                pieces.extend(current.filter(|p| !p.text.is_empty()));
            }
        } else if !alt.words.is_empty() {
            let words: Vec<Word> = alt
                .words
                .into_iter()
                .map(|w| Word {
                    sentence_end: w.text.ends_with(['.', '?', '!', '。', '？', '！']),
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    text: w.text,
                    label: label(multichannel, n, w.speaker),
                })
                .collect();
            let split_sentences = words.iter().all(|w| w.label.is_none());
            pieces.extend(group(words, split_sentences));
        } else if !alt.transcript.trim().is_empty() {
            pieces.push(Piece {
                label: label(multichannel, n, None),
                text: alt.transcript.trim().to_owned(),
                is_final: true,
                ..Piece::default()
            });
        }
    }
    // Stable: channels in order at equal times.
    pieces.sort_by_key(|p| p.start_ms);
    Ok(Parsed { pieces, language })
}

// ---- live ---------------------------------------------------------------

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// `Results`: `{"alternatives": [...]}`; `UtteranceEnd`: `[0, 1]`.
    channel: Option<Value>,
    #[serde(default)]
    channel_index: Vec<u64>,
    start: Option<Secs>,
    duration: Option<Secs>,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
}

#[derive(Deserialize)]
struct LiveChannel {
    #[serde(default)]
    alternatives: Vec<LiveAlternative>,
}

#[derive(Deserialize)]
struct LiveAlternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    words: Vec<DgWord>,
    #[serde(default)]
    languages: Vec<String>,
}

/// The utterance being said on one channel.
struct Open {
    channel: u64,
    id: String,
    /// The stretches fixed so far (`is_final`).
    fixed: String,
    /// The latest interim words after them.
    pending: String,
    start_ms: u64,
    end_ms: u64,
    label: Option<String>,
    language: Option<String>,
}

impl Open {
    fn text(&self) -> String {
        let mut text = self.fixed.clone();
        push_word(&mut text, &self.pending);
        text
    }

    fn piece(&self, is_final: bool) -> Piece {
        Piece {
            label: self.label.clone(),
            text: self.text(),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            is_final,
            utterance_id: Some(self.id.clone()),
            language: self.language.clone(),
            ..Piece::default()
        }
    }
}

fn live(path: &Path, values: Vec<(At, Value)>) -> Result<Parsed, ReplayError> {
    let mut open: Vec<Open> = Vec::new();
    let mut next = 0u64;
    let mut language = None;
    let mut pieces = Vec::new();
    for (at, value) in values {
        let message: Message = from_value(path, at, value)?;
        match message.kind.as_deref() {
            Some("UtteranceEnd") => {
                let channel = match &message.channel {
                    Some(Value::Array(c)) => c.first().and_then(Value::as_u64).unwrap_or(0),
                    _ => 0,
                };
                if let Some(i) = open.iter().position(|o| o.channel == channel) {
                    let utterance = open.remove(i);
                    pieces.push(utterance.piece(true));
                }
                continue;
            }
            Some("Results") | None => {}
            Some(_) => continue,
        }
        let Some(channel_value) = message.channel else {
            continue;
        };
        let channel: LiveChannel = from_field(path, at, "channel", channel_value)?;
        let Some(alt) = channel.alternatives.into_iter().next() else {
            continue;
        };
        let ch = message.channel_index.first().copied().unwrap_or(0);
        let multichannel = message.channel_index.get(1).is_some_and(|n| *n > 1);
        let start_ms = message.start.map_or(0, |s| s.0);
        let end_ms = start_ms.saturating_add(message.duration.map_or(0, |d| d.0));
        let words = alt.transcript.trim().to_owned();
        let lang = language_tag(alt.languages.into_iter().next());
        if language.is_none() {
            language = lang.clone();
        }
        let slot = open.iter().position(|o| o.channel == ch);
        if words.is_empty() && slot.is_none() {
            continue;
        }
        let slot = match slot {
            Some(i) => i,
            None => {
                next += 1;
                open.push(Open {
                    channel: ch,
                    id: format!("u{next}"),
                    fixed: String::new(),
                    pending: String::new(),
                    start_ms: alt.words.first().map_or(start_ms, |w| w.start_ms),
                    end_ms,
                    label: label(multichannel, ch, alt.words.iter().find_map(|w| w.speaker)),
                    language: lang.clone(),
                });
                open.len() - 1
            }
        };
        let utterance = &mut open[slot];
        utterance.end_ms = utterance
            .end_ms
            .max(alt.words.last().map_or(end_ms, |w| w.end_ms))
            .max(utterance.start_ms);
        if message.is_final {
            push_word(&mut utterance.fixed, &words);
            utterance.pending.clear();
        } else {
            utterance.pending = words;
        }
        if message.is_final && message.speech_final {
            let utterance = open.remove(slot);
            pieces.push(utterance.piece(true));
        } else if !words_empty(utterance) {
            pieces.push(utterance.piece(false));
        }
    }
    // Open at the end of the capture: close with what was heard.
    for utterance in open {
        if !words_empty(&utterance) {
            pieces.push(utterance.piece(true));
        }
    }
    Ok(Parsed { pieces, language })
}

fn words_empty(utterance: &Open) -> bool {
    utterance.fixed.is_empty() && utterance.pending.is_empty()
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let values: Vec<(At, Value)> = from_json_stream(path, text)?;
    match values.first() {
        Some((at, first)) if first.get("results").is_some() => {
            let at = *at;
            if values.len() > 1 {
                return Err(super::parse_err(
                    path,
                    values[1].0.line,
                    "a pre-recorded response holds one JSON object; found more",
                ));
            }
            let value = values
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default();
            pre_recorded(path, at, value)
        }
        _ => live(path, values),
    }
}
