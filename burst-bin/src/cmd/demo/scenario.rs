//! The `--scenario` language of `burst demo --headless`: `RATErps:DURATION` steps,
//! comma-separated.

use std::time::Duration;

use anyhow::Context;

/// The scenario `--headless` runs when none is given.
pub(super) const DEFAULT_SCENARIO: &str = "5rps:20s,20rps:40s,5rps:30s";

/// One step of a headless scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Requests per second.
    pub rps: f64,
    /// How long.
    pub duration: Duration,
}

/// Parses `5rps:20s,20rps:40s`. Errors name the step and the expected form.
pub fn parse_scenario(text: &str, max: f64) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let part = part.trim();
        let form = "expected RATErps:DURATION, e.g. 20rps:40s";
        let (rate, dur) = part
            .split_once(':')
            .with_context(|| format!("scenario step {} `{part}`: {form}", i + 1))?;
        let rate = rate.trim();
        let number = rate.strip_suffix("rps").with_context(|| {
            format!(
                "scenario step {} `{part}`: rate `{rate}` lacks `rps`; {form}",
                i + 1
            )
        })?;
        let rps = burst_hashr::frontend::loadgen::parse_frequency(number, max)
            .with_context(|| format!("scenario step {} `{part}`", i + 1))?;
        let duration = humantime::parse_duration(dur.trim()).with_context(|| {
            format!(
                "scenario step {} `{part}`: duration `{}`: {form}",
                i + 1,
                dur.trim()
            )
        })?;
        if duration.is_zero() {
            anyhow::bail!(
                "scenario step {} `{part}`: the duration must be longer than 0s",
                i + 1
            );
        }
        steps.push(Step { rps, duration });
    }
    if steps.is_empty() {
        anyhow::bail!("the scenario is empty; give steps like {DEFAULT_SCENARIO}");
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn scenario_parses_and_names_bad_steps() {
        let s = parse_scenario("5rps:20s, 20rps:1m,0.5rps:500ms", 5000.0).unwrap();
        assert_eq!(
            s,
            vec![
                Step {
                    rps: 5.0,
                    duration: Duration::from_secs(20)
                },
                Step {
                    rps: 20.0,
                    duration: Duration::from_secs(60)
                },
                Step {
                    rps: 0.5,
                    duration: Duration::from_millis(500)
                },
            ]
        );
        for (bad, needle) in [
            ("5:20s", "lacks `rps`"),
            ("5rps", "expected RATErps:DURATION"),
            ("5rps:forever", "duration `forever`"),
            ("-5rps:1s", "negative"),
            ("9000rps:1s", "above the limit"),
            ("5rps:0s", "longer than 0s"),
            ("5rps:1s,,", "step 2"),
        ] {
            let e = format!("{:#}", parse_scenario(bad, 5000.0).unwrap_err());
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
