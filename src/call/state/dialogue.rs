//! Dialogue conditions: a term that alerts only after the agent said one
//! of its markers, or after the caller already raised one of its categories.

use super::CallSession;
use crate::category::Severity;
use crate::engine::Engine;
use crate::lexicon::Dialogue;

/// The agent's recent stage markers kept for dialogue rules (`after_agent`).
pub(super) const RECENT_AGENT_MARKERS: usize = 16;

impl CallSession {
    /// Whether a dialogue rule's context holds at `at_ms`: the agent said
    /// one of its markers shortly before, or the caller already raised one
    /// of its categories at warning or above in this call.
    pub(super) fn dialogue_holds(&self, engine: &Engine, dialogue: &Dialogue, at_ms: u64) -> bool {
        let since = at_ms.saturating_sub(u64::from(dialogue.seconds) * 1000);
        let agent_said = self.agent_markers.iter().any(|&(ms, id)| {
            let said = engine.term(id);
            ms >= since
                && dialogue
                    .after_agent
                    .iter()
                    .any(|m| m.text == said.id || *m.text == *said.category)
        });
        agent_said
            || self.raised_at_warning(|c| dialogue.after_caller.iter().any(|a| *a.text == *c))
    }

    /// Whether the caller already raised a category `named` at warning or
    /// above in this call.
    pub(super) fn raised_at_warning(&self, named: impl Fn(&str) -> bool) -> bool {
        self.cooldown
            .iter()
            .any(|((category, _), &(_, severity))| severity >= Severity::Warning && named(category))
    }
}
