//! `callguard lexicon check`: what a lexicon folder loads to, the result of
//! running its examples (`engine::check_examples`), what it would remove from the
//! set in force (`--against`), and what named terms match (`--expand`).
//! `cli.rs` parses the flags; what these print and return is what the
//! command prints and exits with. A lexicon that does not compile is an
//! `io::Error` carrying its message.

use std::io::Write;
use std::path::Path;

use crate::engine::check_examples;
use crate::lexicon::{self, Lexicon};
use crate::text::{normalize, spoken};

/// The whole command: the removal check first (it may refuse), then the
/// check or the expansions.
pub fn run(
    dir: &Path,
    verbose: bool,
    expand: &[String],
    against: Option<&Path>,
    allow_removal: bool,
) -> std::io::Result<i32> {
    if let Some(code) = removal_check(dir, against, allow_removal)? {
        return Ok(code);
    }
    lexicon_check(dir, verbose, expand)
}

/// `lexicon check --against IN_FORCE`: what `dir` would remove. `Some(1)`
/// when it removes something and that is not allowed.
pub fn removal_check(
    dir: &Path,
    in_force: Option<&Path>,
    allow: bool,
) -> std::io::Result<Option<i32>> {
    let Some(in_force) = in_force else {
        return Ok(None);
    };
    let (Ok(new), Ok(old)) = (Lexicon::load_dir(dir), Lexicon::load_dir(in_force)) else {
        return Ok(None); // the full check below reports what does not load
    };
    let removed = new.removed_from(&old);
    if removed.is_empty() {
        return Ok(None);
    }
    let verb = if allow {
        "removes (allowed)"
    } else {
        "error: removes"
    };
    eprintln!(
        "{verb} what {} has: {}",
        in_force.display(),
        removed.join(", ")
    );
    Ok((!allow).then_some(1))
}

pub fn lexicon_check(dir: &Path, verbose: bool, expand: &[String]) -> std::io::Result<i32> {
    let lexicon = match Lexicon::load_dir(dir) {
        Ok(lexicon) => lexicon,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    if !expand.is_empty() {
        return print_expansions(&lexicon, expand);
    }
    let version = lexicon.version.clone();
    let (_, report) = check_examples(lexicon).map_err(std::io::Error::other)?;
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

/// `lexicon check --expand`: what each named term matches, one phrase a line.
pub fn print_expansions(lexicon: &Lexicon, keys: &[String]) -> std::io::Result<i32> {
    let mut out = std::io::stdout().lock();
    let mut missing = 0;
    for key in keys {
        let terms = lexicon.find_terms(key);
        if terms.is_empty() {
            eprintln!("error: no term {key:?} (give an id, language/id or language/category/id)");
            missing += 1;
        }
        for term in terms {
            writeln!(out, "{} ({}, {})", term.rule, term.severity, term.origin)?;
            // An English phrase also matches with its contractions written
            // out (text::spoken): shown under it.
            let list = |out: &mut std::io::StdoutLock,
                        label: &str,
                        phrases: &[lexicon::Located]|
             -> std::io::Result<()> {
                if !phrases.is_empty() {
                    writeln!(out, "  {label} ({}):", phrases.len())?;
                    for p in phrases {
                        writeln!(out, "    {}", p.text)?;
                        let folded = normalize(&p.text);
                        for v in spoken::variants_in(&term.language, folded.as_str()) {
                            writeln!(out, "      also: {v}")?;
                        }
                    }
                }
                Ok(())
            };
            list(&mut out, "patterns", &term.patterns)?;
            if let Some(near) = &term.near {
                for (k, part) in near.parts.iter().enumerate() {
                    list(&mut out, &format!("part {}", k + 1), part)?;
                }
                list(&mut out, "not_near", &near.not_near)?;
                writeln!(
                    out,
                    "  near {} ({}), over {} utterance(s)",
                    near.distance,
                    if near.ordered {
                        "in order"
                    } else {
                        "any order"
                    },
                    near.utterances
                )?;
            }
            list(&mut out, "exclude", &term.exclude)?;
            if let Some(dialogue) = &term.dialogue {
                let names = |list: &[lexicon::Located]| {
                    list.iter()
                        .map(|m| m.text.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if !dialogue.after_agent.is_empty() {
                    writeln!(
                        out,
                        "  alerts within {} s after the agent said: {}",
                        dialogue.seconds,
                        names(&dialogue.after_agent)
                    )?;
                }
                if !dialogue.after_caller.is_empty() {
                    writeln!(
                        out,
                        "  alerts once the caller raised: {}",
                        names(&dialogue.after_caller)
                    )?;
                }
            }
        }
    }
    Ok(if missing > 0 { 1 } else { 0 })
}
