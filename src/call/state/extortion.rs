//! The extortion combination: a threat and a money demand close together.

use super::CallSession;
use crate::alert::AlertEvent;
use crate::category::{id, Severity};
use crate::policy::PolicySet;

/// The rule id of the combination's alert.
pub(super) const EXTORTION_RULE: &str = "combination/extortion";

impl CallSession {
    /// A threat (or exposure threat) and a money demand close together: the
    /// extortion pattern. The demand is what turns critical (DOMAIN 2.1:
    /// a monetary demand is critical when combined with any threat); the
    /// threat keeps its own alert, and an exposure threat does not become
    /// a threat of harm.
    pub(super) fn check_extortion(&mut self, policy: &PolicySet, out: &mut Vec<AlertEvent>) {
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
            let raised = self.raise(
                policy,
                id::EXCESSIVE_DEMAND,
                EXTORTION_RULE,
                Severity::Critical,
                at,
                evidence,
            );
            // Made of a threat: when the agent's concern turns the threat
            // into a report, the extortion goes with it.
            self.keep_answerable(raised.as_ref());
            out.extend(raised);
        }
    }
}
