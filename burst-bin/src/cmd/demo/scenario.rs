//! The `--scenario` language of `burst demo --headless`: comma-separated items, each a load
//! step `RATErps:DURATION` or a side event `SIDE:EVENT` that takes effect when the next load
//! step starts.
//!
//! | event | effect |
//! |---|---|
//! | `primary:slow=200ms`, `burst:slow=1s` | the side's worker answers that much later |
//! | `primary:down`, `burst:down` | the side's worker answers 503 and is not ready |
//! | `burst:cold=20s` | the side's worker answers 503 (warming up) for that long, then serves |
//! | `primary:ready=1` | the side reports that many ready endpoints |
//! | `primary:up`, `burst:up` | clears slow, down and cold |

use std::time::Duration;

use anyhow::Context;

/// The scenario `--headless` runs when none is given.
pub(super) const DEFAULT_SCENARIO: &str = "5rps:20s,20rps:40s,5rps:30s";

/// One step of a headless scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Requests per second.
    pub rps: f64,
    /// How long.
    pub duration: Duration,
    /// Side events applied when the step starts, in the order given.
    pub events: Vec<SideEvent>,
}

/// Which side a [`SideEvent`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The primary worker.
    Primary,
    /// The burst worker.
    Burst,
}

/// What happens to a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Answers later by this much.
    Slow(Duration),
    /// Answers 503, not ready.
    Down,
    /// Answers 503 (warming up) for this long.
    Cold(Duration),
    /// Reports this many ready endpoints.
    Ready(u32),
    /// Clears slow, down and cold.
    Up,
}

/// An event on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideEvent {
    /// Where.
    pub side: Side,
    /// What.
    pub event: Event,
}

const FORM: &str = "expected RATErps:DURATION (e.g. 20rps:40s) or SIDE:EVENT with SIDE primary or \
burst and EVENT down, up, slow=200ms, cold=20s or ready=N";

/// Parses `5rps:20s,primary:slow=200ms,20rps:40s`. Errors name the item and the expected form.
pub fn parse_scenario(text: &str, max: f64) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut pending = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let part = part.trim();
        let n = i + 1;
        let (head, tail) = part
            .split_once(':')
            .with_context(|| format!("scenario step {n} `{part}`: {FORM}"))?;
        let (head, tail) = (head.trim(), tail.trim());
        if let Some(side) = side(head) {
            let event =
                parse_event(tail).with_context(|| format!("scenario step {n} `{part}`: {FORM}"))?;
            pending.push(SideEvent { side, event });
            continue;
        }
        let number = head.strip_suffix("rps").with_context(|| {
            format!("scenario step {n} `{part}`: rate `{head}` lacks `rps`; {FORM}")
        })?;
        let rps = burst_hashr::frontend::loadgen::parse_frequency(number, max)
            .with_context(|| format!("scenario step {n} `{part}`"))?;
        let duration = humantime::parse_duration(tail)
            .with_context(|| format!("scenario step {n} `{part}`: duration `{tail}`: {FORM}"))?;
        if duration.is_zero() {
            anyhow::bail!("scenario step {n} `{part}`: the duration must be longer than 0s");
        }
        steps.push(Step {
            rps,
            duration,
            events: std::mem::take(&mut pending),
        });
    }
    if !pending.is_empty() {
        anyhow::bail!(
            "the scenario ends with a side event; an event takes effect when the next load \
             step starts, so add one after it (e.g. 5rps:30s)"
        );
    }
    if steps.is_empty() {
        anyhow::bail!("the scenario is empty; give steps like {DEFAULT_SCENARIO}");
    }
    Ok(steps)
}

fn side(head: &str) -> Option<Side> {
    match head {
        "primary" => Some(Side::Primary),
        "burst" => Some(Side::Burst),
        _ => None,
    }
}

fn parse_event(text: &str) -> anyhow::Result<Event> {
    let (name, value) = match text.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v.trim())),
        None => (text, None),
    };
    let duration = |v: Option<&str>| -> anyhow::Result<Duration> {
        let v = v.with_context(|| format!("`{name}` needs a duration, e.g. {name}=200ms"))?;
        humantime::parse_duration(v).with_context(|| format!("`{name}={v}`: not a duration"))
    };
    Ok(match (name, value) {
        ("down", None) => Event::Down,
        ("up", None) => Event::Up,
        ("slow", v) => Event::Slow(duration(v)?),
        ("cold", v) => Event::Cold(duration(v)?),
        ("ready", Some(v)) => Event::Ready(v.parse().with_context(|| {
            format!("`ready={v}`: not a number of endpoints; use a whole number >= 0")
        })?),
        ("ready", None) => anyhow::bail!("`ready` needs a number, e.g. ready=1"),
        (other, _) => anyhow::bail!("unknown event `{other}`"),
    })
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
                    duration: Duration::from_secs(20),
                    events: vec![]
                },
                Step {
                    rps: 20.0,
                    duration: Duration::from_secs(60),
                    events: vec![]
                },
                Step {
                    rps: 0.5,
                    duration: Duration::from_millis(500),
                    events: vec![]
                },
            ]
        );
        for (bad, needle) in [
            ("5:20s", "lacks `rps`"),
            ("5rps", "expected RATErps:DURATION"),
            ("primary:sideways,5rps:1s", "unknown event `sideways`"),
            ("burst:slow,5rps:1s", "needs a duration"),
            ("burst:cold=soon,5rps:1s", "not a duration"),
            ("primary:ready=-1,5rps:1s", "whole number"),
            ("5rps:1s,burst:down", "ends with a side event"),
            ("edge:down,5rps:1s", "lacks `rps`"),
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

    #[test]
    fn side_events_attach_to_the_next_load_step() {
        let s = parse_scenario(
            "5rps:10s, primary:slow=200ms, burst:down, 20rps:30s, burst:up, primary:ready=1, burst:cold=20s, 5rps:10s",
            5000.0,
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert!(s[0].events.is_empty());
        assert_eq!(
            s[1].events,
            vec![
                SideEvent {
                    side: Side::Primary,
                    event: Event::Slow(Duration::from_millis(200))
                },
                SideEvent {
                    side: Side::Burst,
                    event: Event::Down
                },
            ]
        );
        assert_eq!(
            s[2].events,
            vec![
                SideEvent {
                    side: Side::Burst,
                    event: Event::Up
                },
                SideEvent {
                    side: Side::Primary,
                    event: Event::Ready(1)
                },
                SideEvent {
                    side: Side::Burst,
                    event: Event::Cold(Duration::from_secs(20))
                },
            ]
        );
    }
}
