//! Transcript events (DESIGN section 2, fixed field names): what a telephony
//! platform sends live and what a replay file holds, one JSON object a line.
//!
//! These are the domain types the core works on. The gRPC layer converts its
//! protobuf messages into them once, at the edge; the replay format, JSON
//! Lines, is read by [`json`].

pub mod json;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::category::Speaker;

/// Limits on what one event may carry, so a peer cannot make a call's state
/// or a scan unbounded.
pub const MAX_ID_BYTES: usize = 256;
/// The latest audio time accepted: 24 hours into a call. Beyond it an event
/// is refused, so no duration sum can overflow (issue #18, F10).
pub const MAX_AUDIO_MS: u64 = 24 * 60 * 60 * 1000;
/// Default longest fragment text (DESIGN: 8 KiB, configurable in the service).
pub const DEFAULT_MAX_TEXT_BYTES: usize = 8 * 1024;

/// One transcript event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Start(CallStart),
    Fragment(Fragment),
    End(CallEnd),
}

impl Event {
    pub fn call_id(&self) -> &str {
        match self {
            Event::Start(s) => &s.call_id,
            Event::Fragment(f) => &f.call_id,
            Event::End(e) => &e.call_id,
        }
    }
}

/// The start of a call. Everything but `call_id` has a default, so a call
/// can also begin with its first fragment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallStart {
    pub call_id: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Wall-clock start of the call (RFC 3339 with offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    /// IANA time zone of the call centre (business hours are judged there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A piece of ASR transcript: the whole current hypothesis of one utterance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragment {
    pub call_id: String,
    /// Per-call sequence number; 0 when the sender does not number events.
    #[serde(default)]
    pub seq: u64,
    pub speaker: Speaker,
    pub text: String,
    #[serde(default = "default_true")]
    pub is_final: bool,
    /// Interim and final results of one utterance share this id. When
    /// absent each fragment is its own utterance.
    #[serde(default)]
    pub utterance_id: String,
    /// Milliseconds of audio since the call started.
    #[serde(default)]
    pub start_ms: u64,
    #[serde(default)]
    pub end_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness_dbfs: Option<f32>,
}

fn default_true() -> bool {
    true
}

/// The end of a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallEnd {
    pub call_id: String,
    #[serde(default)]
    pub end_ms: u64,
}

/// Why an event was refused. Names the field, like the gRPC status it becomes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("call_id: must not be empty")]
    EmptyCallId,
    #[error("{field}: longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("{field}: more than {max} entries")]
    TooMany { field: &'static str, max: usize },
    #[error(
        "{field}: {ms} ms is past the longest call accepted ({MAX_AUDIO_MS} ms, 24 h of audio)"
    )]
    TooLate { field: &'static str, ms: u64 },
    #[error("seq: {seq} is behind the last accepted {last}")]
    SeqBackwards { seq: u64, last: u64 },
    #[error("end_ms: {end_ms} is before start_ms {start_ms}")]
    TimesReversed { start_ms: u64, end_ms: u64 },
    #[error("timezone: unknown time zone {0:?}")]
    UnknownTimezone(String),
    #[error("call_id: no active call {0:?}")]
    UnknownCall(String),
    #[error("loudness_dbfs: must be a finite number of dBFS")]
    NotFinite,
}

impl Event {
    /// Checks the limits that do not depend on call state.
    pub fn validate(&self, max_text_bytes: usize) -> Result<(), EventError> {
        let call_id = self.call_id();
        if call_id.is_empty() {
            return Err(EventError::EmptyCallId);
        }
        check_len("call_id", call_id, MAX_ID_BYTES)?;
        match self {
            Event::Start(s) => {
                check_len("tenant", &s.tenant, MAX_ID_BYTES)?;
                check_len("agent_id", &s.agent_id, MAX_ID_BYTES)?;
                check_len(
                    "caller_id",
                    s.caller_id.as_deref().unwrap_or(""),
                    MAX_ID_BYTES,
                )?;
                check_len("language", s.language.as_deref().unwrap_or(""), 64)?;
                if let Some(tz) = &s.timezone {
                    check_len("timezone", tz, 64)?;
                    jiff::tz::TimeZone::get(tz)
                        .map_err(|_| EventError::UnknownTimezone(tz.clone()))?;
                }
                if s.labels.len() > 32 {
                    return Err(EventError::TooMany {
                        field: "labels",
                        max: 32,
                    });
                }
                if s.labels
                    .iter()
                    .any(|(k, v)| k.len() + v.len() > MAX_ID_BYTES)
                {
                    return Err(EventError::TooLong {
                        field: "labels",
                        max: MAX_ID_BYTES,
                    });
                }
            }
            Event::Fragment(f) => {
                check_len("text", &f.text, max_text_bytes)?;
                check_len("utterance_id", &f.utterance_id, MAX_ID_BYTES)?;
                check_len("language", f.language.as_deref().unwrap_or(""), 64)?;
                check_time("start_ms", f.start_ms)?;
                check_time("end_ms", f.end_ms)?;
                if f.end_ms < f.start_ms {
                    return Err(EventError::TimesReversed {
                        start_ms: f.start_ms,
                        end_ms: f.end_ms,
                    });
                }
                // NaN and infinities do not survive JSON or the wire.
                if f.loudness_dbfs.is_some_and(|l| !l.is_finite()) {
                    return Err(EventError::NotFinite);
                }
            }
            Event::End(end) => check_time("end_ms", end.end_ms)?,
        }
        Ok(())
    }
}

fn check_time(field: &'static str, ms: u64) -> Result<(), EventError> {
    if ms > MAX_AUDIO_MS {
        Err(EventError::TooLate { field, ms })
    } else {
        Ok(())
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), EventError> {
    if value.len() > max {
        Err(EventError::TooLong { field, max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_refuses_a_loudness_that_is_not_a_number() {
        let fragment = |loudness_dbfs| {
            Event::Fragment(Fragment {
                call_id: "c".into(),
                seq: 1,
                speaker: Speaker::Customer,
                text: "hello".into(),
                is_final: true,
                utterance_id: "u1".into(),
                start_ms: 0,
                end_ms: 900,
                language: None,
                loudness_dbfs,
            })
        };
        assert!(fragment(Some(-20.0)).validate(100).is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let e = fragment(Some(bad)).validate(100).unwrap_err();
            assert_eq!(e, EventError::NotFinite);
            assert!(e.to_string().starts_with("loudness_dbfs:"));
        }
    }

    #[test]
    fn parses_the_design_examples() {
        let lines = [
            r#"{"type":"start","call_id":"c1","tenant":"acme","agent_id":"a12","caller_id":"+81312345678","language":"ja","started_at":"2026-10-05T14:03:00+09:00","timezone":"Asia/Tokyo"}"#,
            r#"{"type":"fragment","call_id":"c1","seq":1,"speaker":"customer","text":"...","is_final":false,"utterance_id":"u1","start_ms":1200,"end_ms":2400,"language":"ja"}"#,
            r#"{"type":"end","call_id":"c1","end_ms":95000}"#,
        ];
        for line in lines {
            let event: Event = serde_json::from_str(line).unwrap();
            event.validate(DEFAULT_MAX_TEXT_BYTES).unwrap();
        }
    }

    #[test]
    fn rejects_with_the_field_named() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"type":"end","call_id":""}"#,
                "call_id: must not be empty",
            ),
            (
                r#"{"type":"fragment","call_id":"c","speaker":"customer","text":"x","start_ms":5,"end_ms":1}"#,
                "end_ms: 1 is before start_ms 5",
            ),
            (
                r#"{"type":"start","call_id":"c","timezone":"Mars/Base"}"#,
                "timezone: unknown time zone \"Mars/Base\"",
            ),
        ];
        for (line, want) in cases {
            let event: Event = serde_json::from_str(line).unwrap();
            assert_eq!(event.validate(8).unwrap_err().to_string(), *want);
        }
        let long = format!(
            r#"{{"type":"fragment","call_id":"c","speaker":"customer","text":"{}"}}"#,
            "a".repeat(9)
        );
        let event: Event = serde_json::from_str(&long).unwrap();
        assert_eq!(
            event.validate(8).unwrap_err().to_string(),
            "text: longer than 8 bytes"
        );
        assert!(serde_json::from_str::<Event>(
            r#"{"type":"fragment","call_id":"c","speaker":"robot","text":"x"}"#
        )
        .is_err());
    }
}
