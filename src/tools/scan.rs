//! `callguard scan`: the engine over lines of text, one JSON line of hits
//! per input line (what a lexicon author runs to see what a phrase hits).
//! `cli.rs` parses the flags and loads the engine; errors are `io::Error`s
//! carrying the message the command prints.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::category::Speaker;
use crate::engine::{Engine, Framing, Scratch};
use crate::text::{char_span, mask_personal_data};

/// What the flags ask for.
pub struct ScanOptions<'a> {
    /// Files to read (one utterance per line); `-` or none for stdin.
    pub files: &'a [PathBuf],
    pub language: Option<&'a str>,
    pub speaker: Speaker,
    /// Consecutive lines are consecutive fragments of one speaker.
    pub stream: bool,
}

#[derive(Serialize)]
struct ScanLine<'a> {
    line: usize,
    hits: Vec<ScanHit<'a>>,
}

#[derive(Serialize)]
struct ScanHit<'a> {
    rule: &'a str,
    category: &'a str,
    severity: &'a str,
    group: Option<&'a str>,
    excerpt: String,
    /// Byte offsets of the words in the line (UTF-8), end exclusive.
    start: usize,
    end: usize,
    /// The same in characters (Unicode scalar values), as alerts' evidence.
    char_start: Option<u32>,
    char_end: Option<u32>,
    framing: &'static str,
    targeted: bool,
    /// The term is abusive only when aimed at the agent (`targeted`).
    needs_target: bool,
}

/// Scans every line of the inputs with `engine` (its languages prepared)
/// and writes one JSON line per input line to stdout.
pub fn scan(engine: &Engine, args: &ScanOptions) -> std::io::Result<()> {
    let context = |what: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let mut scratch = Scratch::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut inputs: Vec<Box<dyn BufRead>> = Vec::new();
    if args.files.is_empty() {
        inputs.push(Box::new(std::io::stdin().lock()));
    }
    for file in args.files {
        if file.as_os_str() == "-" {
            inputs.push(Box::new(std::io::stdin().lock()));
        } else {
            let f = std::fs::File::open(file)
                .map_err(context(format!("opening {}", file.display())))?;
            inputs.push(Box::new(std::io::BufReader::new(f)));
        }
    }
    let mut line_no = 0;
    let mut carry = None;
    for input in inputs {
        for line in input.lines() {
            let line = line.map_err(context("reading input".to_owned()))?;
            line_no += 1;
            let scan = engine.scan(
                &line,
                args.language,
                args.speaker,
                carry.as_ref(),
                &mut scratch,
            );
            let hits = scan
                .hits
                .iter()
                .map(|h| {
                    let term = engine.term(h.term);
                    let chars = char_span(&line, &h.span);
                    ScanHit {
                        rule: &term.rule,
                        category: &term.category,
                        severity: h.severity.as_str(),
                        group: term.group.as_deref(),
                        excerpt: mask_personal_data(&line[h.span.clone()]),
                        start: h.span.start,
                        end: h.span.end,
                        char_start: chars.as_ref().map(|c| c.start),
                        char_end: chars.map(|c| c.end),
                        framing: match h.framing {
                            Framing::Plain => "plain",
                            Framing::Negated => "negated",
                            Framing::Quoted => "quoted",
                            Framing::Figurative => "figurative",
                        },
                        targeted: h.targeted,
                        needs_target: term.needs_target,
                    }
                })
                .collect();
            serde_json::to_writer(
                &mut out,
                &ScanLine {
                    line: line_no,
                    hits,
                },
            )?;
            out.write_all(b"\n")?;
            if args.stream {
                carry = Some(scan.carry);
            }
        }
    }
    out.flush()?;
    if line_no == 0 {
        return Err(std::io::Error::other("no input lines"));
    }
    Ok(())
}
