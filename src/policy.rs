//! Policy: every threshold, severity, action and business-hours setting in
//! one TOML file, with the defaults of DESIGN section 6 built in and
//! per-tenant overrides (`[tenants.<name>]` holds any subset of the keys).
//!
//! Parsing is strict: an unknown key or a bad value is an error naming the
//! key, so a typo never silently leaves a default in force.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use crate::category::Severity;

/// The built-in policy, as a file a user can copy and edit.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../policy/default.toml");

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("policy {file}: {key}: {message}")]
    BadValue {
        file: String,
        key: String,
        message: String,
    },
    #[error("cannot read policy {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Policy for one tenant (the default one when the tenant has no overrides).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    pub business_hours: BusinessHours,
    pub repetition: Repetition,
    pub restraint: Restraint,
    pub repeat_callers: RepeatCallers,
    pub combinations: Combinations,
    pub accumulation: Accumulation,
    pub session: SessionLimits,
    pub escalation: Escalation,
    /// Per-category overrides: severity, action, on/off.
    #[serde(default)]
    pub categories: BTreeMap<String, CategoryPolicy>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// "HH:MM", local time of the call's timezone.
    pub start: String,
    pub end: String,
    /// Open days: mon, tue, wed, thu, fri, sat, sun.
    pub days: Vec<String>,
    /// Zone for calls that name none.
    pub default_timezone: String,
    /// Severity of `out_of_hours`, or "off".
    pub out_of_hours: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repetition {
    /// Final customer utterances with the same demand group that raise
    /// `persistence`; also the agent's refusals a content word of the
    /// caller is said again after (the same demand in other words).
    pub same_demand: u32,
    /// Repeats at which `persistence` is raised again, one level higher.
    pub escalate_at: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restraint {
    /// Minutes of stalemate (after the agent's refusal or the customer's
    /// first repeated demand) that raise `restraint` at warning.
    pub stalemate_minutes: u64,
    /// Minutes of call under any customer pressure that raise `restraint` at critical.
    pub pressure_minutes: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatCallers {
    /// The call from one caller that raises `persistence` (3 = the third).
    pub calls: u32,
    pub window_hours: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Combinations {
    /// A threat or exposure threat and a money demand this close together
    /// are the extortion pattern (critical).
    pub extortion_window_seconds: u64,
    /// After the agent's concern for the caller's safety ("are you hurt?",
    /// お怪我はございませんか), the caller is telling of an incident done to
    /// them: violence, threat, intimidation and abuse words in the turn just
    /// before and for this long after are kept at `info`. 0 turns it off.
    pub reported_incident_seconds: u64,
}

impl Combinations {
    /// `reported_incident_seconds` in audio milliseconds (0: off).
    pub fn reported_incident_ms(&self) -> u64 {
        self.reported_incident_seconds.saturating_mul(1000)
    }
}

/// Hits that are mild alone and add up over a call (lexicon groups
/// `belittling`, `self_harm_hint` and `threat_hint`): how many of the customer's
/// utterances must hold one before the category is raised at warning.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accumulation {
    pub belittling: u32,
    pub self_harm_hints: u32,
    pub threat_hints: u32,
}

impl Accumulation {
    /// Utterances needed for a group; 0 (never) for any other group.
    pub fn needed(&self, group: &str) -> u32 {
        match group {
            "belittling" => self.belittling,
            "self_harm_hint" => self.self_harm_hints,
            "threat_hint" => self.threat_hints,
            _ => 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLimits {
    /// A call with no event for this long is closed.
    pub idle_timeout_seconds: u64,
    /// Evidence items kept per alert.
    pub max_evidence: usize,
    /// Alerts kept in a call's history (older ones are counted, not kept).
    pub max_alert_history: usize,
    /// Utterances with interim text and no final yet, per call.
    pub max_open_utterances: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Actions of the warning ladder: the n-th harassment alert of a call at
    /// warning takes the n-th action (the last repeats).
    pub ladder: Vec<String>,
    /// Action of critical alerts unless the category says otherwise.
    pub critical_action: String,
    /// Action of info alerts.
    pub info_action: String,
    /// The same category and term do not alert again within this many
    /// seconds of a call unless the severity rises.
    pub cooldown_seconds: u64,
    /// A ladder step also needs the agent's warning (an `agent_warning`
    /// marker) since the previous step, as a warn-then-end procedure says.
    /// A step always needs a new customer utterance.
    #[serde(default)]
    pub step_needs_agent_warning: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryPolicy {
    pub severity: Option<Severity>,
    pub action: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl PolicySet {
    /// Severity of a category from policy, if the policy sets one.
    pub fn category_severity(&self, category: &str) -> Option<Severity> {
        self.categories.get(category).and_then(|c| c.severity)
    }

    /// The category's full severity: its policy severity, else the
    /// built-in one (`None` for a category of a tenant's own lexicon
    /// without a policy severity).
    pub fn full_severity(&self, category: &str) -> Option<Severity> {
        self.category_severity(category)
            .or_else(|| crate::category::builtin(category).map(|(_, s, _)| s))
    }

    pub fn category_enabled(&self, category: &str) -> bool {
        self.categories.get(category).is_none_or(|c| c.enabled)
    }

    /// The category's own action for an alert of `severity`: only at the
    /// category's full severity (its policy severity, else the built-in
    /// one). A denied or quoted threat, downgraded, takes the action of its
    /// new severity: it is not `involve_police`.
    pub fn category_action(&self, category: &str, severity: Severity) -> Option<&str> {
        if self
            .full_severity(category)
            .is_some_and(|full| severity < full)
        {
            return None;
        }
        self.categories
            .get(category)
            .and_then(|c| c.action.as_deref())
    }

    /// `out_of_hours` severity, `None` when turned off.
    pub fn out_of_hours_severity(&self) -> Option<Severity> {
        match self.business_hours.out_of_hours.as_str() {
            "off" => None,
            s => s.parse().ok(),
        }
    }

    /// Is `at` (in the call's zone) inside business hours?
    pub fn within_business_hours(&self, at: jiff::Timestamp, timezone: Option<&str>) -> bool {
        let zone = timezone.unwrap_or(&self.business_hours.default_timezone);
        let Ok(tz) = jiff::tz::TimeZone::get(zone) else {
            return true; // validated at the edge; never alert on a zone we cannot read
        };
        let local = at.to_zoned(tz);
        let day = match local.weekday() {
            jiff::civil::Weekday::Monday => "mon",
            jiff::civil::Weekday::Tuesday => "tue",
            jiff::civil::Weekday::Wednesday => "wed",
            jiff::civil::Weekday::Thursday => "thu",
            jiff::civil::Weekday::Friday => "fri",
            jiff::civil::Weekday::Saturday => "sat",
            jiff::civil::Weekday::Sunday => "sun",
        };
        if !self.business_hours.days.iter().any(|d| d == day) {
            return false;
        }
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        let (start, end) = (
            parse_hhmm(&self.business_hours.start).unwrap_or(0),
            parse_hhmm(&self.business_hours.end).unwrap_or(24 * 60),
        );
        start <= minute && minute < end
    }

    fn validate(&self, file: &str) -> Result<(), PolicyError> {
        let bad = |key: &str, message: String| PolicyError::BadValue {
            file: file.to_owned(),
            key: key.to_owned(),
            message,
        };
        let bh = &self.business_hours;
        let start = parse_hhmm(&bh.start).ok_or_else(|| {
            bad(
                "business_hours.start",
                format!("{:?} is not HH:MM", bh.start),
            )
        })?;
        let end = parse_hhmm(&bh.end)
            .ok_or_else(|| bad("business_hours.end", format!("{:?} is not HH:MM", bh.end)))?;
        if start >= end {
            return Err(bad(
                "business_hours.end",
                "must be after business_hours.start".into(),
            ));
        }
        for day in &bh.days {
            if !["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(&day.as_str()) {
                return Err(bad(
                    "business_hours.days",
                    format!("{day:?} is not one of mon..sun"),
                ));
            }
        }
        if jiff::tz::TimeZone::get(&bh.default_timezone).is_err() {
            return Err(bad(
                "business_hours.default_timezone",
                format!("unknown time zone {:?}", bh.default_timezone),
            ));
        }
        if bh.out_of_hours != "off" && bh.out_of_hours.parse::<Severity>().is_err() {
            return Err(bad(
                "business_hours.out_of_hours",
                format!(
                    "{:?} is not off, info, warning or critical",
                    bh.out_of_hours
                ),
            ));
        }
        let positive = [
            (
                "repetition.same_demand",
                u64::from(self.repetition.same_demand),
            ),
            (
                "repetition.escalate_at",
                u64::from(self.repetition.escalate_at),
            ),
            (
                "restraint.stalemate_minutes",
                self.restraint.stalemate_minutes,
            ),
            (
                "restraint.pressure_minutes",
                self.restraint.pressure_minutes,
            ),
            ("repeat_callers.calls", u64::from(self.repeat_callers.calls)),
            (
                "accumulation.belittling",
                u64::from(self.accumulation.belittling),
            ),
            (
                "accumulation.self_harm_hints",
                u64::from(self.accumulation.self_harm_hints),
            ),
            (
                "accumulation.threat_hints",
                u64::from(self.accumulation.threat_hints),
            ),
            (
                "repeat_callers.window_hours",
                self.repeat_callers.window_hours,
            ),
            (
                "session.idle_timeout_seconds",
                self.session.idle_timeout_seconds,
            ),
            ("session.max_evidence", self.session.max_evidence as u64),
            (
                "session.max_alert_history",
                self.session.max_alert_history as u64,
            ),
            (
                "session.max_open_utterances",
                self.session.max_open_utterances as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        if self.repetition.escalate_at <= self.repetition.same_demand {
            return Err(bad(
                "repetition.escalate_at",
                "must be above repetition.same_demand".into(),
            ));
        }
        if self.escalation.ladder.is_empty() {
            return Err(bad("escalation.ladder", "needs at least one action".into()));
        }
        Ok(())
    }
}

fn parse_hhmm(s: &str) -> Option<i32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// The whole policy: defaults and per-tenant sets, resolved once at load.
#[derive(Clone, Debug)]
pub struct Policy {
    default: Arc<PolicySet>,
    tenants: HashMap<String, Arc<PolicySet>>,
}

impl Policy {
    /// The built-in defaults.
    pub fn builtin() -> Policy {
        Policy::from_toml(DEFAULT_POLICY_TOML, "built-in").expect("built-in policy is valid")
    }

    /// Loads a policy file: its keys override the built-in defaults.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_toml(&text, &path.display().to_string())
    }

    /// Parses a policy from TOML text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let syntax = |e: toml::de::Error, source: &str, name: &str| PolicyError::Invalid {
            file: name.to_owned(),
            line: e
                .span()
                .map_or(1, |s| source[..s.start].matches('\n').count() + 1),
            message: e.message().trim().replace('\n', " "),
        };
        let builtin: toml::Table = toml::from_str(DEFAULT_POLICY_TOML)
            .map_err(|e| syntax(e, DEFAULT_POLICY_TOML, "built-in"))?;
        let mut user: toml::Table = toml::from_str(text).map_err(|e| syntax(e, text, file))?;
        let tenants = match user.remove("tenants") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(PolicyError::BadValue {
                    file: file.into(),
                    key: "tenants".into(),
                    message: "must be a table of [tenants.<name>] sections".into(),
                })
            }
            None => toml::Table::new(),
        };
        let mut base = builtin;
        merge(&mut base, user);
        let default = resolve(&base, file, "")?;
        let mut resolved = HashMap::new();
        for (name, overrides) in tenants {
            let toml::Value::Table(overrides) = overrides else {
                return Err(PolicyError::BadValue {
                    file: file.into(),
                    key: format!("tenants.{name}"),
                    message: "must be a table".into(),
                });
            };
            let mut set = base.clone();
            merge(&mut set, overrides);
            resolved.insert(
                name.clone(),
                Arc::new(resolve(&set, file, &format!("tenants.{name}."))?),
            );
        }
        Ok(Policy {
            default: Arc::new(default),
            tenants: resolved,
        })
    }

    /// The policy in force for a tenant.
    pub fn for_tenant(&self, tenant: &str) -> &Arc<PolicySet> {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

fn resolve(table: &toml::Table, file: &str, prefix: &str) -> Result<PolicySet, PolicyError> {
    let set: PolicySet =
        table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| PolicyError::BadValue {
                file: file.to_owned(),
                key: prefix.trim_end_matches('.').to_owned(),
                message: e.message().trim().replace('\n', " "),
            })?;
    set.validate(file).map_err(|e| match e {
        PolicyError::BadValue { file, key, message } => PolicyError::BadValue {
            file,
            key: format!("{prefix}{key}"),
            message,
        },
        other => other,
    })?;
    Ok(set)
}

/// Deep-merges `overrides` into `base` (tables merge, everything else replaces).
fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_defaults_are_design_section_6() {
        let policy = Policy::builtin();
        let p = policy.for_tenant("anyone");
        assert_eq!(p.restraint.stalemate_minutes, 30);
        assert_eq!(p.restraint.pressure_minutes, 60);
        assert_eq!(p.repetition.same_demand, 3);
        assert_eq!(p.repeat_callers.calls, 3);
        assert_eq!(p.repeat_callers.window_hours, 24);
        assert_eq!(p.business_hours.start, "09:00");
        assert_eq!(p.out_of_hours_severity(), Some(Severity::Info));
    }

    #[test]
    fn business_hours_in_the_calls_zone() {
        let p = Policy::builtin();
        let p = p.for_tenant("");
        // Monday 2026-10-05 14:03 in Tokyo = 05:03 UTC.
        let t: jiff::Timestamp = "2026-10-05T05:03:00Z".parse().unwrap();
        assert!(p.within_business_hours(t, Some("Asia/Tokyo")));
        assert!(
            !p.within_business_hours(t, None),
            "05:03 UTC is before 09:00"
        );
        let edge: jiff::Timestamp = "2026-10-05T09:00:00Z".parse().unwrap();
        assert!(p.within_business_hours(edge, Some("UTC")));
        let close: jiff::Timestamp = "2026-10-05T18:00:00Z".parse().unwrap();
        assert!(
            !p.within_business_hours(close, Some("UTC")),
            "18:00 is closed"
        );
        let saturday: jiff::Timestamp = "2026-10-10T12:00:00Z".parse().unwrap();
        assert!(!p.within_business_hours(saturday, Some("UTC")));
    }

    #[test]
    fn tenant_overrides_merge_over_defaults() {
        let policy = Policy::from_toml(
            "[restraint]\nstalemate_minutes = 20\n[tenants.roadside.business_hours]\nout_of_hours = \"off\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(policy.for_tenant("acme").restraint.stalemate_minutes, 20);
        assert_eq!(
            policy.for_tenant("roadside").restraint.stalemate_minutes,
            20
        );
        assert_eq!(policy.for_tenant("roadside").out_of_hours_severity(), None);
        assert_eq!(
            policy.for_tenant("acme").out_of_hours_severity(),
            Some(Severity::Info)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "[restraint]\nstalemate_minutes = 0\n",
                "restraint.stalemate_minutes: must be at least 1",
            ),
            (
                "[business_hours]\nstart = \"9am\"\n",
                "business_hours.start: \"9am\" is not HH:MM",
            ),
            (
                "[restraint]\nstalemate_minute = 3\n",
                "unknown field `stalemate_minute`",
            ),
            (
                "[tenants.x.repetition]\nescalate_at = 2\n",
                "tenants.x.repetition.escalate_at: must be above",
            ),
            (
                "[business_hours]\nout_of_hours = \"high\"\n",
                "business_hours.out_of_hours",
            ),
            (
                "[categories.threat]\nseverity = \"huge\"\n",
                "unknown variant `huge`",
            ),
            ("restraint = [\n", "p.toml:"),
        ];
        for (text, want) in cases {
            let err = Policy::from_toml(text, "p.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err}");
        }
    }
}
