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

/// The built-in category ids, named once: code that means a category
/// (the call state's rules, the counters' rule ids) uses these, never a
/// string of its own.
pub mod id {
    // DESIGN section 1 (fixed ids).
    pub const VIOLENCE: &str = "violence";
    pub const THREAT: &str = "threat";
    pub const INTIMIDATION: &str = "intimidation";
    pub const VERBAL_ABUSE: &str = "verbal_abuse";
    pub const EXCESSIVE_DEMAND: &str = "excessive_demand";
    pub const PERSONAL_ATTACK: &str = "personal_attack";
    pub const ONLINE_DEFAMATION: &str = "online_defamation";
    pub const DISCRIMINATION: &str = "discrimination";
    pub const SEXUAL_HARASSMENT: &str = "sexual_harassment";
    pub const PERSISTENCE: &str = "persistence";
    pub const RESTRAINT: &str = "restraint";
    pub const OUT_OF_HOURS: &str = "out_of_hours";
    // A welfare concern, not a harassment strike.
    pub const SELF_HARM: &str = "self_harm";
    // Info-level signals.
    pub const DEMAND: &str = "demand";
    pub const MANAGER_REQUEST: &str = "manager_request";
    pub const LEGAL_MENTION: &str = "legal_mention";
    pub const MASKED_PROFANITY: &str = "masked_profanity";
    // Markers in the agent's speech.
    pub const AGENT_REFUSAL: &str = "agent_refusal";
    pub const AGENT_WARNING: &str = "agent_warning";
    pub const AGENT_CONCERN: &str = "agent_concern";
}

/// Built-in categories: id, kind, default severity, speaker.
pub const BUILTIN_CATEGORIES: &[(&str, CategoryKind, Severity, Speaker)] = &[
    (
        id::VIOLENCE,
        CategoryKind::Harassment,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        id::THREAT,
        CategoryKind::Harassment,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        id::INTIMIDATION,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::VERBAL_ABUSE,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::EXCESSIVE_DEMAND,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::PERSONAL_ATTACK,
        CategoryKind::Harassment,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        id::ONLINE_DEFAMATION,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::DISCRIMINATION,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::SEXUAL_HARASSMENT,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::PERSISTENCE,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::RESTRAINT,
        CategoryKind::Harassment,
        Severity::Warning,
        Speaker::Customer,
    ),
    (
        id::OUT_OF_HOURS,
        CategoryKind::Harassment,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        id::SELF_HARM,
        CategoryKind::Welfare,
        Severity::Critical,
        Speaker::Customer,
    ),
    (
        id::DEMAND,
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        id::MANAGER_REQUEST,
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        id::LEGAL_MENTION,
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        id::MASKED_PROFANITY,
        CategoryKind::Signal,
        Severity::Info,
        Speaker::Customer,
    ),
    (
        id::AGENT_REFUSAL,
        CategoryKind::AgentMarker,
        Severity::Info,
        Speaker::Agent,
    ),
    (
        id::AGENT_WARNING,
        CategoryKind::AgentMarker,
        Severity::Info,
        Speaker::Agent,
    ),
    (
        id::AGENT_CONCERN,
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
