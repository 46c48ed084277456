//! What the agent's warning answers. The agent reads the warning script
//! ("そのようなご発言はお控えください", "if that language continues I will end
//! the call") because she heard the caller's last words as abuse: she hears
//! the tone, the pause, what went before, which a phrase list cannot. Words
//! of the caller the rules left at `info` since she last spoke (a veiled
//! threat no refusal came before, an insult without a clear target, a name
//! asked once) are raised at warning when her next utterance is a warning,
//! with her words as evidence. Only words the call's context lowered: a
//! term mild by itself stays mild. Not persistence, restraint or self-harm: a
//! count is not confirmed by one answer, and a warning is no answer to
//! self-harm.

use std::sync::Arc;

use super::raise::base_severity;
use super::CallSession;
use crate::alert::{AlertEvent, Evidence};
use crate::category::{id, Severity};
use crate::lexicon::Term;
use crate::policy::PolicySet;

/// Categories the agent's warning confirms.
const CONFIRMABLE: [&str; 9] = [
    id::VIOLENCE,
    id::THREAT,
    id::INTIMIDATION,
    id::VERBAL_ABUSE,
    id::EXCESSIVE_DEMAND,
    id::PERSONAL_ATTACK,
    id::ONLINE_DEFAMATION,
    id::DISCRIMINATION,
    id::SEXUAL_HARASSMENT,
];
/// The caller's info alerts kept until the agent speaks.
const MAX_UNANSWERED: usize = 8;

/// A customer alert left at info, waiting for the agent's next utterance.
pub(super) struct Unanswered {
    pub(super) category: Arc<str>,
    pub(super) rule: Arc<str>,
    pub(super) evidence: Vec<Evidence>,
}

impl CallSession {
    /// Keeps a customer alert of `term` the call's context lowered to info
    /// (a [`CONFIRMABLE`] category) until the agent next speaks. Not a
    /// term that is mild by itself ("sweetheart", a put-down counted
    /// towards a pattern): the warning answers what was really said.
    pub(super) fn keep_unanswered(
        &mut self,
        raised: Option<&AlertEvent>,
        term: &Term,
        policy: &PolicySet,
    ) {
        let Some(alert) = raised else { return };
        if alert.severity != Severity::Info
            || base_severity(term, policy) < Severity::Warning
            || !CONFIRMABLE.contains(&&*alert.category)
        {
            return;
        }
        // A question about the agent also waits for the caller's hostility.
        self.keep_question(alert);
        if self.unanswered.len() >= MAX_UNANSWERED {
            return;
        }
        self.unanswered.push(Unanswered {
            category: alert.category.clone(),
            rule: alert.rule.clone(),
            evidence: alert.evidence.clone(),
        });
    }

    /// The agent spoke: if she warned, the caller's words she answered are
    /// raised at warning (a new alert of the same rule, her words added as
    /// evidence); either way the next warning answers only what comes next.
    pub(super) fn on_agent_answer(
        &mut self,
        warned: Option<Evidence>,
        at_ms: u64,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let unanswered = std::mem::take(&mut self.unanswered);
        let Some(said) = warned else { return };
        for told in unanswered {
            let mut evidence = told.evidence;
            evidence.truncate(policy.session.max_evidence.saturating_sub(1));
            evidence.push(said.clone());
            out.extend(self.raise(
                policy,
                &told.category,
                &told.rule,
                Severity::Warning,
                at_ms,
                evidence,
            ));
        }
    }
}
