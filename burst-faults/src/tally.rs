//! Counting cases, injected faults and writes per family, and the summary line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

/// What one case did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CaseStats {
    /// Faults injected, by name.
    pub injected: BTreeMap<String, u64>,
    /// Writes that reached the system under test's target (route changes, patches).
    pub written: u64,
    /// Writes checked and found valid.
    pub checked: u64,
}

impl CaseStats {
    /// Counts `n` injections of `fault`.
    pub fn inject(&mut self, fault: &str, n: u64) {
        *self.injected.entry(fault.to_owned()).or_default() += n;
    }
}

/// The results of one family of cases.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    passed: u64,
    failed: u64,
    rounds: u64,
    per_case: BTreeMap<String, (u64, u64)>,
    totals: CaseStats,
    failures: Vec<String>,
}

impl Family {
    /// An empty tally for `name` (e.g. `metric`).
    pub fn new(name: &'static str) -> Self {
        Family {
            name,
            passed: 0,
            failed: 0,
            rounds: 0,
            per_case: BTreeMap::new(),
            totals: CaseStats::default(),
            failures: Vec::new(),
        }
    }

    /// Records the result of case `case`.
    pub fn record(&mut self, case: &str, result: Result<CaseStats, String>) {
        let entry = self.per_case.entry(case.to_owned()).or_default();
        match result {
            Ok(stats) => {
                self.passed += 1;
                entry.0 += 1;
                for (k, v) in stats.injected {
                    *self.totals.injected.entry(k).or_default() += v;
                }
                self.totals.written += stats.written;
                self.totals.checked += stats.checked;
            }
            Err(why) => {
                self.failed += 1;
                entry.1 += 1;
                self.failures.push(format!("{case}: {why}"));
            }
        }
    }

    /// Marks the end of one round over all cases.
    pub fn end_round(&mut self) {
        self.rounds += 1;
    }

    /// Cases passed.
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// Cases failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// The failure messages.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Totals over every passed case.
    pub fn totals(&self) -> &CaseStats {
        &self.totals
    }

    /// The summary line, `<family>: N passed, N failed`.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} passed, {} failed",
            self.name, self.passed, self.failed
        )
    }

    /// Writes the detail and the summary line to the real stderr (not captured by the test
    /// harness, so it shows in CI logs), and returns the summary line.
    pub fn report(&self) -> String {
        let line = self.summary();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{self}");
        let _ = writeln!(err, "{line}");
        line
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== fault family `{}`: {} round(s)",
            self.name, self.rounds
        )?;
        for (case, (ok, bad)) in &self.per_case {
            writeln!(f, "   {case:<44} {ok:>5} passed {bad:>3} failed")?;
        }
        let injected: Vec<String> = self
            .totals
            .injected
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(f, "   injected: {}", injected.join(", "))?;
        writeln!(
            f,
            "   writes: {} made, {} checked valid",
            self.totals.written, self.totals.checked
        )?;
        for failure in &self.failures {
            writeln!(f, "   FAILED {failure}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_cases_and_sums_stats() {
        let mut fam = Family::new("demo");
        let mut s = CaseStats::default();
        s.inject("500", 2);
        s.written = 1;
        s.checked = 1;
        fam.record("a", Ok(s.clone()));
        fam.record("a", Ok(s));
        fam.record("b", Err("boom".into()));
        fam.end_round();
        assert_eq!(fam.summary(), "demo: 2 passed, 1 failed");
        assert_eq!(fam.totals().injected["500"], 4);
        assert_eq!(fam.totals().written, 2);
        assert_eq!(fam.failures(), ["b: boom"]);
        assert!(fam.to_string().contains("1 round(s)"));
    }
}
