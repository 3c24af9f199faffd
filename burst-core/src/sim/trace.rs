//! Load traces: CSV files and built-in shapes.

use super::BurstSide;
use crate::{Error, Millis, Ratio, Signals};

/// True load over time: piecewise constant between points.
///
/// Point `i` holds from its `t` until the next point's `t`; the trace ends at the last
/// point's `t`. `up = false` marks a metric outage (scrapes fail) while the load goes on.
/// Each point may also carry measured [`Signals`] (the CSV columns `p99_ms`,
/// `error_ratio`, `primary_ready`, `burst_ready`, `burst_error_ratio`; an empty cell is no
/// data), which hold the same way, and the burst side's serving capacity (the CSV column
/// `burst_capacity`, in rps), which overrides the simulator's modelled burst side where
/// given.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    name: String,
    points: Vec<TracePoint>,
    /// One per point ([`Signals::NONE`] where the trace gives none).
    signals: Vec<Signals>,
    /// Requests served from 0 to each point's `t`, so `total_until` is a binary search.
    cumulative: Vec<f64>,
    /// The burst side's serving capacity in rps, one per point (`None`: no data).
    burst_capacity: Vec<Option<f64>>,
    /// The burst side this trace is meant to run against (built-in `cold-burst`), if any.
    burst_side: Option<BurstSide>,
}

/// One point of a [`Trace`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// Seconds since the start.
    pub t: f64,
    /// True requests per second from `t` on.
    pub rps: f64,
    /// Whether the metric pipeline works from `t` on.
    pub up: bool,
}

impl Trace {
    /// Names accepted by [`Trace::builtin`] (as `builtin:NAME` on the command line).
    pub const BUILTIN_NAMES: &[&str] = &[
        "step",
        "ramp",
        "sine",
        "flash",
        "noisy",
        "outage",
        "diurnal",
        "cold-burst",
        "endpoints-lost",
        "burst-down",
        "square",
    ];

    /// The optional signal columns of a trace CSV, in their positional order after
    /// `t,rps,up`.
    pub const SIGNAL_COLUMNS: [&'static str; 5] = [
        "p99_ms",
        "error_ratio",
        "primary_ready",
        "burst_ready",
        "burst_error_ratio",
    ];

    /// The optional CSV column of the burst side's serving capacity in rps, positionally
    /// after the [signal columns](Self::SIGNAL_COLUMNS).
    pub const BURST_CAPACITY_COLUMN: &'static str = "burst_capacity";

    /// A trace from points; times must start at 0, increase strictly, and rates be valid.
    pub fn new(name: impl Into<String>, points: Vec<TracePoint>) -> Result<Trace, Error> {
        let err = |line: usize, message: String| Error::Trace { line, message };
        if points.len() < 2 {
            return Err(err(
                0,
                "a trace needs at least two points (start and end)".into(),
            ));
        }
        let mut prev = f64::NEG_INFINITY;
        for (i, p) in points.iter().enumerate() {
            if !p.t.is_finite() || p.t < 0.0 || p.t <= prev {
                return Err(err(
                    i + 1,
                    format!(
                        "time {} must be finite, >= 0 and after the previous point",
                        p.t
                    ),
                ));
            }
            if !p.rps.is_finite() || p.rps < 0.0 {
                return Err(err(
                    i + 1,
                    format!("rps {} must be a finite number >= 0", p.rps),
                ));
            }
            prev = p.t;
        }
        let mut cumulative = Vec::with_capacity(points.len());
        let mut total = 0.0;
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                let a = points[i - 1];
                total += a.rps * (p.t - a.t);
            }
            cumulative.push(total);
        }
        let signals = vec![Signals::NONE; points.len()];
        let burst_capacity = vec![None; points.len()];
        Ok(Trace {
            name: name.into(),
            points,
            signals,
            cumulative,
            burst_capacity,
            burst_side: None,
        })
    }

    /// The same trace with measured signals, one per point.
    pub fn with_signals(mut self, signals: Vec<Signals>) -> Result<Trace, Error> {
        self.one_per_point(signals.len(), "signal rows")?;
        self.signals = signals;
        Ok(self)
    }

    /// The same trace with the burst side's serving capacity in rps, one per point
    /// (`None`: no data for that stretch); each must be a finite number >= 0.
    pub fn with_burst_capacity(mut self, capacity: Vec<Option<f64>>) -> Result<Trace, Error> {
        self.one_per_point(capacity.len(), "burst capacities")?;
        if let Some((i, v)) = capacity
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.filter(|v| !valid_capacity(*v)).map(|v| (i, v)))
        {
            return Err(Error::Trace {
                line: i + 1,
                message: burst_capacity_message(&v.to_string()),
            });
        }
        self.burst_capacity = capacity;
        Ok(self)
    }

    /// Refuses `given` values of `what` for other than one per point.
    fn one_per_point(&self, given: usize, what: &str) -> Result<(), Error> {
        if given == self.points.len() {
            return Ok(());
        }
        Err(Error::Trace {
            line: 0,
            message: format!(
                "{given} {what} for {} points; give one per point",
                self.points.len()
            ),
        })
    }

    /// Whether any point gives the burst side's capacity.
    pub fn has_burst_capacity(&self) -> bool {
        self.burst_capacity.iter().any(Option::is_some)
    }

    /// The burst side's serving capacity in effect at `t` (that of the last point at or
    /// before it; `None`: no data).
    pub fn burst_capacity_at(&self, t: f64) -> Option<f64> {
        let i = self.points.partition_point(|p| p.t <= t);
        self.burst_capacity
            .get(i.saturating_sub(1))
            .copied()
            .flatten()
    }

    /// The same trace meant to run against `burst` (the simulator uses it unless told
    /// otherwise).
    pub fn with_burst_side(mut self, burst: BurstSide) -> Trace {
        self.burst_side = Some(burst);
        self
    }

    /// The burst side this trace is meant to run against, if it names one (the CSV form
    /// carries none).
    pub fn burst_side(&self) -> Option<BurstSide> {
        self.burst_side
    }

    /// Whether any point carries a measured signal.
    pub fn has_signals(&self) -> bool {
        self.signals.iter().any(|s| *s != Signals::NONE)
    }

    /// The signals in effect at `t` (those of the last point at or before it).
    pub fn signals_at(&self, t: f64) -> Signals {
        let i = self.points.partition_point(|p| p.t <= t);
        self.signals
            .get(i.saturating_sub(1))
            .copied()
            .unwrap_or(Signals::NONE)
    }

    /// Parses CSV
    /// `t,rps[,up[,p99_ms,error_ratio,primary_ready,burst_ready,burst_error_ratio[,burst_capacity]]]`.
    ///
    /// The header line is optional; with one, columns are found by name (`t` and `rps`
    /// first, then any of `up`, the [signal columns](Self::SIGNAL_COLUMNS) and
    /// [`burst_capacity`](Self::BURST_CAPACITY_COLUMN) in any order); without one, they are
    /// positional. `up` is 1/0 or true/false (default 1). A signal or `burst_capacity` cell
    /// left empty is "no data" for that stretch, never 0.
    pub fn from_csv(name: impl Into<String>, text: &str) -> Result<Trace, Error> {
        const ALL: [&str; 9] = [
            "t",
            "rps",
            "up",
            "p99_ms",
            "error_ratio",
            "primary_ready",
            "burst_ready",
            "burst_error_ratio",
            Trace::BURST_CAPACITY_COLUMN,
        ];
        let mut points = Vec::new();
        let mut signals = Vec::new();
        let mut burst_capacity = Vec::new();
        // Column index of each of ALL, by position unless a header says otherwise.
        let mut layout: Vec<&str> = ALL.to_vec();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let bad = |message: String| Error::Trace {
                line: i + 1,
                message,
            };
            if i == 0 && cols.first().is_some_and(|c| c.parse::<f64>().is_err()) {
                if cols.first() != Some(&"t") || cols.get(1) != Some(&"rps") {
                    return Err(bad(format!(
                        "header `{line}` must start with `t,rps`, then any of up, {}, {}",
                        Self::SIGNAL_COLUMNS.join(", "),
                        Self::BURST_CAPACITY_COLUMN
                    )));
                }
                for (j, c) in cols.iter().enumerate() {
                    if !ALL.contains(c) {
                        return Err(bad(format!(
                            "unknown column `{c}`; the columns are {}",
                            ALL.join(", ")
                        )));
                    }
                    if cols[..j].contains(c) {
                        return Err(bad(format!("column `{c}` appears twice")));
                    }
                }
                layout = cols.clone();
                continue;
            }
            if cols.len() < 2 || cols.len() > layout.len() {
                return Err(bad(format!(
                    "`{line}` has {} columns; expected {}",
                    cols.len(),
                    layout.join(",")
                )));
            }
            let cell = |name: &str| -> Option<&str> {
                layout
                    .iter()
                    .position(|c| *c == name)
                    .and_then(|j| cols.get(j).copied())
                    .filter(|v| !v.is_empty())
            };
            let num = |s: &str, what: &str| {
                s.parse::<f64>()
                    .map_err(|_| bad(format!("{what} `{s}` is not a number")))
            };
            let up = match cell("up") {
                None | Some("1") | Some("true") => true,
                Some("0") | Some("false") => false,
                Some(other) => return Err(bad(format!("up `{other}` must be 1/0 or true/false"))),
            };
            let (Some(t), Some(rps)) = (cell("t"), cell("rps")) else {
                return Err(bad("`t` and `rps` must not be empty".into()));
            };
            let count = |what: &'static str| -> Result<Option<u32>, Error> {
                cell(what)
                    .map(|v| {
                        v.parse::<u32>().map_err(|_| {
                            bad(format!(
                                "{what} `{v}` is not a whole number of endpoints >= 0"
                            ))
                        })
                    })
                    .transpose()
            };
            let ratio = |what: &'static str| -> Result<Option<Ratio>, Error> {
                cell(what)
                    .map(|v| {
                        num(v, what)
                            .and_then(|x| Ratio::try_new(what, x).map_err(|e| bad(e.to_string())))
                    })
                    .transpose()
            };
            let p99 = cell("p99_ms")
                .map(|v| {
                    num(v, "p99_ms")
                        .and_then(|x| Millis::try_new("p99_ms", x).map_err(|e| bad(e.to_string())))
                })
                .transpose()?;
            let capacity = cell(Self::BURST_CAPACITY_COLUMN)
                .map(|v| match v.parse::<f64>() {
                    Ok(x) if valid_capacity(x) => Ok(x),
                    _ => Err(bad(burst_capacity_message(v))),
                })
                .transpose()?;
            signals.push(Signals {
                primary_p99: p99,
                primary_error_ratio: ratio("error_ratio")?,
                primary_ready: count("primary_ready")?,
                burst_ready: count("burst_ready")?,
                burst_error_ratio: ratio("burst_error_ratio")?,
            });
            points.push(TracePoint {
                t: num(t, "t")?,
                rps: num(rps, "rps")?,
                up,
            });
            burst_capacity.push(capacity);
        }
        Trace::new(name, points)?
            .with_signals(signals)?
            .with_burst_capacity(burst_capacity)
    }

    /// A built-in trace; `seed` drives the noise of `noisy` and `diurnal`.
    pub fn builtin(name: &str, seed: u64) -> Result<Trace, Error> {
        let mut rng = SplitMix64(seed);
        let pts: Vec<TracePoint> = match name {
            // The seed scenario: 5 → 20 → 5 rps.
            "step" => steps(&[(0.0, 5.0), (60.0, 20.0), (180.0, 5.0)], 300.0),
            // 0 → 30 rps over 5 min, back to 0 over 5 min.
            "ramp" => sample(600.0, |t| {
                if t < 300.0 {
                    t / 10.0
                } else {
                    (600.0 - t) / 10.0
                }
            }),
            // 15 ± 4 rps with a one-minute period: right around the threshold.
            "sine" => sample(600.0, |t| {
                15.0 + 4.0 * (2.0 * std::f64::consts::PI * t / 60.0).sin()
            }),
            // A sudden crowd at 60 s (5 → 60 rps) decaying with a 60 s time constant.
            "flash" => sample(420.0, |t| {
                if t < 60.0 {
                    5.0
                } else {
                    5.0 + 55.0 * (-(t - 60.0) / 60.0).exp()
                }
            }),
            // 15 rps ± 20 % uniform noise every second.
            "noisy" => sample(600.0, |_| 15.0 * (0.8 + 0.4 * rng.next_f64())),
            // The step trace with the metric pipeline down from 100 s to 160 s (mid-burst).
            "outage" => {
                let mut p = steps(
                    &[
                        (0.0, 5.0),
                        (60.0, 20.0),
                        (100.0, 20.0),
                        (160.0, 20.0),
                        (180.0, 5.0),
                    ],
                    300.0,
                );
                for pt in &mut p {
                    pt.up = pt.t != 100.0;
                }
                p
            }
            // A day compressed into 24 minutes: 3 rps at night, 25 rps at noon, ±10 % noise.
            "diurnal" => sample(1440.0, |t| {
                let day = (1.0 - (2.0 * std::f64::consts::PI * t / 1440.0).cos()) / 2.0;
                (3.0 + 22.0 * day) * (0.9 + 0.2 * rng.next_f64())
            }),
            // Load that cannot sit still: 5 and 25 rps (1/3 and 5/3 of the 15 rps capacity
            // `burst simulate --compare` assumes) alternating every second for 10 minutes.
            "square" => sample(600.0, |t| {
                if (t as u64).is_multiple_of(2) {
                    5.0
                } else {
                    25.0
                }
            }),
            "cold-burst" => return cold_burst(),
            "endpoints-lost" => return endpoints_lost(),
            "burst-down" => return burst_down(),
            other => return Err(Error::UnknownTrace(other.to_string())),
        };
        Trace::new(format!("builtin:{name}"), pts)
    }

    /// A trace from values measured every `step` seconds from 0 (e.g. a Prometheus range
    /// query), where `None` is a step without a measurement.
    ///
    /// A gap becomes a metric outage (`up = false`), never a load of 0: the simulator then
    /// has no data for it, as the controller would. The load during a gap is unknown; the
    /// point holds the last measured rate (the first one for leading gaps), so the counter
    /// the simulator scrapes keeps its pace across the gap.
    pub fn from_steps(
        name: impl Into<String>,
        step: f64,
        values: &[Option<f64>],
    ) -> Result<Trace, Error> {
        if !(step.is_finite() && step > 0.0) {
            return Err(Error::Trace {
                line: 0,
                message: format!("step {step} must be a finite number of seconds > 0"),
            });
        }
        let Some(mut held) = values.iter().flatten().copied().next() else {
            return Err(Error::Trace {
                line: 0,
                message: "every step is a gap: there is no measured value to replay".into(),
            });
        };
        let points = values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let t = i as f64 * step;
                match value {
                    Some(rps) => {
                        held = *rps;
                        TracePoint {
                            t,
                            rps: *rps,
                            up: true,
                        }
                    }
                    None => TracePoint {
                        t,
                        rps: held,
                        up: false,
                    },
                }
            })
            .collect();
        Trace::new(name, points)
    }

    /// The trace as CSV `t,rps,up` (plus the signal columns when any point has a signal,
    /// and `burst_capacity` when any point has one) with a header line, which
    /// [`Trace::from_csv`] reads back to the same points, signals and burst capacities
    /// (numbers are written in their shortest exact form). A built-in's modelled burst side
    /// ([`Trace::burst_side`]) is not a column: see [`Trace::with_burst_capacity`] to record
    /// a run's.
    pub fn to_csv(&self) -> String {
        let with_signals = self.has_signals();
        let with_capacity = self.has_burst_capacity();
        let mut out = String::with_capacity(16 * (self.points.len() + 1));
        out.push_str("t,rps,up");
        if with_signals {
            for c in Self::SIGNAL_COLUMNS {
                out.push(',');
                out.push_str(c);
            }
        }
        if with_capacity {
            out.push(',');
            out.push_str(Self::BURST_CAPACITY_COLUMN);
        }
        out.push('\n');
        for ((p, s), capacity) in self
            .points
            .iter()
            .zip(&self.signals)
            .zip(&self.burst_capacity)
        {
            out.push_str(&format!("{},{},{}", p.t, p.rps, u8::from(p.up)));
            if with_signals {
                let cell = |v: Option<String>| v.unwrap_or_default();
                out.push_str(&format!(
                    ",{},{},{},{},{}",
                    cell(s.primary_p99.map(|v| v.get().to_string())),
                    cell(s.primary_error_ratio.map(|v| v.get().to_string())),
                    cell(s.primary_ready.map(|v| v.to_string())),
                    cell(s.burst_ready.map(|v| v.to_string())),
                    cell(s.burst_error_ratio.map(|v| v.get().to_string())),
                ));
            }
            if with_capacity {
                out.push(',');
                if let Some(c) = capacity {
                    out.push_str(&c.to_string());
                }
            }
            out.push('\n');
        }
        out
    }

    /// The trace's name (file name or `builtin:NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The points.
    pub fn points(&self) -> &[TracePoint] {
        &self.points
    }

    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.t)
    }

    /// The point in effect at `t` (the last one at or before it).
    pub fn at(&self, t: f64) -> TracePoint {
        let i = self.points.partition_point(|p| p.t <= t);
        self.points[i.saturating_sub(1)]
    }

    /// Requests served from 0 to `t` (the integral of the load).
    pub fn total_until(&self, t: f64) -> f64 {
        let t = t.min(self.duration());
        let i = self.points.partition_point(|p| p.t <= t);
        match i.checked_sub(1) {
            None => 0.0,
            Some(j) => self.cumulative[j] + self.points[j].rps * (t - self.points[j].t),
        }
    }
}

/// Whether `v` is a burst-side capacity: a finite number of rps >= 0.
fn valid_capacity(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// The error for a `burst_capacity` cell that is not a capacity.
fn burst_capacity_message(cell: &str) -> String {
    format!(
        "{} `{cell}` is not a capacity; give the burst side's requests/s as a number >= 0, \
         or leave the cell empty for no data",
        Trace::BURST_CAPACITY_COLUMN
    )
}

/// The primary's capacity the `cold-burst` trace is meant for, in rps.
pub const COLD_BURST_PRIMARY_CAPACITY: f64 = 20.0;

/// `cold-burst`: a morning rise against a cold burst side. 5 rps for a minute, rising
/// steadily to 40 rps over 5 minutes, 40 rps for 3 minutes, back to 5 rps over a minute,
/// 5 rps for 2 minutes (12 minutes). The primary serves
/// [`COLD_BURST_PRIMARY_CAPACITY`] (20 rps); the burst side serves 5 rps until it scales,
/// which takes 60 s, and a pre-warm grows it to 40 rps.
fn cold_burst() -> Result<Trace, Error> {
    let pts = sample(720.0, |t| match t {
        t if t < 60.0 => 5.0,
        t if t < 360.0 => 5.0 + 35.0 * (t - 60.0) / 300.0,
        t if t < 540.0 => 40.0,
        t if t < 600.0 => 40.0 - 35.0 * (t - 540.0) / 60.0,
        _ => 5.0,
    });
    Ok(
        Trace::new("builtin:cold-burst", pts)?.with_burst_side(BurstSide {
            initial: 5.0,
            start: std::time::Duration::from_secs(60),
            prewarm: 40.0,
        }),
    )
}

/// `endpoints-lost`: 25 rps throughout against a primary of 4 ready endpoints (10 rps each
/// serve 40) that loses two at 60 s and a third at 120 s, and gets them back at 240 s; the
/// burst side has 4 ready endpoints all along.
fn endpoints_lost() -> Result<Trace, Error> {
    let ready = |primary: u32| Signals {
        primary_ready: Some(primary),
        burst_ready: Some(4),
        ..Signals::NONE
    };
    let stretches = [
        (0.0, ready(4)),
        (60.0, ready(2)),
        (120.0, ready(1)),
        (240.0, ready(4)),
        (360.0, ready(4)),
    ];
    let points = stretches
        .iter()
        .map(|(t, _)| TracePoint {
            t: *t,
            rps: 25.0,
            up: true,
        })
        .collect();
    Trace::new("builtin:endpoints-lost", points)?
        .with_signals(stretches.iter().map(|s| s.1).collect())
}

/// `burst-down`: the step trace (5 → 20 → 5 rps) against a primary of 1 ready endpoint
/// (at 10 rps per endpoint, 20 rps is twice what it serves) while the burst side has 3
/// ready endpoints, except from 90 s to 150 s, when it has none and what reaches it fails.
fn burst_down() -> Result<Trace, Error> {
    let side = |burst: u32, errors: f64| Signals {
        primary_ready: Some(1),
        burst_ready: Some(burst),
        burst_error_ratio: Ratio::try_new("burst_error_ratio", errors).ok(),
        ..Signals::NONE
    };
    let stretches = [
        (0.0, 5.0, side(3, 0.0)),
        (60.0, 20.0, side(3, 0.0)),
        (90.0, 20.0, side(0, 1.0)),
        (150.0, 20.0, side(3, 0.0)),
        (180.0, 5.0, side(3, 0.0)),
        (300.0, 5.0, side(3, 0.0)),
    ];
    let points = stretches
        .iter()
        .map(|(t, rps, _)| TracePoint {
            t: *t,
            rps: *rps,
            up: true,
        })
        .collect();
    Trace::new("builtin:burst-down", points)?.with_signals(stretches.iter().map(|s| s.2).collect())
}

/// Piecewise-constant segments `(start, rps)` ending at `end`.
fn steps(segments: &[(f64, f64)], end: f64) -> Vec<TracePoint> {
    let mut p: Vec<TracePoint> = segments
        .iter()
        .map(|&(t, rps)| TracePoint { t, rps, up: true })
        .collect();
    let last = segments.last().map_or(0.0, |s| s.1);
    p.push(TracePoint {
        t: end,
        rps: last,
        up: true,
    });
    p
}

/// One point per second of `f(t)`, from 0 to `end`.
fn sample(end: f64, mut f: impl FnMut(f64) -> f64) -> Vec<TracePoint> {
    // `end` is a whole number of seconds for every built-in.
    let n = end as u32;
    (0..=n)
        .map(|i| {
            let t = f64::from(i);
            TracePoint {
                t,
                rps: f(t).max(0.0),
                up: true,
            }
        })
        .collect()
}

/// A tiny deterministic PRNG (SplitMix64), so built-in noise is reproducible from a seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        // 53 random bits → exactly representable fractions.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_signal_columns_by_name_and_position_with_empty_cells_as_no_data() {
        let t = Trace::from_csv(
            "x",
            "t,rps,burst_ready,p99_ms\n0,5,3,40\n10,20,,300\n20,5,0,\n",
        )
        .unwrap();
        assert_eq!(t.signals_at(0.0).burst_ready, Some(3));
        assert_eq!(t.signals_at(15.0).burst_ready, None);
        assert_eq!(t.signals_at(15.0).primary_p99.map(Millis::get), Some(300.0));
        assert_eq!(t.signals_at(25.0).burst_ready, Some(0));
        assert_eq!(t.signals_at(25.0).primary_p99, None);
        assert!(t.at(15.0).up);
        let positional = Trace::from_csv("p", "0,5,1,40,0.01,4,2,0.5\n10,5,0,,,,,\n").unwrap();
        let s = positional.signals_at(0.0);
        assert_eq!(s.primary_error_ratio.map(Ratio::get), Some(0.01));
        assert_eq!((s.primary_ready, s.burst_ready), (Some(4), Some(2)));
        assert_eq!(s.burst_error_ratio.map(Ratio::get), Some(0.5));
        assert_eq!(positional.signals_at(10.0), Signals::NONE);
        assert!(!positional.at(10.0).up);
        // Round trip with the signal columns.
        assert_eq!(Trace::from_csv("x", &t.to_csv()).unwrap(), t);
        for (csv, needle) in [
            ("t,rps,latency\n0,1\n1,1\n", "unknown column `latency`"),
            ("t,rps,up,up\n0,1\n1,1\n", "twice"),
            ("t,rps,error_ratio\n0,1,1.5\n1,1,0\n", "error_ratio"),
            ("t,rps,primary_ready\n0,1,-1\n1,1,0\n", "primary_ready `-1`"),
            ("t,rps,p99_ms\n0,1,-3\n1,1,0\n", "p99_ms"),
        ] {
            let e = Trace::from_csv("x", csv).unwrap_err().to_string();
            assert!(e.contains(needle), "{csv:?} → {e}");
        }
    }

    #[test]
    fn csv_burst_capacity_column_by_name_and_position_with_empty_cells_as_no_data() {
        let t = Trace::from_csv("x", "t,burst_capacity,rps\n0,5,10\n60,,30\n120,40.5,30\n")
            .unwrap_err()
            .to_string();
        // `t,rps` come first, as for every other column.
        assert!(t.contains("must start with `t,rps`"), "{t}");
        let t =
            Trace::from_csv("x", "t,rps,burst_capacity\n0,10,5\n60,30,\n120,30,40.5\n").unwrap();
        assert!(t.has_burst_capacity());
        assert!(!t.has_signals());
        assert_eq!(t.burst_capacity_at(0.0), Some(5.0));
        assert_eq!(t.burst_capacity_at(59.9), Some(5.0));
        assert_eq!(t.burst_capacity_at(60.0), None);
        assert_eq!(t.burst_capacity_at(130.0), Some(40.5));
        // Positionally it is the ninth column, after the signal columns.
        let positional = Trace::from_csv("p", "0,5,1,,,,,,0\n10,5,1,,,,,,12\n").unwrap();
        assert_eq!(positional.burst_capacity_at(5.0), Some(0.0));
        assert_eq!(positional.burst_capacity_at(10.0), Some(12.0));
        assert!(!positional.has_signals());
        // Written back with its header, alone or with the signal columns.
        let csv = t.to_csv();
        assert_eq!(
            csv,
            "t,rps,up,burst_capacity\n0,10,1,5\n60,30,1,\n120,30,1,40.5\n"
        );
        assert_eq!(Trace::from_csv("x", &csv).unwrap(), t);
        let both =
            Trace::from_csv("b", "t,rps,burst_ready,burst_capacity\n0,5,2,10\n10,5,,\n").unwrap();
        assert_eq!(Trace::from_csv("b", &both.to_csv()).unwrap(), both);
        // A trace without the column writes none.
        let plain = Trace::builtin("step", 0).unwrap();
        assert!(!plain.has_burst_capacity());
        assert!(plain.to_csv().starts_with("t,rps,up\n"));
    }

    #[test]
    fn csv_burst_capacity_errors_name_line_column_and_value() {
        for (csv, needle) in [
            (
                "t,rps,burst_capacity\n0,1,5\n1,1,-3\n",
                "trace line 3: burst_capacity `-3` is not a capacity",
            ),
            (
                "t,rps,burst_capacity\n0,1,lots\n1,1,5\n",
                "trace line 2: burst_capacity `lots` is not a capacity",
            ),
            (
                "t,rps,burst_capacity\n# a comment\n0,1,NaN\n1,1,5\n",
                "trace line 3: burst_capacity `NaN`",
            ),
            ("t,rps,burst_capacity\n0,1,inf\n1,1,5\n", "`inf`"),
            ("0,1,1,,,,,,-1\n1,1\n", "trace line 1: burst_capacity `-1`"),
            ("t,rps,burst_capacity,burst_capacity\n0,1\n1,1\n", "twice"),
        ] {
            let e = Trace::from_csv("x", csv).unwrap_err().to_string();
            assert!(e.contains(needle), "{csv:?} → {e}");
            assert!(
                e.contains("leave the cell empty") || needle == "twice",
                "{e}"
            );
        }
        let two = Trace::builtin("step", 0).unwrap();
        let n = two.points().len();
        let e = two
            .clone()
            .with_burst_capacity(vec![None; n + 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("one per point"), "{e}");
        let mut bad = vec![None; n];
        bad[1] = Some(f64::NAN);
        let e = two.with_burst_capacity(bad).unwrap_err().to_string();
        assert!(e.contains("line 2: burst_capacity `NaN`"), "{e}");
    }

    #[test]
    fn signal_builtins_carry_endpoints() {
        let lost = Trace::builtin("endpoints-lost", 0).unwrap();
        assert_eq!(lost.signals_at(0.0).primary_ready, Some(4));
        assert_eq!(lost.signals_at(130.0).primary_ready, Some(1));
        let down = Trace::builtin("burst-down", 0).unwrap();
        assert_eq!(down.signals_at(100.0).burst_ready, Some(0));
        assert_eq!(down.signals_at(200.0).burst_ready, Some(3));
        assert_eq!(
            Trace::from_csv("x", &down.to_csv())
                .unwrap()
                .signals_at(100.0),
            down.signals_at(100.0)
        );
    }

    #[test]
    fn csv_with_header_and_outage() {
        let t = Trace::from_csv("x", "t,rps,up\n0,5,1\n10,20,0\n20,5\n").unwrap();
        assert_eq!(t.points().len(), 3);
        assert!(!t.at(15.0).up);
        assert_eq!(t.at(15.0).rps, 20.0);
        assert_eq!(t.at(0.0).rps, 5.0);
        assert_eq!(t.total_until(20.0), 5.0 * 10.0 + 20.0 * 10.0);
        assert_eq!(t.duration(), 20.0);
        assert_eq!(t.total_until(5.0), 25.0);
        assert_eq!(t.total_until(15.0), 150.0);
        assert_eq!(t.total_until(99.0), 250.0);
    }

    proptest::proptest! {
        /// The cumulative lookup equals integrating segment by segment.
        #[test]
        fn total_until_is_the_integral(
            rates in proptest::collection::vec(0.0f64..100.0, 2..40),
            at in 0.0f64..500.0,
        ) {
            let pts: Vec<TracePoint> = rates.iter().enumerate()
                .map(|(i, r)| TracePoint { t: i as f64 * 10.0, rps: *r, up: true })
                .collect();
            let tr = Trace::new("p", pts.clone()).unwrap();
            let mut want = 0.0;
            for w in pts.windows(2) {
                if at <= w[0].t { break; }
                want += w[0].rps * (at.min(w[1].t) - w[0].t);
            }
            proptest::prop_assert!((tr.total_until(at) - want).abs() < 1e-6);
        }
    }

    #[test]
    fn csv_errors_name_the_line() {
        let cases = [
            ("0,5\n0,6\n", "line 2"),
            ("0,5\n1,-3\n", "line 2"),
            ("t,load\n0,1\n", "header"),
            ("0,5\n1,x\n", "`x` is not a number"),
            ("0,5\n1,5,maybe\n", "up `maybe`"),
            ("0,5\n", "at least two points"),
        ];
        for (csv, want) in cases {
            let e = Trace::from_csv("x", csv).unwrap_err().to_string();
            assert!(e.contains(want), "{csv:?} → {e}");
        }
    }

    #[test]
    fn builtins_exist_and_are_deterministic() {
        for name in Trace::BUILTIN_NAMES {
            let a = Trace::builtin(name, 7).unwrap();
            assert_eq!(a, Trace::builtin(name, 7).unwrap());
            assert!(a.duration() >= 300.0, "{name}");
        }
        assert_ne!(
            Trace::builtin("noisy", 1).unwrap(),
            Trace::builtin("noisy", 2).unwrap()
        );
        let e = Trace::builtin("nope", 0).unwrap_err().to_string();
        assert!(e.contains("step, ramp"), "{e}");
    }

    #[test]
    fn square_alternates_every_second_around_capacity() {
        let t = Trace::builtin("square", 0).unwrap();
        assert_eq!(t.duration(), 600.0);
        assert_eq!(
            (t.at(0.5).rps, t.at(1.5).rps, t.at(598.0).rps),
            (5.0, 25.0, 5.0)
        );
        // Its mean is the 15 rps capacity: a window of whole periods sees no overload.
        assert_eq!(t.total_until(600.0) / 600.0, 15.0);
    }

    #[test]
    fn noisy_stays_within_twenty_percent() {
        let t = Trace::builtin("noisy", 42).unwrap();
        assert!(t.points().iter().all(|p| (12.0..=18.0).contains(&p.rps)));
    }

    #[test]
    fn steps_with_gaps_become_outages_not_zero_and_survive_csv() {
        let values = [None, Some(4.0), Some(6.5), None, None, Some(0.1), None];
        let trace = Trace::from_steps("replay", 0.5, &values).unwrap();
        let pts = trace.points();
        assert_eq!(pts.len(), 7);
        assert_eq!(trace.duration(), 3.0);
        // Leading gap: the first measured rate, no data.
        assert_eq!((pts[0].rps, pts[0].up), (4.0, false));
        assert_eq!((pts[2].rps, pts[2].up), (6.5, true));
        // A gap holds the last measured rate, as no data.
        assert_eq!((pts[3].rps, pts[3].up), (6.5, false));
        assert_eq!((pts[4].t, pts[4].up), (2.0, false));
        assert_eq!((pts[6].rps, pts[6].up), (0.1, false));
        assert!(pts.iter().all(|p| p.rps > 0.0));

        let back = Trace::from_csv("file", &trace.to_csv()).unwrap();
        assert_eq!(back.points(), trace.points());

        assert!(Trace::from_steps("x", 1.0, &[None, None]).is_err());
        assert!(Trace::from_steps("x", 0.0, &[Some(1.0), Some(1.0)]).is_err());
        assert!(Trace::from_steps("x", 1.0, &[Some(1.0)]).is_err());
    }

    proptest::proptest! {
        /// Points, outages and the burst side's capacity (any finite value >= 0, or no
        /// data) survive `to_csv` and `from_csv` exactly.
        #[test]
        fn csv_round_trip_is_exact(
            values in proptest::collection::vec(
                (
                    proptest::option::of(0.0f64..1e6),
                    proptest::option::of(proptest::prop_oneof![
                        proptest::strategy::Just(0.0f64),
                        0.0f64..1e9,
                        // Every positive finite, down to the subnormals.
                        proptest::num::f64::POSITIVE
                            | proptest::num::f64::NORMAL
                            | proptest::num::f64::SUBNORMAL,
                    ]),
                ),
                2..50,
            ),
            step in 0.001f64..100.0,
        ) {
            let rates: Vec<Option<f64>> = values.iter().map(|v| v.0).collect();
            proptest::prop_assume!(rates.iter().any(Option::is_some));
            let trace = Trace::from_steps("p", step, &rates).unwrap();
            let back = Trace::from_csv("p", &trace.to_csv()).unwrap();
            proptest::prop_assert_eq!(&back, &trace);
            let capacity: Vec<Option<f64>> = values.iter().map(|v| v.1).collect();
            let with = trace.with_burst_capacity(capacity.clone()).unwrap();
            let csv = with.to_csv();
            let back = Trace::from_csv("p", &csv).unwrap();
            proptest::prop_assert_eq!(&back, &with);
            proptest::prop_assert_eq!(
                csv.starts_with("t,rps,up,burst_capacity\n"),
                capacity.iter().any(Option::is_some)
            );
        }
    }
}
