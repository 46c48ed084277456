//! Azure Speech results, in the three shapes a contact centre keeps them:
//!
//! - batch transcription (`recognizedPhrases[]`): each phrase with
//!   `recognitionStatus` "Success" is one final fragment, its text the first
//!   `nBest` entry's `display` (else `itn`, `lexical`), its times
//!   `offsetInTicks` / `durationInTicks` (100 ns) or the ISO 8601
//!   `offset` / `duration` ("PT1.5S"). Phrases are sorted by time;
//! - real-time recognizer results as the Speech SDK hands them over (one
//!   JSON object a line, or a JSON array): a result with
//!   `RecognitionStatus` "Success" is final (`DisplayText`, else `NBest[0]`
//!   `Display`); an object with `Text`, `Offset` and `Duration` and no
//!   status is an interim hypothesis of the utterance the next final
//!   closes. A `NoMatch` after hypotheses closes the utterance with empty
//!   text, so a provisional alert on words that were never confirmed is
//!   retracted;
//! - the conversation items given to Azure Language conversation analysis
//!   (`analysisInput.conversations[].conversationItems[]`, or a bare
//!   `conversationItems`): `role` (else `participantId`) names the
//!   speaker, `text` (else `itn`, `lexical`) the words. Items carry no
//!   times unless `wordLevelTimings` are given: without them every fragment
//!   is at 0 ms, so duration rules see no time pass. Each conversation of
//!   several is its own call (its `id`).
//!
//! Speakers: channel `N` is `ch_N` when a file has more than one channel
//! (stereo call recordings put agent and customer on their own channel);
//! otherwise a diarized speaker `N` (batch `speaker`, real-time
//! `SpeakerId` of digits) is `spk_N`, and a conversation transcriber's
//! `SpeakerId` ("Guest-1") is used as it is ("Unknown" is no speaker).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::{from_json_stream, from_value, language_tag, parse_err, At, Parsed, Piece};
use crate::replay::ReplayError;

/// A time in 100 ns ticks (a number, or a decimal string), held as ms.
#[derive(Clone, Copy, Debug, Default)]
struct Ticks(u64);

impl<'de> Deserialize<'de> for Ticks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ticks;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a time in 100 ns ticks")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ticks, E> {
                super::secs_to_ms(v / 1e7)
                    .map(Ticks)
                    .ok_or_else(|| E::custom(format!("time {v} ticks is out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ticks, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ticks, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ticks, E> {
                let n: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("time {v:?} is not a number of ticks")))?;
                self.visit_f64(n)
            }
        }
        d.deserialize_any(V)
    }
}

/// An ISO 8601 duration as Azure writes offsets: `PT1H2M3.45S`.
#[derive(Clone, Copy, Debug)]
struct IsoDuration(u64);

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_iso_duration(&s)
            .map(IsoDuration)
            .ok_or_else(|| de::Error::custom(format!("{s:?} is not a duration like \"PT1.5S\"")))
    }
}

/// `PT[nH][nM][n.nS]` (and `P[n]D` days before the T) in ms.
pub(super) fn parse_iso_duration(s: &str) -> Option<u64> {
    let rest = s.trim().strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0.0f64;
    if !days.is_empty() {
        secs += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    let mut number = String::new();
    let mut any = !days.is_empty();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: f64 = number.parse().ok()?;
                secs += n * match c {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
                number.clear();
                any = true;
            }
            _ => return None,
        }
    }
    if !number.is_empty() || !any {
        return None;
    }
    super::secs_to_ms(secs)
}

// ---- batch --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Batch {
    #[serde(default)]
    recognized_phrases: Vec<Phrase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Phrase {
    recognition_status: Option<String>,
    channel: Option<u32>,
    speaker: Option<u32>,
    offset_in_ticks: Option<Ticks>,
    duration_in_ticks: Option<Ticks>,
    offset: Option<IsoDuration>,
    duration: Option<IsoDuration>,
    #[serde(rename = "nBest", default)]
    n_best: Vec<Best>,
    locale: Option<String>,
}

#[derive(Deserialize)]
struct Best {
    display: Option<String>,
    itn: Option<String>,
    lexical: Option<String>,
}

impl Best {
    fn text(self) -> String {
        [self.display, self.itn, self.lexical]
            .into_iter()
            .flatten()
            .map(|t| t.trim().to_owned())
            .find(|t| !t.is_empty())
            .unwrap_or_default()
    }
}

fn batch(path: &Path, at: At, value: Value) -> Result<Parsed, ReplayError> {
    let batch: Batch = from_value(path, at, value)?;
    let channels: BTreeSet<u32> = batch
        .recognized_phrases
        .iter()
        .filter_map(|p| p.channel)
        .collect();
    let stereo = channels.len() > 1;
    let mut language = None;
    let mut pieces = Vec::new();
    for (i, phrase) in batch.recognized_phrases.into_iter().enumerate() {
        if phrase
            .recognition_status
            .as_deref()
            .is_some_and(|s| s != "Success")
        {
            continue;
        }
        let start_ms = match (phrase.offset_in_ticks, phrase.offset) {
            (Some(t), _) => t.0,
            (None, Some(d)) => d.0,
            (None, None) => {
                return Err(parse_err(
                    path,
                    at.line,
                    format!("recognizedPhrases[{i}]: neither offsetInTicks nor offset is given"),
                ))
            }
        };
        let length = phrase
            .duration_in_ticks
            .map(|t| t.0)
            .or(phrase.duration.map(|d| d.0))
            .unwrap_or(0);
        let label = match (stereo, phrase.channel, phrase.speaker) {
            (true, Some(ch), _) => Some(format!("ch_{ch}")),
            (_, _, Some(spk)) => Some(format!("spk_{spk}")),
            _ => None,
        };
        let lang = language_tag(phrase.locale);
        if language.is_none() {
            language = lang.clone();
        }
        let text = phrase
            .n_best
            .into_iter()
            .next()
            .map(Best::text)
            .unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        pieces.push(Piece {
            label,
            text,
            start_ms,
            end_ms: start_ms.saturating_add(length),
            is_final: true,
            language: lang,
            ..Piece::default()
        });
    }
    // Stable: a tie keeps file order (channel 0 before 1 as written).
    pieces.sort_by_key(|p| p.start_ms);
    Ok(Parsed { pieces, language })
}

// ---- real time ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RealTime {
    recognition_status: Option<String>,
    offset: Option<Ticks>,
    duration: Option<Ticks>,
    display_text: Option<String>,
    /// An interim hypothesis (no status).
    text: Option<String>,
    #[serde(rename = "NBest")]
    n_best: Option<Vec<RealTimeBest>>,
    speaker_id: Option<String>,
    channel: Option<u32>,
    primary_language: Option<PrimaryLanguage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RealTimeBest {
    display: Option<String>,
    #[serde(rename = "ITN")]
    itn: Option<String>,
    lexical: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PrimaryLanguage {
    language: Option<String>,
}

/// One open utterance per channel.
#[derive(Default)]
struct Open {
    number: u64,
    had_interim: bool,
}

fn real_time(path: &Path, values: Vec<(At, Value)>) -> Result<Parsed, ReplayError> {
    let results: Vec<(At, RealTime)> = values
        .into_iter()
        .map(|(at, v)| Ok((at, from_value(path, at, v)?)))
        .collect::<Result<_, ReplayError>>()?;
    let channels: BTreeSet<u32> = results.iter().filter_map(|(_, r)| r.channel).collect();
    let stereo = channels.len() > 1;
    let mut open: Vec<(u32, Open)> = Vec::new();
    let mut next = 0u64;
    let mut language = None;
    let mut pieces = Vec::new();
    for (at, r) in results {
        let channel = r.channel.unwrap_or(0);
        let slot = match open.iter().position(|(c, _)| *c == channel) {
            Some(i) => i,
            None => {
                open.push((channel, Open::default()));
                open.len() - 1
            }
        };
        let state = &mut open[slot].1;
        if state.number == 0 {
            next += 1;
            state.number = next;
        }
        let utterance_id = format!("r{}", state.number);
        let label = match (stereo, r.channel, r.speaker_id.as_deref()) {
            (true, Some(ch), _) => Some(format!("ch_{ch}")),
            (_, _, Some(id)) if id.is_empty() || id.eq_ignore_ascii_case("unknown") => None,
            (_, _, Some(id)) if id.bytes().all(|b| b.is_ascii_digit()) => Some(format!("spk_{id}")),
            (_, _, Some(id)) => Some(id.to_owned()),
            _ => None,
        };
        let lang = language_tag(r.primary_language.and_then(|l| l.language));
        if language.is_none() {
            language = lang.clone();
        }
        let start_ms = r.offset.map_or(0, |t| t.0);
        let end_ms = start_ms.saturating_add(r.duration.map_or(0, |t| t.0));
        let (text, is_final) = match r.recognition_status.as_deref() {
            None => match r.text {
                Some(t) => (t.trim().to_owned(), false),
                None => return Err(parse_err(
                    path,
                    at.line,
                    "a real-time result needs RecognitionStatus (a final) or Text (a hypothesis)",
                )),
            },
            Some("Success") => {
                let best = r.n_best.and_then(|n| n.into_iter().next());
                let text = r
                    .display_text
                    .into_iter()
                    .chain(
                        best.into_iter()
                            .flat_map(|b| [b.display, b.itn, b.lexical])
                            .flatten(),
                    )
                    .map(|t| t.trim().to_owned())
                    .find(|t| !t.is_empty())
                    .unwrap_or_default();
                (text, true)
            }
            // NoMatch, InitialSilenceTimeout, ...: nothing was recognised.
            Some(_) => (String::new(), true),
        };
        let had_interim = state.had_interim;
        if is_final {
            *state = Open::default();
        } else {
            state.had_interim = true;
        }
        // An empty final matters only to retract what hypotheses said.
        if text.is_empty() && !(is_final && had_interim) {
            continue;
        }
        pieces.push(Piece {
            label,
            text,
            start_ms,
            end_ms,
            is_final,
            utterance_id: Some(utterance_id),
            language: lang,
            ..Piece::default()
        });
    }
    Ok(Parsed { pieces, language })
}

// ---- conversation items -------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conversations {
    analysis_input: Option<AnalysisInput>,
    conversation_items: Option<Vec<Item>>,
    language: Option<String>,
}

#[derive(Deserialize)]
struct AnalysisInput {
    #[serde(default)]
    conversations: Vec<Conversation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conversation {
    id: Option<String>,
    language: Option<String>,
    #[serde(default)]
    conversation_items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    participant_id: Option<String>,
    role: Option<String>,
    id: Option<String>,
    text: Option<String>,
    itn: Option<String>,
    lexical: Option<String>,
    #[serde(default)]
    word_level_timings: Vec<WordTiming>,
}

#[derive(Deserialize)]
struct WordTiming {
    offset: Ticks,
    #[serde(default)]
    duration: Ticks,
}

fn conversations(path: &Path, at: At, value: Value) -> Result<Parsed, ReplayError> {
    let doc: Conversations = from_value(path, at, value)?;
    let mut list: Vec<Conversation> = doc
        .analysis_input
        .map(|a| a.conversations)
        .unwrap_or_default();
    if let Some(items) = doc.conversation_items {
        list.push(Conversation {
            id: None,
            language: doc.language,
            conversation_items: items,
        });
    }
    let several = list.len() > 1;
    let mut language = None;
    let mut pieces = Vec::new();
    for (n, conversation) in list.into_iter().enumerate() {
        let lang = language_tag(conversation.language);
        if language.is_none() {
            language = lang.clone();
        }
        let call_id = several.then(|| {
            conversation
                .id
                .clone()
                .filter(|id| !id.trim().is_empty())
                .unwrap_or_else(|| format!("conversation-{}", n + 1))
        });
        for item in conversation.conversation_items {
            let text = [item.text, item.itn, item.lexical]
                .into_iter()
                .flatten()
                .map(|t| t.trim().to_owned())
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            let start_ms = item.word_level_timings.iter().map(|w| w.offset.0).min();
            let end_ms = item
                .word_level_timings
                .iter()
                .map(|w| w.offset.0.saturating_add(w.duration.0))
                .max();
            pieces.push(Piece {
                label: item.role.or(item.participant_id),
                text,
                start_ms: start_ms.unwrap_or(0),
                end_ms: end_ms.unwrap_or(0),
                is_final: true,
                utterance_id: item.id.filter(|id| !id.trim().is_empty()),
                language: lang.clone(),
                call_id: call_id.clone(),
            });
        }
    }
    Ok(Parsed { pieces, language })
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let values: Vec<(At, Value)> = from_json_stream(path, text)?;
    let Some((at, first)) = values.first() else {
        return Ok(Parsed::default());
    };
    let at = *at;
    let shape = first.as_object().map(|o| {
        (
            o.contains_key("recognizedPhrases") || o.contains_key("combinedRecognizedPhrases"),
            o.contains_key("conversationItems") || o.contains_key("analysisInput"),
        )
    });
    match shape {
        Some((true, _)) if values.len() == 1 => batch(
            path,
            at,
            values
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default(),
        ),
        Some((_, true)) if values.len() == 1 => conversations(
            path,
            at,
            values
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default(),
        ),
        Some((true, _)) | Some((_, true)) => Err(parse_err(
            path,
            values[1].0.line,
            "a batch transcription or conversation file holds one JSON object; found more",
        )),
        _ => real_time(path, values),
    }
}
