//! `strom bench compare`: the throughput regression check. A result regresses when its
//! throughput fell, or its p50/p99/p99.9 latency rose, by more than the tolerance. The max is
//! shown but not judged (one outlier decides it).

use comfy_table::{presets, CellAlignment, Table};

use super::report::{BenchReport, WorkloadResult};

/// Parses `10%`, `10` (also percent) or `2.5%` into a fraction (0.10, 0.10, 0.025).
pub fn parse_tolerance(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    let percent: f64 = number
        .parse()
        .map_err(|_| format!("tolerance '{text}' is not a percentage like 10%"))?;
    if !(0.0..=1000.0).contains(&percent) || !percent.is_finite() {
        return Err(format!("tolerance '{text}' must be between 0% and 1000%"));
    }
    Ok(percent / 100.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub result: String,
    pub metric: &'static str,
    pub baseline: f64,
    pub current: f64,
    /// Relative change, current vs baseline (+0.10 = 10 % higher).
    pub change: f64,
    /// `None` for figures shown but not judged.
    pub regressed: Option<bool>,
}

/// The comparison of two reports.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub checks: Vec<Check>,
    /// Results of the baseline that the current report lacks (a regression too).
    pub missing: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        !self.missing.is_empty() || self.checks.iter().any(|c| c.regressed == Some(true))
    }

    pub fn render(&self, tolerance: f64) -> String {
        let mut table = Table::new();
        table.load_preset(presets::UTF8_FULL_CONDENSED);
        table.set_header(vec![
            "result", "metric", "baseline", "current", "change", "verdict",
        ]);
        for check in &self.checks {
            let verdict = match check.regressed {
                Some(true) => "REGRESSED",
                Some(false) => "ok",
                None => "(not judged)",
            };
            table.add_row(vec![
                check.result.clone(),
                check.metric.to_string(),
                format!("{:.3}", check.baseline),
                format!("{:.3}", check.current),
                format!("{:+.1}%", check.change * 100.0),
                verdict.to_string(),
            ]);
        }
        for index in [2, 3, 4] {
            if let Some(column) = table.column_mut(index) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = table.to_string();
        for name in &self.missing {
            out.push_str(&format!(
                "\nresult '{name}' is in the baseline but not in the current report"
            ));
        }
        let verdict = if self.regressed() {
            "REGRESSION"
        } else {
            "no regression"
        };
        out.push_str(&format!(
            "\n{verdict} (tolerance {:.1}%)",
            tolerance * 100.0
        ));
        out
    }
}

fn relative_change(baseline: f64, current: f64) -> f64 {
    if baseline == 0.0 {
        if current == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (current - baseline) / baseline
    }
}

fn judge(
    result: &str,
    metric: &'static str,
    baseline: f64,
    current: f64,
    better: Option<Better>,
    tolerance: f64,
) -> Check {
    let change = relative_change(baseline, current);
    let regressed = better.map(|better| match better {
        Better::Higher => current < baseline * (1.0 - tolerance),
        Better::Lower => current > baseline * (1.0 + tolerance),
    });
    Check {
        result: result.to_string(),
        metric,
        baseline,
        current,
        change,
        regressed,
    }
}

fn compare_result(base: &WorkloadResult, current: &WorkloadResult, tolerance: f64) -> Vec<Check> {
    let name = &base.name;
    vec![
        judge(
            name,
            "msg/s",
            base.msgs_per_sec,
            current.msgs_per_sec,
            Some(Better::Higher),
            tolerance,
        ),
        judge(
            name,
            "MB/s",
            base.mb_per_sec,
            current.mb_per_sec,
            Some(Better::Higher),
            tolerance,
        ),
        judge(
            name,
            "p50 ms",
            base.latency.p50_ms,
            current.latency.p50_ms,
            Some(Better::Lower),
            tolerance,
        ),
        judge(
            name,
            "p99 ms",
            base.latency.p99_ms,
            current.latency.p99_ms,
            Some(Better::Lower),
            tolerance,
        ),
        judge(
            name,
            "p99.9 ms",
            base.latency.p999_ms,
            current.latency.p999_ms,
            Some(Better::Lower),
            tolerance,
        ),
        judge(
            name,
            "max ms",
            base.latency.max_ms,
            current.latency.max_ms,
            None,
            tolerance,
        ),
    ]
}

/// Compares every baseline result with the current result of the same name.
pub fn compare(baseline: &BenchReport, current: &BenchReport, tolerance: f64) -> Comparison {
    let mut comparison = Comparison::default();
    for base in &baseline.results {
        match current.results.iter().find(|c| c.name == base.name) {
            Some(found) => comparison
                .checks
                .extend(compare_result(base, found, tolerance)),
            None => comparison.missing.push(base.name.clone()),
        }
    }
    comparison
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Totals, WorkloadResult};
    use crate::bench::stats::LatencySummary;
    use std::collections::BTreeMap;

    fn result(
        name: &str,
        msgs_per_sec: f64,
        mb_per_sec: f64,
        p50: f64,
        p99: f64,
        p999: f64,
        max: f64,
    ) -> WorkloadResult {
        let totals = Totals {
            messages: 1,
            bytes: 1,
            errors: 0,
            duration_secs: 1.0,
        };
        let mut r = WorkloadResult::new(
            name,
            "produce",
            BTreeMap::new(),
            totals,
            "send-to-ack",
            LatencySummary {
                count: 1,
                mean_ms: p50,
                p50_ms: p50,
                p99_ms: p99,
                p999_ms: p999,
                max_ms: max,
            },
        );
        r.msgs_per_sec = msgs_per_sec;
        r.mb_per_sec = mb_per_sec;
        r
    }

    fn report(results: Vec<WorkloadResult>) -> BenchReport {
        BenchReport::new(results)
    }

    #[test]
    fn tolerances_parse() {
        assert_eq!(parse_tolerance("10%"), Ok(0.10));
        assert_eq!(parse_tolerance("10"), Ok(0.10));
        assert_eq!(parse_tolerance(" 2.5 % "), Ok(0.025));
        assert!(parse_tolerance("-5%").is_err());
        assert!(parse_tolerance("ten").is_err());
        assert!(parse_tolerance("NaN").is_err());
    }

    #[test]
    fn within_tolerance_passes() {
        let base = report(vec![result("p", 1000.0, 10.0, 1.0, 2.0, 3.0, 4.0)]);
        let current = report(vec![result("p", 905.0, 9.05, 1.09, 2.19, 3.29, 40.0)]);
        let comparison = compare(&base, &current, 0.10);
        assert!(!comparison.regressed(), "{}", comparison.render(0.10));
        assert!(comparison.render(0.10).contains("no regression"));
    }

    #[test]
    fn throughput_drop_fails() {
        let base = report(vec![result("p", 1000.0, 10.0, 1.0, 2.0, 3.0, 4.0)]);
        let current = report(vec![result("p", 890.0, 10.0, 1.0, 2.0, 3.0, 4.0)]);
        let comparison = compare(&base, &current, 0.10);
        assert!(comparison.regressed());
        let failed: Vec<_> = comparison
            .checks
            .iter()
            .filter(|c| c.regressed == Some(true))
            .map(|c| c.metric)
            .collect();
        assert_eq!(failed, vec!["msg/s"]);
    }

    #[test]
    fn latency_rise_fails_and_improvements_pass() {
        let base = report(vec![result("p", 1000.0, 10.0, 1.0, 2.0, 3.0, 4.0)]);
        let worse = report(vec![result("p", 2000.0, 20.0, 0.5, 2.3, 1.0, 1.0)]);
        let comparison = compare(&base, &worse, 0.10);
        let failed: Vec<_> = comparison
            .checks
            .iter()
            .filter(|c| c.regressed == Some(true))
            .map(|c| c.metric)
            .collect();
        assert_eq!(failed, vec!["p99 ms"]);
        let better = report(vec![result("p", 2000.0, 20.0, 0.5, 1.0, 1.0, 100.0)]);
        assert!(!compare(&base, &better, 0.10).regressed());
    }

    #[test]
    fn missing_results_fail_and_extra_results_are_ignored() {
        let base = report(vec![
            result("p", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
            result("c", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        ]);
        let current = report(vec![
            result("p", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
            result("e2e", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        ]);
        let comparison = compare(&base, &current, 0.10);
        assert_eq!(comparison.missing, vec!["c".to_string()]);
        assert!(comparison.regressed());
    }

    #[test]
    fn zero_baselines_do_not_divide_by_zero() {
        let base = report(vec![result("p", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)]);
        let current = report(vec![result("p", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)]);
        assert!(!compare(&base, &current, 0.10).regressed());
    }
}
