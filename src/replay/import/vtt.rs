//! WebVTT: a `WEBVTT` header, then cues of an optional identifier, a
//! timing line `[hh:]mm:ss.mmm --> [hh:]mm:ss.mmm [settings]` and text
//! lines (joined by a space, none between CJK characters). `NOTE`,
//! `STYLE` and `REGION` blocks are skipped.
//!
//! A `<v Name>` voice tag names the speaker; a cue with several voices
//! becomes one fragment per voice. Without voice tags a `Name: ` line prefix
//! names it (as Zoom writes). Other tags are removed (`<rt>` ruby text with
//! its content), character references decoded. Each fragment is final and
//! its own utterance. The cue helpers here serve SRT too.

use std::path::Path;

use super::{check_span, parse_err, push_word, speaker_prefix, Parsed, Piece};
use crate::replay::ReplayError;

pub(super) fn parse(path: &Path, text: &str) -> Result<Parsed, ReplayError> {
    let lines: Vec<&str> = text.lines().collect();
    if !lines.first().is_some_and(|l| {
        l.strip_prefix("WEBVTT")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    }) {
        return Err(parse_err(path, 1, "missing the WEBVTT header"));
    }
    let mut pieces = Vec::new();
    let mut cue = 0usize;
    // The header block runs to the first blank line.
    let mut blocks = blocks(&lines).into_iter().skip(1);
    for (first_line, block) in blocks.by_ref() {
        let Some(head) = block.first() else { continue };
        if ["NOTE", "STYLE", "REGION"].iter().any(|k| {
            head.strip_prefix(k)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        }) {
            continue;
        }
        cue += 1;
        let timing_at = block
            .iter()
            .take(2)
            .position(|l| l.contains("-->"))
            .ok_or_else(|| {
                parse_err(
                    path,
                    first_line,
                    format!("cue {cue}: expected a timing line `00:00:01.000 --> 00:00:02.500`"),
                )
            })?;
        let line_no = first_line + timing_at;
        let timing = block.get(timing_at).copied().unwrap_or("");
        let (start_ms, end_ms) = parse_timing(timing)
            .map_err(|m| parse_err(path, line_no, format!("cue {cue}: {m}")))?;
        for run in cue_runs(block.get(timing_at + 1..).unwrap_or(&[])) {
            pieces.push(Piece {
                label: run.voice,
                text: run.text,
                start_ms,
                end_ms,
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

/// Blocks of non-blank lines with the 1-based number of their first line.
pub(super) fn blocks<'a>(lines: &[&'a str]) -> Vec<(usize, Vec<&'a str>)> {
    let mut out: Vec<(usize, Vec<&'a str>)> = Vec::new();
    let mut current: Option<(usize, Vec<&'a str>)> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            out.extend(current.take());
        } else {
            current
                .get_or_insert_with(|| (i + 1, Vec::new()))
                .1
                .push(line);
        }
    }
    out.extend(current);
    out
}

/// `start --> end [settings]` in milliseconds.
pub(super) fn parse_timing(line: &str) -> Result<(u64, u64), String> {
    let (a, b) = line
        .split_once("-->")
        .ok_or_else(|| format!("expected `start --> end`, found {line:?}"))?;
    let a = a.trim();
    let b = b.split_whitespace().next().unwrap_or("");
    let start = parse_timestamp(a).ok_or_else(|| format!("bad start time {a:?}"))?;
    let end = parse_timestamp(b).ok_or_else(|| format!("bad end time {b:?}"))?;
    check_span("cue", start, end)?;
    Ok((start, end))
}

/// `hh:mm:ss.mmm` or `mm:ss.mmm` (`,` as in SRT also accepted; 1 to 3
/// fraction digits) in milliseconds.
pub(super) fn parse_timestamp(s: &str) -> Option<u64> {
    let (clock, frac) = match s.rsplit_once(['.', ',']) {
        Some((clock, frac)) => (clock, frac),
        None => (s, "0"),
    };
    if frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = format!("{frac:0<3}").parse().ok()?;
    let parts: Vec<&str> = clock.split(':').collect();
    let num = |p: &str| -> Option<u64> {
        (!p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => (0, num(m)?, num(s)?),
        [h, m, s] => {
            let m = num(m)?;
            if m >= 60 {
                return None;
            }
            (num(h)?, m, num(s)?)
        }
        _ => return None,
    };
    if sec >= 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms)
}

/// A stretch of cue text with one speaker.
#[derive(Debug, PartialEq)]
pub(super) struct Run {
    pub voice: Option<String>,
    pub text: String,
}

enum Token {
    Voice(String),
    Text(String),
}

/// Cue text lines as speaker runs: voice tags, else `Name: ` prefixes at
/// line starts; markup removed; empty runs dropped.
pub(super) fn cue_runs(lines: &[&str]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut tagged = false;
    let mut in_rt = false;
    for line in lines {
        let mut line_start = true;
        for token in tokens(line, &mut in_rt) {
            match token {
                Token::Voice(name) => {
                    tagged = true;
                    set_voice(&mut runs, name);
                }
                Token::Text(text) => {
                    let text = decode_entities(&text);
                    let mut text = text.as_str();
                    if line_start && !tagged && !text.trim().is_empty() {
                        if let Some((name, rest)) = speaker_prefix(text.trim()) {
                            set_voice(&mut runs, name.to_owned());
                            text = rest;
                        }
                    }
                    if runs.is_empty() {
                        runs.push(Run {
                            voice: None,
                            text: String::new(),
                        });
                    }
                    if let Some(run) = runs.last_mut() {
                        if line_start {
                            push_word(&mut run.text, text);
                        } else {
                            run.text.push_str(text);
                        }
                    }
                    if !text.trim().is_empty() {
                        line_start = false;
                    }
                }
            }
        }
    }
    runs.into_iter()
        .filter_map(|r| {
            let text = r.text.split_whitespace().collect::<Vec<_>>().join(" ");
            (!text.is_empty()).then_some(Run {
                voice: r.voice,
                text,
            })
        })
        .collect()
}

fn set_voice(runs: &mut Vec<Run>, name: String) {
    let name = name.trim().to_owned();
    if name.is_empty() {
        return;
    }
    if let Some(last) = runs.last_mut() {
        if last.voice.as_deref() == Some(name.as_str()) {
            return;
        }
        if last.text.trim().is_empty() {
            last.voice = Some(name);
            return;
        }
    }
    runs.push(Run {
        voice: Some(name),
        text: String::new(),
    });
}

/// Splits a line into voice tags and text, dropping other tags, `<rt>`
/// content and SSA override blocks `{\...}`.
fn tokens(line: &str, in_rt: &mut bool) -> Vec<Token> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let close = match c {
            '<' => rest.find('>'),
            '{' if rest.starts_with("{\\") => rest.find('}'),
            _ => None,
        };
        match close {
            Some(end) => {
                let tag = rest.get(1..end).unwrap_or("").trim();
                rest = rest.get(end + 1..).unwrap_or("");
                if c != '<' {
                    continue;
                }
                let name = tag.split(['.', ' ', '\t']).next().unwrap_or("");
                match name {
                    "v" => {
                        let voice = tag
                            .split_once([' ', '\t'])
                            .map(|(_, v)| v.trim())
                            .unwrap_or("");
                        if !text.is_empty() {
                            out.push(Token::Text(std::mem::take(&mut text)));
                        }
                        out.push(Token::Voice(voice.to_owned()));
                    }
                    "rt" => *in_rt = true,
                    "/rt" => *in_rt = false,
                    _ => {}
                }
            }
            None => {
                if !*in_rt {
                    text.push(c);
                }
                rest = rest.get(c.len_utf8()..).unwrap_or("");
            }
        }
    }
    if !text.is_empty() {
        out.push(Token::Text(text));
    }
    out
}

/// Decodes the character references subtitles use.
pub(super) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at).unwrap_or(""));
        rest = rest.get(at..).unwrap_or("");
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = rest.get(1..end)?;
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                "lrm" | "rlm" => None,
                _ => {
                    let code = if let Some(hex) =
                        name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()?
                    } else {
                        name.strip_prefix('#')?.parse().ok()?
                    };
                    Some(char::from_u32(code)?)
                }
            };
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.extend(c);
                rest = rest.get(end + 1..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = rest.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}
