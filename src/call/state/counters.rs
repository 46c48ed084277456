//! The counters of a call: groups said again (repeated demands, the sums
//! demanded said again), hints that add up, and the stalemate and pressure
//! clocks.

use std::sync::Arc;

use super::evidence::{utterance_of, words_of};
use super::CallSession;
use crate::alert::{AlertEvent, Evidence};
use crate::category::{id, Severity};
use crate::engine::{Framing, Hit};
use crate::event::Fragment;
use crate::lexicon::Term;
use crate::policy::PolicySet;
use crate::text::amount::amounts;

const MINUTE_MS: u64 = 60_000;

/// Groups with a meaning of their own (lexicons/README.md).
const GROUP_MONEY: &str = "money";
pub(super) const GROUP_DOGEZA: &str = "dogeza";
/// Sums remembered from one money demand.
const MAX_DEMANDED_SUMS: usize = 4;
/// Groups whose hits are mild alone and add up over a call: the group, the
/// category it raises (at warning) once enough of the customer's
/// utterances hold one (`[accumulation]` in the policy), and the name of
/// its counter ([`counter_rule`]).
const ACCUMULATING: [(&str, &str, &str); 3] = [
    ("belittling", id::VERBAL_ABUSE, "belittling"),
    ("self_harm_hint", id::SELF_HARM, "hints"),
    ("threat_hint", id::THREAT, "hints"),
];
/// Categories whose hits are demands: said plainly at warning or above in
/// `repetition.same_demand` customer utterances, they are the same demand
/// again and again (persistence), however each was worded. A term with its
/// own `group` counts there instead. Not discrimination: most of its hits
/// are remarks, not demands, and the blind splits' supervisors labelled a
/// call with three of them discrimination, not persistence (4 of 19 calls).
pub(super) const DEMAND_CATEGORIES: [&str; 1] = [id::EXCESSIVE_DEMAND];
/// Once the caller has gone after the agent (targeting, violence) in this
/// call, one harm hint is a threat: "drive safe" from a caller who asked
/// the agent's surname, building and shift end is not small talk.
const TARGETING: [&str; 2] = [id::PERSONAL_ATTACK, id::VIOLENCE];

/// The rule id of a counter: `counter/<category>/<name>`
/// (`counter/persistence/repeat_caller`), so an alert says which count
/// fired. Built when a counter raises, which is rare.
pub(super) fn counter_rule(category: &str, name: &str) -> String {
    format!("counter/{category}/{name}")
}

impl CallSession {
    /// Books a plain hit of a grouped term: the group counts once per
    /// utterance (repeated demands, accumulating hints), its evidence is
    /// kept for an accumulating group, and a money demand is remembered
    /// for the extortion pattern.
    pub(super) fn note_group(
        &mut self,
        term: &Term,
        hit: &Hit,
        fragment: &Fragment,
        policy: &PolicySet,
        groups_seen: &mut Vec<Arc<str>>,
    ) {
        let Some(group) = &term.group else { return };
        if hit.framing != Framing::Plain {
            return;
        }
        if !groups_seen.contains(group) {
            groups_seen.push(group.clone());
        }
        self.keep_mild(group, fragment, hit, policy);
        if &**group == GROUP_MONEY {
            self.last_money = Some((
                fragment.end_ms,
                self.hit_evidence(fragment, hit, policy).remove(0),
            ));
            let mut said = amounts(&fragment.text);
            if !said.is_empty() {
                said.truncate(MAX_DEMANDED_SUMS);
                self.money_amounts = said;
            }
        }
    }

    /// Keeps the evidence of an [`ACCUMULATING`] group's hit, one per
    /// utterance and group, as many as an alert can carry.
    pub(super) fn keep_mild(
        &mut self,
        group: &Arc<str>,
        fragment: &Fragment,
        hit: &Hit,
        policy: &PolicySet,
    ) {
        if !ACCUMULATING.iter().any(|a| a.0 == &**group) {
            return;
        }
        let mut kept = self.mild.iter().filter(|(g, _)| g == group);
        let told_here = kept
            .clone()
            .any(|(_, e)| e.utterance_id == fragment.utterance_id && e.end_ms == fragment.end_ms);
        if !told_here
            && kept
                .nth(policy.session.max_evidence.saturating_sub(1))
                .is_none()
        {
            self.mild
                .push((group.clone(), words_of(fragment, &hit.span)));
        }
    }

    /// Counts each group this final utterance held once (a sum demanded
    /// before and said again counts as the money group) and raises what
    /// the counts reach: hints that add up, the same demand again.
    pub(super) fn count_groups(
        &mut self,
        mut groups_seen: Vec<Arc<str>>,
        fragment: &Fragment,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        if !self.money_amounts.is_empty()
            && !groups_seen.iter().any(|g| &**g == GROUP_MONEY)
            && amounts(&fragment.text)
                .iter()
                .any(|a| self.money_amounts.contains(a))
        {
            groups_seen.push(Arc::from(GROUP_MONEY));
        }
        for group in groups_seen {
            let count = {
                let c = self.groups.entry(group.clone()).or_insert(0);
                *c += 1;
                *c
            };
            if let Some(&(_, category, name)) = ACCUMULATING.iter().find(|a| a.0 == &*group) {
                // Each mild alone; spread over the call, the pattern counts.
                let needed = policy.accumulation.needed(&group);
                let after_targeting = category == id::THREAT
                    && count < needed
                    && self.raised_at_warning(|c| TARGETING.contains(&c));
                if count == needed || after_targeting {
                    let evidence: Vec<Evidence> = self
                        .mild
                        .iter()
                        .filter(|(g, _)| *g == group)
                        .map(|(_, e)| e.clone())
                        .collect();
                    if category == id::VERBAL_ABUSE {
                        self.note_pressure(fragment.end_ms, &evidence);
                    }
                    out.extend(self.raise(
                        policy,
                        category,
                        &counter_rule(category, name),
                        Severity::Warning,
                        fragment.end_ms,
                        evidence,
                    ));
                }
                continue;
            }
            let evidence = utterance_of(fragment);
            if count == 2 {
                // The customer's first repeated demand starts the stalemate clock.
                self.start_stalemate(fragment.start_ms, &evidence);
                self.note_pressure(fragment.end_ms, std::slice::from_ref(&evidence));
            }
            let rule = counter_rule(id::PERSISTENCE, &format!("repeated_demand/{group}"));
            if count == policy.repetition.same_demand {
                out.extend(self.raise(
                    policy,
                    id::PERSISTENCE,
                    &rule,
                    Severity::Warning,
                    fragment.end_ms,
                    vec![evidence],
                ));
            } else if count == policy.repetition.escalate_at {
                out.extend(self.raise(
                    policy,
                    id::PERSISTENCE,
                    &rule,
                    Severity::Critical,
                    fragment.end_ms,
                    vec![evidence],
                ));
            }
        }
    }

    pub(super) fn start_stalemate(&mut self, at_ms: u64, evidence: &Evidence) {
        if self.stalemate_since.is_none() {
            self.stalemate_since = Some((at_ms, evidence.clone()));
        }
    }

    pub(super) fn note_pressure(&mut self, at_ms: u64, evidence: &[Evidence]) {
        if self.pressure_since.is_none() {
            if let Some(e) = evidence.last() {
                self.pressure_since = Some((at_ms, e.clone()));
            }
        }
    }

    /// Duration rules, run on the audio time of every event: 30 minutes of
    /// stalemate (warning), 60 minutes of call under pressure (critical).
    pub(super) fn check_timers(
        &mut self,
        policy: &PolicySet,
        now_ms: u64,
        out: &mut Vec<AlertEvent>,
    ) {
        let stalemate_due = self.stalemate_since.as_ref().and_then(|(since, evidence)| {
            let due =
                since.saturating_add(policy.restraint.stalemate_minutes.saturating_mul(MINUTE_MS));
            (!self.stalemate_raised && now_ms >= due).then(|| evidence.clone())
        });
        if let Some(evidence) = stalemate_due {
            self.stalemate_raised = true;
            out.extend(self.raise(
                policy,
                id::RESTRAINT,
                &counter_rule(id::RESTRAINT, "stalemate"),
                Severity::Warning,
                now_ms,
                vec![evidence],
            ));
        }
        let pressure_due = self.pressure_since.as_ref().and_then(|(_, evidence)| {
            let due = policy.restraint.pressure_minutes.saturating_mul(MINUTE_MS);
            (!self.pressure_raised && now_ms >= due).then(|| evidence.clone())
        });
        if let Some(evidence) = pressure_due {
            self.pressure_raised = true;
            out.extend(self.raise(
                policy,
                id::RESTRAINT,
                &counter_rule(id::RESTRAINT, "long_call_under_pressure"),
                Severity::Critical,
                now_ms,
                vec![evidence],
            ));
        }
    }
}
