//! From a hit to an alert: the severity a hit alerts with, the cooldown,
//! the action, and the warning ladder that picks it.

use std::sync::Arc;

use super::concern::NARRATABLE;
use super::counters::GROUP_DOGEZA;
use super::{AlertSummary, CallSession};
use crate::alert::{AlertEvent, AlertStatus, Evidence};
use crate::category::{id, CategoryKind, Severity};
use crate::engine::{Engine, Framing, Hit};
use crate::lexicon::Term;
use crate::policy::PolicySet;

/// The severity a term alerts with before the call's context (framing,
/// target, dialogue, the agent's concern) lowers it: its own, or its
/// category's in the policy.
pub(super) fn base_severity(term: &Term, policy: &PolicySet) -> Severity {
    if term.severity_explicit {
        term.severity
    } else {
        policy
            .category_severity(&term.category)
            .unwrap_or(term.severity)
    }
}

/// Where a call stands on the warning ladder.
#[derive(Clone, Copy)]
pub(super) struct LadderStep {
    step: usize,
    /// `customer_finals` when the step was taken.
    utterance: u32,
    /// Agent warnings heard when the step was taken.
    warnings: usize,
}

impl CallSession {
    /// The category, rule and severity a hit alerts with, or `None` for
    /// signals and disabled categories.
    pub(super) fn assess(
        &self,
        hit: &Hit,
        engine: &Engine,
        policy: &PolicySet,
        at_ms: u64,
    ) -> Option<(Arc<str>, Arc<str>, Severity)> {
        let term = engine.term(hit.term);
        if !matches!(term.kind, CategoryKind::Harassment | CategoryKind::Welfare) {
            return None;
        }
        if !policy.category_enabled(&term.category) {
            return None;
        }
        let mut severity = base_severity(term, policy);
        if term.group.as_deref() == Some(GROUP_DOGEZA) {
            severity = Severity::Critical; // a demand to kneel is always critical
        }
        if hit.framing == Framing::Negated {
            // A term raised above its category's severity is raised for the
            // demand made. Disclaimed (土下座しろとかそういう話じゃなくて, "not
            // that I want you on your knees") its words weigh as the
            // category's own, and the negation takes one level from that.
            if let Some(own) = policy.full_severity(&term.category) {
                severity = severity.min(own);
            }
        }
        severity = hit.framing.severity(severity, hit.addressed);
        if term.needs_target && !hit.targeted {
            severity = Severity::Info; // aimed at the product: a complaint
        }
        if let Some(dialogue) = &term.dialogue {
            if !self.dialogue_holds(engine, dialogue, at_ms) {
                // Fair on its own (asking a name once, "be careful"): seen,
                // not alerting.
                severity = Severity::Info;
            }
        }
        if NARRATABLE.contains(&&*term.category) && self.telling_of_incident(policy, at_ms) {
            severity = Severity::Info; // told of, after the agent's concern
        }
        Some((term.category.clone(), term.rule.clone(), severity))
    }

    pub(super) fn raise(
        &mut self,
        policy: &PolicySet,
        category: &str,
        rule: &str,
        severity: Severity,
        at_ms: u64,
        evidence: Vec<Evidence>,
    ) -> Option<AlertEvent> {
        self.raise_with_status(
            policy,
            category,
            rule,
            severity,
            at_ms,
            evidence,
            AlertStatus::Confirmed,
        )
    }

    /// Raises a new alert unless its category is off or the cooldown holds
    /// it back; picks the action from the policy and the warning ladder.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn raise_with_status(
        &mut self,
        policy: &PolicySet,
        category: &str,
        rule: &str,
        severity: Severity,
        at_ms: u64,
        mut evidence: Vec<Evidence>,
        status: AlertStatus,
    ) -> Option<AlertEvent> {
        if !policy.category_enabled(category) {
            return None;
        }
        let category: Arc<str> = category.into();
        let rule: Arc<str> = rule.into();
        let key = (category.clone(), rule.clone());
        if let Some(&(last_ms, last_severity)) = self.cooldown.get(&key) {
            let cooling = at_ms
                < last_ms.saturating_add(policy.escalation.cooldown_seconds.saturating_mul(1000));
            if cooling && severity <= last_severity {
                return None;
            }
        }
        self.cooldown.insert(key, (at_ms, severity));
        let action: Arc<str> = match policy.category_action(&category, severity) {
            Some(action) => action.into(),
            None => match severity {
                Severity::Critical => policy.escalation.critical_action.as_str().into(),
                Severity::Info => policy.escalation.info_action.as_str().into(),
                Severity::Warning => {
                    let ladder = &policy.escalation.ladder;
                    let step = self.climb(policy).min(ladder.len() - 1);
                    ladder[step].as_str().into()
                }
            },
        };
        if severity >= Severity::Warning && &*category != id::SELF_HARM {
            self.strikes += 1;
        }
        let local_id = self.next_local_id;
        self.next_local_id += 1;
        if self.alerts.len() >= policy.session.max_alert_history {
            self.alerts.pop_front();
        }
        self.alerts.push_back(AlertSummary {
            local_id,
            severity,
            status,
        });
        self.alerts_total += 1;
        evidence.truncate(policy.session.max_evidence);
        Some(AlertEvent {
            local_id,
            status,
            category,
            severity,
            rule,
            at_ms,
            evidence,
            action,
        })
    }

    /// The ladder step for a new warning: the next one only from a later
    /// customer utterance (and, if the policy says so, after the agent's
    /// warning), else the step in use.
    pub(super) fn climb(&mut self, policy: &PolicySet) -> usize {
        let here = LadderStep {
            step: 0,
            utterance: self.customer_finals,
            warnings: self.warning_stages.len(),
        };
        let next = match self.ladder {
            None => here,
            Some(last) => {
                let warned =
                    !policy.escalation.step_needs_agent_warning || here.warnings > last.warnings;
                if here.utterance > last.utterance && warned {
                    LadderStep {
                        step: last.step + 1,
                        ..here
                    }
                } else {
                    last
                }
            }
        };
        self.ladder = Some(next);
        next.step
    }
}
