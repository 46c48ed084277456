//! What the agent names. Callers say a threat, an exposure or a wish to
//! die in more ways than a phrase list holds; the agent who heard it
//! answers in a few trained ones: "that sounds like a threat", "I'd ask
//! you not to post my name", 従業員の氏名の掲載はお控えください, "are you
//! alone right now?". A lexicon term of a caller's category spoken by the
//! agent (`speaker = "agent"`) is such a naming: it raises its category
//! at warning for the caller's words she answered, with both as evidence.
//!
//! Only as an answer (the caller spoke since she last did), not beside
//! her concern (then she names what was done to the caller: "that's a
//! threat, I'm sorry you received it"), and once per category: a category
//! the caller already raised at warning needs no second alert.

use std::sync::Arc;

use super::CallSession;
use crate::alert::{AlertEvent, Evidence};
use crate::category::{CategoryKind, Severity, Speaker};
use crate::engine::{Framing, Hit};
use crate::lexicon::Term;
use crate::policy::PolicySet;

/// A category the agent named in one utterance, and her words.
pub(super) struct Naming {
    category: Arc<str>,
    rule: Arc<str>,
    kind: CategoryKind,
    said: Evidence,
}

impl Naming {
    /// `term` is a caller's category the agent said plainly (not "I'm
    /// not saying that's a threat"), else `None`.
    pub(super) fn of(term: &Term, hit: &Hit, said: &Evidence) -> Option<Naming> {
        (term.speaker == Speaker::Agent
            && matches!(term.kind, CategoryKind::Harassment | CategoryKind::Welfare)
            && hit.framing == Framing::Plain)
            .then(|| Naming {
                category: term.category.clone(),
                rule: term.rule.clone(),
                kind: term.kind,
                said: said.clone(),
            })
    }
}

impl CallSession {
    /// The agent's utterance named `namings`; `concerned`: it also said
    /// her concern for the caller. A welfare naming stands beside concern
    /// (that is how it is said); a harassment one does not.
    pub(super) fn on_agent_names(
        &mut self,
        namings: Vec<Naming>,
        concerned: bool,
        at_ms: u64,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let answered = std::mem::replace(&mut self.finals_answered, self.customer_finals);
        if namings.is_empty() || answered == self.customer_finals {
            return;
        }
        let Some(told) = self.last_final[0]
            .as_ref()
            .map(|l| l.evidence(Speaker::Customer))
        else {
            return;
        };
        for naming in namings {
            if (concerned && naming.kind == CategoryKind::Harassment)
                || self.raised_at_warning(|c| *c == *naming.category)
            {
                continue;
            }
            // Words of the caller the rules left at info in this category
            // are what she named: their rule and evidence, not a new one.
            let (rule, mut evidence) = match self
                .unanswered
                .iter()
                .position(|u| u.category == naming.category)
            {
                Some(i) => {
                    let kept = self.unanswered.swap_remove(i);
                    (kept.rule, kept.evidence)
                }
                None => (naming.rule, vec![told.clone()]),
            };
            evidence.truncate(policy.session.max_evidence.saturating_sub(1));
            evidence.push(naming.said);
            out.extend(self.raise(
                policy,
                &naming.category,
                &rule,
                Severity::Warning,
                at_ms,
                evidence,
            ));
        }
    }
}
