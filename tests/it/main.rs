//! Integration tests: one binary (STYLE.md idea 9), one module per area.

mod browser;
mod console;
mod deploy;
mod faults;
mod fuzz_regressions;
mod hostile;
mod import_cli;
mod ingest;
mod lexicon_cli;
mod live_vs_replay;
mod loadgen;
mod replay_cli;
mod security;
mod server;
mod shipped_lexicons;
mod support;
mod watch;
mod webhook;
