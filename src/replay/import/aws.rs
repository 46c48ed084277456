//! Amazon Transcribe batch output (`asrOutput.json`).
//!
//! Utterances come from `results.audio_segments` when present; otherwise
//! words (`pronunciation` items; `punctuation` joins the word before it) are
//! grouped by speaker turn. The speaker of a word is its own
//! `speaker_label` / `channel_label`, else the `speaker_labels.segments`
//! entry with its start time, else — for channel identification — the
//! channel whose `items` it is in. A turn is cut at a sentence end once it
//! holds `SOFT_MAX_BYTES`, and anywhere past `HARD_MAX_BYTES`; without any
//! speaker information every sentence is an utterance.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{check_span, from_json, language_tag, push_word, Parsed, Piece, Secs};
use crate::replay::ReplayError;

const SOFT_MAX_BYTES: usize = 1000;
const HARD_MAX_BYTES: usize = 4000;

#[derive(Deserialize)]
struct Batch {
    results: Results,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    items: Vec<Item>,
    speaker_labels: Option<SpeakerLabels>,
    channel_labels: Option<ChannelLabels>,
    audio_segments: Option<Vec<AudioSegment>>,
    language_code: Option<String>,
}

#[derive(Deserialize)]
struct SpeakerLabels {
    #[serde(default)]
    segments: Vec<SpeakerSegment>,
}

#[derive(Deserialize)]
struct SpeakerSegment {
    start_time: Option<Secs>,
    end_time: Option<Secs>,
    speaker_label: Option<String>,
    #[serde(default)]
    items: Vec<SpeakerItem>,
}

#[derive(Deserialize)]
struct SpeakerItem {
    start_time: Option<Secs>,
    speaker_label: Option<String>,
}

#[derive(Deserialize)]
struct ChannelLabels {
    #[serde(default)]
    channels: Vec<Channel>,
}

#[derive(Deserialize)]
struct Channel {
    channel_label: Option<String>,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(try_from = "RawItem")]
struct Item {
    /// `None` for punctuation (and any item without times).
    span: Option<(u64, u64)>,
    content: String,
    speaker_label: Option<String>,
    channel_label: Option<String>,
}

#[derive(Deserialize)]
struct RawItem {
    start_time: Option<Secs>,
    end_time: Option<Secs>,
    #[serde(default)]
    alternatives: Vec<Alternative>,
    #[serde(rename = "type", default)]
    kind: String,
    speaker_label: Option<String>,
    channel_label: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    content: String,
}

impl TryFrom<RawItem> for Item {
    type Error = String;
    fn try_from(raw: RawItem) -> Result<Self, String> {
        let content = raw
            .alternatives
            .into_iter()
            .next()
            .ok_or("item: no alternatives")?
            .content;
        let span = match (raw.kind.as_str(), raw.start_time, raw.end_time) {
            ("punctuation", _, _) => None,
            (_, Some(Secs(s)), Some(Secs(e))) => {
                check_span("item", s, e)?;
                Some((s, e))
            }
            (_, None, None) => None,
            (kind, _, _) => {
                return Err(format!(
                    "item {content:?} ({kind}): has only one of start_time and end_time"
                ))
            }
        };
        Ok(Item {
            span,
            content,
            speaker_label: raw.speaker_label,
            channel_label: raw.channel_label,
        })
    }
}

#[derive(Deserialize)]
#[serde(try_from = "RawAudioSegment")]
struct AudioSegment {
    start_ms: u64,
    end_ms: u64,
    transcript: String,
    label: Option<String>,
}

#[derive(Deserialize)]
struct RawAudioSegment {
    start_time: Secs,
    end_time: Secs,
    #[serde(default)]
    transcript: String,
    speaker_label: Option<String>,
    channel_label: Option<String>,
}

impl TryFrom<RawAudioSegment> for AudioSegment {
    type Error = String;
    fn try_from(raw: RawAudioSegment) -> Result<Self, String> {
        check_span("audio segment", raw.start_time.0, raw.end_time.0)?;
        Ok(AudioSegment {
            start_ms: raw.start_time.0,
            end_ms: raw.end_time.0,
            transcript: raw.transcript,
            label: raw.speaker_label.or(raw.channel_label),
        })
    }
}

/// A word with the punctuation after it (also Deepgram's words).
pub(super) struct Word {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub label: Option<String>,
    pub sentence_end: bool,
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let batch: Batch = from_json(path, text, 1)?;
    let results = batch.results;
    let language = language_tag(results.language_code);

    if let Some(mut segments) = results.audio_segments.filter(|s| !s.is_empty()) {
        segments.sort_by_key(|s| (s.start_ms, s.end_ms));
        let pieces = segments
            .into_iter()
            .filter(|s| !s.transcript.trim().is_empty())
            .map(|s| Piece {
                label: s.label,
                text: s.transcript.trim().to_owned(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                is_final: true,
                ..Piece::default()
            })
            .collect();
        return Ok(Parsed { pieces, language });
    }

    let items_labelled = results
        .items
        .iter()
        .any(|i| i.speaker_label.is_some() || i.channel_label.is_some());
    let words = match results.channel_labels {
        Some(channels) if !items_labelled && !channels.channels.is_empty() => {
            // Older channel output: the words per channel, merged by time.
            let mut words = Vec::new();
            for channel in channels.channels {
                let label = channel.channel_label;
                words.extend(fold_words(channel.items, |_| label.clone()));
            }
            // Stable: a tie keeps channel order.
            words.sort_by_key(|w| w.start_ms);
            words
        }
        _ => {
            let by_time = speaker_times(results.speaker_labels);
            fold_words(results.items, |item| {
                item.speaker_label
                    .clone()
                    .or_else(|| item.channel_label.clone())
                    .or_else(|| by_time.label_at(item.span.map(|s| s.0)))
            })
        }
    };
    let split_sentences = words.iter().all(|w| w.label.is_none());
    Ok(Parsed {
        pieces: group(words, split_sentences),
        language,
    })
}

/// Speaker by word start time from `speaker_labels`.
#[derive(Default)]
struct SpeakerTimes {
    exact: HashMap<u64, String>,
    ranges: Vec<(u64, u64, String)>,
}

fn speaker_times(labels: Option<SpeakerLabels>) -> SpeakerTimes {
    let mut out = SpeakerTimes::default();
    for segment in labels.map(|l| l.segments).unwrap_or_default() {
        for item in segment.items {
            if let (Some(Secs(t)), Some(label)) = (
                item.start_time,
                item.speaker_label.or_else(|| segment.speaker_label.clone()),
            ) {
                out.exact.entry(t).or_insert(label);
            }
        }
        if let (Some(Secs(s)), Some(Secs(e)), Some(label)) =
            (segment.start_time, segment.end_time, segment.speaker_label)
        {
            out.ranges.push((s, e, label));
        }
    }
    out
}

impl SpeakerTimes {
    fn label_at(&self, start_ms: Option<u64>) -> Option<String> {
        let t = start_ms?;
        self.exact.get(&t).cloned().or_else(|| {
            self.ranges
                .iter()
                .find(|(s, e, _)| *s <= t && t < *e)
                .map(|(_, _, l)| l.clone())
        })
    }
}

/// Words with their trailing punctuation; a timeless item joins the word
/// before it (one before any word is dropped).
fn fold_words(items: Vec<Item>, mut label: impl FnMut(&Item) -> Option<String>) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    for item in items {
        let content = item.content.trim();
        if content.is_empty() {
            continue;
        }
        match item.span {
            Some((start_ms, end_ms)) => {
                let label = label(&item);
                words.push(Word {
                    start_ms,
                    end_ms,
                    text: item.content.trim().to_owned(),
                    label,
                    sentence_end: false,
                });
            }
            None => {
                if let Some(last) = words.last_mut() {
                    last.text.push_str(content);
                    last.sentence_end |= content.ends_with(['.', '?', '!', '。', '？', '！']);
                }
            }
        }
    }
    words
}

/// Words into utterances: a speaker turn, cut at a sentence end past
/// `SOFT_MAX_BYTES` (or every sentence when `split_sentences`).
pub(super) fn group(words: Vec<Word>, split_sentences: bool) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut open = false;
    for word in words {
        let continue_current = open
            && pieces.last().is_some_and(|p| {
                p.label == word.label && p.text.len() + word.text.len() < HARD_MAX_BYTES
            });
        if continue_current {
            if let Some(p) = pieces.last_mut() {
                push_word(&mut p.text, &word.text);
                p.end_ms = p.end_ms.max(word.end_ms);
            }
        } else {
            let mut text = String::new();
            push_word(&mut text, &word.text);
            pieces.push(Piece {
                label: word.label,
                text,
                start_ms: word.start_ms,
                end_ms: word.end_ms,
                is_final: true,
                ..Piece::default()
            });
        }
        open = !(word.sentence_end
            && (split_sentences
                || pieces
                    .last()
                    .is_some_and(|p| p.text.len() >= SOFT_MAX_BYTES)));
    }
    pieces
}
