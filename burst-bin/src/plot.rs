//! A small SVG line chart: load and measured rate on the left axis (rps), burst weight on
//! the right axis (0–100 %), thresholds as dashed lines. No fonts or native libraries are
//! needed, so plots render the same everywhere.

use std::fmt::Write as _;

/// Which y axis a series uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Requests per second.
    Rps,
    /// Burst weight in percent.
    Weight,
}

/// One line of the chart. `None` values leave a gap (no data).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// CSS colour.
    pub color: &'static str,
    /// Axis.
    pub axis: Axis,
    /// Whether to draw as a step line (weights) rather than straight segments.
    pub step: bool,
    /// `(t, value)` points.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// Lines.
    pub series: Vec<Series>,
    /// Horizontal reference lines on the rps axis: `(label, value)`.
    pub thresholds: Vec<(String, f64)>,
}

const W: f64 = 960.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 60.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 80.0;

impl Chart {
    /// Renders the chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let t_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0_f64, f64::max);
        let rps_max = self
            .series
            .iter()
            .filter(|s| s.axis == Axis::Rps)
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .chain(self.thresholds.iter().map(|t| t.1))
            .fold(1.0_f64, f64::max)
            * 1.1;
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let x = |t: f64| LEFT + t / t_max * pw;
        let y = |v: f64, axis: Axis| {
            let top = match axis {
                Axis::Rps => rps_max,
                Axis::Weight => 100.0,
            };
            TOP + ph - (v / top).clamp(0.0, 1.0) * ph
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        // Axes and grid.
        for i in 0..=5 {
            let f = f64::from(i) / 5.0;
            let gy = TOP + ph - f * ph;
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#e5e5e5"/>"##,
                LEFT + pw
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}</text>"#,
                LEFT - 6.0,
                gy + 4.0,
                f * rps_max
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{:.0}%</text>"#,
                LEFT + pw + 6.0,
                gy + 4.0,
                f * 100.0
            );
            let gx = LEFT + f * pw;
            let _ = writeln!(
                s,
                r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{:.0}s</text>"#,
                TOP + ph + 16.0,
                f * t_max
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">requests/s</text>"#,
            TOP + ph / 2.0,
            TOP + ph / 2.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" transform="rotate(90 {:.1} {:.1})" text-anchor="middle">burst weight</text>"#,
            W - 12.0,
            TOP + ph / 2.0,
            W - 12.0,
            TOP + ph / 2.0
        );
        for (label, v) in &self.thresholds {
            let ty = y(*v, Axis::Rps);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#888" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#555">{}</text>"##,
                LEFT + pw,
                LEFT + 4.0,
                ty - 4.0,
                escape(label)
            );
        }
        for series in &self.series {
            for run in segments(&series.points) {
                let mut d = String::new();
                let mut prev: Option<(f64, f64)> = None;
                for (t, v) in run {
                    let (px, py) = (x(t), y(v, series.axis));
                    match prev {
                        None => {
                            let _ = write!(d, "M{px:.1},{py:.1}");
                        }
                        Some((_, last_y)) if series.step => {
                            let _ = write!(d, " L{px:.1},{last_y:.1} L{px:.1},{py:.1}");
                        }
                        Some(_) => {
                            let _ = write!(d, " L{px:.1},{py:.1}");
                        }
                    }
                    prev = Some((px, py));
                }
                let _ = writeln!(
                    s,
                    r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"/>"#,
                    series.color
                );
            }
        }
        // Legend.
        let mut lx = LEFT;
        let ly = H - 24.0;
        for series in &self.series {
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 18.0,
                series.color,
                lx + 22.0,
                ly + 4.0,
                escape(&series.label)
            );
            lx += 34.0 + 7.0 * series.label.chars().count() as f64;
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Splits points into runs without gaps.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (t, v) in points {
        match v {
            Some(v) => cur.push((*t, *v)),
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines_and_text_is_escaped() {
        let c = Chart {
            title: "a <b> & c".into(),
            series: vec![Series {
                label: "observed".into(),
                color: "red",
                axis: Axis::Rps,
                step: false,
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(3.0)),
                    (3.0, Some(2.0)),
                ],
            }],
            thresholds: vec![("high 15".into(), 15.0)],
        };
        let svg = c.to_svg();
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert_eq!(svg.matches("<path ").count(), 2, "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
