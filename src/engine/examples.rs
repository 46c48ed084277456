//! A lexicon's examples run through the engine it compiles to: every
//! `match` / `no_match` example of a term and every `match` of a frame,
//! like unit tests a policy owner writes without Rust. `callguard lexicon
//! check` (`tools::lexicon_check`) prints the report; the shipped-lexicon
//! test and the `lexicon_parse` fuzz check run it too.
//!
//! It lives here, not in `lexicon`, because running an example needs a
//! compiled `Engine`: `lexicon` sits below `engine` (src/layers.rs) and
//! only validates what can be checked without matching.

use std::collections::BTreeMap;

use super::{Engine, Scratch, TermId};
use crate::lexicon::{Diagnostic, Lexicon, LexiconError, ANY_LANGUAGE};

/// What a check found: counts per language and every failed example.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Per language: (terms, patterns, examples run).
    pub languages: BTreeMap<String, (usize, usize, usize)>,
    pub failures: Vec<Diagnostic>,
    /// Terms that carry no `match` example: not an error, but untested policy.
    pub untested: Vec<Diagnostic>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Builds the engine from `lexicon` and runs its examples.
pub fn check_examples(lexicon: Lexicon) -> Result<(Engine, CheckReport), LexiconError> {
    let engine = Engine::build(lexicon)?;
    let report = run_examples(&engine);
    Ok((engine, report))
}

fn run_examples(engine: &Engine) -> CheckReport {
    let mut report = CheckReport::default();
    let mut scratch = Scratch::default();
    let lexicon = engine.lexicon();
    for (index, term) in lexicon.terms.iter().enumerate() {
        let id = TermId(index as u32);
        let language = (&*term.language != ANY_LANGUAGE).then_some(&*term.language);
        let counts = report
            .languages
            .entry(term.language.to_string())
            .or_default();
        counts.0 += 1;
        counts.1 += term.patterns.len()
            + term
                .near
                .as_ref()
                .map_or(0, |n| n.parts.iter().map(Vec::len).sum::<usize>());
        counts.2 += term.must_match.len() + term.must_not_match.len();
        let found = |text: &str, scratch: &mut Scratch| {
            engine
                .matching_terms(text, language, term.speaker, scratch)
                .contains(&id)
        };
        for example in &term.must_match {
            if !found(&example.text, &mut scratch) {
                report.failures.push(Diagnostic {
                    origin: example.origin.clone(),
                    message: format!(
                        "term {:?} does not match its example {:?}",
                        term.id, example.text
                    ),
                });
            }
        }
        for example in &term.must_not_match {
            if found(&example.text, &mut scratch) {
                report.failures.push(Diagnostic {
                    origin: example.origin.clone(),
                    message: format!(
                        "term {:?} matches {:?}, listed under no_match",
                        term.id, example.text
                    ),
                });
            }
        }
        if term.must_match.is_empty() {
            report.untested.push(Diagnostic {
                origin: term.origin.clone(),
                message: format!("term {:?} carries no match example", term.id),
            });
        }
    }
    for (index, frame) in lexicon.frames.iter().enumerate() {
        let language = (&*frame.language != ANY_LANGUAGE).then_some(&*frame.language);
        report
            .languages
            .entry(frame.language.to_string())
            .or_default()
            .2 += frame.must_match.len();
        for example in &frame.must_match {
            if !engine
                .frames_in(&example.text, language, &mut scratch)
                .contains(&index)
            {
                report.failures.push(Diagnostic {
                    origin: example.origin.clone(),
                    message: format!(
                        "frame {:?} is not found in its example {:?}",
                        frame.id, example.text
                    ),
                });
            }
        }
    }
    report
}
