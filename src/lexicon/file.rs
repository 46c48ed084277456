//! The TOML schema of lexicon files, and its conversion into validated
//! [`Term`]s and [`Frame`]s with file and line attached to everything.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{Diagnostic, Frame, FrameKind, FramePosition, Located, Origin, Source, Term};
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
    patterns: Vec<Spanned<String>>,
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
    patterns: Vec<Spanned<String>>,
    #[serde(default, rename = "match")]
    must_match: Vec<Spanned<String>>,
}

/// Default frame window, in normalised characters.
const DEFAULT_WINDOW: usize = 12;
const MAX_WINDOW: i64 = 200;

struct Lines<'a> {
    file: Arc<str>,
    text: &'a str,
}

impl Lines<'_> {
    fn origin(&self, byte: usize) -> Origin {
        let upto = &self.text.as_bytes()[..byte.min(self.text.len())];
        let line = upto.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
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

    fn problem(&self, byte: usize, message: String) -> Diagnostic {
        Diagnostic {
            origin: self.origin(byte),
            message,
        }
    }
}

fn syntax_error(lines: &Lines, e: toml::de::Error) -> Diagnostic {
    let at = e.span().map(|s| s.start).unwrap_or(0);
    let message = e.message().trim().replace('\n', " ");
    lines.problem(at, format!("invalid TOML: {message}"))
}

pub(super) fn parse_manifest(source: &Source) -> Result<Manifest, Diagnostic> {
    let lines = Lines {
        file: source.path.clone().into(),
        text: &source.text,
    };
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
    let lines = Lines {
        file: source.path.clone().into(),
        text: &source.text,
    };
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
        if speaker != category_speaker {
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
        if t.patterns.is_empty() {
            problems.push(lines.problem(t.id.span().start, format!("term {id:?} has no patterns")));
        }
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
            patterns: t.patterns.iter().map(|p| lines.located(p)).collect(),
            exclude: t.exclude.iter().map(|p| lines.located(p)).collect(),
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
            other => {
                problems.push(lines.problem(
                    f.kind.span().start,
                    format!(
                        "unknown frame kind {other:?} (expected negation, quotation or target)"
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
        if f.patterns.is_empty() {
            problems.push(lines.problem(
                f.id.span().start,
                format!("frame {:?} has no patterns", f.id.get_ref()),
            ));
        }
        frames.push(Frame {
            language: language.clone(),
            id: f.id.get_ref().clone(),
            kind,
            position,
            window,
            patterns: f.patterns.iter().map(|p| lines.located(p)).collect(),
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

fn has_cjk(s: &str) -> bool {
    s.chars()
        .any(|c| crate::text::class_of(c) == Some(crate::text::CharClass::Cjk))
}
