//! Questions about the agent, read in the light of the caller's threats.
//! Asking the agent's name, when her shift ends or where the centre is, is
//! fair once on its own, and the rules leave it at info. Asked by a caller
//! who in the same call threatens, wishes harm or threatens to expose her
//! at warning, it is what DESIGN's `personal_attack` names: details wanted
//! "to harass". Either order counts: the question before the threat
//! ("what's your surname? ... drive safe tonight") or after it. The
//! question is raised when the agent next speaks, unless she answers with
//! concern: then the threat was one the caller was telling of.

use std::sync::Arc;

use super::CallSession;
use crate::alert::{AlertEvent, AlertStatus, Evidence};
use crate::category::{id, Severity};
use crate::policy::PolicySet;

/// Categories of the caller's that make a question about the agent hostile.
const HOSTILE: [&str; 3] = [id::THREAT, id::VIOLENCE, id::ONLINE_DEFAMATION];
/// Questions about the agent kept at info until the caller turns hostile.
const MAX_QUESTIONS: usize = 8;

/// A `personal_attack` alert the call's context left at info.
pub(super) struct Question {
    rule: Arc<str>,
    evidence: Vec<Evidence>,
}

impl CallSession {
    /// Keeps a customer `personal_attack` alert raised at info by the
    /// call's context (not a term mild by itself: the caller checks that).
    pub(super) fn keep_question(&mut self, raised: &AlertEvent) {
        if &*raised.category == id::PERSONAL_ATTACK
            && raised.severity == Severity::Info
            && self.questions.len() < MAX_QUESTIONS
        {
            self.questions.push(Question {
                rule: raised.rule.clone(),
                evidence: raised.evidence.clone(),
            });
        }
    }

    /// Notes the caller's first hostile alert among `raised` (the alerts of
    /// one customer final).
    pub(super) fn note_hostile(&mut self, raised: &[AlertEvent]) {
        if self.hostile.is_none() {
            self.hostile = raised
                .iter()
                .find(|a| {
                    HOSTILE.contains(&&*a.category)
                        && a.severity >= Severity::Warning
                        && a.status != AlertStatus::Retracted
                })
                .and_then(|a| a.evidence.last().cloned());
        }
    }

    /// The agent spoke (her concern, if any, already heard): once the
    /// caller has been hostile, raises every kept question at warning, the
    /// hostile words added as evidence.
    pub(super) fn confirm_questions(
        &mut self,
        at_ms: u64,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        if self.questions.is_empty() {
            return; // most agent finals: nothing to clone
        }
        let Some(hostile) = self.hostile.clone() else {
            return;
        };
        for question in std::mem::take(&mut self.questions) {
            let mut evidence = question.evidence;
            evidence.truncate(policy.session.max_evidence.saturating_sub(1));
            if !evidence.contains(&hostile) {
                evidence.push(hostile.clone());
            }
            out.extend(self.raise(
                policy,
                id::PERSONAL_ATTACK,
                &question.rule,
                Severity::Warning,
                at_ms,
                evidence,
            ));
        }
    }
}
