//! The replay format, JSON Lines of events (DESIGN section 2), read one
//! way everywhere: [`JsonLines`] streams a file's events with the line of
//! any error, and [`Event::from_json`] reads one line. `replay` (in memory
//! or streamed in bounded memory), its `jsonl` importer and `eval` all read
//! through them, so a file cannot mean one thing to one command and another
//! to the next.
//!
//! The rules: a UTF-8 byte order mark before the first line is skipped; a
//! line ends at `\n`, and a `\r` before it is not part of it; blank lines
//! are skipped; the first bad line ends the stream, named by its number.

use std::io::BufRead;

use crate::category::Speaker;
use crate::event::{CallEnd, Event, Fragment};

/// The message of a loudness that JSON can write and `f32` cannot hold.
pub const LOUDNESS_OUT_OF_RANGE: &str =
    "loudness_dbfs: out of range (must be a finite number of dBFS)";

/// Why a stream of events stopped. Every variant names the line (from 1).
#[derive(Debug, thiserror::Error)]
pub enum JsonLinesError {
    /// Reading failed (a file that is not UTF-8 fails here).
    #[error("line {line}: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    /// Not an event: bad JSON, a missing or unknown field, a bad value.
    #[error("line {line}: {}", without_position(source))]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// A number too large for `f32` (`1e39`) reads as infinity, which
    /// would be written back as `null`.
    #[error("line {line}: {LOUDNESS_OUT_OF_RANGE}")]
    LoudnessOutOfRange { line: usize },
}

impl JsonLinesError {
    pub fn line(&self) -> usize {
        match self {
            JsonLinesError::Io { line, .. }
            | JsonLinesError::Json { line, .. }
            | JsonLinesError::LoudnessOutOfRange { line } => *line,
        }
    }
}

/// serde's message without its " at line 1 column N" (the line is ours).
fn without_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// The events of a JSON Lines stream, one line in memory at a time.
pub struct JsonLines<R> {
    reader: R,
    line: String,
    number: usize,
    bytes: u64,
    done: bool,
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(reader: R) -> JsonLines<R> {
        JsonLines {
            reader,
            line: String::new(),
            number: 0,
            bytes: 0,
            done: false,
        }
    }

    /// Bytes read so far, newlines included (a replay's progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

impl<R: BufRead> JsonLines<R> {
    /// The next line that is not blank, as the span of `self.line` without
    /// its newline, carriage return or (first line) byte order mark, and
    /// its number; `None` at the end or after an error.
    fn next_text(&mut self) -> Option<Result<(usize, usize, usize), JsonLinesError>> {
        while !self.done {
            self.line.clear();
            let n = match self.reader.read_line(&mut self.line) {
                Ok(0) => break,
                Ok(n) => n,
                Err(source) => {
                    self.done = true;
                    let line = self.number + 1;
                    return Some(Err(JsonLinesError::Io { line, source }));
                }
            };
            self.bytes += n as u64;
            self.number += 1;
            if let Some((start, end)) = line_span(&self.line, self.number == 1) {
                return Some(Ok((start, end, self.number)));
            }
        }
        self.done = true;
        None
    }
}

/// A line of a JSON Lines file as [`JsonLines`] reads it: without the
/// newline, a carriage return before it and (on line 1) a byte order mark;
/// `None` when what is left is blank. The replay's second pass cuts lines
/// itself, in both passes, and must see the same text.
pub fn line_text(raw: &str, first_line: bool) -> Option<&str> {
    line_span(raw, first_line).map(|(start, end)| &raw[start..end])
}

fn line_span(raw: &str, first_line: bool) -> Option<(usize, usize)> {
    // As `str::lines`: the newline and a carriage return before it are not
    // part of the line.
    let mut text = raw.strip_suffix('\n').unwrap_or(raw);
    text = text.strip_suffix('\r').unwrap_or(text);
    let end = text.len();
    if first_line {
        text = text.strip_prefix('\u{feff}').unwrap_or(text);
    }
    (!text.trim().is_empty()).then_some((end - text.len(), end))
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = Result<Event, JsonLinesError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (start, end, line) = match self.next_text()? {
            Ok(found) => found,
            Err(e) => return Some(Err(e)),
        };
        let event = read_line(&self.line[start..end], line);
        self.done = event.is_err();
        Some(event)
    }
}

/// An event read from a line: borrowed when the line is a plainly written
/// fragment or end (most lines of a file), owned otherwise.
#[derive(Debug)]
pub enum Peeked<'a> {
    Borrowed(EventRef<'a>),
    Owned(Event),
}

impl Peeked<'_> {
    pub fn call_id(&self) -> &str {
        match self {
            Peeked::Borrowed(e) => e.call_id(),
            Peeked::Owned(e) => e.call_id(),
        }
    }
}

/// One line (not blank, as [`line_text`] gives it) as an event, or the
/// error that names it: what [`JsonLines`] reads from each line.
pub fn read_line(text: &str, line: usize) -> Result<Event, JsonLinesError> {
    let event = Event::from_json(text).map_err(|source| JsonLinesError::Json { line, source })?;
    if let Event::Fragment(f) = &event {
        if f.loudness_dbfs.is_some_and(|v| !v.is_finite()) {
            return Err(JsonLinesError::LoudnessOutOfRange { line });
        }
    }
    Ok(event)
}

/// A fragment or end line with its strings borrowed from the line: what
/// [`EventRef::scan`] reads. Turned into the [`Event`] that
/// [`Event::from_json`] gives for the same line by [`EventRef::to_event`],
/// or written over a reused one by [`EventRef::write_to`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventRef<'a> {
    Fragment(FragmentRef<'a>),
    End { call_id: &'a str, end_ms: u64 },
}

/// [`Fragment`]'s fields, borrowed (a plain line has no loudness).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FragmentRef<'a> {
    pub call_id: &'a str,
    pub seq: u64,
    pub speaker: Speaker,
    pub text: &'a str,
    pub is_final: bool,
    pub utterance_id: &'a str,
    pub start_ms: u64,
    pub end_ms: u64,
    pub language: Option<&'a str>,
}

impl<'a> EventRef<'a> {
    /// The commonest lines, fragments and ends, read without copying:
    /// keys and strings without escapes, integers without fraction or
    /// exponent. `None` for anything else (a start line, an escape, a
    /// float, an unknown or repeated key, bad JSON): [`Event::from_json`]
    /// then decides. When this reads a line, `from_json` gives the same
    /// event (it reads through here).
    pub fn scan(line: &'a str) -> Option<EventRef<'a>> {
        fast::scan(line)
    }

    pub fn call_id(&self) -> &'a str {
        match self {
            EventRef::Fragment(f) => f.call_id,
            EventRef::End { call_id, .. } => call_id,
        }
    }

    pub fn to_event(&self) -> Event {
        match *self {
            EventRef::Fragment(f) => Event::Fragment(Fragment {
                call_id: f.call_id.to_owned(),
                seq: f.seq,
                speaker: f.speaker,
                text: f.text.to_owned(),
                is_final: f.is_final,
                utterance_id: f.utterance_id.to_owned(),
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                language: f.language.map(str::to_owned),
                loudness_dbfs: None,
            }),
            EventRef::End { call_id, end_ms } => Event::End(CallEnd {
                call_id: call_id.to_owned(),
                end_ms,
            }),
        }
    }

    /// Makes `event` what [`EventRef::to_event`] would give, reusing its
    /// strings' memory when it already is the same kind of event: a replay
    /// worker reads a line into one event after another without
    /// allocating.
    pub fn write_to(&self, event: &mut Event) {
        fn set(to: &mut String, from: &str) {
            to.clear();
            to.push_str(from);
        }
        match (*self, event) {
            (EventRef::Fragment(from), Event::Fragment(to)) => {
                set(&mut to.call_id, from.call_id);
                to.seq = from.seq;
                to.speaker = from.speaker;
                set(&mut to.text, from.text);
                to.is_final = from.is_final;
                set(&mut to.utterance_id, from.utterance_id);
                to.start_ms = from.start_ms;
                to.end_ms = from.end_ms;
                match (from.language, &mut to.language) {
                    (Some(from), Some(to)) => set(to, from),
                    (from, to) => *to = from.map(str::to_owned),
                }
                to.loudness_dbfs = None;
            }
            (EventRef::End { call_id, end_ms }, Event::End(to)) => {
                set(&mut to.call_id, call_id);
                to.end_ms = end_ms;
            }
            (from, to) => *to = from.to_event(),
        }
    }
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
            return Ok(event.to_event());
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

    use super::{EventRef, FragmentRef};
    use crate::category::Speaker;
    use crate::event::{CallEnd, CallStart, Event, Fragment};

    /// `None`: not read here (serde's own path decides).
    pub(super) struct Line(pub Option<Event>);

    /// The commonest lines, fragments and ends, read by hand: keys without
    /// escapes, strings without escapes, integers without fraction or
    /// exponent. Anything else (a start line, an escape, a float, `null`
    /// where a value is needed, an unknown or repeated key, bad JSON) is
    /// `None`, and serde reads the line.
    pub(super) fn scan(line: &str) -> Option<EventRef<'_>> {
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
        let call_id = call_id?;
        match kind? {
            Kind::Fragment if seen & !FRAGMENT == 0 => Some(EventRef::Fragment(FragmentRef {
                call_id,
                seq,
                speaker: speaker?,
                text: text?,
                is_final,
                utterance_id: utterance_id.unwrap_or_default(),
                start_ms,
                end_ms,
                language,
            })),
            Kind::End if seen & !END == 0 => Some(EventRef::End { call_id, end_ms }),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a stream gives: events, or an error as its message.
    type Read = Vec<Result<Event, String>>;

    fn read(text: &str) -> Read {
        JsonLines::new(text.as_bytes())
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn lines_blanks_bom_and_carriage_returns() {
        let end = |id: &str| {
            Ok(Event::End(crate::event::CallEnd {
                call_id: id.into(),
                end_ms: 0,
            }))
        };
        let cases: &[(&str, &str, Read)] = &[
            ("empty", "", vec![]),
            ("blank lines only", "\n  \r\n\t\n", vec![]),
            (
                "bom, crlf, blank, no final newline",
                "\u{feff}{\"type\":\"end\",\"call_id\":\"a\"}\r\n\r\n{\"type\":\"end\",\"call_id\":\"b\"}",
                vec![end("a"), end("b")],
            ),
            (
                "a bom on the second line is not skipped",
                "{\"type\":\"end\",\"call_id\":\"a\"}\n\u{feff}{\"type\":\"end\",\"call_id\":\"b\"}\n",
                vec![
                    end("a"),
                    Err("line 2: expected value".into()),
                ],
            ),
            (
                "the first bad line ends the stream, numbered",
                "{\"type\":\"end\",\"call_id\":\"a\"}\n\n{\"type\":\"fragment\",\"call_id\":\"c\"}\n{\"type\":\"end\",\"call_id\":\"b\"}\n",
                vec![end("a"), Err("line 3: missing field `speaker`".into())],
            ),
            (
                "a loudness f32 cannot hold",
                "{\"type\":\"fragment\",\"call_id\":\"c\",\"speaker\":\"customer\",\"text\":\"x\",\"loudness_dbfs\":1e39}\n",
                vec![Err(format!("line 1: {LOUDNESS_OUT_OF_RANGE}"))],
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(&read(text), want, "{name}");
        }
    }

    #[test]
    fn not_utf8_is_an_io_error_on_its_line() {
        let mut lines = JsonLines::new(&b"{\"type\":\"end\",\"call_id\":\"a\"}\n\xff\n"[..]);
        assert!(lines.next().unwrap().is_ok());
        let e = lines.next().unwrap().unwrap_err();
        assert!(matches!(e, JsonLinesError::Io { line: 2, .. }), "{e:?}");
        assert!(lines.next().is_none());
    }

    #[test]
    fn bytes_read_counts_newlines_and_blank_lines() {
        let text = "{\"type\":\"end\",\"call_id\":\"a\"}\r\n\n";
        let mut lines = JsonLines::new(text.as_bytes());
        assert!(lines.next().unwrap().is_ok());
        assert!(lines.next().is_none());
        assert_eq!(lines.bytes_read(), text.len() as u64);
    }

    /// `Event::from_json` reads exactly what serde's derive reads: the same
    /// event, or the same error message.
    /// And the borrowed reader, when it reads the line, gives that event,
    /// also when written over a reused event of either kind.
    fn same_as_serde(line: &str) {
        let fast = Event::from_json(line).map_err(|e| e.to_string());
        let serde = serde_json::from_str::<Event>(line).map_err(|e| e.to_string());
        assert_eq!(fast, serde, "{line}");
        if let Some(borrowed) = EventRef::scan(line) {
            assert_eq!(Ok(borrowed.to_event()), serde, "{line}");
            let reused = [
                r#"{"type":"fragment","call_id":"old","speaker":"agent","text":"old text","utterance_id":"u0","language":"en","loudness_dbfs":-3}"#,
                r#"{"type":"fragment","call_id":"old","speaker":"agent","text":"old text"}"#,
                r#"{"type":"end","call_id":"old","end_ms":7}"#,
            ];
            for old in reused {
                let mut event: Event = serde_json::from_str(old).unwrap();
                borrowed.write_to(&mut event);
                assert_eq!(Ok(event), serde, "{line} over {old}");
            }
        }
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
