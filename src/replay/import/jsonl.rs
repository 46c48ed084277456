//! Our own events as JSON Lines (DESIGN section 2), read like
//! `replay::read_jsonl`: blank lines skipped, the first bad line fails the
//! file with its number.

use std::path::Path;

use super::json_err;
use crate::event::Event;
use crate::replay::ReplayError;

pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Event>, ReplayError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| json_err(path, &e, i + 1))?;
        events.push(event);
    }
    Ok(events)
}
