//! `CallSession`: the state of one call and the rules that run on it.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use super::{Applied, ApplyError};
use crate::alert::{AlertEvent, AlertStatus, Evidence};
use crate::category::{id, CategoryKind, Severity, Speaker};
use crate::engine::{Carry, Engine, Framing, Hit, Scratch, Sighting, TermId};
use crate::event::{CallEnd, CallStart, EventError, Fragment};
use crate::lexicon::{Dialogue, Term};
use crate::policy::PolicySet;
use crate::text::amount::amounts;
use crate::text::{char_span, mask_personal_data, mask_personal_data_owned};

const MINUTE_MS: u64 = 60_000;
/// Characters of context kept on each side of a hit in an excerpt.
const EXCERPT_CONTEXT_CHARS: usize = 12;
/// Finalised utterance ids remembered to ignore repeated finals.
const RECENT_FINALS: usize = 16;
/// The agent's recent stage markers kept for dialogue rules (`after_agent`).
const RECENT_AGENT_MARKERS: usize = 16;
/// Parts of multi-utterance proximity rules kept, waiting for the rest.
const MAX_SIGHTINGS: usize = 32;

/// Categories a caller may be telling of rather than doing: what someone
/// else did or said to them, once the agent answers with concern.
const NARRATABLE: [&str; 4] = [id::VIOLENCE, id::THREAT, id::INTIMIDATION, id::VERBAL_ABUSE];
/// Customer alerts remembered for the agent's answer (`agent_concern`).
const MAX_ANSWERABLE: usize = 16;
/// How far back the agent's concern reaches: the caller's account just told.
const CONCERN_LOOKBACK_MS: u64 = 60_000;
/// A self-harm hit this recent makes the agent's concern an answer to it.
const SELF_HARM_RECENT_MS: u64 = 300_000;

/// Groups with a meaning of their own (lexicons/README.md).
const GROUP_MONEY: &str = "money";
const GROUP_DOGEZA: &str = "dogeza";
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
const DEMAND_CATEGORIES: [&str; 1] = [id::EXCESSIVE_DEMAND];

/// The rule id of a counter: `counter/<category>/<name>`
/// (`counter/persistence/repeat_caller`), so an alert says which count
/// fired. Built when a counter raises, which is rare.
fn counter_rule(category: &str, name: &str) -> String {
    format!("counter/{category}/{name}")
}

/// Overall risk of a call, derived from its alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    None,
    Low,
    Elevated,
    High,
}

/// Whether the call is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Active,
    Ended,
}

/// A read-only view of a call for queries (ListCalls / GetCall, reports).
#[derive(Clone, Debug, serde::Serialize)]
pub struct CallSnapshot {
    pub call_id: String,
    pub tenant: String,
    pub agent_id: String,
    pub status: CallStatus,
    pub risk: RiskLevel,
    pub last_event_ms: u64,
    pub customer_talk_ms: u64,
    pub agent_talk_ms: u64,
    /// Demand group → final utterances that made it.
    pub demand_repeats: Vec<(String, u32)>,
    pub stalemate_since_ms: Option<u64>,
    /// Audio times of the agent's warnings (the warning stages).
    pub warning_stages_ms: Vec<u64>,
    /// Harassment alerts so far (the warning-ladder position).
    pub strikes: u32,
    /// Call-local ids of the alerts kept, oldest first.
    pub alert_ids: Vec<u32>,
    pub alerts_total: u64,
}

/// An utterance with interim text and no final yet.
pub(super) struct OpenUtterance {
    id: String,
    provisional: Vec<Provisional>,
}

struct Provisional {
    local_id: u32,
    category: Arc<str>,
    rule: Arc<str>,
    severity: Severity,
    action: Arc<str>,
    evidence: Vec<Evidence>,
    /// The latest interim text still holds the term.
    in_latest: bool,
}

/// The previous final utterance of a speaker (evidence for phrases that
/// began in it).
#[derive(Clone)]
struct LastFinal {
    utterance_id: String,
    tail: String,
    start_ms: u64,
    end_ms: u64,
    text_hash: u64,
}

/// Parts of a proximity rule seen in one of the customer's final
/// utterances, waiting for the rest in the next ones.
struct PendingParts {
    /// The customer's final utterance it was seen in (a running count).
    utterance: u32,
    term: TermId,
    parts: u8,
    evidence: Evidence,
}

/// Where a call stands on the warning ladder.
#[derive(Clone, Copy)]
struct LadderStep {
    step: usize,
    /// `customer_finals` when the step was taken.
    utterance: u32,
    /// Agent warnings heard when the step was taken.
    warnings: usize,
}

struct AlertSummary {
    local_id: u32,
    severity: Severity,
    status: AlertStatus,
}

/// A customer alert in a [`NARRATABLE`] category, kept until the agent
/// answers: concern for the caller's safety turns it into a report.
struct Answerable {
    local_id: u32,
    category: Arc<str>,
    rule: Arc<str>,
    at_ms: u64,
    evidence: Vec<Evidence>,
}

/// One call's state.
pub struct CallSession {
    call_id: String,
    tenant: String,
    agent_id: String,
    language: Option<String>,
    status: CallStatus,
    next_local_id: u32,
    last_seq: u64,
    last_event_ms: u64,
    carries: [Option<Carry>; 2],
    last_final: [Option<LastFinal>; 2],
    pub(super) open: VecDeque<OpenUtterance>,
    /// Keyed hashes of the last finals' utterance ids: a resent final is a
    /// duplicate. Hashes, not the ids: comparing 16 heap strings per final
    /// was 1.2% of the server's CPU (a cache miss each), and they took
    /// most of an idle call's memory.
    pub(super) recent_finals: VecDeque<u64>,
    /// (category, rule) → (audio ms, severity) of the last alert.
    cooldown: HashMap<(Arc<str>, Arc<str>), (u64, Severity)>,
    groups: HashMap<Arc<str>, u32>,
    stalemate_since: Option<(u64, Evidence)>,
    stalemate_raised: bool,
    pressure_since: Option<(u64, Evidence)>,
    pressure_raised: bool,
    last_threat: Option<(u64, Evidence)>,
    last_money: Option<(u64, Evidence)>,
    /// The sums named with the last money demand: said again in any
    /// shorter form ("Five grand.", 百五十万。), the same demand again.
    money_amounts: Vec<u64>,
    extortion_raised: bool,
    /// Audio ms of the agent's last concern for the caller's safety.
    concern_at: Option<u64>,
    /// Audio ms of the customer's last self-harm words.
    self_harm_at: Option<u64>,
    answerable: VecDeque<Answerable>,
    /// Evidence of the [`ACCUMULATING`] groups' hits, one per utterance.
    mild: Vec<(Arc<str>, Evidence)>,
    warning_stages: Vec<u64>,
    /// The agent's recent markers (audio ms, term): what `after_agent`
    /// terms look back at.
    agent_markers: VecDeque<(u64, TermId)>,
    /// Final customer utterances so far.
    customer_finals: u32,
    pending_parts: VecDeque<PendingParts>,
    /// The warning ladder: the step in use, and the customer utterance and
    /// agent warning count when it was taken (`None`: not yet climbed).
    ladder: Option<LadderStep>,
    strikes: u32,
    talk_ms: [u64; 2],
    alerts: VecDeque<AlertSummary>,
    alerts_total: u64,
}

fn speaker_index(speaker: Speaker) -> usize {
    match speaker {
        Speaker::Customer => 0,
        Speaker::Agent => 1,
    }
}

impl CallSession {
    /// Opens a call. `caller_calls_in_window` is how many calls this caller
    /// made in the policy window, this one included (0 when unknown); the
    /// driver keeps that count (durably in the service, in memory in replay).
    pub fn start(
        start: &CallStart,
        policy: &PolicySet,
        caller_calls_in_window: u32,
    ) -> (CallSession, Vec<AlertEvent>) {
        let mut session = CallSession {
            call_id: start.call_id.clone(),
            tenant: start.tenant.clone(),
            agent_id: start.agent_id.clone(),
            language: start.language.clone(),
            status: CallStatus::Active,
            next_local_id: 1,
            last_seq: 0,
            last_event_ms: 0,
            carries: [None, None],
            last_final: [None, None],
            open: VecDeque::new(),
            recent_finals: VecDeque::new(),
            cooldown: HashMap::new(),
            groups: HashMap::new(),
            stalemate_since: None,
            stalemate_raised: false,
            pressure_since: None,
            pressure_raised: false,
            last_threat: None,
            last_money: None,
            money_amounts: Vec::new(),
            extortion_raised: false,
            concern_at: None,
            self_harm_at: None,
            answerable: VecDeque::new(),
            mild: Vec::new(),
            warning_stages: Vec::new(),
            agent_markers: VecDeque::new(),
            customer_finals: 0,
            pending_parts: VecDeque::new(),
            ladder: None,
            strikes: 0,
            talk_ms: [0, 0],
            alerts: VecDeque::new(),
            alerts_total: 0,
        };
        let mut out = Vec::new();
        if let (Some(at), Some(severity)) = (start.started_at, policy.out_of_hours_severity()) {
            if !policy.within_business_hours(at, start.timezone.as_deref()) {
                let evidence = vec![];
                out.extend(session.raise(
                    policy,
                    id::OUT_OF_HOURS,
                    &format!("clock/{}", id::OUT_OF_HOURS),
                    severity,
                    0,
                    evidence,
                ));
            }
        }
        if caller_calls_in_window >= policy.repeat_callers.calls {
            out.extend(session.raise(
                policy,
                id::PERSISTENCE,
                &counter_rule(id::PERSISTENCE, "repeat_caller"),
                Severity::Warning,
                0,
                vec![],
            ));
        }
        (session, out)
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn status(&self) -> CallStatus {
        self.status
    }

    pub fn last_event_ms(&self) -> u64 {
        self.last_event_ms
    }

    /// Applies one fragment.
    pub fn on_fragment(
        &mut self,
        fragment: &Fragment,
        engine: &Engine,
        policy: &PolicySet,
        scratch: &mut Scratch,
    ) -> Result<Applied, ApplyError> {
        if fragment.seq != 0 {
            if fragment.seq == self.last_seq {
                return Ok(Applied::Duplicate);
            }
            if fragment.seq < self.last_seq {
                return Err(EventError::SeqBackwards {
                    seq: fragment.seq,
                    last: self.last_seq,
                });
            }
            self.last_seq = fragment.seq;
        }
        if fragment.is_final
            && !fragment.utterance_id.is_empty()
            && self
                .recent_finals
                .contains(&utterance_key(&fragment.utterance_id))
        {
            return Ok(Applied::Duplicate);
        }
        self.last_event_ms = self.last_event_ms.max(fragment.end_ms);
        let language = fragment.language.as_deref().or(self.language.as_deref());
        let who = speaker_index(fragment.speaker);
        let mut out = Vec::new();
        if !fragment.is_final {
            if fragment.speaker == Speaker::Customer {
                let scan = engine.scan(
                    &fragment.text,
                    language,
                    fragment.speaker,
                    self.carries[who].as_ref(),
                    scratch,
                );
                self.on_interim(fragment, &scan.hits, engine, policy, &mut out);
            }
        } else {
            let scan = engine.scan(
                &fragment.text,
                language,
                fragment.speaker,
                self.carries[who].as_ref(),
                scratch,
            );
            self.carries[who] = Some(scan.carry);
            // The other speaker's turn is over (a reading out of theirs
            // that lasted one turn with it).
            if let Some(other) = self.carries[1 - who].as_mut() {
                other.end_turn();
            }
            // Saturating: times are bounded at the edge (event::MAX_AUDIO_MS),
            // but this sum must not wrap whatever a driver feeds it.
            self.talk_ms[who] =
                self.talk_ms[who].saturating_add(fragment.end_ms.saturating_sub(fragment.start_ms));
            if !fragment.utterance_id.is_empty() {
                if self.recent_finals.len() == RECENT_FINALS {
                    self.recent_finals.pop_front();
                }
                self.recent_finals
                    .push_back(utterance_key(&fragment.utterance_id));
            }
            match fragment.speaker {
                Speaker::Customer => self.on_customer_final(
                    fragment,
                    (&scan.hits, &scan.sightings),
                    engine,
                    policy,
                    &mut out,
                ),
                Speaker::Agent => {
                    self.on_agent_final(fragment, &scan.hits, engine, policy, &mut out)
                }
            }
            let text_hash = hash_text(&fragment.text);
            // The previous final's buffers are reused: one final per
            // utterance, and most calls have hundreds.
            let (mut utterance_id, mut tail) = self.last_final[who]
                .take()
                .map_or_else(Default::default, |last| (last.utterance_id, last.tail));
            utterance_id.clear();
            utterance_id.push_str(&fragment.utterance_id);
            tail.clear();
            tail.push_str(last_chars(&fragment.text, EXCERPT_CONTEXT_CHARS * 2));
            self.last_final[who] = Some(LastFinal {
                utterance_id,
                tail,
                start_ms: fragment.start_ms,
                end_ms: fragment.end_ms,
                text_hash,
            });
        }
        self.check_timers(policy, self.last_event_ms, &mut out);
        Ok(Applied::Accepted(out))
    }

    /// Ends the call: utterances left without a final are decided by their
    /// latest interim text; duration rules get a last look at `end_ms`.
    pub fn on_end(&mut self, end: &CallEnd, policy: &PolicySet) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        if self.status == CallStatus::Ended {
            return out;
        }
        self.last_event_ms = self.last_event_ms.max(end.end_ms);
        while let Some(utterance) = self.open.pop_front() {
            self.settle(utterance, None, policy, &mut out);
        }
        self.check_timers(policy, self.last_event_ms, &mut out);
        self.status = CallStatus::Ended;
        out
    }

    fn on_interim(
        &mut self,
        fragment: &Fragment,
        hits: &[Hit],
        engine: &Engine,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let index = match self.open.iter().position(|u| u.id == fragment.utterance_id) {
            Some(i) => i,
            None => {
                if self.open.len() >= policy.session.max_open_utterances {
                    if let Some(oldest) = self.open.pop_front() {
                        self.settle(oldest, None, policy, out);
                    }
                }
                self.open.push_back(OpenUtterance {
                    id: fragment.utterance_id.clone(),
                    provisional: Vec::new(),
                });
                self.open.len() - 1
            }
        };
        // One provisional alert per category and utterance, however the
        // revisions reword it (ころす → ころすぞ).
        for p in &mut self.open[index].provisional {
            p.in_latest = hits
                .iter()
                .any(|h| engine.term(h.term).category == p.category);
        }
        for hit in hits {
            let Some((category, rule, severity)) =
                self.assess(hit, engine, policy, fragment.end_ms)
            else {
                continue;
            };
            if severity < Severity::Critical
                || self.open[index]
                    .provisional
                    .iter()
                    .any(|p| p.category == category)
            {
                continue;
            }
            let evidence = self.hit_evidence(fragment, hit, policy);
            if let Some(alert) = self.raise_with_status(
                policy,
                &category,
                &rule,
                severity,
                fragment.end_ms,
                evidence.clone(),
                AlertStatus::Provisional,
            ) {
                self.open[index].provisional.push(Provisional {
                    local_id: alert.local_id,
                    category,
                    rule,
                    severity,
                    action: alert.action.clone(),
                    evidence,
                    in_latest: true,
                });
                out.push(alert);
            }
        }
    }

    /// Confirms or retracts the provisional alerts of an utterance. With
    /// `final_hits`, the final text decides; without, the latest interim.
    /// The final text must carry the category at the provisional severity:
    /// an interim cut before 「…」って言われて reads as a threat, the final
    /// as a report of one. Returns the categories confirmed.
    fn settle(
        &mut self,
        utterance: OpenUtterance,
        final_hits: Option<(&[Hit], &Fragment, &Engine)>,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) -> Vec<Arc<str>> {
        let mut confirmed = Vec::new();
        for p in utterance.provisional {
            let hit = final_hits.and_then(|(hits, f, engine)| {
                hits.iter()
                    .find(|h| {
                        self.assess(h, engine, policy, f.end_ms).is_some_and(
                            |(category, _, severity)| {
                                category == p.category && severity >= p.severity
                            },
                        )
                    })
                    .map(|h| (h, f))
            });
            let keep = match final_hits {
                Some(_) => hit.is_some(),
                None => p.in_latest,
            };
            let evidence = match hit {
                Some((h, f)) => self.hit_evidence(f, h, policy),
                None => p.evidence.clone(),
            };
            let status = if keep {
                confirmed.push(p.category.clone());
                AlertStatus::Confirmed
            } else {
                AlertStatus::Retracted
            };
            if !keep {
                // The words were never really said: release the cooldown
                // and give back the strike.
                self.cooldown.remove(&(p.category.clone(), p.rule.clone()));
                if p.severity >= Severity::Warning && &*p.category != id::SELF_HARM {
                    self.strikes = self.strikes.saturating_sub(1);
                }
            }
            if let Some(summary) = self.alerts.iter_mut().find(|a| a.local_id == p.local_id) {
                summary.status = status;
            }
            let event = AlertEvent {
                local_id: p.local_id,
                status,
                category: p.category,
                severity: p.severity,
                rule: p.rule,
                at_ms: self.last_event_ms,
                evidence,
                action: p.action,
            };
            if keep {
                self.keep_answerable(Some(&event));
            }
            out.push(event);
        }
        confirmed
    }

    fn on_customer_final(
        &mut self,
        fragment: &Fragment,
        (hits, sightings): (&[Hit], &[Sighting]),
        engine: &Engine,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        self.customer_finals += 1;
        let provisional = self
            .open
            .iter()
            .position(|u| u.id == fragment.utterance_id && !fragment.utterance_id.is_empty())
            .and_then(|i| self.open.remove(i));
        let settled = match provisional {
            Some(utterance) => self.settle(utterance, Some((hits, fragment, engine)), policy, out),
            None => Vec::new(),
        };
        // ASR engines loop on silence: an identical consecutive final
        // segment is not the caller repeating himself.
        let text_hash = hash_text(&fragment.text);
        if self.last_final[0]
            .as_ref()
            .is_some_and(|l| l.text_hash == text_hash)
        {
            return;
        }
        let mut groups_seen: Vec<Arc<str>> = Vec::new();
        for hit in hits {
            let term = engine.term(hit.term);
            self.note_group(term, hit, fragment, policy, &mut groups_seen);
            let Some((category, rule, severity)) =
                self.assess(hit, engine, policy, fragment.end_ms)
            else {
                continue;
            };
            if term.group.is_none()
                && hit.framing == Framing::Plain
                && severity >= Severity::Warning
                && DEMAND_CATEGORIES.contains(&&*category)
                && !groups_seen.contains(&category)
            {
                groups_seen.push(category.clone());
            }
            let evidence = self.hit_evidence(fragment, hit, policy);
            if severity >= Severity::Warning && term.kind == CategoryKind::Harassment {
                self.note_pressure(fragment.end_ms, &evidence);
                if matches!(
                    &*category,
                    id::THREAT | id::VIOLENCE | id::ONLINE_DEFAMATION
                ) {
                    self.last_threat =
                        Some((fragment.end_ms, evidence[evidence.len() - 1].clone()));
                }
            }
            if &*category == id::SELF_HARM {
                self.self_harm_at = Some(fragment.end_ms);
            }
            if settled.contains(&category) {
                continue; // confirmed above, same alert
            }
            let raised = self.raise(
                policy,
                &category,
                &rule,
                severity,
                fragment.end_ms,
                evidence,
            );
            self.keep_answerable(raised.as_ref());
            out.extend(raised);
        }
        self.complete_parts(fragment, sightings, engine, policy, &mut groups_seen, out);
        self.count_groups(groups_seen, fragment, policy, out);
        self.check_extortion(policy, out);
    }

    fn on_agent_final(
        &mut self,
        fragment: &Fragment,
        hits: &[Hit],
        engine: &Engine,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        for hit in hits {
            let term = engine.term(hit.term);
            if self.agent_markers.len() == RECENT_AGENT_MARKERS {
                self.agent_markers.pop_front();
            }
            self.agent_markers.push_back((fragment.end_ms, hit.term));
            let evidence = words_of(fragment, &hit.span);
            match &*term.category {
                id::AGENT_REFUSAL => self.start_stalemate(fragment.start_ms, &evidence),
                id::AGENT_WARNING if self.warning_stages.len() < 64 => {
                    self.warning_stages.push(fragment.end_ms)
                }
                id::AGENT_CONCERN => self.on_agent_concern(fragment.end_ms, evidence, policy, out),
                _ => {}
            }
        }
    }

    /// The agent asked after the caller's safety: what the caller just said
    /// was an account of something done to them. Their recent alerts in a
    /// [`NARRATABLE`] category are updated to `info` (same alert id, the
    /// agent's words added as evidence, the strike given back), and the same
    /// words stay at `info` for `reported_incident_seconds`. Not after the
    /// caller's own self-harm words: then the concern answers those.
    fn on_agent_concern(
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

    /// Books a plain hit of a grouped term: the group counts once per
    /// utterance (repeated demands, accumulating hints), its evidence is
    /// kept for an accumulating group, and a money demand is remembered
    /// for the extortion pattern.
    fn note_group(
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
    fn keep_mild(&mut self, group: &Arc<str>, fragment: &Fragment, hit: &Hit, policy: &PolicySet) {
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
    fn count_groups(
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
                if count == policy.accumulation.needed(&group) {
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
            let evidence = Evidence {
                speaker: Speaker::Customer,
                utterance_id: fragment.utterance_id.clone(),
                excerpt: mask_personal_data_owned(first_chars(
                    &fragment.text,
                    EXCERPT_CONTEXT_CHARS * 4,
                )),
                start_ms: fragment.start_ms,
                end_ms: fragment.end_ms,
                char_start: None,
                char_end: None,
            };
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

    /// Keeps a customer alert the agent's concern may turn into a report.
    fn keep_answerable(&mut self, raised: Option<&AlertEvent>) {
        let Some(alert) = raised else { return };
        if alert.severity < Severity::Warning || !NARRATABLE.contains(&&*alert.category) {
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

    /// Is the caller telling of an incident the agent answered with concern?
    fn telling_of_incident(&self, policy: &PolicySet, at_ms: u64) -> bool {
        let window = policy.combinations.reported_incident_ms();
        self.concern_at
            .is_some_and(|t| at_ms >= t && at_ms - t <= window)
    }

    /// Multi-utterance proximity rules: parts seen in this final join those
    /// seen in the customer's last utterances; once every part is there the
    /// rule alerts with the evidence of each utterance that held a part.
    /// Completes proximity terms whose parts are now all seen; a group on
    /// such a term counts as a phrase term's does (repeated demands,
    /// money, hints that add up).
    fn complete_parts(
        &mut self,
        fragment: &Fragment,
        sightings: &[Sighting],
        engine: &Engine,
        policy: &PolicySet,
        groups_seen: &mut Vec<Arc<str>>,
        out: &mut Vec<AlertEvent>,
    ) {
        let now = self.customer_finals;
        self.pending_parts.retain(|p| {
            let span = engine
                .term(p.term)
                .near
                .as_ref()
                .map_or(1, |n| n.utterances);
            now - p.utterance < u32::from(span)
        });
        for sighting in sightings {
            let term = engine.term(sighting.term);
            let Some(near) = &term.near else { continue };
            let earlier = self
                .pending_parts
                .iter()
                .filter(|p| p.term == sighting.term)
                .fold(0u8, |m, p| m | p.parts);
            let evidence = words_of(fragment, &sighting.span);
            if earlier | sighting.parts != near.all_parts() {
                if self.pending_parts.len() == MAX_SIGHTINGS {
                    self.pending_parts.pop_front();
                }
                self.pending_parts.push_back(PendingParts {
                    utterance: now,
                    term: sighting.term,
                    parts: sighting.parts,
                    evidence,
                });
                continue;
            }
            let mut all: Vec<Evidence> = Vec::new();
            self.pending_parts.retain(|p| {
                if p.term == sighting.term {
                    all.push(p.evidence.clone());
                    false
                } else {
                    true
                }
            });
            all.push(evidence);
            let hit = Hit {
                term: sighting.term,
                span: sighting.span.clone(),
                continued: false,
                severity: term.severity,
                framing: if sighting.reported {
                    Framing::Quoted
                } else {
                    Framing::Plain
                },
                targeted: false,
                addressed: false,
            };
            self.note_group(term, &hit, fragment, policy, groups_seen);
            let Some((category, rule, severity)) =
                self.assess(&hit, engine, policy, fragment.end_ms)
            else {
                continue;
            };
            if severity >= Severity::Warning && term.kind == CategoryKind::Harassment {
                self.note_pressure(fragment.end_ms, &all);
            }
            let raised = self.raise(policy, &category, &rule, severity, fragment.end_ms, all);
            self.keep_answerable(raised.as_ref());
            out.extend(raised);
        }
    }

    /// Did the agent say one of `markers` (agent categories or term ids)
    /// within `seconds` before `at_ms`?
    /// Whether a dialogue rule's context holds at `at_ms`: the agent said
    /// one of its markers shortly before, or the caller already raised one
    /// of its categories at warning or above in this call.
    fn dialogue_holds(&self, engine: &Engine, dialogue: &Dialogue, at_ms: u64) -> bool {
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
            || self.cooldown.iter().any(|((category, _), &(_, severity))| {
                severity >= Severity::Warning
                    && dialogue.after_caller.iter().any(|c| *c.text == **category)
            })
    }

    fn start_stalemate(&mut self, at_ms: u64, evidence: &Evidence) {
        if self.stalemate_since.is_none() {
            self.stalemate_since = Some((at_ms, evidence.clone()));
        }
    }

    fn note_pressure(&mut self, at_ms: u64, evidence: &[Evidence]) {
        if self.pressure_since.is_none() {
            if let Some(e) = evidence.last() {
                self.pressure_since = Some((at_ms, e.clone()));
            }
        }
    }

    /// Duration rules, run on the audio time of every event: 30 minutes of
    /// stalemate (warning), 60 minutes of call under pressure (critical).
    fn check_timers(&mut self, policy: &PolicySet, now_ms: u64, out: &mut Vec<AlertEvent>) {
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

    /// A threat (or exposure threat) and a money demand close together: the
    /// extortion pattern. The demand is what turns critical (DOMAIN 2.1:
    /// a monetary demand is critical when combined with any threat); the
    /// threat keeps its own alert, and an exposure threat does not become
    /// a threat of harm.
    fn check_extortion(&mut self, policy: &PolicySet, out: &mut Vec<AlertEvent>) {
        if self.extortion_raised {
            return;
        }
        let (Some((threat_ms, threat)), Some((money_ms, money))) =
            (&self.last_threat, &self.last_money)
        else {
            return;
        };
        if threat_ms.abs_diff(*money_ms)
            <= policy
                .combinations
                .extortion_window_seconds
                .saturating_mul(1000)
        {
            self.extortion_raised = true;
            let at = (*threat_ms).max(*money_ms);
            let evidence = vec![threat.clone(), money.clone()];
            out.extend(self.raise(
                policy,
                id::EXCESSIVE_DEMAND,
                "combination/extortion",
                Severity::Critical,
                at,
                evidence,
            ));
        }
    }

    /// The category, rule and severity a hit alerts with, or `None` for
    /// signals and disabled categories.
    fn assess(
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
        let mut severity = if term.severity_explicit {
            term.severity
        } else {
            policy
                .category_severity(&term.category)
                .unwrap_or(term.severity)
        };
        if term.group.as_deref() == Some(GROUP_DOGEZA) {
            severity = Severity::Critical; // a demand to kneel is always critical
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

    fn hit_evidence(&self, fragment: &Fragment, hit: &Hit, policy: &PolicySet) -> Vec<Evidence> {
        let mut evidence = Vec::with_capacity(2);
        let who = speaker_index(fragment.speaker);
        if hit.continued {
            if let Some(prev) = &self.last_final[who] {
                evidence.push(Evidence {
                    speaker: fragment.speaker,
                    utterance_id: prev.utterance_id.clone(),
                    excerpt: mask_personal_data(&prev.tail),
                    start_ms: prev.start_ms,
                    end_ms: prev.end_ms,
                    char_start: None,
                    char_end: None,
                });
            }
        }
        evidence.push(words_of(fragment, &hit.span));
        evidence.truncate(policy.session.max_evidence);
        evidence
    }

    fn raise(
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
    fn raise_with_status(
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
    fn climb(&mut self, policy: &PolicySet) -> usize {
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

    /// Risk from the alerts that stand (retracted ones do not count).
    pub fn risk(&self) -> RiskLevel {
        let worst = self
            .alerts
            .iter()
            .filter(|a| a.status != AlertStatus::Retracted)
            .map(|a| a.severity)
            .max();
        match worst {
            None => RiskLevel::None,
            Some(Severity::Critical) => RiskLevel::High,
            Some(Severity::Warning) if self.strikes >= 3 => RiskLevel::High,
            Some(Severity::Warning) => RiskLevel::Elevated,
            Some(Severity::Info) => RiskLevel::Low,
        }
    }

    pub fn snapshot(&self) -> CallSnapshot {
        let mut demand_repeats: Vec<(String, u32)> = self
            .groups
            .iter()
            .map(|(g, c)| (g.to_string(), *c))
            .collect();
        demand_repeats.sort();
        CallSnapshot {
            call_id: self.call_id.clone(),
            tenant: self.tenant.clone(),
            agent_id: self.agent_id.clone(),
            status: self.status,
            risk: self.risk(),
            last_event_ms: self.last_event_ms,
            customer_talk_ms: self.talk_ms[0],
            agent_talk_ms: self.talk_ms[1],
            demand_repeats,
            stalemate_since_ms: self.stalemate_since.as_ref().map(|(ms, _)| *ms),
            warning_stages_ms: self.warning_stages.clone(),
            strikes: self.strikes,
            alert_ids: self.alerts.iter().map(|a| a.local_id).collect(),
            alerts_total: self.alerts_total,
        }
    }
}

/// Evidence of the words at `span` of a fragment, masked.
/// Its character offsets come from the engine's byte span here, at the edge
/// where evidence is built, so the matcher keeps working in bytes.
fn words_of(fragment: &Fragment, span: &std::ops::Range<usize>) -> Evidence {
    let chars = char_span(&fragment.text, span);
    Evidence {
        speaker: fragment.speaker,
        utterance_id: fragment.utterance_id.clone(),
        excerpt: mask_personal_data_owned(excerpt(&fragment.text, span)),
        start_ms: fragment.start_ms,
        end_ms: fragment.end_ms,
        char_start: chars.as_ref().map(|c| c.start),
        char_end: chars.map(|c| c.end),
    }
}

/// The hit's words with a little context on each side, `…` where the
/// fragment goes on. The context is found by byte offset and copied once.
fn excerpt(text: &str, span: &std::ops::Range<usize>) -> String {
    let span = span.start.min(text.len())..span.end.min(text.len());
    let from = text[..span.start]
        .char_indices()
        .rev()
        .nth(EXCERPT_CONTEXT_CHARS - 1)
        .map_or(0, |(i, _)| i);
    let to = text[span.end..]
        .char_indices()
        .nth(EXCERPT_CONTEXT_CHARS)
        .map_or(text.len(), |(i, _)| span.end + i);
    let lead = if from > 0 { "…" } else { "" };
    let trail = if to < text.len() { "…" } else { "" };
    let mut out = String::with_capacity(lead.len() + (to - from) + trail.len());
    out.push_str(lead);
    out.push_str(&text[from..to]);
    out.push_str(trail);
    out
}

fn first_chars(text: &str, n: usize) -> String {
    let mut s: String = text.chars().take(n).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// The last `n` characters of `text` (all of it when shorter).
fn last_chars(text: &str, n: usize) -> &str {
    let start = match n.checked_sub(1) {
        None => text.len(),
        Some(skip) => text.char_indices().rev().nth(skip).map_or(0, |(i, _)| i),
    };
    &text[start..]
}

/// Hash of an utterance's text, for the ASR-loop check (trimmed, so a loop
/// that differs only in trailing spaces still counts as one).
/// An utterance id's hash, keyed per process (a sender cannot aim at a
/// collision; by chance one is 2^-60 likely among 16 ids).
fn utterance_key(utterance_id: &str) -> u64 {
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
        .hash_one(utterance_id)
}

fn hash_text(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.trim().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod text_tests {
    use super::last_chars;

    #[test]
    fn last_chars_counts_characters_not_bytes() {
        assert_eq!(last_chars("お前を殺す", 2), "殺す");
        assert_eq!(last_chars("kill you", 3), "you");
        assert_eq!(last_chars("短い", 10), "短い");
        assert_eq!(last_chars("abc", 0), "");
        assert_eq!(last_chars("", 3), "");
    }
}

#[cfg(test)]
mod excerpt_tests {
    use super::*;

    /// The excerpt as it was built before (a Vec of the chars before the
    /// span, then Strings of each side): the output must not change.
    fn excerpt_before(text: &str, span: &std::ops::Range<usize>) -> String {
        let span = span.start.min(text.len())..span.end.min(text.len());
        let before: String = {
            let chars: Vec<char> = text[..span.start]
                .chars()
                .rev()
                .take(EXCERPT_CONTEXT_CHARS)
                .collect();
            chars.into_iter().rev().collect()
        };
        let after: String = text[span.end..]
            .chars()
            .take(EXCERPT_CONTEXT_CHARS)
            .collect();
        let lead = if before.len() < span.start { "…" } else { "" };
        let trail = if span.end + after.len() < text.len() {
            "…"
        } else {
            ""
        };
        format!("{lead}{before}{}{after}{trail}", &text[span])
    }

    #[test]
    fn excerpts_are_as_before_for_every_span() {
        for text in [
            "",
            "idiot",
            "you are an idiot and I will find you, I know where you live",
            "お前の住所は分かっているからな、今からそっちに行ってぶっ殺すぞ、覚えておけよ",
            "ｶﾀｶﾅ and 漢字 mixed with 4111 1111 digits and an é accent…",
        ] {
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            for (i, &start) in bounds.iter().enumerate() {
                for &end in &bounds[i..] {
                    assert_eq!(
                        excerpt(text, &(start..end)),
                        excerpt_before(text, &(start..end)),
                        "{text:?} {start}..{end}"
                    );
                }
            }
            // A span past the end is clamped, as before.
            let past = text.len() + 3;
            assert_eq!(
                excerpt(text, &(past..past + 2)),
                excerpt_before(text, &(past..past + 2))
            );
        }
    }
}
