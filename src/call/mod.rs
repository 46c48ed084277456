//! The per-call state machine: turns one call's events and the engine's hits
//! into alerts, the way a supervisor needs them — once, on time, with the
//! right severity and a recommended action.
//!
//! Pure and deterministic: it reads no clock and holds no global state.
//! Every timing rule runs on the audio milliseconds of the events, so the
//! same events give the same alerts live and in replay. Engine and policy
//! are passed in per event, so a reload applies from a call's next fragment.
//!
//! Interim results (documented behaviour, tested in `tests.rs`):
//! - a *critical* hit on interim text raises a `provisional` alert at once;
//!   later revisions of the same utterance never raise it again;
//! - the final text decides: the same `local_id` is sent again as
//!   `confirmed` if the term is still there, `retracted` if the words were
//!   revised away (a retracted alert also releases its cooldown, so the
//!   words said for real later still alert);
//! - an utterance that never gets a final (the call ended, or too many
//!   utterances were open) is decided by its latest interim text;
//! - non-critical hits and all counters wait for the final text.
//!
//! Memory is bounded whatever the call length: open utterances, kept alert
//! summaries, evidence per alert and remembered utterance ids all have caps
//! from the policy; counters are per lexicon group (a fixed set).

mod callers;
mod state;
mod table;
#[cfg(test)]
mod tests;

pub use callers::{CallerHasher, CallerHistory, CallerKey};
pub use state::{CallSession, CallSnapshot, CallStatus, RiskLevel};
pub use table::{CallLimit, CallTable, Routed, TableError};

use crate::event::EventError;

/// What applying an event did.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// The event was taken; these alerts (and alert updates) follow from it.
    Accepted(Vec<crate::alert::AlertEvent>),
    /// A repeat of an event already taken (same `seq`, or a final result
    /// for an utterance already final): ignored.
    Duplicate,
}

/// Why the call refused an event; the call goes on.
pub type ApplyError = EventError;
