//! Wire <-> domain conversion, done once at the edge. Domain types never
//! carry prost `Option`s or raw `i32` enums; a bad wire value becomes a
//! [`WireError`] naming the field.

use std::collections::BTreeMap;

use super::pb;
use crate::alert::{Alert, AlertFilter, AlertStatus, Evidence, Handling, HandlingState};
use crate::call::{CallSnapshot, CallStatus, RiskLevel};
use crate::category::{Severity, Speaker};
use crate::event::{CallEnd, CallStart, Event, Fragment};

/// A protobuf value the domain cannot take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct WireError {
    pub field: &'static str,
    pub reason: String,
}

fn wire(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError {
        field,
        reason: reason.into(),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl TryFrom<pb::TranscriptEvent> for Event {
    type Error = WireError;

    fn try_from(event: pb::TranscriptEvent) -> Result<Self, Self::Error> {
        use pb::transcript_event::Event as E;
        match event.event {
            None => Err(wire("event", "one of start, fragment or end is required")),
            Some(E::Start(s)) => Ok(Event::Start(CallStart {
                call_id: s.call_id,
                tenant: s.tenant,
                agent_id: s.agent_id,
                caller_id: non_empty(s.caller_id),
                language: non_empty(s.language),
                started_at: s.started_at.map(timestamp_from_wire).transpose()?,
                timezone: non_empty(s.timezone),
                labels: s.labels.into_iter().collect::<BTreeMap<_, _>>(),
            })),
            Some(E::Fragment(f)) => Ok(Event::Fragment(Fragment {
                speaker: speaker_from_wire(f.speaker)?,
                call_id: f.call_id,
                seq: f.seq,
                text: f.text,
                is_final: f.is_final,
                utterance_id: f.utterance_id,
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                language: non_empty(f.language),
                loudness_dbfs: f.loudness_dbfs.map(loudness_from_wire).transpose()?,
            })),
            Some(E::End(e)) => Ok(Event::End(CallEnd {
                call_id: e.call_id,
                end_ms: e.end_ms,
            })),
        }
    }
}

impl From<&Event> for pb::TranscriptEvent {
    fn from(event: &Event) -> Self {
        use pb::transcript_event::Event as E;
        let event = match event {
            Event::Start(s) => E::Start(pb::CallStart {
                call_id: s.call_id.clone(),
                tenant: s.tenant.clone(),
                agent_id: s.agent_id.clone(),
                caller_id: s.caller_id.clone().unwrap_or_default(),
                language: s.language.clone().unwrap_or_default(),
                started_at: s.started_at.map(timestamp_to_wire),
                timezone: s.timezone.clone().unwrap_or_default(),
                labels: s.labels.clone().into_iter().collect(),
            }),
            Event::Fragment(f) => E::Fragment(pb::Fragment {
                call_id: f.call_id.clone(),
                seq: f.seq,
                speaker: speaker_to_wire(f.speaker) as i32,
                text: f.text.clone(),
                is_final: f.is_final,
                utterance_id: f.utterance_id.clone(),
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                language: f.language.clone().unwrap_or_default(),
                loudness_dbfs: f.loudness_dbfs,
            }),
            Event::End(e) => E::End(pb::CallEnd {
                call_id: e.call_id.clone(),
                end_ms: e.end_ms,
            }),
        };
        pb::TranscriptEvent { event: Some(event) }
    }
}

/// The call id and seq of a wire event, for rejections of events that do
/// not convert.
pub fn event_ids(event: &pb::TranscriptEvent) -> (String, u64) {
    use pb::transcript_event::Event as E;
    match &event.event {
        Some(E::Start(s)) => (s.call_id.clone(), 0),
        Some(E::Fragment(f)) => (f.call_id.clone(), f.seq),
        Some(E::End(e)) => (e.call_id.clone(), 0),
        None => (String::new(), 0),
    }
}

fn speaker_from_wire(value: i32) -> Result<Speaker, WireError> {
    match pb::Speaker::try_from(value) {
        Ok(pb::Speaker::Customer) => Ok(Speaker::Customer),
        Ok(pb::Speaker::Agent) => Ok(Speaker::Agent),
        Ok(pb::Speaker::Unspecified) => {
            Err(wire("speaker", "must be SPEAKER_CUSTOMER or SPEAKER_AGENT"))
        }
        Err(_) => Err(wire("speaker", format!("unknown value {value}"))),
    }
}

/// Loudness must be a number: NaN or an infinity is refused with the field
/// named (found by fuzzing: NaN is not even equal to itself, and JSON
/// writes either as `null`).
fn loudness_from_wire(dbfs: f32) -> Result<f32, WireError> {
    if dbfs.is_finite() {
        Ok(dbfs)
    } else {
        Err(wire(
            "loudness_dbfs",
            format!("must be a finite number, not {dbfs}"),
        ))
    }
}

fn speaker_to_wire(speaker: Speaker) -> pb::Speaker {
    match speaker {
        Speaker::Customer => pb::Speaker::Customer,
        Speaker::Agent => pb::Speaker::Agent,
    }
}

fn timestamp_from_wire(t: prost_types::Timestamp) -> Result<jiff::Timestamp, WireError> {
    jiff::Timestamp::new(t.seconds, t.nanos).map_err(|e| wire("started_at", e.to_string()))
}

fn timestamp_to_wire(t: jiff::Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

pub fn severity_to_wire(severity: Severity) -> pb::Severity {
    match severity {
        Severity::Info => pb::Severity::Info,
        Severity::Warning => pb::Severity::Warning,
        Severity::Critical => pb::Severity::Critical,
    }
}

/// `None` for SEVERITY_UNSPECIFIED (no minimum).
pub fn severity_from_wire(value: i32, field: &'static str) -> Result<Option<Severity>, WireError> {
    match pb::Severity::try_from(value) {
        Ok(pb::Severity::Unspecified) => Ok(None),
        Ok(pb::Severity::Info) => Ok(Some(Severity::Info)),
        Ok(pb::Severity::Warning) => Ok(Some(Severity::Warning)),
        Ok(pb::Severity::Critical) => Ok(Some(Severity::Critical)),
        Err(_) => Err(wire(field, format!("unknown value {value}"))),
    }
}

impl From<&Alert> for pb::Alert {
    fn from(a: &Alert) -> Self {
        pb::Alert {
            event_id: a.event_id,
            alert_id: a.alert_id,
            status: match a.status {
                AlertStatus::Provisional => pb::AlertStatus::Provisional,
                AlertStatus::Confirmed => pb::AlertStatus::Confirmed,
                AlertStatus::Retracted => pb::AlertStatus::Retracted,
            } as i32,
            call_id: a.call_id.clone(),
            tenant: a.tenant.clone(),
            agent_id: a.agent_id.clone(),
            category: a.category.clone(),
            severity: severity_to_wire(a.severity) as i32,
            rule: a.rule.clone(),
            lexicon_version: a.lexicon_version.clone(),
            at_ms: a.at_ms,
            raised_at: Some(timestamp_to_wire(a.raised_at)),
            evidence: a.evidence.iter().map(evidence_to_wire).collect(),
            action: a.action.clone(),
            handling: a.handling.as_ref().map(handling_to_wire),
        }
    }
}

fn handling_to_wire(h: &Handling) -> pb::Handling {
    pb::Handling {
        state: handling_state_to_wire(h.state) as i32,
        by: h.by.clone(),
        assignee: h.assignee.clone(),
        note: h.note.clone(),
        at: Some(timestamp_to_wire(h.at)),
    }
}

fn handling_state_to_wire(state: HandlingState) -> pb::HandlingState {
    match state {
        HandlingState::Acknowledged => pb::HandlingState::Acknowledged,
        HandlingState::Assigned => pb::HandlingState::Assigned,
        HandlingState::Resolved => pb::HandlingState::Resolved,
    }
}

/// The requested handling state; unspecified acknowledges.
pub fn handling_state_from_wire(value: i32) -> Result<HandlingState, WireError> {
    match pb::HandlingState::try_from(value) {
        Ok(pb::HandlingState::Unspecified | pb::HandlingState::Acknowledged) => {
            Ok(HandlingState::Acknowledged)
        }
        Ok(pb::HandlingState::Assigned) => Ok(HandlingState::Assigned),
        Ok(pb::HandlingState::Resolved) => Ok(HandlingState::Resolved),
        Err(_) => Err(wire("state", format!("unknown value {value}"))),
    }
}

fn evidence_to_wire(e: &Evidence) -> pb::Evidence {
    pb::Evidence {
        speaker: speaker_to_wire(e.speaker) as i32,
        utterance_id: e.utterance_id.clone(),
        excerpt: e.excerpt.clone(),
        start_ms: e.start_ms,
        end_ms: e.end_ms,
        char_start: e.char_start,
        char_end: e.char_end,
    }
}

impl TryFrom<pb::SubscribeRequest> for AlertFilter {
    type Error = WireError;

    fn try_from(r: pb::SubscribeRequest) -> Result<Self, Self::Error> {
        Ok(AlertFilter {
            tenant: non_empty(r.tenant),
            call_ids: r.call_ids,
            categories: r.categories,
            min_severity: severity_from_wire(r.min_severity, "min_severity")?,
            agent_id: non_empty(r.agent_id),
            since: None,
        })
    }
}

/// A call's state on the wire; `alert_ids` are already service-wide.
pub fn call_summary(snapshot: &CallSnapshot, alert_ids: Vec<u64>) -> pb::CallSummary {
    pb::CallSummary {
        call_id: snapshot.call_id.clone(),
        tenant: snapshot.tenant.clone(),
        agent_id: snapshot.agent_id.clone(),
        status: match snapshot.status {
            CallStatus::Active => pb::CallStatus::Active,
            CallStatus::Ended => pb::CallStatus::Ended,
        } as i32,
        risk: match snapshot.risk {
            RiskLevel::None => pb::RiskLevel::None,
            RiskLevel::Low => pb::RiskLevel::Low,
            RiskLevel::Elevated => pb::RiskLevel::Elevated,
            RiskLevel::High => pb::RiskLevel::High,
        } as i32,
        last_event_ms: snapshot.last_event_ms,
        customer_talk_ms: snapshot.customer_talk_ms,
        agent_talk_ms: snapshot.agent_talk_ms,
        demand_repeats: snapshot
            .demand_repeats
            .iter()
            .map(|(group, count)| pb::DemandCount {
                group: group.clone(),
                count: *count,
            })
            .collect(),
        stalemate_since_ms: snapshot.stalemate_since_ms,
        warning_stages_ms: snapshot.warning_stages_ms.clone(),
        strikes: snapshot.strikes,
        alert_ids,
        alerts_total: snapshot.alerts_total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(speaker: i32) -> pb::TranscriptEvent {
        pb::TranscriptEvent {
            event: Some(pb::transcript_event::Event::Fragment(pb::Fragment {
                call_id: "c1".into(),
                seq: 3,
                speaker,
                text: "hello".into(),
                is_final: true,
                ..Default::default()
            })),
        }
    }

    fn loud(dbfs: f32) -> pb::TranscriptEvent {
        let mut event = fragment(pb::Speaker::Customer as i32);
        if let Some(pb::transcript_event::Event::Fragment(f)) = &mut event.event {
            f.loudness_dbfs = Some(dbfs);
        }
        event
    }

    #[test]
    fn bad_wire_values_name_the_field() {
        let cases = [
            (
                pb::TranscriptEvent { event: None },
                "event: one of start, fragment or end is required",
            ),
            (
                fragment(0),
                "speaker: must be SPEAKER_CUSTOMER or SPEAKER_AGENT",
            ),
            (fragment(9), "speaker: unknown value 9"),
            (
                loud(f32::NAN),
                "loudness_dbfs: must be a finite number, not NaN",
            ),
            (
                loud(f32::NEG_INFINITY),
                "loudness_dbfs: must be a finite number, not -inf",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(Event::try_from(event).unwrap_err().to_string(), want);
        }
        let ok = Event::try_from(fragment(pb::Speaker::Agent as i32)).unwrap();
        assert!(
            matches!(ok, Event::Fragment(ref f) if f.speaker == Speaker::Agent && f.language.is_none())
        );
    }

    #[test]
    fn domain_events_survive_a_round_trip() {
        let lines = [
            r#"{"type":"start","call_id":"c1","tenant":"t","agent_id":"a","caller_id":"+81","language":"ja","started_at":"2026-10-05T05:03:00Z","timezone":"Asia/Tokyo","labels":{"q":"1"}}"#,
            r#"{"type":"fragment","call_id":"c1","seq":2,"speaker":"agent","text":"x","is_final":false,"utterance_id":"u","start_ms":1,"end_ms":2,"language":"ja","loudness_dbfs":-3.5}"#,
            r#"{"type":"end","call_id":"c1","end_ms":9}"#,
        ];
        for line in lines {
            let event: Event = serde_json::from_str(line).unwrap();
            assert_eq!(
                Event::try_from(pb::TranscriptEvent::from(&event)).unwrap(),
                event
            );
        }
    }

    #[test]
    fn start_maps_empty_strings_to_absent() {
        let event = pb::TranscriptEvent {
            event: Some(pb::transcript_event::Event::Start(pb::CallStart {
                call_id: "c1".into(),
                started_at: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            })),
        };
        let Event::Start(start) = Event::try_from(event).unwrap() else {
            panic!()
        };
        assert_eq!(start.caller_id, None);
        assert_eq!(start.timezone, None);
        assert_eq!(start.started_at.unwrap().as_second(), 1_790_000_000);
    }
}
