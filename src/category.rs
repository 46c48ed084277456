//! Category ids and severities: the fixed vocabulary of DESIGN section 1.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Alert severity (fixed names). Ordered: `Info < Warning < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// One level down (a hit inside a negation or quotation frame).
    pub fn downgraded(self) -> Severity {
        match self {
            Severity::Critical => Severity::Warning,
            Severity::Warning | Severity::Info => Severity::Info,
        }
    }

    /// One level up (policy escalation).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            Severity::Warning | Severity::Critical => Severity::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (expected info, warning or critical)"
            )),
        }
    }
}

/// Who spoke a fragment. Only the customer's speech raises harassment
/// alerts; the agent's feeds stage markers (refusal, warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Customer,
    Agent,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Customer => "customer",
            Speaker::Agent => "agent",
        }
    }
}

impl FromStr for Speaker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Speaker::Customer),
            "agent" => Ok(Speaker::Agent),
            other => Err(format!(
                "unknown speaker {other:?} (expected customer or agent)"
            )),
        }
    }
}

/// How a category behaves, whatever its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CategoryKind {
    /// A harassment category of DESIGN section 1 (or a tenant's own).
    Harassment,
    /// `self_harm`: a welfare concern, not a harassment strike.
    Welfare,
    /// Info-level signals that feed counters and combinations.
    Signal,
    /// Markers in the agent's speech.
    AgentMarker,
}

/// Built-in categories: id, kind, default severity, speaker.
pub const BUILTIN_CATEGORIES: &[(&str, CategoryKind, Severity, Speaker)] = &[
    (
        "violence",
        CategoryKind::Harassment,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        "threat",
        CategoryKind::Harassment,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        "intimidation",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "verbal_abuse",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "excessive_demand",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "personal_attack",
        CategoryKind::Harassment,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        "online_defamation",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "discrimination",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "sexual_harassment",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "persistence",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "restraint",
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        "out_of_hours",
        CategoryKind::Harassment,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        "self_harm",
        CategoryKind::Welfare,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        "demand",
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        "manager_request",
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        "legal_mention",
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        "masked_profanity",
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        "agent_refusal",
        CategoryKind::AgentMarker,
        Severity::Info,
        Speaker::Agent,
    ),
    (
        "agent_warning",
        CategoryKind::AgentMarker,
        Severity::Info,
        Speaker::Agent,
    ),
    (
        "agent_concern",
        CategoryKind::AgentMarker,
        Severity::Info,
        Speaker::Agent,
    ),
];

/// Looks up a built-in category.
pub fn builtin(id: &str) -> Option<(CategoryKind, Severity, Speaker)> {
    BUILTIN_CATEGORIES
        .iter()
        .find(|(name, ..)| *name == id)
        .map(|&(_, kind, severity, speaker)| (kind, severity, speaker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_ladder() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!(Severity::Critical.downgraded(), Severity::Warning);
        assert_eq!(Severity::Info.downgraded(), Severity::Info);
        assert_eq!(Severity::Warning.raised(), Severity::Critical);
        assert_eq!("warning".parse::<Severity>(), Ok(Severity::Warning));
        assert!("high".parse::<Severity>().is_err());
    }
}
