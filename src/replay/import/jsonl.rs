//! Our own events as JSON Lines (DESIGN section 2): the one reader,
//! [`JsonLines`], with its errors naming the file as every importer's do.

use std::io::BufRead;
use std::path::Path;

use super::{json_err, parse_err};
use crate::event::json::{JsonLines, JsonLinesError, LOUDNESS_OUT_OF_RANGE};
use crate::event::Event;
use crate::replay::ReplayError;

/// A file's text, already in memory.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Event>, ReplayError> {
    // Room for lines of 100 bytes or more (ours are ~200): pages not
    // written to cost nothing, and the text is read once.
    let mut events = Vec::with_capacity(text.len() / 100 + 1);
    for event in JsonLines::new(text.as_bytes()) {
        events.push(event.map_err(|e| error(path, e))?);
    }
    Ok(events)
}

/// A file's events, streamed (`replay_bounded`, `eval`).
pub(crate) fn read(path: &Path, reader: impl BufRead) -> Result<Vec<Event>, ReplayError> {
    JsonLines::new(reader)
        .map(|event| event.map_err(|e| error(path, e)))
        .collect()
}

/// A reader's error as a replay error of `path`: `path:line: message`, the
/// message in plain words ([`super::humanize`]); a read error as the file's.
pub(crate) fn error(path: &Path, e: JsonLinesError) -> ReplayError {
    match e {
        JsonLinesError::Io { source, .. } => ReplayError::Io {
            path: path.display().to_string(),
            source,
        },
        JsonLinesError::Json { line, source } => json_err(path, &source, line),
        JsonLinesError::LoudnessOutOfRange { line } => parse_err(path, line, LOUDNESS_OUT_OF_RANGE),
    }
}
