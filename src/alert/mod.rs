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
}
