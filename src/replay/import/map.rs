//! Any JSON records (`--format map`, implied by `--map`): for transcripts
//! whose tool has no importer of its own, the user names which field holds
//! what.
//!
//! Records are read from a JSON array, JSON Lines or objects one after the
//! other; with `records=FIELD` from the list at that field of each value
//! (`records=segments` for `{"segments": [...]}`). A field is a dotted
//! path, digits index a list: `alternatives.0.transcript`.
//!
//! | key | holds | default |
//! |---|---|---|
//! | `text` | the words (required) | |
//! | `speaker` | a label, resolved by `--speakers` (role names as they are) | no label: the default speaker |
//! | `start`, `end`, `duration` | seconds | |
//! | `start_ms`, `end_ms`, `duration_ms` | milliseconds | |
//! | `utterance` | the utterance id (interim and final share it) | one per record |
//! | `final` | `is_final` (true/false) | true |
//! | `call` | the call id, for files of several calls | the file's call |
//! | `language` | BCP-47 tag | the file's |
//! | `records` | where the list of records is | the value itself |
//!
//! Without `start`/`start_ms` every fragment is at 0 ms (duration rules
//! see no time pass); `end` is `start + duration` when only a duration is
//! given, else `start`. A record whose text is empty is skipped; one
//! without a mapped field, or with a value of the wrong kind, fails the
//! file with the record and field named.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;

use super::{from_json_stream, language_tag, parse_err, secs_to_ms, At, Parsed, Piece};
use crate::replay::ReplayError;

/// A dotted path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldPath(String);

impl FieldPath {
    fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.0.split('.').try_fold(value, |v, part| match v {
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Object(obj) => obj.get(part),
            _ => None,
        })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Times in the source: seconds or milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Secs,
    Millis,
}

/// Which field of a record holds what (`--map`); see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMap {
    text: FieldPath,
    speaker: Option<FieldPath>,
    start: Option<(FieldPath, Unit)>,
    end: Option<(FieldPath, Unit)>,
    duration: Option<(FieldPath, Unit)>,
    utterance: Option<FieldPath>,
    is_final: Option<FieldPath>,
    call: Option<FieldPath>,
    language: Option<FieldPath>,
    records: Option<FieldPath>,
}

impl FromStr for FieldMap {
    type Err = String;

    /// `text=transcript,speaker=speaker_role,start_ms=start_ms,...`
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut text = None;
        let mut map = FieldMap {
            text: FieldPath(String::new()),
            speaker: None,
            start: None,
            end: None,
            duration: None,
            utterance: None,
            is_final: None,
            call: None,
            language: None,
            records: None,
        };
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, field) = pair
                .split_once('=')
                .ok_or_else(|| format!("--map: {pair:?} is not key=FIELD"))?;
            let (key, field) = (key.trim(), field.trim());
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(format!("--map: {key}: {field:?} is not a field name"));
            }
            let field = FieldPath(field.to_owned());
            let slot = match key {
                "text" => {
                    text = Some(field);
                    continue;
                }
                "speaker" => &mut map.speaker,
                "utterance" => &mut map.utterance,
                "final" => &mut map.is_final,
                "call" => &mut map.call,
                "language" => &mut map.language,
                "records" => &mut map.records,
                "start" | "start_ms" | "end" | "end_ms" | "duration" | "duration_ms" => {
                    let unit = if key.ends_with("_ms") {
                        Unit::Millis
                    } else {
                        Unit::Secs
                    };
                    let slot = match key.trim_end_matches("_ms") {
                        "start" => &mut map.start,
                        "end" => &mut map.end,
                        _ => &mut map.duration,
                    };
                    if slot.is_some() {
                        return Err(format!("--map: {key} is given twice"));
                    }
                    *slot = Some((field, unit));
                    continue;
                }
                other => {
                    return Err(format!(
                    "--map: unknown key {other:?} (expected text, speaker, start, end, duration, \
                         start_ms, end_ms, duration_ms, utterance, final, call, language, records)"
                ))
                }
            };
            if slot.is_some() {
                return Err(format!("--map: {key} is given twice"));
            }
            *slot = Some(field);
        }
        map.text = text.ok_or("--map: text=FIELD is required")?;
        Ok(map)
    }
}

/// A record's place in the file, for errors.
struct Record {
    at: At,
    /// Its index in the value's list, when records come from a list.
    index: Option<usize>,
}

impl Record {
    fn name(&self) -> String {
        match (self.at.index, self.index) {
            (Some(i), None) | (None, Some(i)) => format!("record [{i}]"),
            (Some(i), Some(j)) => format!("record [{i}][{j}]"),
            (None, None) => "record".to_owned(),
        }
    }
}

pub(super) fn parse(path: &Path, text: &str, map: &FieldMap) -> Result<Parsed, ReplayError> {
    let values: Vec<(At, Value)> = from_json_stream(path, text)?;
    let mut pieces = Vec::new();
    for (at, value) in &values {
        match &map.records {
            Some(field) => {
                let list = field.get(value).and_then(Value::as_array).ok_or_else(|| {
                    parse_err(path, at.line, format!("records: no list at field {field}"))
                })?;
                for (i, record) in list.iter().enumerate() {
                    let place = Record {
                        at: *at,
                        index: Some(i),
                    };
                    pieces.extend(piece(path, &place, record, map)?);
                }
            }
            None => {
                let place = Record {
                    at: *at,
                    index: None,
                };
                pieces.extend(piece(path, &place, value, map)?);
            }
        }
    }
    Ok(Parsed {
        pieces,
        language: None,
    })
}

fn piece(
    path: &Path,
    place: &Record,
    record: &Value,
    map: &FieldMap,
) -> Result<Option<Piece>, ReplayError> {
    let fail = |field: &FieldPath, problem: &str| {
        parse_err(
            path,
            place.at.line,
            format!("{}: field {field}: {problem}", place.name()),
        )
    };
    if !record.is_object() {
        return Err(parse_err(
            path,
            place.at.line,
            format!(
                "{}: expected an object, found {}",
                place.name(),
                kind(record)
            ),
        ));
    }
    let get = |field: &FieldPath| -> Result<&Value, ReplayError> {
        field.get(record).ok_or_else(|| fail(field, "missing"))
    };
    let text = match get(&map.text)? {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => {
            return Err(fail(
                &map.text,
                &format!("expected text, found {}", kind(other)),
            ))
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    let label = |field: &Option<FieldPath>| -> Result<Option<String>, ReplayError> {
        let Some(field) = field else { return Ok(None) };
        match get(field)? {
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.trim().to_owned())),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Null => Ok(None),
            other => Err(fail(
                field,
                &format!("expected text or a number, found {}", kind(other)),
            )),
        }
    };
    let time = |slot: &Option<(FieldPath, Unit)>| -> Result<Option<u64>, ReplayError> {
        let Some((field, unit)) = slot else {
            return Ok(None);
        };
        let n = match get(field)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| fail(field, "expected a number"))?;
        let secs = match unit {
            Unit::Secs => n,
            Unit::Millis => n / 1000.0,
        };
        secs_to_ms(secs)
            .map(Some)
            .ok_or_else(|| fail(field, &format!("time {n} is out of range")))
    };
    let start_ms = time(&map.start)?.unwrap_or(0);
    let end_ms = match (time(&map.end)?, time(&map.duration)?) {
        (Some(end), _) => end,
        (None, Some(length)) => start_ms.saturating_add(length),
        (None, None) => start_ms,
    };
    if end_ms < start_ms {
        let field = map.end.as_ref().map_or(&map.text, |(f, _)| f);
        return Err(fail(
            field,
            &format!(
                "end {} s is before start {} s",
                end_ms as f64 / 1000.0,
                start_ms as f64 / 1000.0
            ),
        ));
    }
    let is_final = match &map.is_final {
        None => true,
        Some(field) => match get(field)? {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            other => {
                return Err(fail(
                    field,
                    &format!("expected true or false, found {}", kind(other)),
                ))
            }
        },
    };
    Ok(Some(Piece {
        label: label(&map.speaker)?,
        text,
        start_ms,
        end_ms,
        is_final,
        utterance_id: label(&map.utterance)?,
        language: language_tag(label(&map.language)?),
        call_id: label(&map.call)?,
    }))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
