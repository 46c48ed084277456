//! Errors of lexicon loading and checking: every problem carries the file and
//! line a policy owner has to open.

use std::fmt;
use std::sync::Arc;

/// Where a lexicon item was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One problem found in a lexicon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Why a lexicon set could not be loaded or built.
#[derive(Debug, thiserror::Error)]
pub enum LexiconError {
    #[error("cannot read lexicon {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lexicon directory {0} holds no lexicon.toml")]
    MissingManifest(String),
    #[error("invalid lexicon ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, DisplayList(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("cannot compile lexicon automaton: {0}")]
    Automaton(String),
}

struct DisplayList<'a>(&'a [Diagnostic]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {d}")?;
        }
        Ok(())
    }
}
