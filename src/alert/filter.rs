//! Which alerts a subscriber wants (DESIGN section 4, `Alerts/Subscribe`).
//!
//! The same filter is applied in memory to live alerts ([`AlertFilter::matches`])
//! and in SQL to the durable log (`store::AlertLog::read_after`); the store's
//! tests check that the two agree.

use crate::alert::Alert;
use crate::category::Severity;

/// A subscriber's filter. Every field that is set must match; an empty list
/// means "any".
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    pub tenant: Option<String>,
    pub call_ids: Vec<String>,
    pub categories: Vec<String>,
    pub min_severity: Option<Severity>,
    /// Only this agent's calls.
    pub agent_id: Option<String>,
    /// Only alerts (and updates) raised at or after this time.
    pub since: Option<jiff::Timestamp>,
}

impl AlertFilter {
    /// Whether `alert` passes this filter.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == alert.tenant)
            && (self.call_ids.is_empty() || self.call_ids.contains(&alert.call_id))
            && (self.categories.is_empty() || self.categories.contains(&alert.category))
            && self.min_severity.is_none_or(|min| alert.severity >= min)
            && self.agent_id.as_ref().is_none_or(|a| *a == alert.agent_id)
            && self.since.is_none_or(|since| alert.raised_at >= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(tenant: &str, call_id: &str, category: &str, severity: Severity) -> Alert {
        crate::alert::test_alert(tenant, call_id, category, severity)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filter_cases() {
        let a = alert("acme", "c1", "violence", Severity::Warning);
        let cases: &[(&str, AlertFilter, bool)] = &[
            ("empty filter matches all", AlertFilter::default(), true),
            (
                "same tenant",
                AlertFilter {
                    tenant: Some("acme".into()),
                    ..Default::default()
                },
                true,
            ),
            (
                "other tenant",
                AlertFilter {
                    tenant: Some("globex".into()),
                    ..Default::default()
                },
                false,
            ),
            (
                "call listed",
                AlertFilter {
                    call_ids: strings(&["c0", "c1"]),
                    ..Default::default()
                },
                true,
            ),
            (
                "call not listed",
                AlertFilter {
                    call_ids: strings(&["c2"]),
                    ..Default::default()
                },
                false,
            ),
            (
                "category listed",
                AlertFilter {
                    categories: strings(&["threat", "violence"]),
                    ..Default::default()
                },
                true,
            ),
            (
                "category not listed",
                AlertFilter {
                    categories: strings(&["threat"]),
                    ..Default::default()
                },
                false,
            ),
            (
                "severity at minimum",
                AlertFilter {
                    min_severity: Some(Severity::Warning),
                    ..Default::default()
                },
                true,
            ),
            (
                "severity below minimum",
                AlertFilter {
                    min_severity: Some(Severity::Critical),
                    ..Default::default()
                },
                false,
            ),
            (
                "same agent",
                AlertFilter {
                    agent_id: Some("a1".into()),
                    ..Default::default()
                },
                true,
            ),
            (
                "other agent",
                AlertFilter {
                    agent_id: Some("a2".into()),
                    ..Default::default()
                },
                false,
            ),
            (
                "raised before since",
                AlertFilter {
                    since: Some(jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(1)),
                    ..Default::default()
                },
                false,
            ),
            (
                "all fields match",
                AlertFilter {
                    tenant: Some("acme".into()),
                    call_ids: strings(&["c1"]),
                    categories: strings(&["violence"]),
                    min_severity: Some(Severity::Info),
                    agent_id: Some("a1".into()),
                    since: Some(jiff::Timestamp::UNIX_EPOCH),
                },
                true,
            ),
            (
                "one field fails",
                AlertFilter {
                    tenant: Some("acme".into()),
                    call_ids: strings(&["c1"]),
                    categories: strings(&["abuse"]),
                    min_severity: Some(Severity::Info),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (name, filter, want) in cases {
            assert_eq!(filter.matches(&a), *want, "{name}");
        }
    }
}
