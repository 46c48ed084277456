//! The TOML schema of lexicon files, and its conversion into validated
//! [`Term`]s and [`Frame`]s with file and line attached to everything.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::expand::{expand, Form, DEFAULT_FORMS};
use super::{
    Diagnostic, Dialogue, Frame, FrameKind, FramePosition, Located, Near, Origin, Source, Term,
};
use crate::category::{self, CategoryKind, Severity, Speaker};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestDoc {
    version: String,
    #[serde(default)]
    extra_categories: Vec<String>,
}

pub(super) struct Manifest {
    pub version: String,
    pub extra_categories: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    category: Option<Spanned<String>>,
    speaker: Option<Spanned<String>>,
    severity: Option<Spanned<String>>,
    #[serde(default)]
    term: Vec<Spanned<TermDoc>>,
    #[serde(default)]
    frame: Vec<Spanned<FrameDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermDoc {
    id: Spanned<String>,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
    /// Verb forms for the `{verb:class}` slots of this term's templates.
    forms: Option<Spanned<Vec<String>>>,
    /// A proximity rule: one phrase of each part, near each other.
    #[serde(default)]
    parts: Vec<Spanned<Vec<Spanned<String>>>>,
    /// Words (Latin) or characters (CJK) allowed between two parts.
    near: Option<Spanned<i64>>,
    #[serde(default)]
    ordered: bool,
    /// The parts may be spread over the speaker's last N final utterances.
    utterances: Option<Spanned<i64>>,
    #[serde(default)]
    not_near: Vec<Spanned<String>>,
    /// Agent categories or agent term ids: the term alerts only when the
    /// agent said one of them shortly before.
    #[serde(default)]
    after_agent: Vec<Spanned<String>>,
    after_agent_seconds: Option<Spanned<i64>>,
    /// Or harassment categories the caller already raised in the call.
    #[serde(default)]
    after_caller: Vec<Spanned<String>>,
    category: Option<Spanned<String>>,
    severity: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    standalone: bool,
    #[serde(default)]
    needs_target: bool,
    #[serde(default, rename = "match")]
    must_match: Vec<Spanned<String>>,
    #[serde(default)]
    no_match: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameDoc {
    id: Spanned<String>,
    kind: Spanned<String>,
    position: Spanned<String>,
    window: Option<Spanned<i64>>,
    /// read_out frames only: turns the reading lasts (1 or 2).
    turns: Option<Spanned<i64>>,
    /// quotation frames only: the reported words run on to the end of
    /// their sentence, beyond `window`, where punctuation shows it.
    #[serde(default)]
    to_sentence_end: Option<Spanned<bool>>,
    patterns: Vec<Spanned<String>>,
    /// The categories whose hits the frame reads; all when absent ("the
    /// scumbags" names a third person for an insult, not for a threat).
    #[serde(default)]
    categories: Vec<Spanned<String>>,
    #[serde(default, rename = "match")]
    must_match: Vec<Spanned<String>>,
}

/// Phrases one term's templates may write out in all (patterns, or all
/// parts together): see [`super::expand::MAX_EXPANSIONS`].
const MAX_TERM_PHRASES: usize = 800;

/// Default frame window, in normalised characters.
const DEFAULT_WINDOW: usize = 12;
const MAX_WINDOW: i64 = 200;
/// A reading out lasts this turn and, at most, the speaker's next.
const MAX_READ_OUT_TURNS: i64 = 2;
/// Default and largest distance between the parts of a proximity rule.
const DEFAULT_NEAR: usize = 8;
const MAX_NEAR: i64 = 60;
/// Parts of one proximity rule (bits of a mask in the engine).
const MAX_PARTS: usize = 8;
/// Final utterances a proximity rule may span.
const MAX_UTTERANCES: i64 = 4;
/// How long after the agent's words an `after_agent` term still counts.
const DEFAULT_AFTER_AGENT_SECONDS: u32 = 120;
const MAX_AFTER_AGENT_SECONDS: i64 = 3600;

struct Lines<'a> {
    file: Arc<str>,
    text: &'a str,
    /// Byte offset of every newline: a line number is a binary search, not
    /// a count from the top of the file (quadratic over a file of
    /// thousands of templates).
    newlines: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(source: &'a Source) -> Lines<'a> {
        Lines {
            file: source.path.clone().into(),
            text: &source.text,
            newlines: newline_offsets(&source.text),
        }
    }

    fn origin(&self, byte: usize) -> Origin {
        let byte = byte.min(self.text.len());
        let line = self.newlines.partition_point(|&n| n < byte) as u32 + 1;
        Origin {
            file: self.file.clone(),
            line,
        }
    }

    fn located(&self, s: &Spanned<String>) -> Located {
        Located {
            text: s.get_ref().clone(),
            origin: self.origin(s.span().start),
        }
    }

    /// Templates written out ([`expand`]): every phrase keeps the line of
    /// the template it came from; a broken template is reported there.
    fn expanded(
        &self,
        templates: &[Spanned<String>],
        forms: &[Form],
        problems: &mut Vec<Diagnostic>,
    ) -> Vec<Located> {
        let mut out: Vec<Located> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in templates {
            let origin = self.origin(t.span().start);
            match expand(t.get_ref(), forms) {
                Ok(phrases) => {
                    for text in phrases {
                        if seen.insert(text.clone()) {
                            out.push(Located {
                                text,
                                origin: origin.clone(),
                            });
                        }
                    }
                }
                Err(message) => problems.push(Diagnostic { origin, message }),
            }
        }
        if out.len() > MAX_TERM_PHRASES {
            let origin = templates
                .first()
                .map_or_else(|| self.origin(0), |t| self.origin(t.span().start));
            problems.push(Diagnostic {
                origin,
                message: format!(
                    "these templates write out {} phrases (at most {MAX_TERM_PHRASES} per list): {}",
                    out.len(),
                    super::expand::TOO_MANY
                ),
            });
        }
        out
    }

    fn problem(&self, byte: usize, message: String) -> Diagnostic {
        Diagnostic {
            origin: self.origin(byte),
            message,
        }
    }
}

fn newline_offsets(text: &str) -> Vec<usize> {
    text.bytes()
        .enumerate()
        .filter_map(|(i, b)| (b == b'\n').then_some(i))
        .collect()
}

fn syntax_error(lines: &Lines, e: toml::de::Error) -> Diagnostic {
    let at = e.span().map(|s| s.start).unwrap_or(0);
    let message = e.message().trim().replace('\n', " ");
    lines.problem(at, format!("invalid TOML: {message}"))
}

pub(super) fn parse_manifest(source: &Source) -> Result<Manifest, Diagnostic> {
    let lines = Lines::new(source);
    let doc: ManifestDoc = toml::from_str(&source.text).map_err(|e| syntax_error(&lines, e))?;
    if doc.version.trim().is_empty() {
        return Err(lines.problem(0, "version must not be empty".into()));
    }
    Ok(Manifest {
        version: doc.version,
        extra_categories: doc.extra_categories,
    })
}

/// One language file's terms and frames, and the problems found in it.
pub(super) struct ParsedFile {
    pub terms: Vec<Term>,
    pub frames: Vec<Frame>,
    pub problems: Vec<Diagnostic>,
}

/// Parses one language file. A syntax error fails the file; semantic
/// problems are collected so one run reports them all.
pub(super) fn parse_terms(
    source: &Source,
    language: &str,
    extra_categories: &[String],
) -> Result<ParsedFile, Diagnostic> {
    let lines = Lines::new(source);
    let doc: FileDoc = toml::from_str(&source.text).map_err(|e| syntax_error(&lines, e))?;
    let language: Arc<str> = language.into();
    let mut problems = Vec::new();
    let lookup = |id: &str| {
        category::builtin(id).or_else(|| {
            extra_categories.iter().any(|c| c == id).then_some((
                CategoryKind::Harassment,
                Severity::Warning,
                Speaker::Customer,
            ))
        })
    };
    let file_speaker = match &doc.speaker {
        Some(s) => match s.get_ref().parse::<Speaker>() {
            Ok(sp) => Some(sp),
            Err(e) => {
                problems.push(lines.problem(s.span().start, e));
                None
            }
        },
        None => None,
    };

    let mut terms = Vec::new();
    for spanned in &doc.term {
        let t = spanned.get_ref();
        let origin = lines.origin(spanned.span().start);
        let id = t.id.get_ref();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            problems.push(lines.problem(
                t.id.span().start,
                format!("term id {id:?} must be lower-case letters, digits and _"),
            ));
            continue;
        }
        let Some(category) = t.category.as_ref().or(doc.category.as_ref()) else {
            problems.push(lines.problem(
                t.id.span().start,
                format!("term {id:?} has no category (set `category` on the term or at the top of the file)"),
            ));
            continue;
        };
        let Some((kind, default_severity, category_speaker)) = lookup(category.get_ref()) else {
            problems.push(lines.problem(
                category.span().start,
                format!(
                    "unknown category {:?} (known: {}; a tenant adds its own in lexicon.toml extra_categories)",
                    category.get_ref(),
                    category::BUILTIN_CATEGORIES
                        .iter()
                        .map(|c| c.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            continue;
        };
        let speaker = file_speaker.unwrap_or(category_speaker);
        // The one crossing allowed: the agent naming what the caller did
        // ("that sounds like a threat", 従業員の氏名の掲載はお控えください).
        let names_caller = speaker == Speaker::Agent
            && matches!(kind, CategoryKind::Harassment | CategoryKind::Welfare);
        if speaker != category_speaker && !names_caller {
            problems.push(lines.problem(
                spanned.span().start,
                format!(
                    "term {id:?}: category {:?} is for {} speech, but the file says speaker = {:?}",
                    category.get_ref(),
                    category_speaker.as_str(),
                    speaker.as_str()
                ),
            ));
        }
        let severity = match t.severity.as_ref().or(doc.severity.as_ref()) {
            Some(s) => match s.get_ref().parse::<Severity>() {
                Ok(sev) => sev,
                Err(e) => {
                    problems.push(lines.problem(s.span().start, e));
                    default_severity
                }
            },
            None => default_severity,
        };
        if matches!(kind, CategoryKind::Signal | CategoryKind::AgentMarker)
            && severity != Severity::Info
        {
            let at = t
                .severity
                .as_ref()
                .or(doc.severity.as_ref())
                .map_or(spanned.span().start, |s| s.span().start);
            problems.push(lines.problem(
                at,
                format!(
                    "category {:?} is a signal and never raises more than info (term {id:?})",
                    category.get_ref()
                ),
            ));
        }
        let forms = match &t.forms {
            Some(list) => match Form::parse_list(list.get_ref().iter().map(String::as_str)) {
                Ok(forms) => forms,
                Err(message) => {
                    problems.push(lines.problem(list.span().start, message));
                    DEFAULT_FORMS.to_vec()
                }
            },
            None => DEFAULT_FORMS.to_vec(),
        };
        let near = parse_near(&lines, t, id, &forms, &mut problems);
        if t.patterns.is_empty() && near.is_none() {
            problems.push(lines.problem(
                t.id.span().start,
                format!("term {id:?} has no patterns (or parts)"),
            ));
        }
        if !t.patterns.is_empty() && near.is_some() {
            problems.push(lines.problem(
                t.id.span().start,
                format!("term {id:?} has both patterns and parts: make them two terms"),
            ));
        }
        let dialogue = parse_dialogue(&lines, t, id, speaker, &mut problems);
        if t.standalone && t.patterns.iter().any(|p| !has_cjk(p.get_ref())) {
            problems.push(lines.problem(
                t.id.span().start,
                format!("term {id:?}: standalone applies to CJK patterns only (Latin patterns always match whole words)"),
            ));
        }
        let group = t
            .group
            .as_ref()
            .map(|g| Arc::<str>::from(g.get_ref().as_str()));
        terms.push(Term {
            language: language.clone(),
            id: id.clone(),
            rule: format!("{language}/{}/{id}", category.get_ref()).into(),
            category: category.get_ref().as_str().into(),
            kind,
            severity,
            severity_explicit: t.severity.is_some() || doc.severity.is_some(),
            speaker,
            group,
            patterns: lines.expanded(&t.patterns, &forms, &mut problems),
            exclude: lines.expanded(&t.exclude, &forms, &mut problems),
            near,
            dialogue,
            standalone: t.standalone,
            needs_target: t.needs_target,
            must_match: t.must_match.iter().map(|p| lines.located(p)).collect(),
            must_not_match: t.no_match.iter().map(|p| lines.located(p)).collect(),
            origin,
        });
    }

    let mut frames = Vec::new();
    for spanned in &doc.frame {
        let f = spanned.get_ref();
        let kind = match f.kind.get_ref().as_str() {
            "negation" => FrameKind::Negation,
            "quotation" => FrameKind::Quotation,
            "target" => FrameKind::Target,
            "figurative" => FrameKind::Figurative,
            "read_out" => FrameKind::ReadOut,
            "read_out_end" => FrameKind::ReadOutEnd,
            "read_out_asked" => FrameKind::ReadOutAsked,
            "not_target" => FrameKind::NotTarget,
            "relay" => FrameKind::Relay,
            other => {
                problems.push(lines.problem(
                    f.kind.span().start,
                    format!(
                        "unknown frame kind {other:?} (expected negation, quotation, target, \
                         figurative, read_out, read_out_end, read_out_asked, not_target or relay)"
                    ),
                ));
                continue;
            }
        };
        let position = match f.position.get_ref().as_str() {
            "before" => FramePosition::Before,
            "after" => FramePosition::After,
            "around" => FramePosition::Around,
            other => {
                problems.push(lines.problem(
                    f.position.span().start,
                    format!("unknown frame position {other:?} (expected before, after or around)"),
                ));
                continue;
            }
        };
        let window = match &f.window {
            Some(w) if !(1..=MAX_WINDOW).contains(w.get_ref()) => {
                problems.push(lines.problem(
                    w.span().start,
                    format!("window must be between 1 and {MAX_WINDOW} characters"),
                ));
                continue;
            }
            Some(w) => *w.get_ref() as usize,
            None => DEFAULT_WINDOW,
        };
        let turns = match (&f.turns, kind) {
            (None, FrameKind::ReadOut) => 1,
            (None, _) => 0,
            (Some(t), FrameKind::ReadOut) if (1..=MAX_READ_OUT_TURNS).contains(t.get_ref()) => {
                *t.get_ref() as u8
            }
            (Some(t), FrameKind::ReadOut) => {
                problems.push(lines.problem(
                    t.span().start,
                    format!("turns must be between 1 and {MAX_READ_OUT_TURNS}"),
                ));
                continue;
            }
            (Some(t), _) => {
                problems.push(lines.problem(
                    t.span().start,
                    "turns applies to a read_out frame only".to_owned(),
                ));
                continue;
            }
        };
        let to_sentence_end = match &f.to_sentence_end {
            Some(t) if kind != FrameKind::Quotation => {
                problems.push(lines.problem(
                    t.span().start,
                    "to_sentence_end applies to a quotation frame only".to_owned(),
                ));
                continue;
            }
            Some(t) => *t.get_ref(),
            None => false,
        };
        if f.patterns.is_empty() {
            problems.push(lines.problem(
                f.id.span().start,
                format!("frame {:?} has no patterns", f.id.get_ref()),
            ));
        }
        let mut categories = Vec::with_capacity(f.categories.len());
        for c in &f.categories {
            if lookup(c.get_ref()).is_none() {
                problems.push(lines.problem(
                    c.span().start,
                    format!(
                        "frame {:?}: unknown category {:?}",
                        f.id.get_ref(),
                        c.get_ref()
                    ),
                ));
                continue;
            }
            categories.push(c.get_ref().as_str().into());
        }
        frames.push(Frame {
            language: language.clone(),
            id: f.id.get_ref().clone(),
            kind,
            position,
            window,
            turns,
            to_sentence_end,
            categories,
            patterns: lines.expanded(&f.patterns, DEFAULT_FORMS, &mut problems),
            must_match: f.must_match.iter().map(|p| lines.located(p)).collect(),
            origin: lines.origin(spanned.span().start),
        });
    }
    Ok(ParsedFile {
        terms,
        frames,
        problems,
    })
}

/// The proximity part of a term (`parts`, `near`, `ordered`,
/// `utterances`, `not_near`), checked.
fn parse_near(
    lines: &Lines,
    t: &TermDoc,
    id: &str,
    forms: &[Form],
    problems: &mut Vec<Diagnostic>,
) -> Option<Near> {
    let at = t.id.span().start;
    if t.parts.is_empty() {
        for (set, key) in [
            (t.near.is_some(), "near"),
            (t.ordered, "ordered"),
            (t.utterances.is_some(), "utterances"),
            (!t.not_near.is_empty(), "not_near"),
        ] {
            if set {
                problems.push(lines.problem(
                    at,
                    format!("term {id:?}: {key} applies to a term with parts"),
                ));
            }
        }
        return None;
    }
    if !(2..=MAX_PARTS).contains(&t.parts.len()) {
        problems.push(lines.problem(
            at,
            format!(
                "term {id:?}: a rule has 2 to {MAX_PARTS} parts, not {}",
                t.parts.len()
            ),
        ));
        return None;
    }
    let mut parts = Vec::with_capacity(t.parts.len());
    for (k, part) in t.parts.iter().enumerate() {
        let phrases = lines.expanded(part.get_ref(), forms, problems);
        if phrases.is_empty() {
            problems.push(lines.problem(
                part.span().start,
                format!("term {id:?}: part {} has no phrases", k + 1),
            ));
        }
        parts.push(phrases);
    }
    let bounded = |value: &Option<Spanned<i64>>, max: i64, default: usize, key: &str| match value {
        Some(v) if !(1..=max).contains(v.get_ref()) => {
            Err(lines.problem(v.span().start, format!("{key} must be between 1 and {max}")))
        }
        Some(v) => Ok(*v.get_ref() as usize),
        None => Ok(default),
    };
    let distance = bounded(&t.near, MAX_NEAR, DEFAULT_NEAR, "near");
    let utterances = bounded(&t.utterances, MAX_UTTERANCES, 1, "utterances");
    let (distance, utterances) = match (distance, utterances) {
        (Ok(d), Ok(u)) => (d, u),
        (d, u) => {
            problems.extend(d.err());
            problems.extend(u.err());
            return None;
        }
    };
    Some(Near {
        parts,
        distance,
        ordered: t.ordered,
        utterances: utterances as u8,
        not_near: lines.expanded(&t.not_near, forms, problems),
    })
}

/// `after_agent`, `after_agent_seconds` and `after_caller`, checked (the
/// names are checked against the categories and other terms once every
/// file is read).
fn parse_dialogue(
    lines: &Lines,
    t: &TermDoc,
    id: &str,
    speaker: Speaker,
    problems: &mut Vec<Diagnostic>,
) -> Option<Dialogue> {
    if t.after_agent.is_empty() {
        if let Some(s) = &t.after_agent_seconds {
            problems.push(lines.problem(
                s.span().start,
                format!("term {id:?}: after_agent_seconds without after_agent"),
            ));
        }
        if t.after_caller.is_empty() {
            return None;
        }
    }
    if speaker != Speaker::Customer {
        problems.push(lines.problem(
            t.id.span().start,
            format!("term {id:?}: after_agent and after_caller apply to the customer's terms"),
        ));
        return None;
    }
    let seconds = match &t.after_agent_seconds {
        Some(s) if !(1..=MAX_AFTER_AGENT_SECONDS).contains(s.get_ref()) => {
            problems.push(lines.problem(
                s.span().start,
                format!("after_agent_seconds must be between 1 and {MAX_AFTER_AGENT_SECONDS}"),
            ));
            return None;
        }
        Some(s) => *s.get_ref() as u32,
        None => DEFAULT_AFTER_AGENT_SECONDS,
    };
    Some(Dialogue {
        after_agent: t.after_agent.iter().map(|m| lines.located(m)).collect(),
        seconds,
        after_caller: t.after_caller.iter().map(|m| lines.located(m)).collect(),
    })
}

fn has_cjk(s: &str) -> bool {
    s.chars()
        .any(|c| crate::text::class_of(c) == Some(crate::text::CharClass::Cjk))
}
