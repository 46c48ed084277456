//! SubRip: cues of an index line, a timing line
//! `00:00:01,000 --> 00:00:02,500` and text lines, separated by blank
//! lines. A `Name: ` prefix on a text line names the speaker (a cue with
//! two prefixed lines becomes two fragments); `<i>`-style tags and `{\...}`
//! overrides are removed. A block without index or timing after a cue is
//! more text of that cue (some writers leave blank lines in text). Each
//! fragment is final and its own utterance.

use std::path::Path;

use super::vtt::{blocks, cue_runs, parse_timing};
use super::{parse_err, Parsed, Piece};
use crate::replay::ReplayError;

struct Cue<'a> {
    start_ms: u64,
    end_ms: u64,
    lines: Vec<&'a str>,
}

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cues: Vec<Cue> = Vec::new();
    for (first_line, block) in blocks(&lines) {
        let is_index = |l: &str| {
            let l = l.trim();
            !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())
        };
        let timing_at = block.iter().take(2).position(|l| l.contains("-->"));
        let cue_no = cues.len() + 1;
        let Some(timing_at) = timing_at else {
            match cues.last_mut() {
                Some(last) if !block.first().is_some_and(|l| is_index(l)) => {
                    last.lines.extend(block);
                    continue;
                }
                _ => {
                    return Err(parse_err(
                        path,
                        first_line,
                        format!(
                            "cue {cue_no}: expected an index and a timing line `00:00:01,000 --> 00:00:02,500`"
                        ),
                    ))
                }
            }
        };
        if timing_at == 1 && !block.first().is_some_and(|l| is_index(l)) {
            return Err(parse_err(
                path,
                first_line,
                format!("cue {cue_no}: expected a numeric index before the timing line"),
            ));
        }
        let line_no = first_line + timing_at;
        let (start_ms, end_ms) = parse_timing(block.get(timing_at).copied().unwrap_or(""))
            .map_err(|m| parse_err(path, line_no, format!("cue {cue_no}: {m}")))?;
        cues.push(Cue {
            start_ms,
            end_ms,
            lines: block.get(timing_at + 1..).unwrap_or(&[]).to_vec(),
        });
    }
    let mut pieces = Vec::new();
    for cue in cues {
        for run in cue_runs(&cue.lines) {
            pieces.push(Piece {
                label: run.voice,
                text: run.text,
                start_ms: cue.start_ms,
                end_ms: cue.end_ms,
                is_final: true,
                ..Piece::default()
            });
        }
    }
    Ok(Parsed {
        pieces,
        language: None,
    })
}
