//! The tools built on the library, each behind a subcommand: `lexicon_check`
//! (`lexicon check`: examples run, removals, expansions), `eval`
//! (labelled calls through replay, scored), `watch` (a supervisor's feed
//! in the terminal), `loadgen` (simulated calls against a running serve,
//! with an echo baseline), `scan` (lines of text through the engine) and
//! `fuzz_checks` (one check per fuzz target).
//!
//! They sit above every layer of the core (src/layers.rs) and are not its
//! API: they change with the command line, and only the binary, the
//! integration tests and the fuzz targets use them.

pub mod eval;
pub mod fuzz_checks;
pub mod lexicon_check;
pub mod loadgen;
pub mod scan;
pub mod watch;
