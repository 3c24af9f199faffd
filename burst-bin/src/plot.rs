//! A small line chart: load and measured rate on the left axis (rps), burst weight on the
//! right axis (0–100 %), thresholds as dashed lines.
//!
//! The chart is drawn as SVG ([`Chart::to_svg`]), which needs no fonts or native libraries.
//! [`Chart::to_png`] rasterizes that same SVG with the pure-Rust `resvg`; its text is drawn
//! with a font found on the system (any sans-serif face, e.g. Debian's `fonts-dejavu-core`),
//! and a machine without any font face gets an error that says how to install one.
//!
//! ```ignore
//! let chart = Chart { title: "step".into(), ..Chart::default() };
//! std::fs::write("step.svg", chart.render(Format::Svg)?)?;
//! std::fs::write("step.png", chart.render(Format::Png)?)?;
//! ```

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use resvg::usvg::fontdb;
use resvg::{tiny_skia, usvg};

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

/// The image format of a plot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Scalable vector graphics: text, no fonts needed.
    Svg,
    /// A PNG raster image of the SVG, at its size; needs a system font for the text.
    Png,
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
        // Entries wrap onto a second (and third) row rather than run off the image.
        let mut lx = LEFT;
        let mut ly = H - 40.0;
        for series in &self.series {
            let width = 34.0 + 7.0 * series.label.chars().count() as f64;
            if lx > LEFT && lx + width > W - 10.0 {
                lx = LEFT;
                ly += 16.0;
            }
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 18.0,
                series.color,
                lx + 22.0,
                ly + 4.0,
                escape(&series.label)
            );
            lx += width;
        }
        s.push_str("</svg>\n");
        s
    }

    /// Renders the chart as a PNG image of the same size as [`Chart::to_svg`]'s document.
    ///
    /// Fails when the system has no font face to draw the text with (the error names the
    /// package to install).
    pub fn to_png(&self) -> anyhow::Result<Vec<u8>> {
        svg_to_png(&self.to_svg(), system_fonts())
    }

    /// Renders the chart in `format`: the file contents to write.
    pub fn render(&self, format: Format) -> anyhow::Result<Vec<u8>> {
        match format {
            Format::Svg => Ok(self.to_svg().into_bytes()),
            Format::Png => self.to_png(),
        }
    }
}

impl Format {
    /// The format a plot file's extension asks for (`.svg` or `.png`, any case).
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext.eq_ignore_ascii_case("svg") {
            Ok(Self::Svg)
        } else if ext.eq_ignore_ascii_case("png") {
            Ok(Self::Png)
        } else if ext.is_empty() {
            anyhow::bail!(
                "{}: the plot file needs an extension that names its format, .svg or .png",
                path.display()
            )
        } else {
            anyhow::bail!(
                "{}: cannot write a .{ext} plot; the plot file must end in .svg or .png",
                path.display()
            )
        }
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Png => "png",
        }
    }
}

/// Families tried, in order, for the SVG's `sans-serif`; the first one installed is used.
const SANS_FAMILIES: [&str; 6] = [
    "DejaVu Sans",
    "Liberation Sans",
    "Noto Sans",
    "Arial",
    "Helvetica",
    "FreeSans",
];

/// The system's fonts, loaded once per process (a `--compare` run writes several plots),
/// with `sans-serif` and `serif` mapped to an installed family.
fn system_fonts() -> Arc<fontdb::Database> {
    static FONTS: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = fontdb::Database::new();
            db.load_system_fonts();
            if let Some(family) = sans_family(&db) {
                tracing::debug!(family = %family, faces = db.len(), "font for PNG plot text");
                db.set_sans_serif_family(family.clone());
                db.set_serif_family(family);
            }
            Arc::new(db)
        })
        .clone()
}

/// The family to draw `sans-serif` (and the `serif` fallback) with: a known sans-serif
/// family if installed, else any family named "Sans", else the first face's family.
fn sans_family(db: &fontdb::Database) -> Option<String> {
    let families = || db.faces().flat_map(|f| f.families.iter().map(|(n, _)| n));
    SANS_FAMILIES
        .iter()
        .find(|want| families().any(|n| n == *want))
        .map(|f| (*f).to_string())
        .or_else(|| {
            families()
                .find(|n| n.contains("Sans") && !n.contains("Mono"))
                .cloned()
        })
        .or_else(|| families().next().cloned())
}

/// Rasterizes an SVG document at its own size, drawing text with `fonts`.
fn svg_to_png(svg: &str, fonts: Arc<fontdb::Database>) -> anyhow::Result<Vec<u8>> {
    if fonts.is_empty() {
        anyhow::bail!(
            "no font face found on this system (searched the fontconfig font directories, \
             e.g. /usr/share/fonts), and a PNG plot needs one to draw its text; install one, \
             e.g. `apt-get install -y fonts-dejavu-core`, or write the plot as .svg"
        );
    }
    let options = usvg::Options {
        fontdb: fonts,
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).context("cannot parse the plot's SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).with_context(|| {
        format!(
            "cannot allocate a {}x{} image for the plot",
            size.width(),
            size.height()
        )
    })?;
    resvg::render(
        &tree,
        tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().context("cannot encode the plot as PNG")
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

    const RED: [u8; 3] = [0xd6, 0x27, 0x28];

    /// A flat red weight line at y = 190.5, the middle of pixel row 190.
    fn flat_chart(title: &str) -> Chart {
        Chart {
            title: title.into(),
            series: vec![Series {
                label: "burst %".into(),
                color: "#d62728",
                axis: Axis::Weight,
                step: true,
                points: vec![(0.0, Some(149.5 / 3.0)), (100.0, Some(149.5 / 3.0))],
            }],
            thresholds: vec![],
        }
    }

    fn svg_size(svg: &str) -> (u32, u32) {
        let attr = |name: &str| -> u32 {
            let start = svg.find(&format!(" {name}=\"")).expect("attribute") + name.len() + 3;
            let len = svg[start..].find('"').expect("closing quote");
            svg[start..start + len].parse().expect("integer size")
        };
        (attr("width"), attr("height"))
    }

    fn rgba(p: &tiny_skia::Pixmap, x: u32, y: u32) -> [u8; 4] {
        let c = p.pixel(x, y).expect("inside the image");
        [c.red(), c.green(), c.blue(), c.alpha()]
    }

    /// Pixels with every channel below 100 (text is black, nothing else there is dark).
    fn dark_pixels(
        p: &tiny_skia::Pixmap,
        xs: std::ops::Range<u32>,
        ys: std::ops::Range<u32>,
    ) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| rgba(p, x, y)[..3].iter().all(|c| *c < 100))
            .count()
    }

    #[test]
    fn png_is_the_svg_rasterized_with_lines_background_and_text() {
        let chart = flat_chart("builtin:step");
        let svg = chart.to_svg();
        assert!(svg.contains("M60.0,190.5"), "{svg}");
        let png = chart.to_png().expect("PNG renders");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let image = tiny_skia::Pixmap::decode_png(&png).expect("PNG decodes");
        assert_eq!((image.width(), image.height()), svg_size(&svg));
        for x in (100..=880).step_by(20) {
            let [r, g, b, a] = rgba(&image, x, 190);
            let off = [r, g, b]
                .iter()
                .zip(RED)
                .map(|(got, want)| got.abs_diff(want))
                .max();
            assert!(off <= Some(3) && a == 255, "({x}, 190) is {r},{g},{b},{a}");
        }
        for (x, y) in [(5, 5), (500, 250), (500, 120), (955, 415)] {
            assert_eq!(rgba(&image, x, y), [255; 4], "background at ({x}, {y})");
        }
        // The title is centred at the top, above the plot area (y < 40).
        let title = dark_pixels(&image, 380..580, 4..30);
        assert!(title > 30, "only {title} dark pixels where the title is");
        // Tick labels under the x axis: "0s" starts at x = 60.
        assert!(dark_pixels(&image, 50..75, 345..362) > 5, "no x tick label");
    }

    #[test]
    fn png_without_a_title_has_nothing_dark_in_the_title_area() {
        let png = flat_chart("").to_png().expect("PNG renders");
        let image = tiny_skia::Pixmap::decode_png(&png).expect("PNG decodes");
        assert_eq!(dark_pixels(&image, 380..580, 4..30), 0);
    }

    #[test]
    fn png_without_fonts_says_which_package_to_install() {
        let svg = flat_chart("t").to_svg();
        let err = svg_to_png(&svg, Arc::new(fontdb::Database::new()))
            .expect_err("no fonts, no PNG")
            .to_string();
        assert!(err.contains("no font face found"), "{err}");
        assert!(
            err.contains("apt-get install -y fonts-dejavu-core"),
            "{err}"
        );
    }

    #[test]
    fn system_fonts_give_sans_serif_a_real_family() {
        let fonts = system_fonts();
        let family = fonts.family_name(&fontdb::Family::SansSerif);
        let installed = fonts
            .faces()
            .any(|f| f.families.iter().any(|(n, _)| n == family));
        assert!(
            installed,
            "sans-serif maps to {family}, which is not installed"
        );
    }

    #[test]
    fn format_comes_from_the_extension_in_any_case() {
        assert_eq!(
            Format::from_path(Path::new("a/b.svg")).ok(),
            Some(Format::Svg)
        );
        assert_eq!(
            Format::from_path(Path::new("b.SVG")).ok(),
            Some(Format::Svg)
        );
        assert_eq!(
            Format::from_path(Path::new("c.Png")).ok(),
            Some(Format::Png)
        );
        let jpg = Format::from_path(Path::new("d.jpg"))
            .expect_err("jpg")
            .to_string();
        assert!(
            jpg.contains(".jpg") && jpg.contains(".svg or .png"),
            "{jpg}"
        );
        let none = Format::from_path(Path::new("plot"))
            .expect_err("none")
            .to_string();
        assert!(none.contains(".svg or .png"), "{none}");
        assert_eq!(Format::Png.extension(), "png");
    }
}
