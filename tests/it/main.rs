//! Integration tests: one binary (STYLE.md idea 9), one module per area.

mod lexicon_cli;
mod shipped_lexicons;
