//! The CI gate: a report against the committed baseline of its set.

use super::Report;

/// How far overall recall may fall, or the benign false-alarm rate rise,
/// before [`compare`] fails (half a percentage point).
pub const TOLERANCE: f64 = 0.005;

/// The CI gate: fails when overall recall fell, or the benign false-alarm
/// rate rose, by more than [`TOLERANCE`] against `baseline`. Each failure
/// names the figure and what changed (categories that lost recall, benign
/// calls that newly raise something).
pub fn compare(report: &Report, baseline: &Report) -> Result<(), Vec<String>> {
    compare_with_tolerance(report, baseline, TOLERANCE)
}

/// [`compare`] with an explicit tolerance (a fraction, 0.005 = 0.5 point).
pub fn compare_with_tolerance(
    report: &Report,
    baseline: &Report,
    tolerance: f64,
) -> Result<(), Vec<String>> {
    let mut failures = Vec::new();
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));

    let recall_now = report.totals.recall.unwrap_or(0.0);
    if let Some(before) = baseline.totals.recall {
        if recall_now < before - tolerance {
            let mut detail = Vec::new();
            for b in &baseline.categories {
                let now = report
                    .categories
                    .iter()
                    .find(|c| c.category == b.category)
                    .and_then(|c| c.recall);
                if let Some(was) = b.recall {
                    if now.unwrap_or(0.0) < was - 1e-9 {
                        detail.push(format!("{} {} -> {}", b.category, pct(Some(was)), pct(now)));
                    }
                }
            }
            let new_misses: Vec<String> = report
                .misses
                .iter()
                .filter(|m| {
                    !baseline
                        .misses
                        .iter()
                        .any(|b| b.call_id == m.call_id && b.category == m.category)
                })
                .map(|m| format!("{}/{}", m.call_id, m.category))
                .collect();
            failures.push(format!(
                "overall recall fell from {} to {} (tolerance {:.1} points){}{}",
                pct(Some(before)),
                pct(report.totals.recall),
                tolerance * 100.0,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!("; by category: {}", detail.join(", "))
                },
                if new_misses.is_empty() {
                    String::new()
                } else {
                    format!("; new misses: {}", new_misses.join(", "))
                },
            ));
        }
    }

    let rate_now = report.benign.false_alarm_rate.unwrap_or(0.0);
    let rate_before = baseline.benign.false_alarm_rate.unwrap_or(0.0);
    if rate_now > rate_before + tolerance {
        let new_alarms: Vec<String> = report
            .false_alarms
            .iter()
            .filter(|f| f.benign)
            .filter(|f| {
                !baseline
                    .false_alarms
                    .iter()
                    .any(|b| b.call_id == f.call_id && b.category == f.category)
            })
            .map(|f| format!("{}/{} ({}: {:?})", f.call_id, f.category, f.rule, f.excerpt))
            .collect();
        failures.push(format!(
            "benign false-alarm rate rose from {} to {} (tolerance {:.1} points){}",
            pct(baseline.benign.false_alarm_rate),
            pct(report.benign.false_alarm_rate),
            tolerance * 100.0,
            if new_alarms.is_empty() {
                String::new()
            } else {
                format!("; new: {}", new_alarms.join(", "))
            },
        ));
    }

    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
