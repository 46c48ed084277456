//! Lexicons: the policy owner's word lists, loaded from TOML and validated
//! before anything is compiled from them.
//!
//! A lexicon set is a folder (`lexicons/` in the repository, embedded in the
//! binary as the default) with a `lexicon.toml` manifest and one folder per
//! language. Loading checks everything that can be checked without matching
//! (unknown category, duplicate id or pattern, a pattern that normalises to
//! nothing, a term swallowed by its own exclusion, bad TOML) and reports all
//! problems at once with file and line; `engine::check_examples` then
//! compiles the engine and runs the examples the entries carry (above this
//! module: running an example needs the engine). An invalid set never
//! becomes an `Engine`, so a reload can never swap a broken one in.

mod error;
pub mod expand;
mod file;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use error::{Diagnostic, LexiconError, Origin};

use crate::category::{self, CategoryKind, Severity, Speaker};
use crate::text::normalize;

/// Longest pattern, in bytes after normalisation. Bounds the carry-over
/// between fragments and keeps patterns phrase-sized.
pub const MAX_PATTERN_BYTES: usize = 120;

/// One lexicon file's text and the name it is reported under.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path relative to the lexicon folder, with `/` separators (`ja/violence.toml`).
    pub path: String,
    pub text: String,
}

/// A pattern, exclusion or example with where it was written.
#[derive(Clone, Debug)]
pub struct Located {
    pub text: String,
    pub origin: Origin,
}

/// A lexicon term: one meaning, several spellings.
#[derive(Clone, Debug)]
pub struct Term {
    /// Language folder (`ja`, `en`, ... or `any`).
    pub language: Arc<str>,
    pub id: String,
    /// `language/category/id`: what alerts quote as `rule`.
    pub rule: Arc<str>,
    pub category: Arc<str>,
    pub kind: CategoryKind,
    pub severity: Severity,
    /// The lexicon set the severity itself (else the policy may override
    /// the category's default).
    pub severity_explicit: bool,
    pub speaker: Speaker,
    pub group: Option<Arc<str>>,
    pub patterns: Vec<Located>,
    pub exclude: Vec<Located>,
    pub standalone: bool,
    pub needs_target: bool,
    /// A proximity rule: the term is its parts near each other, not a phrase.
    pub near: Option<Near>,
    /// A dialogue rule: alerts only after what the agent said, or the
    /// caller did, earlier in the call.
    pub dialogue: Option<Dialogue>,
    pub must_match: Vec<Located>,
    pub must_not_match: Vec<Located>,
    pub origin: Origin,
}

/// A term made of parts that must occur near each other (speech-analytics
/// `NEAR:n`): a harm hint near a reference to the agent's life, a demand
/// verb near the person it is aimed at. Each part is a list of phrases;
/// one phrase of every part must match.
#[derive(Clone, Debug)]
pub struct Near {
    pub parts: Vec<Vec<Located>>,
    /// Largest gap between two consecutive parts: Latin words and CJK
    /// characters each count one.
    pub distance: usize,
    /// The parts must occur in the order they are listed.
    pub ordered: bool,
    /// Final utterances of the speaker the parts may be spread over (1: one).
    pub utterances: u8,
    /// A phrase of these within `distance` of the match cancels it.
    pub not_near: Vec<Located>,
}

impl Near {
    /// The mask with a bit for every part: what a match must have seen.
    pub fn all_parts(&self) -> u8 {
        match self.parts.len() {
            n if n >= 8 => u8::MAX,
            n => (1u8 << n) - 1,
        }
    }
}

/// When a dialogue rule alerts: the agent said one of `after_agent`
/// (agent category ids such as `agent_refusal`, or agent term ids of the
/// same language) within `seconds` before, or the caller already raised
/// one of `after_caller` (harassment categories) at warning or above in
/// this call. A harm hint is a kind word from a friendly caller and a
/// threat from one who just hunted down the agent's name; without the
/// context the hit is kept at `info`.
#[derive(Clone, Debug)]
pub struct Dialogue {
    pub after_agent: Vec<Located>,
    pub seconds: u32,
    pub after_caller: Vec<Located>,
}

/// How a frame changes the hits near it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// "I'm not saying...", 殺すなんて言ってない: downgrade one level.
    Negation,
    /// "he told me...", 〜って言われた: downgrade one level.
    Quotation,
    /// A second-person target (you, お前): the insult is aimed at the agent.
    Target,
    /// What makes a harm word figurative or aimed at no person: pests
    /// (ゴキブリ, wasps), processes, game enemies, one's own heart in an idiom.
    Figurative,
    /// The speaker starts reading out someone else's words ("it says,
    /// quote", "can I read you the voicemail?", 文面を読みます): the rest of
    /// the speaker's turn is reported speech, however long, for
    /// [`Frame::turns`] turns. `window` and `position` do not apply.
    ReadOut,
    /// The reading ends ("end quote", "that was it"): what follows in the
    /// turn is the speaker's own words again.
    ReadOutEnd,
    /// The agent asks for someone else's words ("what did the message
    /// say?", 何て言われたんですか): the caller's next turn reads them out,
    /// as after [`FrameKind::ReadOut`]. Matched in the agent's words only;
    /// `window` and `position` do not apply.
    ReadOutAsked,
    /// A second person that addresses nobody ("I'm telling you", "can you
    /// believe", "thank you"): a target frame it overlaps does not count.
    NotTarget,
    /// Reported words turned on the agent's side: a third person's
    /// intention toward "you", "your yard", "down there" ("my son says he'll
    /// go down your yard and..."). Inside reported speech, after its cue,
    /// it makes the hit relayed at the agent: it keeps its severity.
    Relay,
}

/// Where a frame must stand relative to the hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramePosition {
    Before,
    After,
    Around,
}

/// Context that changes how nearby hits are read.
#[derive(Clone, Debug)]
pub struct Frame {
    pub language: Arc<str>,
    pub id: String,
    pub kind: FrameKind,
    pub position: FramePosition,
    /// Normalised characters allowed between frame and hit.
    pub window: usize,
    /// For [`FrameKind::ReadOut`]: how many of the speaker's turns the
    /// reading lasts, this one included (2 for an announcement answered by
    /// the agent's "go ahead"); 0 for other kinds.
    pub turns: u8,
    /// For [`FrameKind::Quotation`]: the reported words run on beyond
    /// `window` to the end of their sentence, in punctuated text ("He said
    /// we know where you live, ..., you stupid old cow.").
    pub to_sentence_end: bool,
    /// The categories whose hits it frames; every category when empty.
    pub categories: Vec<Arc<str>>,
    pub patterns: Vec<Located>,
    pub must_match: Vec<Located>,
    pub origin: Origin,
}

impl Frame {
    /// Whether the frame reads a hit of `category`.
    pub fn frames_category(&self, category: &str) -> bool {
        self.categories.is_empty() || self.categories.iter().any(|c| &**c == category)
    }
}

/// A validated lexicon set.
#[derive(Clone, Debug)]
pub struct Lexicon {
    /// The manifest's human version and a hash of the content beside it,
    /// `2026.12.2+1a2b3c4d5e6f`: two different rule sets never share a
    /// version, even when a folder lost a language and nobody bumped the
    /// manifest (issue #18, F7).
    pub version: Arc<str>,
    pub terms: Vec<Term>,
    pub frames: Vec<Frame>,
    /// Categories added by the manifest, with their default severity.
    pub extra_categories: Vec<String>,
}

include!(concat!(env!("OUT_DIR"), "/embedded_lexicons.rs"));

/// The manifest's version with a BLAKE3 hash of every source (path and
/// text, in path order) beside it, so the version follows the content; 48
/// bits are plenty to tell sets apart.
fn content_version<'a>(
    manifest: &str,
    sources: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut ordered: Vec<(&str, &str)> = sources.collect();
    ordered.sort_by(|a, b| a.0.cmp(b.0));
    for (path, text) in ordered {
        for part in [path.as_bytes(), text.as_bytes()] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    let hash = hasher.finalize().to_hex();
    format!("{manifest}+{}", &hash.as_str()[..12])
}

impl Lexicon {
    /// The lexicons shipped in the repository, embedded at build time.
    pub fn embedded() -> Result<Lexicon, LexiconError> {
        let sources = EMBEDDED_LEXICONS
            .iter()
            .map(|(path, text)| Source {
                path: (*path).to_owned(),
                text: (*text).to_owned(),
            })
            .collect();
        Lexicon::from_sources(sources)
    }

    /// The version of the embedded lexicons (manifest version and content
    /// hash, as [`Lexicon::version`] would say), without compiling them:
    /// what `--version` prints.
    pub fn embedded_version() -> String {
        let manifest = EMBEDDED_LEXICONS
            .iter()
            .find(|(path, _)| *path == "lexicon.toml")
            .and_then(|(path, text)| {
                file::parse_manifest(&Source {
                    path: (*path).to_owned(),
                    text: (*text).to_owned(),
                })
                .ok()
            })
            .map(|m| m.version)
            .unwrap_or_default();
        content_version(&manifest, EMBEDDED_LEXICONS.iter().copied())
    }

    /// Reads every `*.toml` below `dir` (the manifest and language folders).
    pub fn load_dir(dir: &Path) -> Result<Lexicon, LexiconError> {
        Lexicon::from_sources(Lexicon::read_dir(dir)?)
    }

    /// The files [`Lexicon::load_dir`] parses, in the order it parses
    /// them (by path), not parsed yet: the engine cache's key is their
    /// bytes.
    pub fn read_dir(dir: &Path) -> Result<Vec<Source>, LexiconError> {
        let mut sources = Vec::new();
        collect_sources(dir, dir, &mut sources)?;
        if !sources.iter().any(|s| s.path == "lexicon.toml") {
            return Err(LexiconError::MissingManifest(dir.display().to_string()));
        }
        sources.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(sources)
    }

    /// The embedded files (path, text), in the order
    /// [`Lexicon::embedded`] parses them.
    pub fn embedded_sources() -> impl Iterator<Item = (&'static str, &'static str)> {
        EMBEDDED_LEXICONS.iter().copied()
    }

    /// Parses and validates a lexicon set from its files.
    pub fn from_sources(sources: Vec<Source>) -> Result<Lexicon, LexiconError> {
        let mut diagnostics = Vec::new();
        let manifest = sources.iter().find(|s| s.path == "lexicon.toml");
        let (version, extra_categories) = match manifest {
            Some(source) => match file::parse_manifest(source) {
                Ok(m) => (m.version, m.extra_categories),
                Err(d) => {
                    diagnostics.push(d);
                    (String::new(), Vec::new())
                }
            },
            None => (String::new(), Vec::new()),
        };
        let version = content_version(&version, sources.iter().map(|s| (&*s.path, &*s.text)));
        let mut lexicon = Lexicon {
            version: version.into(),
            terms: Vec::new(),
            frames: Vec::new(),
            extra_categories,
        };
        let term_files: Vec<(&Source, &str)> = sources
            .iter()
            .filter_map(|source| {
                // The manifest, README, policy: not term files.
                let (language, _) = source.path.split_once('/')?;
                source.path.ends_with(".toml").then_some((source, language))
            })
            .collect();
        let mut parsed = parse_files(&term_files, &lexicon.extra_categories);
        for ((source, language), parsed) in term_files.iter().zip(&mut parsed) {
            let origin = Origin {
                file: source.path.clone().into(),
                line: 1,
            };
            if !valid_language(language) {
                diagnostics.push(Diagnostic {
                    origin,
                    message: format!(
                        "folder {language:?} is not a language code (two or three lower-case letters, or \"any\")"
                    ),
                });
                continue;
            }
            match parsed.take().expect("every valid file parsed") {
                Ok(mut parsed) => {
                    lexicon.terms.append(&mut parsed.terms);
                    lexicon.frames.append(&mut parsed.frames);
                    diagnostics.append(&mut parsed.problems);
                }
                Err(d) => diagnostics.push(d),
            }
        }
        diagnostics.extend(lexicon.cross_check());
        if diagnostics.is_empty() {
            Ok(lexicon)
        } else {
            Err(LexiconError::Invalid(diagnostics))
        }
    }

    /// The (language, category) pairs this set has terms for.
    pub fn coverage(&self) -> std::collections::BTreeSet<(String, String)> {
        self.terms
            .iter()
            .map(|t| (t.language.to_string(), t.category.to_string()))
            .collect()
    }

    /// What `self` lacks that `in_force` has: whole languages, then
    /// categories of languages it keeps, as `ja` or `en/violence`. A set
    /// that lost a folder loads cleanly and would silence every term in
    /// it, so reload and `lexicon check --against` refuse it unless told
    /// the removal is meant (`--allow-removal`).
    pub fn removed_from(&self, in_force: &Lexicon) -> Vec<String> {
        let new = self.coverage();
        let languages: std::collections::BTreeSet<&str> =
            new.iter().map(|(l, _)| l.as_str()).collect();
        let mut removed: Vec<String> = Vec::new();
        for (language, category) in in_force.coverage() {
            if new.contains(&(language.clone(), category.clone())) {
                continue;
            }
            if !languages.contains(language.as_str()) {
                if !removed.contains(&language) {
                    removed.push(language);
                }
            } else {
                removed.push(format!("{language}/{category}"));
            }
        }
        removed
    }

    /// Checks that need all files: duplicates and exclusions.
    fn cross_check(&self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        let mut ids: HashMap<(&str, &str), &Origin> = HashMap::new();
        let mut patterns: HashMap<(&str, String), (&str, &Origin)> = HashMap::new();
        // Folded without the offset map, into one reused buffer: this runs
        // over every written-out phrase at every start-up.
        let mut buffer = crate::text::Normalized::default();
        let mut fold = |text: &str| -> String {
            crate::text::normalize::normalize_text_with(text, &mut buffer, &mut ());
            buffer.as_str().to_owned()
        };
        for term in &self.terms {
            let exclusions: Vec<String> = term.exclude.iter().map(|x| fold(&x.text)).collect();
            if let Some(first) = ids.insert((&term.language, &term.id), &term.origin) {
                problems.push(Diagnostic {
                    origin: term.origin.clone(),
                    message: format!(
                        "duplicate term id {:?} in language {} (first at {first})",
                        term.id, term.language
                    ),
                });
            }
            for pattern in &term.patterns {
                let folded = fold(&pattern.text);
                if folded.is_empty() {
                    problems.push(Diagnostic {
                        origin: pattern.origin.clone(),
                        message: format!(
                            "pattern {:?} of term {:?} normalises to nothing",
                            pattern.text, term.id
                        ),
                    });
                    continue;
                }
                if folded.len() > MAX_PATTERN_BYTES {
                    problems.push(Diagnostic {
                        origin: pattern.origin.clone(),
                        message: format!(
                            "pattern {:?} is longer than {MAX_PATTERN_BYTES} bytes after normalisation: split it into shorter phrases",
                            pattern.text
                        ),
                    });
                }
                if let Some(filler) = dropped_filler(&pattern.text, &mut fold) {
                    problems.push(Diagnostic {
                        origin: pattern.origin.clone(),
                        message: format!(
                            "pattern {:?} of term {:?} holds {filler:?}, a filler the normaliser drops from transcripts: it matches as if the word were not there; write the phrase without it",
                            pattern.text, term.id
                        ),
                    });
                }
                for (exclusion, excluded) in term.exclude.iter().zip(&exclusions) {
                    if !excluded.is_empty() && folded.contains(excluded.as_str()) {
                        problems.push(Diagnostic {
                            origin: exclusion.origin.clone(),
                            message: format!(
                                "exclusion {:?} swallows pattern {:?} of term {:?}: every hit would be cancelled",
                                exclusion.text, pattern.text, term.id
                            ),
                        });
                    }
                }
                match patterns.entry((&term.language, folded)) {
                    // Two spellings of one template that fold alike
                    // ([won't|wont]) are one phrase of the same term.
                    std::collections::hash_map::Entry::Occupied(first)
                        if first.get().0 == term.id => {}
                    std::collections::hash_map::Entry::Occupied(first) => {
                        let (first_id, first_origin) = first.get();
                        problems.push(Diagnostic {
                            origin: pattern.origin.clone(),
                            message: format!(
                                "duplicate pattern {:?} (term {:?}; same after normalisation as a pattern of term {first_id:?} at {first_origin})",
                                pattern.text, term.id
                            ),
                        });
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert((&term.id, &pattern.origin));
                    }
                }
            }
            if let Some(near) = &term.near {
                for phrase in near.parts.iter().flatten().chain(&near.not_near) {
                    let folded = fold(&phrase.text);
                    if folded.is_empty() || folded.len() > MAX_PATTERN_BYTES {
                        problems.push(Diagnostic {
                            origin: phrase.origin.clone(),
                            message: format!(
                                "phrase {:?} of term {:?} normalises to nothing or to more than {MAX_PATTERN_BYTES} bytes",
                                phrase.text, term.id
                            ),
                        });
                    }
                }
            }
            if let Some(dialogue) = &term.dialogue {
                for marker in &dialogue.after_agent {
                    let category = matches!(
                        self.category(&marker.text),
                        Some((CategoryKind::AgentMarker, ..))
                    );
                    let agent_term = self.terms.iter().any(|t| {
                        t.id == marker.text
                            && t.speaker == Speaker::Agent
                            && (t.language == term.language || &*t.language == ANY_LANGUAGE)
                    });
                    if !category && !agent_term {
                        problems.push(Diagnostic {
                            origin: marker.origin.clone(),
                            message: format!(
                                "after_agent {:?} of term {:?} is neither an agent category nor an agent term of language {}",
                                marker.text, term.id, term.language
                            ),
                        });
                    }
                }
                for category in &dialogue.after_caller {
                    if !matches!(
                        self.category(&category.text),
                        Some((CategoryKind::Harassment, ..))
                    ) {
                        problems.push(Diagnostic {
                            origin: category.origin.clone(),
                            message: format!(
                                "after_caller {:?} of term {:?} is not a harassment category",
                                category.text, term.id
                            ),
                        });
                    }
                }
            }
            for (exclusion, excluded) in term.exclude.iter().zip(&exclusions) {
                if excluded.is_empty() {
                    problems.push(Diagnostic {
                        origin: exclusion.origin.clone(),
                        message: format!("exclusion {:?} normalises to nothing", exclusion.text),
                    });
                }
            }
        }
        let mut frame_ids: HashMap<(&str, &str), &Origin> = HashMap::new();
        for frame in &self.frames {
            if let Some(first) = frame_ids.insert((&frame.language, &frame.id), &frame.origin) {
                problems.push(Diagnostic {
                    origin: frame.origin.clone(),
                    message: format!(
                        "duplicate frame id {:?} in language {} (first at {first})",
                        frame.id, frame.language
                    ),
                });
            }
            for pattern in &frame.patterns {
                if normalize(&pattern.text).is_empty() {
                    problems.push(Diagnostic {
                        origin: pattern.origin.clone(),
                        message: format!(
                            "pattern {:?} of frame {:?} normalises to nothing",
                            pattern.text, frame.id
                        ),
                    });
                }
            }
        }
        problems
    }

    /// Terms named by `key`: an id (in any language), `language/id`, or the
    /// rule name `language/category/id`.
    pub fn find_terms(&self, key: &str) -> Vec<&Term> {
        self.terms
            .iter()
            .filter(|t| key == t.id || *key == *t.rule || key == format!("{}/{}", t.language, t.id))
            .collect()
    }

    /// The languages that have a folder, sorted (`any` excluded).
    pub fn languages(&self) -> Vec<&str> {
        let mut langs: Vec<&str> = self
            .terms
            .iter()
            .map(|t| &*t.language)
            .chain(self.frames.iter().map(|f| &*f.language))
            .filter(|l| *l != ANY_LANGUAGE)
            .collect();
        langs.sort_unstable();
        langs.dedup();
        langs
    }

    /// Kind, default severity and speaker of a category id known to this set.
    pub fn category(&self, id: &str) -> Option<(CategoryKind, Severity, Speaker)> {
        category::builtin(id).or_else(|| {
            self.extra_categories.iter().any(|c| c == id).then_some((
                CategoryKind::Harassment,
                Severity::Warning,
                Speaker::Customer,
            ))
        })
    }
}

/// The folder of terms matched whatever the fragment's language.
pub const ANY_LANGUAGE: &str = "any";

/// Parses the term files of valid language folders (`None` for the others),
/// in order, on as many threads as there are cores: the files are
/// independent, and parsing them was most of loading the lexicons, which
/// every command does at start-up (BENCHMARKS.md, "Start-up").
fn parse_files(
    files: &[(&Source, &str)],
    extra_categories: &[String],
) -> Vec<Option<Result<file::ParsedFile, Diagnostic>>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    // The largest first, so that the threads finish together.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].0.text.len()));
    let work = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&i) = order.get(k) else {
                return done;
            };
            let (source, language) = files[i];
            if valid_language(language) {
                done.push((i, file::parse_terms(source, language, extra_categories)));
            }
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results: Vec<Option<Result<file::ParsedFile, Diagnostic>>> =
        (0..files.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(files.len()))
            .map(|_| scope.spawn(work))
            .collect();
        let mine = work();
        for (i, result) in helpers
            .into_iter()
            .flat_map(|h| h.join().expect("parsing a lexicon file panicked"))
            .chain(mine)
        {
            results[i] = Some(result);
        }
    });
    results
}

fn valid_language(lang: &str) -> bool {
    lang == ANY_LANGUAGE
        || ((2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase()))
}

fn collect_sources(root: &Path, dir: &Path, out: &mut Vec<Source>) -> Result<(), LexiconError> {
    let io = |path: &Path, source| LexiconError::Io {
        path: path.display().to_string(),
        source,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            collect_sources(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(Source {
                path: relative,
                text,
            });
        }
    }
    Ok(())
}

/// A word of a several-word phrase that folds to nothing on its own: a
/// filler (um, er, えー) that the normaliser drops when it stands alone, so
/// "the er form" would match "the form".
fn dropped_filler<'a>(phrase: &'a str, fold: &mut impl FnMut(&str) -> String) -> Option<&'a str> {
    let mut words = phrase
        .split(|c: char| c.is_whitespace() || matches!(c, '、' | '。' | ',' | '.' | '!' | '?'))
        .filter(|w| w.chars().any(char::is_alphanumeric));
    // Runs over every phrase at start-up: no allocation, and only short
    // words (fillers are) are folded.
    let mut is_filler = |w: &str| w.chars().count() <= 4 && fold(w).is_empty();
    let first = words.next()?;
    let second = words.next()?;
    [first, second]
        .into_iter()
        .chain(words)
        .find(|w| is_filler(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> Vec<Source> {
        let mut v = vec![Source {
            path: "lexicon.toml".into(),
            text: "version = \"t1\"\n".into(),
        }];
        v.extend(files.iter().map(|(p, t)| Source {
            path: (*p).into(),
            text: (*t).into(),
        }));
        v
    }

    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        match Lexicon::from_sources(sources(files)) {
            Ok(_) => vec![],
            Err(LexiconError::Invalid(d)) => d.iter().map(|d| d.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn loads_a_valid_file() {
        let lex = Lexicon::from_sources(sources(&[(
            "en/violence.toml",
            "category = \"violence\"\n[[term]]\nid = \"kill\"\npatterns = [\"I'll kill you\"]\n",
        )]))
        .unwrap();
        // The manifest's version, and a hash of the content beside it.
        let (human, hash) = lex.version.split_once('+').unwrap();
        assert_eq!(human, "t1");
        assert!(hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(&*lex.terms[0].rule, "en/violence/kill");
        assert_eq!(lex.terms[0].severity, Severity::Critical);
        assert_eq!(lex.languages(), vec!["en"]);
    }

    /// Files are parsed on several threads, the largest first; terms,
    /// frames and problems still come in the order of the files.
    #[test]
    fn files_parsed_in_parallel_keep_their_order() {
        let term = |id: &str, padding: usize| {
            format!(
                "category = \"violence\"\n{}[[term]]\nid = \"{id}\"\npatterns = [\"{id} you\"]\n",
                "# padding\n".repeat(padding)
            )
        };
        let files: Vec<(String, String)> = (0..12)
            .map(|k| (format!("en/f{k:02}.toml"), term(&format!("t{k}"), k * 50)))
            .collect();
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let lex = Lexicon::from_sources(sources(&borrowed)).unwrap();
        let ids: Vec<&str> = lex.terms.iter().map(|t| t.id.as_str()).collect();
        let want: Vec<String> = (0..12).map(|k| format!("t{k}")).collect();
        assert_eq!(ids, want);
        // Problems: a bad folder, then syntax errors, each where its file is.
        let mut bad = borrowed.clone();
        bad.insert(0, ("EN/x.toml", "category = \"violence\"\n"));
        bad[3].1 = "[[term]\n";
        bad[9].1 = "[[term]\n";
        let got = problems(&bad);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("EN/x.toml:1: folder"), "{got:?}");
        assert!(got[1].starts_with("en/f02.toml:1: invalid TOML"), "{got:?}");
        assert!(got[2].starts_with("en/f08.toml:1: invalid TOML"), "{got:?}");
    }

    /// The agent may speak a caller's category (she names it); the caller
    /// may not speak an agent's marker.
    #[test]
    fn only_the_agent_crosses_speakers_and_only_to_name_the_caller() {
        let file = |speaker: &str, category: &str| {
            format!("speaker = \"{speaker}\"\ncategory = \"{category}\"\n[[term]]\nid = \"t\"\npatterns = [\"that is a threat\"]\n")
        };
        assert!(problems(&[("en/a.toml", &file("agent", "threat"))]).is_empty());
        assert!(problems(&[("en/a.toml", &file("agent", "self_harm"))]).is_empty());
        let got = problems(&[("en/a.toml", &file("customer", "agent_warning"))]);
        assert!(got[0].contains("is for agent speech"), "{got:?}");
        let got = problems(&[("en/a.toml", &file("agent", "legal_mention"))]);
        assert!(got[0].contains("is for customer speech"), "{got:?}");
    }

    #[test]
    fn versions_follow_content_and_removals_are_named() {
        let term = |id: &str| {
            format!("category = \"violence\"\n[[term]]\nid = \"{id}\"\npatterns = [\"{id} you\"]\n")
        };
        let both = Lexicon::from_sources(sources(&[
            ("en/violence.toml", &term("kill")),
            ("ja/violence.toml", &term("korosu")),
        ]))
        .unwrap();
        let en = Lexicon::from_sources(sources(&[("en/violence.toml", &term("kill"))])).unwrap();
        assert_ne!(both.version, en.version, "same manifest, different content");
        assert_eq!(en.removed_from(&both), vec!["ja".to_owned()]);
        assert!(both.removed_from(&en).is_empty());
    }

    #[test]
    fn reports_each_problem_with_file_and_line() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "unknown_category",
                "[[term]]\nid = \"x\"\ncategory = \"rudeness\"\npatterns = [\"x\"]\n",
                "en/a.toml:3: unknown category \"rudeness\"",
            ),
            (
                "frame_unknown_category",
                "[[frame]]\nid = \"f\"\nkind = \"quotation\"\nposition = \"before\"\ncategories = [\"rudeness\"]\npatterns = [\"the\"]\n",
                "en/a.toml:5: frame \"f\": unknown category \"rudeness\"",
            ),
            (
                "bad_syntax",
                "[[term]\nid = 1\n",
                "en/a.toml:1: invalid TOML",
            ),
            (
                "unknown_field",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npaterns = [\"x\"]\n",
                "en/a.toml:4: invalid TOML",
            ),
            (
                "empty_pattern",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"!!!\"]\n",
                "en/a.toml:4: pattern \"!!!\" of term \"x\" normalises to nothing",
            ),
            (
                "filler_in_phrase",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"fill the er form\"]\n",
                "en/a.toml:4: pattern \"fill the er form\" of term \"x\" holds \"er\", a filler the normaliser drops",
            ),
            (
                "swallowed",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"kill you\"]\nexclude = [\"kill\"]\n",
                "en/a.toml:5: exclusion \"kill\" swallows pattern \"kill you\"",
            ),
            (
                "duplicate_pattern",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"Kill you\"]\n[[term]]\nid = \"y\"\npatterns = [\"kill  you!\"]\n",
                "en/a.toml:7: duplicate pattern \"kill  you!\"",
            ),
            (
                "duplicate_id",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"a b\"]\n[[term]]\nid = \"x\"\npatterns = [\"c d\"]\n",
                "en/a.toml:5: duplicate term id \"x\"",
            ),
            (
                "signal_above_info",
                "category = \"demand\"\n[[term]]\nid = \"x\"\nseverity = \"critical\"\npatterns = [\"refund\"]\n",
                "en/a.toml:4: category \"demand\" is a signal",
            ),
            (
                "one_part",
                "category = \"threat\"\n[[term]]\nid = \"x\"\nparts = [[\"a\"]]\n",
                "en/a.toml:3: term \"x\": a rule has 2 to 8 parts, not 1",
            ),
            (
                "near_out_of_range",
                "category = \"threat\"\n[[term]]\nid = \"x\"\nparts = [[\"a\"], [\"b\"]]\nnear = 0\n",
                "en/a.toml:5: near must be between 1 and 60",
            ),
            (
                "not_near_without_parts",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"a b\"]\nnot_near = [\"c\"]\n",
                "en/a.toml:3: term \"x\": not_near applies to a term with parts",
            ),
            (
                "patterns_and_parts",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"a b\"]\nparts = [[\"a\"], [\"b\"]]\n",
                "en/a.toml:3: term \"x\" has both patterns and parts",
            ),
            (
                "unknown_agent_marker",
                "category = \"personal_attack\"\n[[term]]\nid = \"x\"\npatterns = [\"your name\"]\nafter_agent = [\"agent_refusl\"]\n",
                "en/a.toml:5: after_agent \"agent_refusl\" of term \"x\" is neither",
            ),
            (
                "after_caller_not_harassment",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"be careful\"]\nafter_caller = [\"agent_refusal\"]\n",
                "en/a.toml:5: after_caller \"agent_refusal\" of term \"x\" is not a harassment category",
            ),
            (
                "broken_template",
                "category = \"threat\"\n[[term]]\nid = \"x\"\npatterns = [\"[a|b\"]\n",
                "en/a.toml:4: unclosed [",
            ),
            (
                "bad_id",
                "category = \"threat\"\n[[term]]\nid = \"Bad Id\"\npatterns = [\"x\"]\n",
                "en/a.toml:3: term id \"Bad Id\"",
            ),
        ];
        for (name, text, want) in cases {
            let found = problems(&[("en/a.toml", text)]);
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "case {name}: want {want:?}, got {found:?}"
            );
        }
    }

    #[test]
    fn rejects_non_language_folder() {
        let found = problems(&[("English/a.toml", "category = \"threat\"\n")]);
        assert!(found[0].contains("not a language code"), "{found:?}");
    }
}
