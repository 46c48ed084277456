//! Transcript events (DESIGN section 2, fixed field names): what a telephony
//! platform sends live and what a replay file holds, one JSON object a line.
//!
//! These are the domain types the core works on. The gRPC layer converts its
//! protobuf messages into them once, at the edge.

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

impl Event {
    /// One JSON object (a line of a replay file) as an event: the same
    /// event and the same error as `serde_json::from_str::<Event>`, but
    /// without buffering the object first. serde's internally tagged enums
    /// read every field into an intermediate tree before they know the
    /// variant; this reads each field straight into its place, and takes
    /// serde's own path for anything unusual (another key order is fine;
    /// an unknown or repeated key, a missing field, a bad value, a `type`
    /// that is not one of the three names) so that errors read the same.
    pub fn from_json(line: &str) -> Result<Event, serde_json::Error> {
        if let Some(event) = fast::scan(line) {
            return Ok(event);
        }
        match serde_json::from_str::<fast::Line>(line) {
            Ok(fast::Line(Some(event))) => Ok(event),
            _ => serde_json::from_str(line),
        }
    }
}

/// The direct reader behind [`Event::from_json`].
mod fast {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    use super::{CallEnd, CallStart, Event, Fragment};
    use crate::category::Speaker;

    /// `None`: not read here (serde's own path decides).
    pub(super) struct Line(pub Option<Event>);

    /// The commonest lines, fragments and ends, read by hand: keys without
    /// escapes, strings without escapes, integers without fraction or
    /// exponent. Anything else (a start line, an escape, a float, `null`
    /// where a value is needed, an unknown or repeated key, bad JSON) is
    /// `None`, and serde reads the line.
    pub(super) fn scan(line: &str) -> Option<Event> {
        let mut r = Reader {
            s: line,
            b: line.as_bytes(),
            at: 0,
        };
        r.ws();
        r.eat(b'{')?;
        let mut seen = 0u32;
        let mut kind = None;
        let mut call_id = None;
        let mut language = None;
        let (mut seq, mut start_ms, mut end_ms) = (0, 0, 0);
        let mut speaker = None;
        let mut text = None;
        let mut is_final = true;
        let mut utterance_id = None;
        loop {
            r.ws();
            let key = match r.string()? {
                "type" => Key::Type,
                "call_id" => Key::CallId,
                "language" => Key::Language,
                "seq" => Key::Seq,
                "speaker" => Key::Speaker,
                "text" => Key::Text,
                "is_final" => Key::IsFinal,
                "utterance_id" => Key::UtteranceId,
                "start_ms" => Key::StartMs,
                "end_ms" => Key::EndMs,
                _ => return None,
            };
            let bit = 1 << key as u32;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            r.ws();
            r.eat(b':')?;
            r.ws();
            match key {
                Key::Type => {
                    kind = Some(match r.string()? {
                        "fragment" => Kind::Fragment,
                        "end" => Kind::End,
                        _ => return None,
                    })
                }
                Key::CallId => call_id = Some(r.string()?),
                Key::Language => {
                    language = if r.b.get(r.at) == Some(&b'n') {
                        r.literal(b"null")?;
                        None
                    } else {
                        Some(r.string()?)
                    }
                }
                Key::Seq => seq = r.integer()?,
                Key::StartMs => start_ms = r.integer()?,
                Key::EndMs => end_ms = r.integer()?,
                Key::Speaker => {
                    speaker = Some(match r.string()? {
                        "customer" => Speaker::Customer,
                        "agent" => Speaker::Agent,
                        _ => return None,
                    })
                }
                Key::Text => text = Some(r.string()?),
                Key::UtteranceId => utterance_id = Some(r.string()?),
                Key::IsFinal => {
                    is_final = if r.b.get(r.at) == Some(&b't') {
                        r.literal(b"true")?;
                        true
                    } else {
                        r.literal(b"false")?;
                        false
                    }
                }
                _ => return None,
            }
            r.ws();
            match r.b.get(r.at)? {
                b',' => r.at += 1,
                b'}' => {
                    r.at += 1;
                    break;
                }
                _ => return None,
            }
        }
        r.ws();
        if r.at != r.b.len() {
            return None;
        }
        let call_id = call_id?.to_owned();
        match kind? {
            Kind::Fragment if seen & !FRAGMENT == 0 => Some(Event::Fragment(Fragment {
                call_id,
                seq,
                speaker: speaker?,
                text: text?.to_owned(),
                is_final,
                utterance_id: utterance_id.unwrap_or_default().to_owned(),
                start_ms,
                end_ms,
                language: language.map(str::to_owned),
                loudness_dbfs: None,
            })),
            Kind::End if seen & !END == 0 => Some(Event::End(CallEnd { call_id, end_ms })),
            _ => None,
        }
    }

    /// Non-zero when one of the eight bytes of `x` is a quote, a
    /// backslash or a control character (the lowest flagged byte is exact).
    fn special_byte(x: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        zero_in(x ^ (ONES * b'"' as u64))
            | zero_in(x ^ (ONES * b'\\' as u64))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
    }

    struct Reader<'a> {
        s: &'a str,
        b: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        /// JSON whitespace.
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
                self.at += 1;
            }
        }

        fn eat(&mut self, byte: u8) -> Option<()> {
            (self.b.get(self.at) == Some(&byte)).then(|| self.at += 1)
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            let end = self.at + word.len();
            (self.b.get(self.at..end) == Some(word)).then(|| self.at = end)
        }

        /// A string without escapes or control characters (which JSON
        /// forbids raw): the text between the quotes.
        fn string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.at;
            // Eight bytes at a time while none of them ends the plain run.
            while let Some(chunk) = self.b.get(self.at..self.at + 8) {
                let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                if special_byte(x) != 0 {
                    break;
                }
                self.at += 8;
            }
            loop {
                match *self.b.get(self.at)? {
                    b'"' => break,
                    b'\\' | 0..=0x1f => return None,
                    _ => self.at += 1,
                }
            }
            self.at += 1;
            // Both ends are at an ASCII quote: character boundaries.
            self.s.get(start..self.at - 1)
        }

        /// A non-negative integer as JSON writes it (no leading zero), that
        /// fits in u64 and is not followed by a fraction or an exponent.
        fn integer(&mut self) -> Option<u64> {
            let start = self.at;
            let mut n: u64 = 0;
            while let Some(&d @ b'0'..=b'9') = self.b.get(self.at) {
                n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                self.at += 1;
            }
            let digits = self.at - start;
            if digits == 0 || (digits > 1 && self.b[start] == b'0') {
                return None;
            }
            match self.b.get(self.at) {
                Some(b'.' | b'e' | b'E') => None,
                _ => Some(n),
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Key {
        Type,
        CallId,
        Tenant,
        AgentId,
        CallerId,
        Language,
        StartedAt,
        Timezone,
        Labels,
        Seq,
        Speaker,
        Text,
        IsFinal,
        UtteranceId,
        StartMs,
        EndMs,
        LoudnessDbfs,
    }

    const fn bits(keys: &[Key]) -> u32 {
        let mut out = 0;
        let mut i = 0;
        while i < keys.len() {
            out |= 1 << keys[i] as u32;
            i += 1;
        }
        out
    }

    /// The keys each type may carry (`deny_unknown_fields`).
    const START: u32 = bits(&[
        Key::Type,
        Key::CallId,
        Key::Tenant,
        Key::AgentId,
        Key::CallerId,
        Key::Language,
        Key::StartedAt,
        Key::Timezone,
        Key::Labels,
    ]);
    const FRAGMENT: u32 = bits(&[
        Key::Type,
        Key::CallId,
        Key::Seq,
        Key::Speaker,
        Key::Text,
        Key::IsFinal,
        Key::UtteranceId,
        Key::StartMs,
        Key::EndMs,
        Key::Language,
        Key::LoudnessDbfs,
    ]);
    const END: u32 = bits(&[Key::Type, Key::CallId, Key::EndMs]);

    /// A key, or `None` for one no event has.
    struct KeyName(Option<Key>);

    impl<'de> Deserialize<'de> for KeyName {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = KeyName;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                    Ok(KeyName(Some(match v {
                        "type" => Key::Type,
                        "call_id" => Key::CallId,
                        "tenant" => Key::Tenant,
                        "agent_id" => Key::AgentId,
                        "caller_id" => Key::CallerId,
                        "language" => Key::Language,
                        "started_at" => Key::StartedAt,
                        "timezone" => Key::Timezone,
                        "labels" => Key::Labels,
                        "seq" => Key::Seq,
                        "speaker" => Key::Speaker,
                        "text" => Key::Text,
                        "is_final" => Key::IsFinal,
                        "utterance_id" => Key::UtteranceId,
                        "start_ms" => Key::StartMs,
                        "end_ms" => Key::EndMs,
                        "loudness_dbfs" => Key::LoudnessDbfs,
                        _ => return Ok(KeyName(None)),
                    })))
                }
            }
            d.deserialize_identifier(V)
        }
    }

    #[derive(Clone, Copy)]
    enum Kind {
        Start,
        Fragment,
        End,
    }

    /// The `type` value, or `None` for anything but the three names.
    struct KindName(Option<Kind>);

    impl<'de> Deserialize<'de> for KindName {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = KindName;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an event type")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<KindName, E> {
                    Ok(KindName(match v {
                        "start" => Some(Kind::Start),
                        "fragment" => Some(Kind::Fragment),
                        "end" => Some(Kind::End),
                        _ => None,
                    }))
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> Deserialize<'de> for Line {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(LineVisitor)
        }
    }

    struct LineVisitor;

    impl<'de> Visitor<'de> for LineVisitor {
        type Value = Line;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an event object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
            let mut seen = 0u32;
            let mut kind = None;
            let mut call_id = String::new();
            let mut start = CallStart::default();
            let mut language = None;
            let mut seq = 0;
            let mut speaker = None;
            let mut text = String::new();
            let mut is_final = true;
            let mut utterance_id = String::new();
            let (mut start_ms, mut end_ms) = (0, 0);
            let mut loudness_dbfs = None;
            while let Some(KeyName(key)) = map.next_key()? {
                let Some(key) = key else {
                    return Ok(Line(None));
                };
                let bit = 1 << key as u32;
                if seen & bit != 0 {
                    return Ok(Line(None));
                }
                seen |= bit;
                match key {
                    Key::Type => match map.next_value::<KindName>()?.0 {
                        Some(k) => kind = Some(k),
                        None => return Ok(Line(None)),
                    },
                    Key::CallId => call_id = map.next_value()?,
                    Key::Tenant => start.tenant = map.next_value()?,
                    Key::AgentId => start.agent_id = map.next_value()?,
                    Key::CallerId => start.caller_id = map.next_value()?,
                    Key::Language => language = map.next_value()?,
                    Key::StartedAt => start.started_at = map.next_value()?,
                    Key::Timezone => start.timezone = map.next_value()?,
                    Key::Labels => start.labels = map.next_value::<BTreeMap<_, _>>()?,
                    Key::Seq => seq = map.next_value()?,
                    Key::Speaker => speaker = Some(map.next_value::<Speaker>()?),
                    Key::Text => text = map.next_value()?,
                    Key::IsFinal => is_final = map.next_value()?,
                    Key::UtteranceId => utterance_id = map.next_value()?,
                    Key::StartMs => start_ms = map.next_value()?,
                    Key::EndMs => end_ms = map.next_value()?,
                    Key::LoudnessDbfs => loudness_dbfs = map.next_value()?,
                }
            }
            let required = bits(&[Key::Type, Key::CallId]);
            let event = match kind {
                Some(Kind::Start) if seen & !START == 0 && seen & required == required => {
                    Event::Start(CallStart {
                        call_id,
                        language,
                        ..start
                    })
                }
                Some(Kind::Fragment)
                    if seen & !FRAGMENT == 0
                        && seen & required == required
                        && seen & bits(&[Key::Speaker, Key::Text])
                            == bits(&[Key::Speaker, Key::Text]) =>
                {
                    Event::Fragment(Fragment {
                        call_id,
                        seq,
                        speaker: speaker.unwrap_or(Speaker::Customer),
                        text,
                        is_final,
                        utterance_id,
                        start_ms,
                        end_ms,
                        language,
                        loudness_dbfs,
                    })
                }
                Some(Kind::End) if seen & !END == 0 && seen & required == required => {
                    Event::End(CallEnd { call_id, end_ms })
                }
                _ => return Ok(Line(None)),
            };
            Ok(Line(Some(event)))
        }
    }
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

    /// `Event::from_json` reads exactly what serde's derive reads: the same
    /// event, or the same error message.
    fn same_as_serde(line: &str) {
        let fast = Event::from_json(line).map_err(|e| e.to_string());
        let serde = serde_json::from_str::<Event>(line).map_err(|e| e.to_string());
        assert_eq!(fast, serde, "{line}");
    }

    #[test]
    fn from_json_agrees_with_serde_on_named_cases() {
        let cases = [
            r#"{"type":"start","call_id":"c1","tenant":"acme","agent_id":"a12","caller_id":"+81312345678","language":"ja","started_at":"2026-10-05T14:03:00+09:00","timezone":"Asia/Tokyo","labels":{"q":"1","a":"2"}}"#,
            r#"{"type":"fragment","call_id":"c1","seq":1,"speaker":"customer","text":"...","is_final":false,"utterance_id":"u1","start_ms":1200,"end_ms":2400,"language":"ja","loudness_dbfs":-20}"#,
            r#"{"type":"fragment","call_id":"c1","speaker":"agent","text":"a\"b\\c\u3042\n","loudness_dbfs":-20.25}"#,
            r#"{"call_id":"c1","text":"x","speaker":"agent","type":"fragment"}"#,
            r#"{"type":"end","call_id":"c1","end_ms":95000}"#,
            r#"{"type":"end","call_id":"c1"}"#,
            r#"  {"type" : "end" , "call_id" : "c1"}  "#,
            r#"{"type":"start","call_id":"c","caller_id":null,"language":null,"started_at":null}"#,
            r#"{"type":"fragment","call_id":"c","language":null,"loudness_dbfs":null,"speaker":"customer","text":""}"#,
            // Errors: serde's own messages.
            r#"{"type":"end","call_id":"c1","caller_id":null}"#,
            r#"{"type":"end","call_id":"c1","seq":1}"#,
            r#"{"type":"start","call_id":"c1","end_ms":1}"#,
            r#"{"type":"fragment","call_id":"c"}"#,
            r#"{"type":"fragment","call_id":"c","speaker":"customer"}"#,
            r#"{"type":"fragment","call_id":"c","speaker":"robot","text":"x"}"#,
            r#"{"type":"fragment","call_id":"c","speaker":"customer","text":"x","seq":-1}"#,
            r#"{"type":"fragment","call_id":"c","speaker":"customer","text":"x","seq":1.5}"#,
            r#"{"type":"fragment","call_id":"c","speaker":"customer","text":"x","is_final":"no"}"#,
            r#"{"type":"fragment","call_id":"c","speaker":"customer","text":"x","text":"y"}"#,
            r#"{"type":"end","type":"end","call_id":"c"}"#,
            r#"{"type":"nonsense","call_id":"c"}"#,
            r#"{"type":"End","call_id":"c"}"#,
            r#"{"type":1,"call_id":"c"}"#,
            r#"{"call_id":"c"}"#,
            r#"{"type":"end"}"#,
            r#"{"type":"end","call_id":"c","extra":1}"#,
            r#"{"type":"start","call_id":"c","started_at":"yesterday"}"#,
            r#"{"type":"start","call_id":"c","labels":{"a":1}}"#,
            r#"{"type":"start","call_id":"c","tenant":null}"#,
            r#"{"type":"end","call_id":"c"} x"#,
            r#"{"type":"end","call_id":"c""#,
            r#"["end","c"]"#,
            r#""end""#,
            r#"null"#,
            r#""#,
            // Strings longer than the eight-byte steps.
            r#"{"type":"fragment","call_id":"c1","speaker":"agent","text":"0123456789abcdef\"0123456789"}"#,
            r#"{"type":"fragment","call_id":"c1","speaker":"agent","text":"01234567\\89abcdef0123456789"}"#,
            "{\"type\":\"fragment\",\"call_id\":\"c1\",\"speaker\":\"agent\",\"text\":\"0123456789abcde\tf0123\"}",
            "{\"type\":\"fragment\",\"call_id\":\"c1\",\"speaker\":\"agent\",\"text\":\"ありがとうございます、お客様\u{7f}\u{1f}\"}",
            r#"{"type":"fragment","call_id":"c1","speaker":"agent","text":"ありがとうございます、お客様0123456789"}"#,
        ];
        for line in cases {
            same_as_serde(line);
        }
        // The hand reader takes the common shapes, and gives way on the rest.
        assert!(fast::scan(r#"{"type":"fragment","call_id":"c1","seq":1,"speaker":"customer","text":"お前","is_final":false,"utterance_id":"u1","start_ms":1200,"end_ms":2400,"language":"ja"}"#).is_some());
        assert!(fast::scan(cases[3]).is_some());
        assert!(fast::scan(cases[4]).is_some());
        assert!(fast::scan(cases[6]).is_some());
        assert!(fast::scan(cases[0]).is_none(), "a start");
        assert!(fast::scan(cases[2]).is_none(), "escapes");
        assert!(fast::scan(cases[cases.len() - 1]).is_some(), "long text");
        assert!(
            fast::scan(cases[cases.len() - 2]).is_none(),
            "control character"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any mix of the known keys (and a stranger), in any order, with
        /// good and bad values; half of the objects start as a fragment.
        #[test]
        fn from_json_agrees_with_serde(
            fragment in proptest::bool::ANY,
            picks in proptest::collection::vec((0usize..19, 0usize..6), 0..10),
        ) {
            const KEYS: [&str; 19] = [
                "type", "call_id", "tenant", "agent_id", "caller_id", "language",
                "started_at", "timezone", "labels", "seq", "speaker", "text",
                "is_final", "utterance_id", "start_ms", "end_ms", "loudness_dbfs",
                "type", "other",
            ];
            let value = |key: &str, v: usize| -> String {
                let good = match key {
                    "type" => ["\"start\"", "\"fragment\"", "\"end\"", "\"x\"", "\"fragment\"", "\"end\""][v],
                    "labels" => ["{}", "{\"k\":\"v\"}", "null", "[]", "{}", "1"][v],
                    "started_at" => ["\"2026-10-05T14:03:00Z\"", "null", "\"no\"", "3", "null", "\"\""][v],
                    "seq" | "start_ms" | "end_ms" => ["0", "42", "-1", "\"1\"", "01", "1.5e3"][v],
                    "speaker" => ["\"customer\"", "\"agent\"", "\"x\"", "null", "\"agent\"", "\"Agent\""][v],
                    "is_final" => ["true", "false", "1", "null", "tru", "false "][v],
                    "loudness_dbfs" => ["-20", "-3.5", "null", "\"loud\"", "0", "1e2"][v],
                    "caller_id" | "language" | "timezone" => ["\"x\"", "null", "\"\"", "1", "nul", "\"\\u0041\""][v],
                    _ => ["\"c1\"", "\"\"", "\"\\u3042\"", "null", "\"a\\\"b\"", "\"\u{3042}\t\""][v],
                };
                good.to_owned()
            };
            let mut body: Vec<String> = Vec::new();
            if fragment {
                body.push("\"type\":\"fragment\"".into());
                body.push("\"call_id\":\"c\"".into());
            }
            body.extend(
                picks
                    .iter()
                    .map(|&(k, v)| format!("\"{}\" : {}", KEYS[k], value(KEYS[k], v))),
            );
            same_as_serde(&format!("{{{}}}", body.join(",")));
        }
    }
}
