//! Command-line surface (DESIGN section 5). Thin glue: parse flags, call the
//! library, print. `anyhow` lives here and in `main` only.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use callguard::category::Speaker;
use callguard::engine::{Engine, Framing, Scratch};
use callguard::lexicon::{self, Lexicon};
use callguard::text::mask_personal_data;

#[derive(Parser)]
#[command(
    name = "callguard",
    version,
    about = "Real-time customer-harassment detection for call centres"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate lexicons and run the examples their entries carry.
    Lexicon {
        #[command(subcommand)]
        command: LexiconCommand,
    },
    /// Scan lines of text (one utterance per line) and print the hits as
    /// JSON Lines: a quick look at what the engine sees, and the input of
    /// the corpus evaluation scripts.
    Scan(ScanArgs),
}

#[derive(Subcommand)]
pub enum LexiconCommand {
    /// Check a lexicon folder: syntax, categories, duplicates, exclusions,
    /// and every `match` / `no_match` example.
    Check {
        /// The lexicon folder (holding lexicon.toml).
        dir: PathBuf,
        /// Also list terms that carry no `match` example.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Args)]
pub struct ScanArgs {
    /// Files to read (one utterance per line); `-` or none for stdin.
    pub files: Vec<PathBuf>,
    /// BCP-47 language of the text (e.g. ja, en-US); all languages when absent.
    #[arg(long)]
    pub language: Option<String>,
    /// Whose speech it is.
    #[arg(long, default_value = "customer", value_parser = parse_speaker)]
    pub speaker: Speaker,
    /// Lexicon folder; the embedded lexicons when absent.
    #[arg(long)]
    pub lexicons: Option<PathBuf>,
    /// Treat consecutive lines as consecutive fragments of one speaker
    /// (phrases split across lines are found).
    #[arg(long)]
    pub stream: bool,
}

fn parse_speaker(s: &str) -> Result<Speaker, String> {
    s.parse()
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Lexicon {
            command: LexiconCommand::Check { dir, verbose },
        } => lexicon_check(&dir, verbose),
        Command::Scan(args) => scan(args),
    }
}

/// Loads the lexicon set from `dir`, or the embedded one.
pub fn load_engine(dir: Option<&Path>) -> Result<Engine> {
    let lexicon = match dir {
        Some(dir) => Lexicon::load_dir(dir),
        None => Lexicon::embedded(),
    };
    let lexicon = lexicon.context("loading lexicons")?;
    Ok(Engine::build(lexicon)?)
}

fn lexicon_check(dir: &Path, verbose: bool) -> Result<i32> {
    let lexicon = match Lexicon::load_dir(dir) {
        Ok(lexicon) => lexicon,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let version = lexicon.version.clone();
    let (_, report) = lexicon::check(lexicon)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "lexicon {} (version {version})", dir.display())?;
    for (language, (terms, patterns, examples)) in &report.languages {
        writeln!(
            out,
            "  {language}: {terms} terms, {patterns} patterns, {examples} examples"
        )?;
    }
    if verbose {
        for d in &report.untested {
            writeln!(out, "  note: {d}")?;
        }
    } else if !report.untested.is_empty() {
        writeln!(
            out,
            "  note: {} terms carry no match example (--verbose lists them)",
            report.untested.len()
        )?;
    }
    for failure in &report.failures {
        writeln!(out, "  FAIL {failure}")?;
    }
    if report.passed() {
        writeln!(out, "ok")?;
        Ok(0)
    } else {
        writeln!(out, "{} example(s) failed", report.failures.len())?;
        Ok(1)
    }
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
    start: usize,
    end: usize,
    framing: &'static str,
    targeted: bool,
    /// The term is abusive only when aimed at the agent (`targeted`).
    needs_target: bool,
}

fn scan(args: ScanArgs) -> Result<i32> {
    let engine = load_engine(args.lexicons.as_deref())?;
    let mut scratch = Scratch::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut inputs: Vec<Box<dyn BufRead>> = Vec::new();
    if args.files.is_empty() {
        inputs.push(Box::new(std::io::stdin().lock()));
    }
    for file in &args.files {
        if file.as_os_str() == "-" {
            inputs.push(Box::new(std::io::stdin().lock()));
        } else {
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            inputs.push(Box::new(std::io::BufReader::new(f)));
        }
    }
    let mut line_no = 0;
    let mut carry = None;
    for input in inputs {
        for line in input.lines() {
            let line = line.context("reading input")?;
            line_no += 1;
            let scan = engine.scan(
                &line,
                args.language.as_deref(),
                args.speaker,
                carry.as_ref(),
                &mut scratch,
            );
            let hits = scan
                .hits
                .iter()
                .map(|h| {
                    let term = engine.term(h.term);
                    ScanHit {
                        rule: &term.rule,
                        category: &term.category,
                        severity: h.severity.as_str(),
                        group: term.group.as_deref(),
                        excerpt: mask_personal_data(&line[h.span.clone()]),
                        start: h.span.start,
                        end: h.span.end,
                        framing: match h.framing {
                            Framing::Plain => "plain",
                            Framing::Negated => "negated",
                            Framing::Quoted => "quoted",
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
        bail!("no input lines");
    }
    Ok(0)
}
