//! `CallSession`: the state of one call and its entry points (start,
//! fragments, end, queries). The rules that run on it live one job per
//! file: `counters` (groups said again, hints that add up, the stalemate
//! and pressure clocks), `proximity` (parts across utterances), `dialogue`
//! (conditions on what was said before), `concern` (reported incidents),
//! `warned` and `targeting` (what the agent's warning or the caller's
//! threat makes of words left at info), `named` (what the agent names),
//! `restated`, `agent_name`,
//! `extortion`, `raise` (severity, cooldown, action, warning ladder) and
//! `evidence`.

mod agent_name;
mod concern;
mod counters;
mod dialogue;
mod evidence;
mod extortion;
mod named;
mod proximity;
mod raise;
mod restated;
mod targeting;
mod warned;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use super::{Applied, ApplyError};
use crate::alert::{AlertEvent, AlertStatus, Evidence};
use crate::category::{id, CategoryKind, Severity, Speaker};
use crate::engine::{Carry, Engine, Framing, Hit, Scan, Scratch, Sighting, TermId};
use crate::event::{CallEnd, CallStart, EventError, Fragment};
use crate::policy::PolicySet;
use concern::Answerable;
use counters::{counter_rule, DEMAND_CATEGORIES};
use dialogue::RECENT_AGENT_MARKERS;
use evidence::{last_chars, words_of, EXCERPT_CONTEXT_CHARS};
use named::Naming;
use proximity::PendingParts;
use raise::LadderStep;
use restated::Restated;
use targeting::Question;
use warned::Unanswered;

/// Finalised utterance ids remembered to ignore repeated finals.
const RECENT_FINALS: usize = 16;

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

struct AlertSummary {
    local_id: u32,
    severity: Severity,
    status: AlertStatus,
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
    /// Evidence of the [`counters::ACCUMULATING`] groups' hits, one per utterance.
    mild: Vec<(Arc<str>, Evidence)>,
    warning_stages: Vec<u64>,
    /// The agent's recent markers (audio ms, term): what `after_agent`
    /// terms look back at.
    agent_markers: VecDeque<(u64, TermId)>,
    /// The given name the agent greeted the caller with, lower case.
    agent_name: Option<Box<str>>,
    /// Times the caller asked for the rest of it by that name.
    surname_asks: u8,
    /// Final customer utterances so far.
    customer_finals: u32,
    /// `customer_finals` when the agent last spoke a final utterance.
    finals_answered: u32,
    pending_parts: VecDeque<PendingParts>,
    /// The warning ladder: the step in use, and the customer utterance and
    /// agent warning count when it was taken (`None`: not yet climbed).
    ladder: Option<LadderStep>,
    strikes: u32,
    /// Content words the caller said again after the agent's refusals.
    restated: Restated,
    /// The caller's info alerts since the agent last spoke: her warning
    /// confirms them.
    unanswered: Vec<Unanswered>,
    /// The caller's questions about the agent left at info, and the
    /// caller's first hostile words: together they target her.
    questions: Vec<Question>,
    hostile: Option<Evidence>,
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
            agent_name: None,
            surname_asks: 0,
            customer_finals: 0,
            finals_answered: 0,
            pending_parts: VecDeque::new(),
            ladder: None,
            strikes: 0,
            restated: Restated::default(),
            unanswered: Vec::new(),
            questions: Vec::new(),
            hostile: None,
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
        // An agent's interim words decide nothing; everything else is scanned.
        if fragment.is_final || fragment.speaker == Speaker::Customer {
            let scan = engine.scan(
                &fragment.text,
                language,
                fragment.speaker,
                self.carries[who].as_ref(),
                scratch,
            );
            if fragment.is_final {
                self.on_final(fragment, scan, engine, policy, &mut out);
            } else {
                self.on_interim(fragment, &scan.hits, engine, policy, &mut out);
            }
        }
        self.check_timers(policy, self.last_event_ms, &mut out);
        Ok(Applied::Accepted(out))
    }

    /// A final fragment: the speaker's carry and talk time, then what the
    /// customer's or the agent's words mean for the call.
    fn on_final(
        &mut self,
        fragment: &Fragment,
        scan: Scan,
        engine: &Engine,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let who = speaker_index(fragment.speaker);
        self.carries[who] = Some(scan.carry);
        // The other speaker's turn is over (a reading out of theirs
        // that lasted one turn with it); the agent asking what someone
        // else said starts the caller's reading.
        if let Some(other) = self.carries[1 - who].as_mut() {
            other.end_turn();
            if fragment.speaker == Speaker::Agent && scan.asks_for_words {
                other.hear_reading();
            }
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
            Speaker::Customer => {
                self.on_customer_final(fragment, (&scan.hits, &scan.sightings), engine, policy, out)
            }
            Speaker::Agent => self.on_agent_final(fragment, &scan.hits, engine, policy, out),
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
        let first_raised = out.len();
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
            self.keep_unanswered(raised.as_ref(), term, policy);
            out.extend(raised);
        }
        self.complete_parts(fragment, sightings, engine, policy, &mut groups_seen, out);
        self.count_groups(groups_seen, fragment, policy, out);
        self.check_extortion(policy, out);
        self.check_surname_by_name(fragment, engine, policy, out);
        self.count_restated(fragment, policy, out);
        self.note_hostile(&out[first_raised..]);
    }

    fn on_agent_final(
        &mut self,
        fragment: &Fragment,
        hits: &[Hit],
        engine: &Engine,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        self.note_agent_name(fragment);
        let (mut declined, mut warned, mut concerned) = (false, None, false);
        let mut namings = Vec::new();
        for hit in hits {
            let term = engine.term(hit.term);
            if self.agent_markers.len() == RECENT_AGENT_MARKERS {
                self.agent_markers.pop_front();
            }
            self.agent_markers.push_back((fragment.end_ms, hit.term));
            let evidence = words_of(fragment, &hit.span);
            match &*term.category {
                id::AGENT_REFUSAL => {
                    declined = true;
                    self.start_stalemate(fragment.start_ms, &evidence)
                }
                id::AGENT_WARNING => {
                    declined = true;
                    warned.get_or_insert_with(|| evidence.clone());
                    self.end_account(fragment.start_ms);
                    if self.warning_stages.len() < 64 {
                        self.warning_stages.push(fragment.end_ms)
                    }
                }
                id::AGENT_CONCERN => {
                    concerned = true;
                    self.on_agent_concern(fragment.end_ms, evidence, policy, out)
                }
                _ => namings.extend(Naming::of(term, hit, &evidence)),
            }
        }
        self.note_agent_turn(fragment, declined);
        self.on_agent_names(namings, concerned, fragment.end_ms, policy, out);
        self.on_agent_answer(warned, fragment.end_ms, policy, out);
        self.confirm_questions(fragment.end_ms, policy, out);
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

/// An utterance id's hash, keyed per process (a sender cannot aim at a
/// collision; by chance one is 2^-60 likely among 16 ids).
fn utterance_key(utterance_id: &str) -> u64 {
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
        .hash_one(utterance_id)
}

/// Hash of an utterance's text, for the ASR-loop check (trimmed, so a loop
/// that differs only in trailing spaces still counts as one); also of the
/// content words the restated-demand counter follows.
fn hash_text(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.trim().hash(&mut h);
    h.finish()
}
