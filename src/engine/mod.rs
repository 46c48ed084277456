//! The detection engine: a lexicon compiled into Aho-Corasick automata,
//! shared read-only by every call (`Arc<Engine>`), turning one fragment of
//! speech into term hits.
//!
//! Decisions:
//! - **One DFA per language**, each holding that language's patterns plus the
//!   `any` folder's. Scoping at compile time (rather than filtering hits)
//!   keeps Portuguese "cu" out of English "customer" at no run-time cost,
//!   and keeps each DFA small enough to stay in cache.
//! - **A fragment with no language is scanned by every language's DFA**,
//!   stepped together, their matches merged into the order one DFA of every pattern
//!   would report them in ([`Engine::union_raw`]). That DFA was the largest
//!   by far (207 MB, ~0.2 s to build, the critical path of `serve`'s
//!   start-up; BENCHMARKS.md) for the rarest kind of fragment.
//! - **Standard (overlapping) match semantics, stepped by hand.** Terms,
//!   exclusions and frames share one automaton and may overlap ("ところす"
//!   must be seen together with "ころす" to cancel it). Leftmost-longest would
//!   hide one of them. Stepping the DFA ourselves (`next_state`, `dense.rs`)
//!   also lets the state carry over to the next fragment ([`Carry`]), and
//!   lets it step over each normalised byte as the normaliser produces it
//!   (`ScanSink`), one pass instead of two: the automaton's table lookups
//!   overlap with the folding work (BENCHMARKS.md).
//! - **Characters, not bytes**: the automata read one code (`alphabet.rs`)
//!   per folded character (one symbol for the characters used most in a
//!   language's patterns, two for the rest, one shared symbol for every
//!   character in no pattern), so a kana is one step instead of three.
//! - **The offset map is built only for a hit.** Fragments are folded
//!   without it; the few with a hit are folded again with it for the
//!   evidence span.
//! - **Word boundaries are checked after the match**, not encoded in the
//!   patterns: Latin patterns need a non-word character (or the fragment
//!   edge) on both sides, CJK patterns match anywhere, and `standalone` CJK
//!   terms need a non-CJK neighbour or a dropped separator.
//! - Exclusions cancel a hit of their own term that they overlap; negation
//!   and quotation frames downgrade it one severity level; target frames mark
//!   it as aimed at the agent.
//! - **`not_near` phrases stay out of the automata.** They only matter
//!   around a completed proximity chain, which is rare, yet they were most
//!   of the automaton's matches (62 % of raw matches on the bench stream):
//!   each is looked for by substring search in the few bytes around a chain
//!   when one completes ([`Engine::not_near_occurrences`]).

mod alphabet;
mod cache;
mod carry;
mod dense;
mod examples;

use std::cell::OnceCell;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use aho_corasick::automaton::StateID;
use aho_corasick::Anchored;

use alphabet::{split, Alphabet};
pub use cache::{default_dir as default_cache_dir, CacheError, CACHE_DIR_ENV};
pub use carry::Carry;
use carry::{Mark, SeamPart, MAX_MARKS, MAX_SEAM_PARTS, TAIL_BYTES};
use dense::Dfa;
pub use examples::{check_examples, CheckReport};

use crate::category::{Severity, Speaker};
use crate::lexicon::{FrameKind, FramePosition, Lexicon, LexiconError, Term, ANY_LANGUAGE};
use crate::text::normalize::{decode, normalize_text_with, FoldSink};
use crate::text::{
    class_of, closes_sentence, normalize_into, reported_quotes, sentence_ends, spoken, CharClass,
    Normalized,
};

/// Index of a term in [`Engine::term`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TermId(pub u32);

/// How the words around a hit change its reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Said plainly.
    Plain,
    /// Inside a negation ("I'm not saying I'll...", 殺すなんて言ってない).
    Negated,
    /// Reported speech ("he told me he'd...", 〜って言われた).
    Quoted,
    /// Aimed at no person: a pest, a process, a game enemy, an idiom
    /// ("kill every last wasp", 心臓が止まるかと思った).
    Figurative,
}

/// One lexicon term found in a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub term: TermId,
    /// Byte range of the words in the original fragment text. When the
    /// phrase began in the previous fragment (`continued`), it starts at
    /// the fragment's first word.
    pub span: Range<usize>,
    /// The phrase began in the speaker's previous fragment.
    pub continued: bool,
    /// The term's severity as said here: framed ([`Framing::severity`]),
    /// and `info` for a dialogue term (`after_agent`, `after_caller`), which only the call
    /// can decide.
    pub severity: Severity,
    pub framing: Framing,
    /// A second-person target (you, お前) is near: aimed at the agent.
    pub targeted: bool,
    /// Quoted words relayed at the agent: a second-person target beyond the
    /// reporting cue ("he said he'll burn it down, tell your boss").
    pub addressed: bool,
}

impl Framing {
    /// The severity of a hit of a `base`-severity term said this way. A
    /// negation costs one level; reported speech and figurative words drop
    /// to `info` (seen, not alerting) unless they are aimed at the agent
    /// (`addressed`: relayed at them, or a target near the figurative
    /// words), when the threat is as real as if the caller said it plainly.
    pub fn severity(self, base: Severity, addressed: bool) -> Severity {
        match self {
            Framing::Plain => base,
            Framing::Negated => base.downgraded(),
            Framing::Quoted | Framing::Figurative if addressed => base,
            Framing::Quoted | Framing::Figurative => Severity::Info,
        }
    }
}

/// The result of scanning one fragment.
#[derive(Clone, Debug)]
pub struct Scan {
    pub hits: Vec<Hit>,
    /// Incomplete proximity terms that may complete in a later utterance.
    pub sightings: Vec<Sighting>,
    /// The state to continue from with this speaker's next fragment, if this
    /// one is final.
    pub carry: Carry,
    /// The agent asked for someone else's words
    /// ([`FrameKind::ReadOutAsked`]): the caller's next turn reads them out.
    pub asks_for_words: bool,
}

/// Reusable buffers for scanning: one per thread or task, so the hot path
/// does not allocate once they have grown.
#[derive(Default)]
pub struct Scratch {
    normalized: Normalized,
    /// The same text with its offset map, folded again for a hit's span.
    mapped: Normalized,
    raw: Vec<RawMatch>,
    candidates: Vec<Candidate>,
    parts: Vec<PartSeen>,
    /// Parts of one-utterance proximity terms left incomplete: the carry
    /// keeps those near the end for the speaker's next final.
    seam: Vec<PartSeen>,
    read_out: Vec<(i64, i64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternKind {
    Term,
    Exclusion,
    Frame,
    /// A phrase of one part of a proximity term (`PatternInfo::part`).
    Part,
    /// A `not_near` phrase of a proximity term: kept in
    /// `Engine::not_near`, never in an automaton.
    NotNear,
}

#[derive(Clone, Copy, Debug)]
struct PatternInfo {
    kind: PatternKind,
    /// Term or frame index.
    owner: u32,
    /// The pattern starts / ends with a Latin word character: a word
    /// boundary is required there.
    word_left: bool,
    word_right: bool,
    /// Length of the folded pattern in bytes (the automaton counts
    /// symbols, see [`Alphabet`]).
    len: u32,
    /// Which part of its proximity term a `Part` phrase belongs to.
    part: u8,
}

/// Every pattern's folded text, end to end in one string: `texts[i]` is
/// pattern `i`'s. One allocation where a `Vec<String>` made one per
/// pattern (~72,000); the engine cache reads it back as one string and a
/// list of ends (BENCHMARKS.md, "Start-up without a copy").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Texts {
    all: String,
    /// Where each text ends in `all`; text `i` starts where `i - 1` ends.
    ends: Vec<u32>,
}

impl Texts {
    fn push(&mut self, text: &str) {
        self.all.push_str(text);
        let end = u32::try_from(self.all.len()).expect("pattern texts under 4 GiB");
        self.ends.push(end);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// From what [`Texts::parts`] gave: `None` unless the ends rise, stay
    /// in `all` and fall on character boundaries (a damaged cache file).
    fn from_parts(all: String, ends: Vec<u32>) -> Option<Texts> {
        let mut from = 0;
        for &end in &ends {
            let end = end as usize;
            if end < from || !all.is_char_boundary(end) {
                return None;
            }
            from = end;
        }
        Some(Texts { all, ends })
    }

    fn parts(&self) -> (&str, &[u32]) {
        (&self.all, &self.ends)
    }
}

impl std::ops::Index<usize> for Texts {
    type Output = str;

    fn index(&self, i: usize) -> &str {
        let from = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        &self.all[from..self.ends[i] as usize]
    }
}

/// An automaton's pattern ids, and the automaton once compiled.
struct AutomatonSlot {
    /// Indices in `Engine::patterns`, in order.
    ids: Vec<u32>,
    compiled: OnceLock<LanguageAutomaton>,
}

struct LanguageAutomaton {
    /// Over [`Alphabet`] codes of the folded text, not its bytes.
    dfa: Dfa,
    alphabet: Alphabet,
    /// Automaton pattern id → index in `Engine::patterns`.
    patterns: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
struct RawMatch {
    pattern: u32,
    /// Byte positions in the stream: 0 is the start of this fragment's
    /// normalised text; negative positions lie in the previous fragment.
    start: i64,
    end: i64,
}

/// A phrase of a proximity term's part, found in this fragment.
#[derive(Clone, Copy, Debug)]
struct PartSeen {
    term: u32,
    part: u8,
    start: i64,
    end: i64,
}

/// Parts of a proximity term that may span utterances, seen in one final
/// fragment without completing it there. The call keeps them for the
/// speaker's next utterances ([`crate::lexicon::Near::utterances`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub term: TermId,
    /// Bit k set: part k was seen.
    pub parts: u8,
    /// Byte range of the parts' words in the original fragment text.
    pub span: Range<usize>,
    /// Seen while the speaker was reading out someone else's words.
    pub reported: bool,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    term: u32,
    start: i64,
    end: i64,
    framing: Framing,
    targeted: bool,
    addressed: bool,
}

/// A compiled lexicon set. Build once, share by `Arc`, scan from any thread.
pub struct Engine {
    /// Unique per compiled engine: a carry from another engine (before a
    /// reload) is never stepped through this one's automata.
    generation: u64,
    /// Where compiled automata are loaded from and stored
    /// ([`Engine::load`]); none for an engine built in-process.
    cache: Option<cache::EngineCache>,
    lexicon: Lexicon,
    patterns: Vec<PatternInfo>,
    /// Every pattern's folded text, kept to compile an automaton on demand.
    texts: Texts,
    /// The folded `not_near` phrases, searched only around a completed
    /// proximity chain; `not_near_of[term]` is the term's range of them.
    not_near: Vec<NotNear>,
    not_near_of: Vec<Range<u32>>,
    /// One per language, then `any_only`; each compiled when a command
    /// first needs it ([`Engine::prepare`]) or all at once
    /// ([`Engine::build`]).
    automata: Vec<AutomatonSlot>,
    /// Each language folder's automaton, sorted by language: a few
    /// entries, looked through per fragment.
    by_language: Vec<(String, u32)>,
    /// Automaton for a language with no folder: the `any` terms only.
    any_only: u32,
    /// The automata a fragment with no language is scanned by: every
    /// language's (each holds the `any` patterns too), or `any_only` when
    /// the set has no language folder. Together they hold every pattern.
    union: Vec<u32>,
}

/// A fresh [`Engine::generation`].
fn next_generation() -> u64 {
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The automaton index of a fragment with no language: [`Engine::union`],
/// not one automaton.
const ALL: u32 = u32::MAX;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("version", &self.lexicon.version)
            .field("terms", &self.lexicon.terms.len())
            .field("patterns", &self.patterns.len())
            .field(
                "languages",
                &self.by_language.iter().map(|(l, _)| l).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Engine {
    /// The engine of the lexicons in `dir` (the embedded ones when
    /// `None`), with no automaton compiled yet, as [`Engine::build_lazy`]
    /// gives it — but through the cache in `cache_dir` when one is given
    /// ([`default_cache_dir`]): a set compiled before under the same key
    /// (its files' bytes and this build) is read back instead of parsed,
    /// folded and compiled again, its automata too when first needed.
    /// The cache never fails a load nor changes an answer: a file that is
    /// missing, damaged or stale is ignored (logged at debug), and the
    /// engine built and stored as without one.
    pub fn load(dir: Option<&Path>, cache_dir: Option<&Path>) -> Result<Engine, LexiconError> {
        let sources = match dir {
            Some(dir) => Some(Lexicon::read_dir(dir)?),
            None => None,
        };
        let cache = cache_dir.map(|cache_dir| match &sources {
            Some(sources) => cache::EngineCache::new(
                cache_dir,
                sources.iter().map(|s| (s.path.as_str(), s.text.as_str())),
            ),
            None => cache::EngineCache::new(cache_dir, Lexicon::embedded_sources()),
        });
        if let Some(cache) = &cache {
            match cache.load_engine() {
                Ok(mut engine) => {
                    engine.cache = Some(cache.clone());
                    return Ok(engine);
                }
                Err(e) => tracing::debug!("engine cache not used: {e}"),
            }
        }
        let lexicon = match sources {
            Some(sources) => Lexicon::from_sources(sources)?,
            None => Lexicon::embedded()?,
        };
        let mut engine = Engine::build_lazy(lexicon)?;
        if let Some(cache) = cache {
            if let Err(e) = cache.store_engine(&engine) {
                tracing::debug!("engine cache not written: {e}");
            }
            engine.cache = Some(cache);
        }
        Ok(engine)
    }

    /// Compiles a validated lexicon, every automaton at once (on as many
    /// threads as there are cores): what `serve` and a reload use, so no
    /// fragment ever waits for a compile and a set that cannot compile is
    /// refused before it replaces the one in force.
    pub fn build(lexicon: Lexicon) -> Result<Engine, LexiconError> {
        let engine = Engine::build_lazy(lexicon)?;
        engine.prepare_all()?;
        Ok(engine)
    }

    /// A validated lexicon with no automaton compiled yet: a command that
    /// knows its languages compiles only theirs ([`Engine::prepare`]);
    /// compiling every language's automaton was most of a command's
    /// start-up (BENCHMARKS.md, "Start-up").
    pub fn build_lazy(lexicon: Lexicon) -> Result<Engine, LexiconError> {
        // Every pattern once, normalised, with what it belongs to.
        let mut patterns = Vec::new();
        let mut texts = Texts::default();
        let mut languages: Vec<Arc<str>> = Vec::new();
        let mut not_near = Vec::new();
        let mut not_near_of = Vec::with_capacity(lexicon.terms.len());
        let mut buffer = Normalized::default();
        // `add` holds `buffer`; the not_near phrases fold in their own.
        let mut spare = Normalized::default();
        // An English phrase's spoken variants ("you're" / "you are") go in
        // beside it with the same owner. A variant a term also lists as it
        // is goes in twice: the two matches are one hit, as any overlap of
        // one term's matches is (checking every phrase for a twin cost a
        // tenth of start-up).
        let mut add = |kind, owner: usize, part: u8, language: &Arc<str>, text: &str| {
            let Some((info, folded)) = fold_pattern(&mut buffer, kind, owner, part, text) else {
                return;
            };
            let others = spoken::variants_in(language, &folded);
            patterns.push(info);
            texts.push(&folded);
            languages.push(language.clone());
            for v in others {
                if let Some((info, folded)) = fold_pattern(&mut buffer, kind, owner, part, &v) {
                    patterns.push(info);
                    texts.push(&folded);
                    languages.push(language.clone());
                }
            }
        };
        for (i, term) in lexicon.terms.iter().enumerate() {
            for p in &term.patterns {
                add(PatternKind::Term, i, 0, &term.language, &p.text);
            }
            for p in &term.exclude {
                add(PatternKind::Exclusion, i, 0, &term.language, &p.text);
            }
            let first_not_near = not_near.len() as u32;
            if let Some(near) = &term.near {
                for (k, part) in near.parts.iter().enumerate() {
                    for p in part {
                        add(PatternKind::Part, i, k as u8, &term.language, &p.text);
                    }
                }
                for p in &near.not_near {
                    let Some((info, folded)) =
                        fold_pattern(&mut spare, PatternKind::NotNear, i, 0, &p.text)
                    else {
                        continue;
                    };
                    let others = spoken::variants_in(&term.language, &folded);
                    not_near.push(NotNear::new(info, folded));
                    for v in others {
                        not_near.extend(
                            fold_pattern(&mut spare, PatternKind::NotNear, i, 0, &v)
                                .map(|(info, text)| NotNear::new(info, text)),
                        );
                    }
                }
            }
            not_near_of.push(first_not_near..not_near.len() as u32);
        }
        for (i, frame) in lexicon.frames.iter().enumerate() {
            for p in &frame.patterns {
                add(PatternKind::Frame, i, 0, &frame.language, &p.text);
            }
        }

        let mut automata = Vec::new();
        let mut slot = |keep: &dyn Fn(&str) -> bool| -> u32 {
            let ids = (0..texts.len() as u32)
                .filter(|&i| keep(&languages[i as usize]))
                .collect();
            automata.push(AutomatonSlot {
                ids,
                compiled: OnceLock::new(),
            });
            automata.len() as u32 - 1
        };
        let mut by_language = Vec::new();
        for language in lexicon.languages() {
            let index = slot(&|l| l == language || l == ANY_LANGUAGE);
            by_language.push((language.to_owned(), index));
        }
        by_language.sort();
        let any_only = slot(&|l| l == ANY_LANGUAGE);
        let mut union: Vec<u32> = by_language.iter().map(|&(_, i)| i).collect();
        union.sort_unstable();
        if union.is_empty() {
            union.push(any_only);
        }
        Ok(Engine {
            generation: next_generation(),
            cache: None,
            lexicon,
            patterns,
            texts,
            not_near,
            not_near_of,
            automata,
            by_language,
            any_only,
            union,
        })
    }

    /// Compiles the automaton that fragments of `language` are scanned
    /// with (`None`: no language, every language's), unless it already is.
    /// A scan compiles it itself when needed; calling this first reports a
    /// set that cannot compile as an error instead.
    pub fn prepare(&self, language: Option<&str>) -> Result<(), LexiconError> {
        match self.automaton_for(language) {
            ALL => self.compile_on_cores(self.union.clone()),
            index => self.compiled(index).map(|_| ()),
        }
    }

    /// Compiles every automaton not compiled yet: [`Engine::compile_on_cores`].
    pub fn prepare_all(&self) -> Result<(), LexiconError> {
        self.compile_on_cores((0..self.automata.len() as u32).collect())
    }

    /// [`Engine::prepare`] for several languages at once, on all cores.
    pub fn prepare_languages<'a>(
        &self,
        languages: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<(), LexiconError> {
        let mut indices: Vec<u32> = languages
            .into_iter()
            .flat_map(|l| match self.automaton_for(l) {
                ALL => self.union.clone(),
                index => vec![index],
            })
            .collect();
        indices.sort_unstable();
        indices.dedup();
        self.compile_on_cores(indices)
    }

    /// Compiles these automata on up to as many threads as there are
    /// cores, the largest first so that the threads finish together.
    fn compile_on_cores(&self, mut order: Vec<u32>) -> Result<(), LexiconError> {
        order.retain(|&i| self.automata[i as usize].compiled.get().is_none());
        order.sort_by_key(|&i| std::cmp::Reverse(self.automata[i as usize].ids.len()));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || -> Result<(), LexiconError> {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&index) = order.get(k) else {
                    return Ok(());
                };
                self.compiled(index)?;
            }
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads.min(order.len()))
                .map(|_| scope.spawn(work))
                .collect();
            let mine = work();
            helpers
                .into_iter()
                .map(|h| h.join().expect("compiling an automaton panicked"))
                .chain([mine])
                .collect::<Result<(), LexiconError>>()
        })
    }

    /// The automaton at `index`, compiled now if it was not yet. Two
    /// threads asking at once may both compile it; one result is kept.
    fn compiled(&self, index: u32) -> Result<&LanguageAutomaton, LexiconError> {
        let slot = &self.automata[index as usize];
        if let Some(done) = slot.compiled.get() {
            return Ok(done);
        }
        let ids = &slot.ids;
        if let Some(cache) = &self.cache {
            match cache.load_automaton(index, ids.len()) {
                Ok((alphabet, dfa)) => {
                    return Ok(slot.compiled.get_or_init(|| LanguageAutomaton {
                        dfa,
                        alphabet,
                        patterns: ids.clone(),
                    }));
                }
                Err(e) => tracing::debug!(automaton = index, "engine cache not used: {e}"),
            }
        }
        let texts = &self.texts;
        let alphabet =
            Alphabet::for_patterns(ids.iter().map(|&i| &texts[i as usize])).map_err(|e| {
                LexiconError::Automaton(format!(
                    "{} distinct characters in one language's patterns (at most 16,256)",
                    e.0
                ))
            })?;
        let dfa = Dfa::new(ids.iter().map(|&i| alphabet.encode(&texts[i as usize])))
            .map_err(|e| LexiconError::Automaton(e.to_string()))?;
        if let Some(cache) = &self.cache {
            if let Err(e) = cache.store_automaton(index, &alphabet, &dfa) {
                tracing::debug!(automaton = index, "engine cache not written: {e}");
            }
        }
        Ok(slot.compiled.get_or_init(|| LanguageAutomaton {
            dfa,
            alphabet,
            patterns: ids.clone(),
        }))
    }

    /// The automaton at `index` for a scan: compiled on first use. The
    /// lexicon was validated, so a failure here is a set too large for the
    /// automaton's limits; callers that can report it call
    /// [`Engine::prepare`] first (every command does, and `serve` compiles
    /// all of them before it takes a call).
    fn automaton(&self, index: u32) -> &LanguageAutomaton {
        match self.compiled(index) {
            Ok(automaton) => automaton,
            Err(e) => panic!("lexicon automaton does not compile: {e}"),
        }
    }

    /// The lexicon set this engine was compiled from.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The rule set's version, quoted in every alert.
    pub fn version(&self) -> &str {
        &self.lexicon.version
    }

    pub fn term(&self, id: TermId) -> &Term {
        &self.lexicon.terms[id.0 as usize]
    }

    /// A language folder's automaton, for the tests.
    #[cfg(test)]
    pub(crate) fn slot_of(&self, language: &str) -> u32 {
        self.by_language
            .iter()
            .find(|(l, _)| l == language)
            .map(|&(_, i)| i)
            .expect("a language folder")
    }

    /// The automaton for a BCP-47 language tag: its primary subtag's folder
    /// plus `any`; `any` alone for a language without a folder; [`ALL`]
    /// (every language's, [`Engine::union`]) when the language is unknown.
    fn automaton_for(&self, language: Option<&str>) -> u32 {
        let Some(tag) = language.map(str::trim).filter(|t| !t.is_empty()) else {
            return ALL;
        };
        let primary = tag.find(['-', '_']).map_or(tag, |end| &tag[..end]);
        // A handful of languages: a case-insensitive look through them costs
        // less than lower-casing into a fresh String and hashing it.
        self.by_language
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(primary))
            .map_or(self.any_only, |&(_, index)| index)
    }

    /// Scans one fragment spoken by `speaker`. `carry` is what the same
    /// speaker's previous final fragment left (`None` at the start of a
    /// call); the result's carry is to be kept only if this fragment is final.
    pub fn scan(
        &self,
        text: &str,
        language: Option<&str>,
        speaker: Speaker,
        carry: Option<&Carry>,
        scratch: &mut Scratch,
    ) -> Scan {
        self.scan_inner(text, language, speaker, carry, scratch, true)
    }

    /// Every term that matches `text` on its own (boundaries, exclusions
    /// and speaker applied, overlapping hits not merged): what a lexicon
    /// example asks — "does this term match this phrase?".
    pub fn matching_terms(
        &self,
        text: &str,
        language: Option<&str>,
        speaker: Speaker,
        scratch: &mut Scratch,
    ) -> Vec<TermId> {
        let scan = self.scan_inner(text, language, speaker, None, scratch, false);
        scan.hits.into_iter().map(|h| h.term).collect()
    }

    fn scan_inner(
        &self,
        text: &str,
        language: Option<&str>,
        speaker: Speaker,
        carry: Option<&Carry>,
        scratch: &mut Scratch,
        merge: bool,
    ) -> Scan {
        let automaton_index = self.automaton_for(language);

        // Continue from the previous fragment when it was scanned by the
        // same automaton (a language switch mid-call starts afresh).
        let carry =
            carry.filter(|c| c.generation == self.generation && c.automaton == automaton_index);
        let carried_word = carry.is_some_and(|c| c.ends_with_word);
        let (state, union_states, seam_space) = if automaton_index == ALL {
            normalize_text_with(text, &mut scratch.normalized, &mut ());
            let norm = scratch.normalized.as_str();
            let seam_space = carried_word
                && first_char(norm.as_bytes()).and_then(class_of) == Some(CharClass::Word);
            let carried = carry.and_then(|c| c.union.as_deref());
            let states = self.union_raw(norm, seam_space, carried, &mut scratch.raw);
            (StateID::ZERO, Some(states), seam_space)
        } else {
            let automaton = self.automaton(automaton_index);
            let dfa = &automaton.dfa;
            let start_state = || dfa.start_state(Anchored::No).expect("unanchored DFA");
            let carried_state = carry.map_or_else(start_state, |c| c.state);
            // The automaton steps over each normalised byte as soon as the
            // normaliser produces it: its table lookups (cache misses on a
            // large automaton) overlap with the normaliser's work instead of
            // adding up.
            let mut sink = ScanSink {
                engine: self,
                automaton,
                carried_state,
                carried_word,
                state: carried_state,
                seam_space: false,
                raw: &mut scratch.raw,
            };
            sink.reset();
            normalize_text_with(text, &mut scratch.normalized, &mut sink);
            (sink.state, None, sink.seam_space)
        };
        let norm = scratch.normalized.as_str().as_bytes();
        let mut stream = Stream {
            tail: carry.map_or(&[][..], |c| c.tail()),
            shift: i64::from(seam_space),
            norm,
            read_out: &[],
            sentences: Sentences::new(text),
        };
        let reading_out = self.read_out_spans(
            &stream,
            carry.map_or(0, |c| c.reading_out),
            &scratch.raw,
            &mut scratch.read_out,
        );
        stream.read_out = &scratch.read_out;

        let mut sightings = Vec::new();
        let hits = self.evaluate(
            &stream,
            carry,
            speaker,
            &scratch.normalized,
            &scratch.raw,
            (
                &mut scratch.candidates,
                &mut scratch.parts,
                &mut scratch.seam,
                &mut sightings,
            ),
            merge,
            (text, &mut scratch.mapped),
        );
        let next = self.next_carry(
            (automaton_index, state, union_states),
            reading_out,
            &stream,
            carry,
            (&scratch.raw, &scratch.seam),
            speaker,
        );
        let asks_for_words = speaker == Speaker::Agent
            && scratch.raw.iter().any(|x| {
                let xi = self.patterns[x.pattern as usize];
                xi.kind == PatternKind::Frame
                    && self.lexicon.frames[xi.owner as usize].kind == FrameKind::ReadOutAsked
                    && on_word_boundaries(&xi, &stream, x)
            });
        Scan {
            hits,
            sightings,
            carry: next,
            asks_for_words,
        }
    }

    /// Indices of the frames found in `text` (for `lexicon check`).
    pub fn frames_in(
        &self,
        text: &str,
        language: Option<&str>,
        scratch: &mut Scratch,
    ) -> Vec<usize> {
        match self.automaton_for(language) {
            ALL => {
                normalize_text_with(text, &mut scratch.normalized, &mut ());
                self.union_raw(scratch.normalized.as_str(), false, None, &mut scratch.raw);
            }
            index => {
                let automaton = self.automaton(index);
                let start = automaton
                    .dfa
                    .start_state(Anchored::No)
                    .expect("unanchored DFA");
                let mut sink = ScanSink {
                    engine: self,
                    automaton,
                    carried_state: start,
                    carried_word: false,
                    state: start,
                    seam_space: false,
                    raw: &mut scratch.raw,
                };
                sink.reset();
                normalize_text_with(text, &mut scratch.normalized, &mut sink);
            }
        }
        let stream = Stream {
            tail: &[],
            shift: 0,
            norm: scratch.normalized.as_str().as_bytes(),
            read_out: &[],
            sentences: Sentences::new(text),
        };
        let mut frames: Vec<usize> = scratch
            .raw
            .iter()
            .filter(|m| {
                let p = self.patterns[m.pattern as usize];
                p.kind == PatternKind::Frame && on_word_boundaries(&p, &stream, m)
            })
            .map(|m| self.patterns[m.pattern as usize].owner as usize)
            .collect();
        frames.dedup();
        frames
    }

    /// Where in this fragment the speaker reads out someone else's words:
    /// from a read-out cue (or the start, when the carry says the reading
    /// goes on) to an end cue or the end of the fragment. Returns the turns
    /// the reading still lasts at the fragment's end (0: it ended).
    fn read_out_spans(
        &self,
        stream: &Stream,
        carried_turns: u8,
        raw: &[RawMatch],
        spans: &mut Vec<(i64, i64)>,
    ) -> u8 {
        spans.clear();
        // An announcement ("can I read you the message?") lasts into the
        // next turn only when the agent answers it before the reading; a
        // caller who goes on in the same turn is reading now.
        let mut turns = carried_turns.min(1);
        let mut from = (turns > 0).then_some(i64::MIN);
        // Raw matches come in the order they end.
        for x in raw {
            let xi = self.patterns[x.pattern as usize];
            if xi.kind != PatternKind::Frame {
                continue;
            }
            let frame = &self.lexicon.frames[xi.owner as usize];
            match frame.kind {
                FrameKind::ReadOut if on_word_boundaries(&xi, stream, x) => {
                    from.get_or_insert(x.end);
                    turns = turns.max(frame.turns);
                }
                FrameKind::ReadOutEnd if on_word_boundaries(&xi, stream, x) => {
                    if let Some(start) = from.take() {
                        spans.push((start, x.start));
                    }
                    turns = 0;
                }
                _ => {}
            }
        }
        if let Some(start) = from {
            spans.push((start, i64::MAX));
        }
        turns
    }

    /// Scans a fragment with no language (`norm`, its folded text) with
    /// every automaton of [`Engine::union`], each from its state in
    /// `carried` (or its start state), the seam space first when
    /// `seam_space`. Returns their states at the end, and leaves in `raw`
    /// the matches one automaton of every pattern would report, in its
    /// order: by end, then start (a state's match list holds its own
    /// patterns in id order, then its failure state's, which are shorter),
    /// then pattern id. An `any` pattern, in every language's automaton,
    /// is reported once.
    fn union_raw(
        &self,
        norm: &str,
        seam_space: bool,
        carried: Option<&[StateID]>,
        raw: &mut Vec<RawMatch>,
    ) -> Box<[StateID]> {
        raw.clear();
        let automata: Vec<&LanguageAutomaton> =
            self.union.iter().map(|&i| self.automaton(i)).collect();
        let mut states: Box<[StateID]> = match carried {
            Some(states) if states.len() == automata.len() => states.into(),
            _ => automata
                .iter()
                .map(|a| a.dfa.start_state(Anchored::No).expect("unanchored DFA"))
                .collect(),
        };
        // All automata step over one character before the next: their
        // table lookups (cache misses on the large ones) are independent,
        // so they overlap instead of adding up.
        let mut step = |c: char, end: usize| {
            for (automaton, state) in automata.iter().zip(states.iter_mut()) {
                let dfa = &automaton.dfa;
                let (lead, last) = split(automaton.alphabet.code(c));
                if let Some(lead) = lead {
                    *state = dfa.next_state(Anchored::No, *state, lead);
                }
                *state = dfa.next_state(Anchored::No, *state, last);
                if dfa.is_special(*state) {
                    self.collect(automaton, *state, end as i64, raw);
                }
            }
        };
        if seam_space {
            step(' ', 0);
        }
        for (at, c) in norm.char_indices() {
            step(c, at + c.len_utf8());
        }
        if self.union.len() > 1 {
            raw.sort_unstable_by_key(|m| (m.end, m.start, m.pattern));
            raw.dedup_by_key(|m| (m.end, m.pattern));
        }
        states
    }

    fn collect(
        &self,
        automaton: &LanguageAutomaton,
        state: StateID,
        end: i64,
        raw: &mut Vec<RawMatch>,
    ) {
        let dfa = &automaton.dfa;
        if !dfa.is_match(state) {
            return;
        }
        for k in 0..dfa.match_len(state) {
            let pattern = automaton.patterns[dfa.match_pattern(state, k).as_usize()];
            let len = i64::from(self.patterns[pattern as usize].len);
            raw.push(RawMatch {
                pattern,
                start: end - len,
                end,
            });
        }
    }

    /// Turns raw matches into hits: boundaries, speaker, exclusions, frames,
    /// then one hit per term and place.
    #[allow(clippy::too_many_arguments)] // the scan's borrowed parts, split to satisfy the borrow checker
    fn evaluate(
        &self,
        stream: &Stream,
        carry: Option<&Carry>,
        speaker: Speaker,
        norm: &Normalized,
        raw: &[RawMatch],
        (candidates, parts, seam, sightings): (
            &mut Vec<Candidate>,
            &mut Vec<PartSeen>,
            &mut Vec<PartSeen>,
            &mut Vec<Sighting>,
        ),
        merge: bool,
        (original, mapped): (&str, &mut Normalized),
    ) -> Vec<Hit> {
        candidates.clear();
        parts.clear();
        seam.clear();
        // Parts the same speaker's previous final left unfinished, in this
        // stream's positions (the previous text ends at -shift).
        parts.extend(
            carry
                .into_iter()
                .flat_map(|c| c.seam_parts())
                .map(|p| PartSeen {
                    term: p.term,
                    part: p.part,
                    start: i64::from(p.start) - stream.shift,
                    end: i64::from(p.end) - stream.shift,
                }),
        );
        // Exclusions are rare; looking them up once keeps the check below
        // from walking every raw match (most are not_near and part
        // phrases) for every term match.
        let exclusions: Vec<(u32, i64, i64)> = raw
            .iter()
            .filter_map(|x| {
                let xi = self.patterns[x.pattern as usize];
                (xi.kind == PatternKind::Exclusion).then_some((xi.owner, x.start, x.end))
            })
            .collect();
        for m in raw {
            let info = self.patterns[m.pattern as usize];
            if !matches!(info.kind, PatternKind::Term | PatternKind::Part) || m.end <= 0 {
                continue;
            }
            let term = &self.lexicon.terms[info.owner as usize];
            if term.speaker != speaker {
                continue;
            }
            if !on_word_boundaries(&info, stream, m) {
                continue;
            }
            if term.standalone && !self.standalone_ok(stream, norm, m) {
                continue;
            }
            let excluded = exclusions
                .iter()
                .any(|&(owner, start, end)| owner == info.owner && start < m.end && m.start < end);
            if excluded {
                continue;
            }
            if info.kind == PatternKind::Part {
                parts.push(PartSeen {
                    term: info.owner,
                    part: info.part,
                    start: m.start,
                    end: m.end,
                });
                continue;
            }
            let (framing, targeted, addressed) = self.framing(stream, carry, raw, m, info.owner);
            candidates.push(Candidate {
                term: info.owner,
                start: m.start,
                end: m.end,
                framing,
                targeted,
                addressed,
            });
        }
        let mut partial = Vec::new();
        if !parts.is_empty() {
            self.proximity(stream, carry, raw, parts, candidates, &mut partial, seam);
            seam.sort_unstable_by_key(|p| std::cmp::Reverse(p.end)); // newest first
        }
        // The offset map, built only for a fragment with a sighting or a hit.
        let mut mapped_built = false;
        if !partial.is_empty() {
            normalize_into(original, mapped);
            mapped_built = true;
            sightings.extend(
                partial
                    .into_iter()
                    .map(|(term, mask, start, end)| Sighting {
                        term: TermId(term),
                        parts: mask,
                        span: mapped.original_range(start.max(0) as usize, end.max(0) as usize),
                        reported: stream.read_out_covers(start, end),
                    }),
            );
        }
        if candidates.is_empty() {
            return Vec::new();
        }
        // One hit per category and place: overlapping matches of the same
        // term or category are the same words said once.
        candidates.sort_by_key(|c| (c.start, std::cmp::Reverse(c.end), c.term));
        let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
        if !merge {
            kept.extend_from_slice(candidates);
        }
        for c in candidates.iter().filter(|_| merge) {
            let category = &self.lexicon.terms[c.term as usize].category;
            let dialogue = self.lexicon.terms[c.term as usize].dialogue.is_some();
            let covered = kept.iter_mut().any(|k| {
                // Sorted by start: `c` begins inside or after `k`.
                let overlaps = c.start < k.end;
                let kept_term = &self.lexicon.terms[k.term as usize];
                let same_category = kept_term.category == *category;
                // A dialogue term is info until the call sees the agent's
                // words: merged with a plain term it could hide a warning
                // ("tell me your surname" inside a dialogue rule).
                let same_kind = kept_term.dialogue.is_some() == dialogue;
                if overlaps && same_kind && (k.term == c.term || same_category) {
                    // The same words: one hit over both spans, with the
                    // graver term (ぶっ殺す + 殺すぞ = ぶっ殺すぞ).
                    let graver = self.lexicon.terms[c.term as usize].severity
                        > self.lexicon.terms[k.term as usize].severity;
                    if graver {
                        k.term = c.term;
                    }
                    k.end = k.end.max(c.end);
                    k.targeted |= c.targeted;
                    k.addressed |= c.addressed;
                    true
                } else {
                    false
                }
            });
            if !covered {
                kept.push(*c);
            }
        }
        // An insult that is the whole utterance ("Idiot!", "bitch") is said
        // to the listener: nobody shouts a bare word at a product. Holds when
        // the target-needing hits cover every non-space byte of the fragment.
        let needs_target = |c: &Candidate| self.lexicon.terms[c.term as usize].needs_target;
        if kept.iter().any(|c| needs_target(c) && !c.targeted) {
            let text = stream.norm;
            let whole = (0..text.len()).all(|p| {
                text[p] == b' '
                    || kept
                        .iter()
                        .any(|c| needs_target(c) && c.start <= p as i64 && (p as i64) < c.end)
            });
            if whole {
                for c in kept.iter_mut().filter(|c| needs_target(c)) {
                    c.targeted = true;
                }
            }
        }
        if !mapped_built {
            normalize_into(original, mapped);
        }
        debug_assert_eq!(mapped.as_str(), norm.as_str());
        let quotes = reported_quotes(original);
        kept.iter()
            .map(|c| {
                let term = &self.lexicon.terms[c.term as usize];
                let start = c.start.max(0) as usize;
                let end = c.end as usize;
                let span = if start < end {
                    mapped.original_range(start, end)
                } else {
                    0..0
                };
                let mut c = *c;
                if c.framing == Framing::Plain && !span.is_empty() {
                    self.quoted_by_marks(&mut c, &span, (original, &quotes), (stream, raw), mapped);
                }
                Hit {
                    term: TermId(c.term),
                    span,
                    continued: c.start < 0,
                    // A dialogue term waits for the agent's words, which
                    // only the call knows: on its own it is seen at info.
                    severity: if term.dialogue.is_some() {
                        Severity::Info
                    } else {
                        c.framing.severity(term.severity, c.addressed)
                    },
                    framing: c.framing,
                    targeted: c.targeted,
                    addressed: c.addressed,
                }
            })
            .collect()
    }

    /// A hit that begins and ends inside quotation marks that read as
    /// someone else's words ([`reported_quotes`]; one quote, or a proximity
    /// rule reaching from one into the next, or one that only ends in a
    /// quote) is quoted; relayed at the agent when a target (お前, "you")
    /// outside every quote follows the closing mark in the same sentence.
    fn quoted_by_marks(
        &self,
        c: &mut Candidate,
        span: &Range<usize>,
        (original, quotes): (&str, &[(Range<usize>, usize)]),
        (stream, raw): (&Stream, &[RawMatch]),
        mapped: &Normalized,
    ) {
        let inside = |at: usize| quotes.iter().find(|(inner, _)| inner.contains(&at));
        let Some(&(_, close_end)) = inside(span.end - 1) else {
            return;
        };
        // A proximity rule may begin in the caller's own framing (LINEでも
        // 「写真ネットに晒してやる」とか送ってきて): its last words, inside
        // the quotation, are the reported ones.
        if inside(span.start).is_none() && self.lexicon.terms[c.term as usize].near.is_none() {
            return;
        }
        c.framing = Framing::Quoted;
        c.addressed = raw.iter().any(|x| {
            let xi = self.patterns[x.pattern as usize];
            // A target is a word of its own: the "u" of "up", the "ya" of
            // "yard" address nobody.
            if xi.kind != PatternKind::Frame
                || self.lexicon.frames[xi.owner as usize].kind != FrameKind::Target
                || x.start < 0
                || !on_word_boundaries(&xi, stream, x)
            {
                return false;
            }
            let at = mapped
                .original_range(x.start as usize, x.end as usize)
                .start;
            at >= close_end
                && inside(at).is_none()
                && !original[close_end..at].contains(['。', '.', '!', '?', '！', '？'])
        });
    }

    /// Proximity terms: one phrase of every part, each within `distance`
    /// of the next (a chain of nearby phrases covering every part, in the
    /// listed order when `ordered`), and no `not_near` phrase within
    /// `distance` of it. A complete one becomes a candidate over the whole
    /// chain; an incomplete one of a term that may span utterances is
    /// returned as (term, parts seen, start, end), and the parts of an
    /// incomplete one-utterance term go to `seam`, for the carry.
    #[allow(clippy::too_many_arguments)] // the scan's borrowed parts, as in `evaluate`
    fn proximity(
        &self,
        stream: &Stream,
        carry: Option<&Carry>,
        raw: &[RawMatch],
        parts: &mut [PartSeen],
        candidates: &mut Vec<Candidate>,
        partial: &mut Vec<(u32, u8, i64, i64)>,
        seam: &mut Vec<PartSeen>,
    ) {
        parts.sort_unstable_by_key(|p| (p.term, p.start, p.end, p.part));
        for run in parts.chunk_by(|a, b| a.term == b.term) {
            let term = &self.lexicon.terms[run[0].term as usize];
            let Some(near) = &term.near else { continue };
            let found = chain(run, near.all_parts(), near.ordered, |from, to| {
                stream.units_between(from, to) <= near.distance
            });
            match found {
                // Carried parts alone never complete: their term did not
                // complete in the fragment they came from.
                Some((_, end)) if end <= 0 => {}
                Some((start, end)) => {
                    let cancels = self.not_near_occurrences(run[0].term, stream);
                    if cancels
                        .iter()
                        .any(|o| stream.within(near.distance, o, &(start..end)))
                    {
                        continue;
                    }
                    let span = RawMatch {
                        pattern: 0,
                        start,
                        end,
                    };
                    let (framing, targeted, addressed) =
                        self.framing(stream, carry, raw, &span, run[0].term);
                    candidates.push(Candidate {
                        term: run[0].term,
                        start,
                        end,
                        framing,
                        targeted,
                        addressed,
                    });
                }
                None if near.utterances > 1 => {
                    // A part with a `not_near` phrase beside it is cancelled
                    // here as a whole chain would be; the rest may wait
                    // for the speaker's next utterances.
                    let cancels = self.not_near_occurrences(run[0].term, stream);
                    let (mut mask, mut start, mut end) = (0u8, i64::MAX, i64::MIN);
                    for p in run.iter().filter(|p| {
                        !cancels
                            .iter()
                            .any(|o| stream.within(near.distance, o, &(p.start..p.end)))
                    }) {
                        mask |= 1 << p.part;
                        start = start.min(p.start);
                        end = end.max(p.end);
                    }
                    if mask != 0 {
                        partial.push((run[0].term, mask, start, end));
                    }
                }
                None => seam.extend_from_slice(run),
            }
        }
    }

    /// Where the `not_near` phrases of `term` occur, found as the
    /// automaton would have found them: occurrences ending in this fragment
    /// (they may begin in the carried tail), on word boundaries. Empty, and
    /// no allocation, for a term without any.
    fn not_near_occurrences(&self, term: u32, stream: &Stream) -> Vec<Range<i64>> {
        let range = self.not_near_of[term as usize].clone();
        let mut found_all = Vec::new();
        if range.is_empty() {
            return found_all;
        }
        let joined = stream.joined();
        let origin = joined.len() as i64 - stream.norm.len() as i64;
        for phrase in &self.not_near[range.start as usize..range.end as usize] {
            let (info, finder) = (&phrase.info, phrase.finder());
            let question = phrase.text.ends_with('か');
            let mut from = 0;
            // Every occurrence, overlapping ones included, as the
            // automaton reports them.
            while let Some(at) = finder.find(&joined[from..]) {
                let start = (from + at) as i64 - origin;
                let found = RawMatch {
                    pattern: 0,
                    start,
                    end: start + i64::from(info.len),
                };
                let after = from + at + info.len as usize;
                from += at + 1;
                // ですか / ますか are listed as a question's end; followed by
                // ら they are から, "because", the firm close of a demand
                // (払ってもらいますから), which the question cue must not cancel.
                if question && joined[after..].starts_with("ら".as_bytes()) {
                    continue;
                }
                if found.end > 0 && on_word_boundaries(info, stream, &found) {
                    found_all.push(found.start..found.end);
                }
            }
        }
        found_all
    }

    fn standalone_ok(&self, stream: &Stream, norm: &Normalized, m: &RawMatch) -> bool {
        let cjk = |c: Option<char>| c.and_then(class_of) == Some(CharClass::Cjk);
        let left_ok = m.start <= 0
            || !cjk(stream.char_before(m.start))
            || norm.separator_before(m.start as usize);
        let end = m.end as usize;
        let right_ok =
            end >= norm.as_str().len() || !cjk(stream.char_at(m.end)) || norm.separator_before(end);
        left_ok && right_ok
    }

    /// Negation/quotation and target frames near a term match, in this
    /// fragment or (for frames before it) just before the seam: the
    /// framing, whether a target is near, and whether quoted words are
    /// relayed at the agent (a target beyond the reporting cue).
    fn framing(
        &self,
        stream: &Stream,
        carry: Option<&Carry>,
        raw: &[RawMatch],
        m: &RawMatch,
        term: u32,
    ) -> (Framing, bool, bool) {
        if stream.read_out_covers(m.start, m.end) {
            // Read out from a message or a screen: the "you" in it is the
            // caller, never the agent.
            return (Framing::Quoted, false, false);
        }
        let mut framing = Framing::Plain;
        let mut targeted = false;
        let mut figurative = false;
        // (start, end) of the reporting cues and second-person targets near
        // the match: hits are rare, so these stay tiny.
        let mut quotes: Vec<(Option<i64>, i64)> = Vec::new();
        let mut targets: Vec<(Option<i64>, i64)> = Vec::new();
        let mut relays: Vec<Option<i64>> = Vec::new();
        let carried = carry.into_iter().flat_map(|c| c.marks()).map(|mark| {
            let end = i64::from(mark.end) - stream.shift;
            (mark.frame, None, end)
        });
        let here = raw.iter().filter_map(|x| {
            let xi = self.patterns[x.pattern as usize];
            (xi.kind == PatternKind::Frame && on_word_boundaries(&xi, stream, x)).then_some((
                xi.owner,
                Some(x.start),
                x.end,
            ))
        });
        // Discourse "you" ("I'm telling you", "can you believe"): rare,
        // looked up only when a frame is near a hit.
        let discourse: Vec<(i64, i64)> = raw
            .iter()
            .filter(|x| {
                let xi = self.patterns[x.pattern as usize];
                xi.kind == PatternKind::Frame
                    && self.lexicon.frames[xi.owner as usize].kind == FrameKind::NotTarget
                    && on_word_boundaries(&xi, stream, x)
            })
            .map(|x| (x.start, x.end))
            .collect();
        let category = &self.lexicon.terms[term as usize].category;
        // The reported sentence the previous fragment ended in goes on to
        // this fragment's first sentence end.
        if carry.is_some_and(|c| c.reported_sentence) && stream.sentences.open_until(m.start) {
            framing = Framing::Quoted;
            quotes.push((None, 0));
        }
        for (frame_index, start, end) in here.chain(carried) {
            let frame = &self.lexicon.frames[frame_index as usize];
            if !frame.frames_category(category) {
                continue;
            }
            let reaches = |from: i64, to: i64| {
                let chars = stream.chars_between(from, to);
                chars <= frame.window
                    || (frame.to_sentence_end
                        && start.is_some()
                        && chars <= SENTENCE_REACH
                        && stream.sentences.holds(from, to))
            };
            let before =
                end <= m.end && start.is_none_or(|s| s <= m.start) && reaches(end, m.start);
            let after = start.is_some_and(|s| s >= m.start && reaches(m.end, s));
            let applies = match frame.position {
                FramePosition::Before => before,
                FramePosition::After => after,
                FramePosition::Around => before || after,
            };
            if !applies {
                continue;
            }
            match frame.kind {
                // Someone else's words stay theirs whatever is denied in
                // or around them: quoted (info) is the outer reading, and
                // the lower of the two.
                FrameKind::Negation => {
                    if framing == Framing::Plain {
                        framing = Framing::Negated;
                    }
                }
                FrameKind::Quotation => {
                    framing = Framing::Quoted;
                    quotes.push((start, end));
                }
                FrameKind::Target
                    if start
                        .is_some_and(|s| discourse.iter().any(|&(ds, de)| ds < end && s < de)) => {}
                FrameKind::Target => {
                    targeted = true;
                    targets.push((start, end));
                }
                FrameKind::Figurative => figurative = true,
                FrameKind::Relay => relays.push(start),
                FrameKind::ReadOut
                | FrameKind::ReadOutEnd
                | FrameKind::ReadOutAsked
                | FrameKind::NotTarget => {}
            }
        }
        if figurative && framing == Framing::Plain {
            // お前をゴキブリみたいに潰す is still aimed at the agent.
            return (Framing::Figurative, targeted, targeted);
        }
        // Relayed at the agent: a second-person reference beyond every
        // reporting cue, on the far side from the quoted words ("he said
        // he'd burn the place down — tell that to your boss"). A "you"
        // between the words and the cue belongs to the quote, also when the
        // cue falls inside a hit in parts (お前の家知っとる|って言われて|住所).
        let beyond = |(t_start, t_end): (Option<i64>, i64),
                      (q_start, q_end): (Option<i64>, i64)| {
            match (t_start, q_start) {
                (Some(ts), Some(qs)) if qs > m.start => ts >= q_end,
                (Some(_), Some(qs)) => t_end <= qs,
                _ => false,
            }
        };
        // Or turned on the agent's side inside the reported words, after
        // every cue that stands before the hit ("my son says | he'll go
        // down your yard and break..."); a cue after the hit (〜って言ってる)
        // closes the quote the relay stands in.
        let relayed = |relay: Option<i64>| {
            quotes
                .iter()
                .all(|&(q_start, q_end)| match (q_start, relay) {
                    (Some(qs), _) if qs >= m.end => true,
                    (_, Some(rs)) => rs >= q_end,
                    (_, None) => false,
                })
        };
        let addressed = framing == Framing::Quoted
            && (targets
                .iter()
                .any(|&t| quotes.iter().all(|&q| beyond(t, q)))
                || relays.iter().any(|&r| relayed(r)));
        (framing, targeted, addressed)
    }

    fn next_carry(
        &self,
        (automaton, state, union): (u32, StateID, Option<Box<[StateID]>>),
        reading_out: u8,
        stream: &Stream,
        previous: Option<&Carry>,
        (raw, seam): (&[RawMatch], &[PartSeen]),
        speaker: Speaker,
    ) -> Carry {
        let norm = stream.norm;
        let mut tail = [0u8; TAIL_BYTES];
        // The last TAIL_BYTES of (previous tail, seam space, this text),
        // composed on the stack.
        let tail_len = if norm.len() >= TAIL_BYTES {
            tail.copy_from_slice(&norm[norm.len() - TAIL_BYTES..]);
            TAIL_BYTES
        } else {
            // The last `need` bytes of (previous tail, seam space), then
            // this text.
            let need = TAIL_BYTES - norm.len();
            let space: &[u8] = if stream.shift == 1 { b" " } else { b"" };
            let from_space = space.len().min(need);
            let from_tail = (need - from_space).min(stream.tail.len());
            let mut n = 0;
            for part in [
                &stream.tail[stream.tail.len() - from_tail..],
                &space[space.len() - from_space..],
                norm,
            ] {
                tail[n..n + part.len()].copy_from_slice(part);
                n += part.len();
            }
            n
        };
        let norm_len = norm.len() as i64;
        let mut marks = [Mark::default(); MAX_MARKS];
        let mut marks_len = 0;
        let reach = TAIL_BYTES as i64;
        let carried = previous
            .into_iter()
            .flat_map(|c| c.marks())
            .map(|mark| (mark.frame, i64::from(mark.end) - stream.shift));
        let here = raw.iter().filter_map(|x| {
            let xi = self.patterns[x.pattern as usize];
            if xi.kind != PatternKind::Frame || norm_len - x.end > reach {
                return None; // only frames near the end can carry
            }
            let frame = self.lexicon.frames.get(xi.owner as usize)?;
            (frame.position != FramePosition::After
                && !matches!(
                    frame.kind,
                    FrameKind::ReadOut
                        | FrameKind::ReadOutEnd
                        | FrameKind::ReadOutAsked
                        | FrameKind::NotTarget
                )
                && on_word_boundaries(&xi, stream, x))
            .then_some((xi.owner, x.end))
        });
        // Newest last: keep the most recent MAX_MARKS within reach. A ring
        // of MAX_MARKS on the stack keeps the last ones seen, in order.
        let mut ring = [(0u32, 0i64); MAX_MARKS];
        let mut seen = 0usize;
        for (frame, end) in carried
            .chain(here)
            .filter(|&(_, end)| norm_len - end <= reach)
        {
            ring[seen % MAX_MARKS] = (frame, end);
            seen += 1;
        }
        for k in 0..seen.min(MAX_MARKS) {
            // Newest first, as before: seen-1, seen-2, ...
            let (frame, end) = ring[(seen - 1 - k) % MAX_MARKS];
            marks[marks_len] = Mark {
                frame,
                end: (end - norm_len) as i32,
            };
            marks_len += 1;
        }
        // The newest unfinished parts lying wholly in the new tail, where the
        // next fragment's distances and frames can still see them; none
        // after a full stop: the next final is a new sentence ("I've done
        // something daft." | "Knocked the whole box into the sink").
        let mut seam_parts = [SeamPart::default(); MAX_SEAM_PARTS];
        let mut seam_parts_len = 0;
        // Most fragments leave no part: the punctuation is not looked at.
        let seam = match seam.is_empty() || stream.sentences.closes_at_end() {
            true => &[][..],
            false => seam,
        };
        for p in seam
            .iter()
            .filter(|p| norm_len - p.start <= tail_len as i64)
            .take(MAX_SEAM_PARTS)
        {
            seam_parts[seam_parts_len] = SeamPart {
                term: p.term,
                part: p.part,
                start: (p.start - norm_len) as i32,
                end: (p.end - norm_len) as i32,
            };
            seam_parts_len += 1;
        }
        let ends_with_word = match last_class(norm) {
            Some(class) => class == CharClass::Word,
            None => previous.is_some_and(|c| c.ends_with_word),
        };
        Carry {
            generation: self.generation,
            automaton,
            state,
            union,
            tail,
            tail_len: tail_len as u16,
            marks,
            marks_len: marks_len as u8,
            seam_parts,
            seam_parts_len: seam_parts_len as u8,
            ends_with_word,
            reading_out,
            // Only the caller's words are read for abuse: the agent's carry
            // never needs it (a walk over every match).
            reported_sentence: speaker == Speaker::Customer
                && self.reported_sentence_open(stream, previous, raw),
        }
    }

    /// Does the fragment end inside a sentence of reported words: a
    /// `to_sentence_end` quotation cue with no sentence end after it, or
    /// such a sentence carried in and not closed here? Needs punctuation
    /// to tell: unpunctuated text opens nothing.
    fn reported_sentence_open(
        &self,
        stream: &Stream,
        previous: Option<&Carry>,
        raw: &[RawMatch],
    ) -> bool {
        let len = stream.norm.len() as i64;
        if stream.sentences.closes_at_end() {
            return false;
        }
        if previous.is_some_and(|c| c.reported_sentence) && stream.sentences.open_until(len) {
            return true;
        }
        raw.iter().any(|x| {
            let xi = self.patterns[x.pattern as usize];
            xi.kind == PatternKind::Frame
                && x.start >= 0
                && self.lexicon.frames[xi.owner as usize].to_sentence_end
                && on_word_boundaries(&xi, stream, x)
                && stream.sentences.holds(x.end, len)
        })
    }
}

/// Steps a language automaton over the normalised text as the normaliser
/// produces it, with the same result as a pass over the finished text: the
/// seam space fed first when the previous fragment ended in a word and this
/// one starts with one, then every character (as its [`Alphabet`] code),
/// collecting the matches.
struct ScanSink<'a> {
    engine: &'a Engine,
    automaton: &'a LanguageAutomaton,
    /// State at the end of the previous fragment (or the start state).
    carried_state: StateID,
    /// The previous fragment ended in a Latin word character.
    carried_word: bool,
    state: StateID,
    seam_space: bool,
    raw: &'a mut Vec<RawMatch>,
}

impl ScanSink<'_> {
    /// Back to the start: nothing scanned, no seam space yet.
    fn reset(&mut self) {
        self.state = self.carried_state;
        self.seam_space = false;
        self.raw.clear();
    }

    /// One character's code; `end` is where the character ends in the
    /// folded text. A match ends only after a whole code (the code is
    /// prefix-free), so only then is the state checked.
    #[inline(always)]
    fn step(&mut self, state: StateID, code: alphabet::Code, end: usize) -> StateID {
        let dfa = &self.automaton.dfa;
        let (lead, last) = split(code);
        let mut state = state;
        if let Some(lead) = lead {
            state = dfa.next_state(Anchored::No, state, lead);
        }
        state = dfa.next_state(Anchored::No, state, last);
        if dfa.is_special(state) {
            self.engine
                .collect(self.automaton, state, end as i64, self.raw);
        }
        state
    }
}

impl FoldSink for ScanSink<'_> {
    #[inline(always)]
    fn appended(&mut self, text: &[u8], from: usize) {
        if from == 0 {
            // The first character decides the seam space.
            let first = first_char(text);
            if self.carried_word && first.and_then(class_of) == Some(CharClass::Word) {
                self.seam_space = true;
                let space = self.automaton.alphabet.code(' ');
                self.state = self.step(self.state, space, 0);
            }
        }
        self.appended_more(text, from);
    }

    #[inline(always)]
    fn appended_more(&mut self, text: &[u8], from: usize) {
        let mut state = self.state;
        let mut at = from;
        while let Some((c, len)) = decode(text, at) {
            at += len;
            state = self.step(state, self.automaton.alphabet.code(c), at);
        }
        self.state = state;
    }

    #[inline(always)]
    fn run_begin(&mut self) -> u32 {
        self.state.as_u32()
    }

    /// The automaton's state stays in a register through the normaliser's
    /// tight loop: `self.state` is written back only at the end of a run.
    #[inline(always)]
    fn run_appended<const N: usize>(&mut self, run: u32, text: &[u8], new: [u8; N]) -> u32 {
        let alphabet = &self.automaton.alphabet;
        let code = match *new.as_slice() {
            [byte] => alphabet.code(char::from(byte)),
            [b0, b1, b2] => alphabet.code3([b0, b1, b2]),
            _ => {
                let (c, _) = decode(&new, 0).unwrap_or(('\0', 0));
                alphabet.code(c)
            }
        };
        let state = StateID::from_u32_unchecked(run);
        self.step(state, code, text.len()).as_u32()
    }

    #[inline(always)]
    fn run_end(&mut self, run: u32) {
        self.state = StateID::from_u32_unchecked(run);
    }

    fn truncated(&mut self, text: &[u8]) {
        // Rare (a filler dropped, a squashed vowel removed) and the text is
        // short: scan it again from the start, seam decision included.
        self.reset();
        if !text.is_empty() {
            self.appended(text, 0);
        }
    }
}

/// The bytes a scan sees: the previous fragment's tail, an optional seam
/// space, and this fragment's normalised text starting at position 0.
struct Stream<'a> {
    tail: &'a [u8],
    shift: i64,
    norm: &'a [u8],
    /// Where the speaker reads out someone else's words (start, end).
    read_out: &'a [(i64, i64)],
    sentences: Sentences<'a>,
}

/// A `not_near` phrase and its searcher, built the first time a chain of
/// its term completes: building one for every phrase at every completed
/// chain cost a tenth of the engine bench, and building them all at start
/// would cost every start-up for phrases most runs never look up.
struct NotNear {
    info: PatternInfo,
    text: String,
    finder: OnceLock<memchr::memmem::Finder<'static>>,
}

impl NotNear {
    fn new(info: PatternInfo, text: String) -> Self {
        NotNear {
            info,
            text,
            finder: OnceLock::new(),
        }
    }

    fn finder(&self) -> &memchr::memmem::Finder<'static> {
        self.finder
            .get_or_init(|| memchr::memmem::Finder::new(self.text.as_bytes()).into_owned())
    }
}

/// The longest reported sentence a reporting cue frames, in characters:
/// a bound for run-on text with a stray full stop.
const SENTENCE_REACH: usize = 400;

/// A fragment's sentences, read from its punctuation on first need (a
/// reporting cue beyond its window from a hit: rare).
struct Sentences<'a> {
    original: &'a str,
    /// Folded positions where a sentence begins after the first; `None`
    /// for a fragment without a sentence-ending mark (unpunctuated ASR
    /// text, whose sentences are unknown).
    starts: OnceCell<Option<Vec<i64>>>,
}

impl<'a> Sentences<'a> {
    fn new(original: &'a str) -> Self {
        Sentences {
            original,
            starts: OnceCell::new(),
        }
    }

    fn starts(&self) -> Option<&[i64]> {
        self.starts
            .get_or_init(|| {
                let ends = sentence_ends(self.original);
                if ends.is_empty() {
                    return None;
                }
                let mut mapped = Normalized::default();
                normalize_into(self.original, &mut mapped);
                Some(ends.iter().map(|&e| mapped.folded_from(e) as i64).collect())
            })
            .as_deref()
    }

    /// Do folded positions `from..to` of this fragment lie in one known
    /// sentence?
    fn holds(&self, from: i64, to: i64) -> bool {
        from >= 0
            && self
                .starts()
                .is_some_and(|starts| !starts.iter().any(|&p| from < p && p <= to))
    }

    /// Does no sentence of this fragment end before folded position `to`
    /// (a sentence carried in goes on)? True for unpunctuated text.
    fn open_until(&self, to: i64) -> bool {
        self.starts()
            .is_none_or(|starts| !starts.iter().any(|&p| p <= to))
    }

    /// Does the fragment end with a sentence-ending mark?
    fn closes_at_end(&self) -> bool {
        closes_sentence(self.original)
    }
}

impl Stream<'_> {
    /// Do these positions lie in words read out from someone else?
    fn read_out_covers(&self, start: i64, end: i64) -> bool {
        self.read_out
            .iter()
            .any(|&(from, to)| from <= start && end <= to)
    }

    fn byte(&self, pos: i64) -> Option<u8> {
        if pos >= 0 {
            return self.norm.get(pos as usize).copied();
        }
        if self.shift == 1 && pos == -1 {
            return Some(b' ');
        }
        let from_end = -(pos + self.shift); // 1 = last tail byte
        let len = self.tail.len() as i64;
        (from_end <= len).then(|| self.tail[(len - from_end) as usize])
    }

    /// The stream's bytes in one piece: tail, seam space, this fragment.
    fn joined(&self) -> Vec<u8> {
        let space: &[u8] = if self.shift == 1 { b" " } else { b"" };
        [self.tail, space, self.norm].concat()
    }

    /// The character that ends right before `pos`.
    fn char_before(&self, pos: i64) -> Option<char> {
        if pos >= 1 && pos as usize <= self.norm.len() {
            // Within this fragment's text, which starts on a char boundary.
            let end = pos as usize;
            let mut start = end - 1;
            while start > 0 && self.norm[start] & 0xC0 == 0x80 {
                start -= 1;
            }
            return first_char(&self.norm[start..end]);
        }
        let mut start = pos - 1;
        let mut buf = [0u8; 4];
        let mut n = 0;
        loop {
            let b = self.byte(start)?;
            n += 1;
            if n > 4 {
                return None;
            }
            if b & 0xC0 != 0x80 {
                for (k, slot) in buf.iter_mut().take(n).enumerate() {
                    *slot = self.byte(start + k as i64)?;
                }
                return first_char(&buf[..n]).filter(|c| c.len_utf8() == n);
            }
            start -= 1;
        }
    }

    /// The character that starts at `pos` (positions ≥ 0 only).
    fn char_at(&self, pos: i64) -> Option<char> {
        first_char(self.norm.get(pos as usize..)?)
    }

    /// Is `a` within `distance` units of `b`, on either side?
    fn within(&self, distance: usize, a: &Range<i64>, b: &Range<i64>) -> bool {
        self.units_between(a.end, b.start) <= distance
            && self.units_between(b.end, a.start) <= distance
    }

    /// The distance between two stream positions as proximity rules count
    /// it: each Latin word and each CJK character is one (0 if `to <= from`).
    fn units_between(&self, from: i64, to: i64) -> usize {
        if to <= from {
            return 0;
        }
        let mut units = 0;
        let mut in_word = false;
        let mut pos = from;
        while pos < to {
            let Some(c) = self.char_from(pos) else {
                pos += 1;
                continue;
            };
            match class_of(c) {
                Some(CharClass::Cjk) => {
                    units += 1;
                    in_word = false;
                }
                Some(CharClass::Word) => {
                    if !in_word {
                        units += 1;
                    }
                    in_word = true;
                }
                None => in_word = false,
            }
            pos += c.len_utf8() as i64;
        }
        units
    }

    /// The character starting at any stream position (tail included).
    fn char_from(&self, pos: i64) -> Option<char> {
        if pos >= 0 {
            return self.char_at(pos);
        }
        let mut buf = [0u8; 4];
        let first = self.byte(pos)?;
        let len = match first {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        for (k, slot) in buf.iter_mut().take(len).enumerate() {
            *slot = self.byte(pos + k as i64)?;
        }
        first_char(&buf[..len])
    }

    /// Characters between two stream positions (0 if `to <= from`).
    fn chars_between(&self, from: i64, to: i64) -> usize {
        (from..to)
            .filter(|&p| self.byte(p).is_none_or(|b| b & 0xC0 != 0x80))
            .count()
    }
}

/// The first chain of phrases (sorted by start) in which each is close
/// enough to the chain so far (`close(end so far, next start)`) and whose
/// parts cover `full`; with `ordered`, the parts must first appear in
/// their listed order. Returns the chain's span.
fn chain(
    seen: &[PartSeen],
    full: u8,
    ordered: bool,
    close: impl Fn(i64, i64) -> bool,
) -> Option<(i64, i64)> {
    for (i, first) in seen.iter().enumerate() {
        if ordered && first.part != 0 {
            continue;
        }
        let mut mask = 0u8;
        let mut next_part = 0u8;
        let mut end = first.end;
        // One occurrence fills one part: a phrase listed in two parts (百万
        // as the sum and as the demand) is not both on its own.
        let mut filled_by: Option<(i64, i64)> = None;
        for p in &seen[i..] {
            if p.start > end && !close(end, p.start) {
                break;
            }
            let span = Some((p.start, p.end));
            if ordered {
                if p.part == next_part && filled_by != span {
                    next_part += 1;
                    mask |= 1 << p.part;
                    filled_by = span;
                } else if p.part >= next_part {
                    continue;
                }
            } else if mask & (1 << p.part) == 0 && filled_by != span {
                mask |= 1 << p.part;
                filled_by = span;
            }
            end = end.max(p.end);
            if mask == full {
                return Some((first.start, end));
            }
        }
    }
    None
}

/// A lexicon phrase folded as fragments are (text only, no offset map),
/// with what it belongs to; `None` when nothing of it survives folding.
fn fold_pattern(
    buffer: &mut Normalized,
    kind: PatternKind,
    owner: usize,
    part: u8,
    text: &str,
) -> Option<(PatternInfo, String)> {
    normalize_text_with(text, buffer, &mut ());
    let folded = buffer.as_str();
    if folded.is_empty() {
        return None;
    }
    let is_word = |c: Option<char>| c.and_then(class_of) == Some(CharClass::Word);
    let info = PatternInfo {
        kind,
        owner: owner as u32,
        word_left: is_word(folded.chars().next()),
        word_right: is_word(folded.chars().next_back()),
        len: folded.len() as u32,
        part,
    };
    Some((info, folded.to_owned()))
}

/// Latin patterns (terms and frames alike) need a non-word character or
/// the fragment edge on each Latin side: `kill` is not in `skill`, `you` is
/// not in `your`.
fn on_word_boundaries(info: &PatternInfo, stream: &Stream, m: &RawMatch) -> bool {
    let word = |c: Option<char>| c.and_then(class_of) == Some(CharClass::Word);
    !(info.word_left && word(stream.char_before(m.start))
        || info.word_right && word(stream.char_at(m.end)))
}

/// Class of the last character of `norm` (valid UTF-8): only its last
/// character is decoded.
fn last_class(norm: &[u8]) -> Option<CharClass> {
    let mut first = norm.len().checked_sub(1)?;
    while first > 0 && norm[first] & 0xC0 == 0x80 {
        first -= 1;
    }
    first_char(&norm[first..]).and_then(class_of)
}

/// The character that `bytes` (UTF-8 from a char boundary) starts with;
/// `None` when they are empty or do not hold a whole valid character.
fn first_char(bytes: &[u8]) -> Option<char> {
    let b0 = *bytes.first()?;
    let (len, bits) = match b0 {
        0x00..=0x7F => return Some(b0 as char),
        0xC2..=0xDF => (2, b0 & 0x1F),
        0xE0..=0xEF => (3, b0 & 0x0F),
        0xF0..=0xF4 => (4, b0 & 0x07),
        _ => return None,
    };
    let mut code = u32::from(bits);
    for &b in bytes.get(1..len)? {
        if b & 0xC0 != 0x80 {
            return None;
        }
        code = (code << 6) | u32::from(b & 0x3F);
    }
    // Overlong and surrogate encodings are not valid UTF-8.
    let min = [0, 0, 0x80, 0x800, 0x10000][len];
    char::from_u32(code).filter(|_| code >= min)
}

/// Compiles a lexicon given as (path, text) pairs: the small lexicons that
/// unit tests write for themselves.
#[cfg(test)]
pub(crate) fn engine_from_files(files: &[(&str, &str)]) -> Engine {
    let sources = files
        .iter()
        .map(|(path, text)| crate::lexicon::Source {
            path: (*path).into(),
            text: (*text).into(),
        })
        .collect();
    Engine::build(Lexicon::from_sources(sources).expect("test lexicon valid")).expect("compiles")
}

#[cfg(test)]
mod tests;
