//! Alerts (DESIGN section 3, fixed field names): what supervisors receive.
//!
//! The call state machine produces [`AlertEvent`]s that know only their
//! call-local id; the driver (service or replay) turns them into [`Alert`]s
//! with the service-wide `alert_id` and `event_id`, so the core stays
//! deterministic and free of global state.

pub mod filter;
pub use filter::AlertFilter;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::category::{Severity, Speaker};

/// Where an alert stands (fixed names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Raised on interim text, for speed; the final text decides.
    Provisional,
    Confirmed,
    /// The final text no longer holds the words.
    Retracted,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Provisional => "provisional",
            AlertStatus::Confirmed => "confirmed",
            AlertStatus::Retracted => "retracted",
        }
    }
}

/// One piece of evidence: the words, who said them, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub speaker: Speaker,
    pub utterance_id: String,
    /// Short, with digit runs and e-mail addresses masked.
    pub excerpt: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Where the words are in the text of the fragment they were found in,
    /// in Unicode scalar values (code points), end exclusive; computed from
    /// the engine's byte span where the evidence is built. `None` for
    /// evidence that is not words found in that text (a counter's whole
    /// utterance, the previous utterance of a phrase split across two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_start: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_end: Option<u32>,
}

/// An alert or an update of one, as the call state machine emits it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    /// Call-local id: updates of one alert share it.
    pub local_id: u32,
    pub status: AlertStatus,
    pub category: Arc<str>,
    pub severity: Severity,
    pub rule: Arc<str>,
    pub at_ms: u64,
    pub evidence: Vec<Evidence>,
    pub action: Arc<str>,
}

/// An alert as delivered (DESIGN section 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub event_id: u64,
    pub alert_id: u64,
    pub status: AlertStatus,
    pub call_id: String,
    pub tenant: String,
    pub agent_id: String,
    pub category: String,
    pub severity: Severity,
    pub rule: String,
    pub lexicon_version: String,
    pub at_ms: u64,
    pub raised_at: jiff::Timestamp,
    pub evidence: Vec<Evidence>,
    pub action: String,
    /// What supervisors have done about it; absent until someone
    /// acknowledges, assigns or resolves it (and in replay, always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handling: Option<Handling>,
}

/// The call an alert event came from, as the driver knows it.
pub struct AlertOrigin<'a> {
    pub call_id: &'a str,
    pub tenant: &'a str,
    pub agent_id: &'a str,
    pub lexicon_version: &'a str,
}

impl Alert {
    /// The delivered form of a call's alert event, for `serve` and `replay`
    /// alike. `event_id` and `alert_id` are 0: the driver numbers them
    /// (service-wide under the ledger lock, or in output order).
    pub fn from_event(
        event: AlertEvent,
        origin: &AlertOrigin,
        raised_at: jiff::Timestamp,
    ) -> Alert {
        Alert {
            event_id: 0,
            alert_id: 0,
            status: event.status,
            call_id: origin.call_id.to_owned(),
            tenant: origin.tenant.to_owned(),
            agent_id: origin.agent_id.to_owned(),
            category: event.category.to_string(),
            severity: event.severity,
            rule: event.rule.to_string(),
            lexicon_version: origin.lexicon_version.to_owned(),
            at_ms: event.at_ms,
            raised_at,
            evidence: event.evidence,
            action: event.action.to_string(),
            handling: None,
        }
    }
}

/// Where a supervisor has taken an alert. Independent of [`AlertStatus`]
/// (what the transcript says): a retracted alert may still be resolved,
/// and a confirmation after an acknowledgement keeps the acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlingState {
    /// Someone has seen it and is on it.
    Acknowledged,
    /// Handed to a named person (`assignee`).
    Assigned,
    /// Dealt with.
    Resolved,
}

impl HandlingState {
    pub fn as_str(self) -> &'static str {
        match self {
            HandlingState::Acknowledged => "acknowledged",
            HandlingState::Assigned => "assigned",
            HandlingState::Resolved => "resolved",
        }
    }
}

/// The handling of an alert as of its latest update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handling {
    pub state: HandlingState,
    /// Name of the token that made the latest change (never the token).
    pub by: String,
    /// Who the alert is assigned to; kept when it is later acknowledged
    /// or resolved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assignee: String,
    /// The latest change's note.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// When the latest change was made.
    pub at: jiff::Timestamp,
}

/// Longest note and assignee accepted (bytes).
pub const MAX_NOTE_BYTES: usize = 2_000;
pub const MAX_ASSIGNEE_BYTES: usize = 200;

/// One supervisor's change to an alert's handling, as requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlingChange {
    pub state: HandlingState,
    pub by: String,
    /// Required to assign; ignored (the old one kept) otherwise when empty.
    pub assignee: String,
    pub note: String,
    pub at: jiff::Timestamp,
}

/// A change that cannot be made, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct HandlingChangeError {
    pub field: &'static str,
    pub reason: String,
}

impl HandlingChange {
    /// Refuses an assignment to nobody and over-long text.
    pub fn validate(&self) -> Result<(), HandlingChangeError> {
        let refuse = |field, reason: String| Err(HandlingChangeError { field, reason });
        if self.state == HandlingState::Assigned && self.assignee.trim().is_empty() {
            return refuse("assignee", "required to assign an alert".into());
        }
        if self.assignee.len() > MAX_ASSIGNEE_BYTES {
            return refuse(
                "assignee",
                format!(
                    "{} bytes, at most {MAX_ASSIGNEE_BYTES}",
                    self.assignee.len()
                ),
            );
        }
        if self.note.len() > MAX_NOTE_BYTES {
            return refuse(
                "note",
                format!("{} bytes, at most {MAX_NOTE_BYTES}", self.note.len()),
            );
        }
        Ok(())
    }

    /// The handling after this change, given the one before it.
    pub fn apply(&self, before: Option<&Handling>) -> Handling {
        let assignee = match self.assignee.trim() {
            "" => before.map(|h| h.assignee.clone()).unwrap_or_default(),
            name => name.to_owned(),
        };
        Handling {
            state: self.state,
            by: self.by.clone(),
            assignee,
            note: self.note.clone(),
            at: self.at,
        }
    }
}

/// An alert for tests: event and alert id 1, confirmed, agent a1, rule
/// ja/violence/korosu, raised at the epoch.
#[cfg(test)]
pub(crate) fn test_alert(tenant: &str, call_id: &str, category: &str, severity: Severity) -> Alert {
    Alert {
        event_id: 1,
        alert_id: 1,
        status: AlertStatus::Confirmed,
        call_id: call_id.into(),
        tenant: tenant.into(),
        agent_id: "a1".into(),
        category: category.into(),
        severity,
        rule: "ja/violence/korosu".into(),
        lexicon_version: "2026.11.1".into(),
        at_ms: 0,
        raised_at: jiff::Timestamp::UNIX_EPOCH,
        evidence: Vec::new(),
        action: "notify".into(),
        handling: None,
    }
}
