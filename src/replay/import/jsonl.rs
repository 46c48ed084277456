//! Our own events as JSON Lines (DESIGN section 2), read like
//! `replay::read_jsonl`: blank lines skipped, the first bad line fails the
//! file with its number.

use std::path::Path;

use super::{json_err, parse_err};
use crate::event::Event;
use crate::replay::ReplayError;

pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Event>, ReplayError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| json_err(path, &e, i + 1))?;
        if let Event::Fragment(f) = &event {
            // A number too large for f32 (1e39) reads as infinity, which
            // would be written back as `null` (the import_jsonl fuzz check).
            if f.loudness_dbfs.is_some_and(|v| !v.is_finite()) {
                return Err(parse_err(
                    path,
                    i + 1,
                    "loudness_dbfs: out of range (must be a finite number of dBFS)",
                ));
            }
        }
        events.push(event);
    }
    Ok(events)
}
