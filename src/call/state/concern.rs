//! The agent's concern for the caller's safety: what the caller just told
//! was done to them, not by them (reported incidents).

use std::sync::Arc;

use super::extortion::EXTORTION_RULE;
use super::CallSession;
use crate::alert::{AlertEvent, AlertStatus, Evidence};
use crate::category::{id, Severity};
use crate::policy::PolicySet;

/// Categories a caller may be telling of rather than doing: what someone
/// else did or said to them, once the agent answers with concern.
pub(super) const NARRATABLE: [&str; 4] =
    [id::VIOLENCE, id::THREAT, id::INTIMIDATION, id::VERBAL_ABUSE];
/// Customer alerts remembered for the agent's answer (`agent_concern`).
const MAX_ANSWERABLE: usize = 16;
/// How far back the agent's concern reaches: the caller's account just told.
const CONCERN_LOOKBACK_MS: u64 = 60_000;
/// A self-harm hit this recent makes the agent's concern an answer to it.
const SELF_HARM_RECENT_MS: u64 = 300_000;

/// A customer alert in a [`NARRATABLE`] category (or the extortion made of
/// one), kept until the agent answers: concern for the caller's safety
/// turns it into a report.
pub(super) struct Answerable {
    local_id: u32,
    category: Arc<str>,
    rule: Arc<str>,
    at_ms: u64,
    evidence: Vec<Evidence>,
}

impl CallSession {
    /// The agent asked after the caller's safety: what the caller just said
    /// was an account of something done to them. Their recent alerts in a
    /// [`NARRATABLE`] category are updated to `info` (same alert id, the
    /// agent's words added as evidence, the strike given back), and the same
    /// words stay at `info` for `reported_incident_seconds`. Not after the
    /// caller's own self-harm words: then the concern answers those.
    pub(super) fn on_agent_concern(
        &mut self,
        at_ms: u64,
        said: Evidence,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let window = policy.combinations.reported_incident_ms();
        if window == 0
            || self
                .self_harm_at
                .is_some_and(|t| at_ms.saturating_sub(t) <= SELF_HARM_RECENT_MS)
        {
            return;
        }
        self.concern_at = Some(at_ms);
        let since = at_ms.saturating_sub(CONCERN_LOOKBACK_MS);
        // A threat in the account just told was made to the caller, not by
        // them: it can no longer make a sum they name extortion.
        if self.last_threat.as_ref().is_some_and(|(t, _)| *t >= since) {
            self.last_threat = None;
        }
        // Nor does it make the caller's questions about the agent hostile.
        self.hostile = None;
        let action: Arc<str> = policy.escalation.info_action.as_str().into();
        for told in std::mem::take(&mut self.answerable) {
            if told.at_ms < since {
                continue;
            }
            let Some(summary) = self
                .alerts
                .iter_mut()
                .find(|a| a.local_id == told.local_id && a.status != AlertStatus::Retracted)
            else {
                continue;
            };
            summary.severity = Severity::Info;
            self.strikes = self.strikes.saturating_sub(1);
            self.cooldown
                .remove(&(told.category.clone(), told.rule.clone()));
            let mut evidence = told.evidence;
            evidence.truncate(policy.session.max_evidence.saturating_sub(1));
            evidence.push(said.clone());
            out.push(AlertEvent {
                local_id: told.local_id,
                status: AlertStatus::Confirmed,
                category: told.category,
                severity: Severity::Info,
                rule: told.rule,
                at_ms,
                evidence,
                action: action.clone(),
            });
        }
    }

    /// Keeps a customer alert the agent's concern may turn into a report:
    /// one in a [`NARRATABLE`] category, or the extortion made of one.
    pub(super) fn keep_answerable(&mut self, raised: Option<&AlertEvent>) {
        let Some(alert) = raised else { return };
        let answerable = NARRATABLE.contains(&&*alert.category) || &*alert.rule == EXTORTION_RULE;
        if alert.severity < Severity::Warning || !answerable {
            return;
        }
        if self.answerable.len() == MAX_ANSWERABLE {
            self.answerable.pop_front();
        }
        self.answerable.push_back(Answerable {
            local_id: alert.local_id,
            category: alert.category.clone(),
            rule: alert.rule.clone(),
            at_ms: alert.at_ms,
            evidence: alert.evidence.clone(),
        });
    }

    /// The agent read the warning script in an utterance starting at
    /// `at_ms`: she hears the caller's own abuse now, not an account, and
    /// abuse words from here on count however recent her concern. (Not
    /// her refusals: "I can't promise that" is said in reports too.)
    /// Advice in the same breath as the concern ("are you hurt? please
    /// don't try it yourself") does not end it.
    pub(super) fn end_account(&mut self, at_ms: u64) {
        if self.concern_at.is_some_and(|t| t < at_ms) {
            self.concern_at = None;
        }
    }

    /// Is the caller telling of an incident the agent answered with concern?
    pub(super) fn telling_of_incident(&self, policy: &PolicySet, at_ms: u64) -> bool {
        let window = policy.combinations.reported_incident_ms();
        self.concern_at
            .is_some_and(|t| at_ms >= t && at_ms - t <= window)
    }
}
