//! Reading the Prometheus text exposition format (what `/metrics` endpoints serve).
//!
//! [`parse`] returns every sample with its labels, value and metric type, or the first
//! malformed line. Comment lines (`# TYPE`) are classified with the `prometheus-parse`
//! crate; sample lines are tokenised here, because `prometheus-parse` 0.2 splits label
//! sets at every comma and `=` (so `path="/a,b"` loses data), stops at the first `}` even
//! inside a quoted value, keeps escape sequences, silently drops lines it cannot read, and
//! leaves histogram and summary `_sum`/`_count` series untyped. This parser handles quoted
//! values with commas, braces, `\"`, `\\` and `\n`, reports bad lines by number, and gives
//! `_sum`/`_count`/`_bucket` the type of their family.

use std::collections::{BTreeMap, HashMap};

use prometheus_parse::{LineInfo, SampleType};

use crate::api::parse_go_float;

/// The type a `# TYPE` line declared for a sample's metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A histogram series (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// A summary series (quantiles, `_sum`, `_count`).
    Summary,
    /// No type declared.
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpositionSample {
    /// The metric name as written (e.g. `http_request_duration_seconds_count`).
    pub name: String,
    /// The type of its family.
    pub kind: MetricKind,
    /// Labels, with escape sequences resolved.
    pub labels: BTreeMap<String, String>,
    /// The value (NaN and infinities included, as written).
    pub value: f64,
    /// The optional timestamp, in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// A malformed line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a whole exposition body.
pub fn parse(text: &str) -> Result<Vec<ExpositionSample>, ParseError> {
    // The format requires a final line feed; without it the body may have been cut inside
    // the last value (`... 1234` read as `... 12`), which would look like a counter reset.
    if !text.trim().is_empty() && !text.ends_with('\n') {
        return Err(ParseError {
            line: text.lines().count(),
            message: "the body does not end with a line feed, so it may be cut short; the text format requires every line, the last included, to end with `\\n`".into(),
        });
    }
    let mut types: HashMap<String, MetricKind> = HashMap::new();
    let mut samples = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if let Some((family, kind)) = type_line(line) {
                types.insert(family, kind);
            }
            continue;
        }
        let parsed = sample_line(line).map_err(|message| ParseError {
            line: index + 1,
            message,
        })?;
        samples.push(ExpositionSample {
            kind: kind_of(&types, parsed.name),
            name: parsed.name.to_owned(),
            labels: parsed.labels,
            value: parsed.value,
            timestamp_ms: parsed.timestamp_ms,
        });
    }
    Ok(samples)
}

struct SampleLine<'a> {
    name: &'a str,
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn type_line(line: &str) -> Option<(String, MetricKind)> {
    let mut words = line[1..].split_whitespace();
    if words.next() != Some("TYPE") {
        return None;
    }
    match LineInfo::parse(line) {
        // For histograms prometheus-parse names the `_bucket` series and gives the family
        // as the alias.
        LineInfo::Type {
            metric_name,
            metric_alias,
            sample_type,
        } => Some((metric_alias.unwrap_or(metric_name), kind(sample_type))),
        // Its TYPE pattern only knows `\w` names: names with `:` (recording rules) land here.
        _ => {
            let name = words.next()?;
            let ty = words.next()?;
            Some((name.to_owned(), kind(SampleType::parse(ty))))
        }
    }
}

fn kind(t: SampleType) -> MetricKind {
    match t {
        SampleType::Counter => MetricKind::Counter,
        SampleType::Gauge => MetricKind::Gauge,
        SampleType::Histogram => MetricKind::Histogram,
        SampleType::Summary => MetricKind::Summary,
        SampleType::Untyped => MetricKind::Untyped,
    }
}

fn kind_of(types: &HashMap<String, MetricKind>, name: &str) -> MetricKind {
    if let Some(k) = types.get(name) {
        return *k;
    }
    let suffixed = [
        ("_bucket", &[MetricKind::Histogram][..]),
        ("_sum", &[MetricKind::Histogram, MetricKind::Summary][..]),
        ("_count", &[MetricKind::Histogram, MetricKind::Summary][..]),
        ("_total", &[MetricKind::Counter][..]),
    ];
    for (suffix, allowed) in suffixed {
        if let Some(family) = name.strip_suffix(suffix)
            && let Some(k) = types.get(family)
            && allowed.contains(k)
        {
            return *k;
        }
    }
    MetricKind::Untyped
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn sample_line(line: &str) -> Result<SampleLine<'_>, String> {
    let b = line.as_bytes();
    let mut i = 0;
    if !b.first().copied().is_some_and(is_name_start) {
        return Err(format!(
            "expected a metric name at the start of `{}`",
            excerpt(line)
        ));
    }
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let name = &line[..i];
    i = skip_blanks(b, i);
    let mut labels = BTreeMap::new();
    if b.get(i) == Some(&b'{') {
        i = label_set(line, i + 1, &mut labels)?;
        i = skip_blanks(b, i);
    }
    let value_start = i;
    while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
        i += 1;
    }
    let value_text = &line[value_start..i];
    if value_text.is_empty() {
        return Err(format!("`{name}` has no value"));
    }
    let value = parse_go_float(value_text).ok_or_else(|| {
        format!(
            "`{}` is not a number (value of `{name}`)",
            excerpt(value_text)
        )
    })?;
    i = skip_blanks(b, i);
    let mut timestamp_ms = None;
    // `#` starts an OpenMetrics exemplar, which carries nothing we use.
    if i < b.len() && b[i] != b'#' {
        let ts_start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
        let ts = &line[ts_start..i];
        timestamp_ms = Some(ts.parse::<i64>().map_err(|_| {
            format!(
                "`{}` is not a timestamp in milliseconds (after the value of `{name}`)",
                excerpt(ts)
            )
        })?);
        i = skip_blanks(b, i);
        if i < b.len() && b[i] != b'#' {
            return Err(format!(
                "unexpected `{}` after the timestamp of `{name}`",
                excerpt(&line[i..])
            ));
        }
    }
    Ok(SampleLine {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Parses `name="value",...}` starting after `{`; returns the index after `}`.
fn label_set(
    line: &str,
    mut i: usize,
    labels: &mut BTreeMap<String, String>,
) -> Result<usize, String> {
    let b = line.as_bytes();
    loop {
        i = skip_blanks(b, i);
        match b.get(i) {
            None => return Err("label set is not closed with `}`".into()),
            Some(b'}') => return Ok(i + 1),
            Some(_) => {}
        }
        let name_start = i;
        if !is_name_start(b[i]) || b[i] == b':' {
            return Err(format!(
                "expected a label name at `{}`",
                excerpt(&line[i..])
            ));
        }
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let label = &line[name_start..i];
        i = skip_blanks(b, i);
        if b.get(i) != Some(&b'=') {
            return Err(format!("expected `=` after label name `{label}`"));
        }
        i = skip_blanks(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err(format!(
                "the value of label `{label}` must be in double quotes"
            ));
        }
        i += 1;
        let mut value = String::new();
        let mut chunk_start = i;
        loop {
            match b.get(i) {
                None => {
                    return Err(format!(
                        "the value of label `{label}` is not closed with `\"`"
                    ));
                }
                Some(b'"') => {
                    value.push_str(&line[chunk_start..i]);
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    value.push_str(&line[chunk_start..i]);
                    match b.get(i + 1) {
                        Some(b'n') => value.push('\n'),
                        Some(b'\\') => value.push('\\'),
                        Some(b'"') => value.push('"'),
                        // Unknown escapes are kept as written.
                        Some(_) => value.push('\\'),
                        None => {
                            return Err(format!(
                                "the value of label `{label}` ends in a lone `\\`"
                            ));
                        }
                    }
                    i += if matches!(b.get(i + 1), Some(b'n' | b'\\' | b'"')) {
                        2
                    } else {
                        1
                    };
                    chunk_start = i;
                }
                Some(_) => i += 1,
            }
        }
        if labels.insert(label.to_owned(), value).is_some() {
            return Err(format!("label `{label}` appears twice"));
        }
        i = skip_blanks(b, i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i + 1),
            None => return Err("label set is not closed with `}`".into()),
            Some(_) => {
                return Err(format!(
                    "expected `,` or `}}` after the value of label `{label}`"
                ));
            }
        }
    }
}

fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(text: &str) -> ExpositionSample {
        let mut v = parse(&format!("{text}\n")).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn label_values_with_commas_equals_braces_and_escapes() {
        let s = one(r#"http_requests_total{path="/a,b=c}",msg="say \"hi\"\nbye",dir="C:\\tmp"} 7"#);
        assert_eq!(s.labels["path"], "/a,b=c}");
        assert_eq!(s.labels["msg"], "say \"hi\"\nbye");
        assert_eq!(s.labels["dir"], r"C:\tmp");
        assert_eq!(s.value, 7.0);
    }

    #[test]
    fn histogram_and_summary_children_get_their_family_type() {
        let text = "\
# HELP d Request duration.
# TYPE d histogram
d_bucket{le=\"0.1\"} 1
d_bucket{le=\"+Inf\"} 3
d_sum 0.9
d_count 3
# TYPE q summary
q{quantile=\"0.5\"} 0.2
q_sum 1.5
q_count 4
# TYPE c counter
c_total 5
plain 1
";
        let kinds: Vec<(String, MetricKind)> = parse(text)
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.kind))
            .collect();
        use MetricKind::*;
        let expected = [
            ("d_bucket", Histogram),
            ("d_bucket", Histogram),
            ("d_sum", Histogram),
            ("d_count", Histogram),
            ("q", Summary),
            ("q_sum", Summary),
            ("q_count", Summary),
            ("c_total", Counter),
            ("plain", Untyped),
        ];
        let expected: Vec<(String, MetricKind)> =
            expected.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        assert_eq!(kinds, expected);
    }

    #[test]
    fn names_with_colons_timestamps_exemplars_and_special_values() {
        let text = "\
# TYPE job:req:rate5m gauge
job:req:rate5m{job=\"a\"} 1.5e+02 1700000000000
x{a=\"1\",} NaN
y -Inf
z{ a = \"1\" , b=\"2\" } +Inf # {trace_id=\"abc\"} 1.0
\r
";
        let s = parse(text).unwrap();
        assert_eq!(s[0].kind, MetricKind::Gauge);
        assert_eq!(
            (s[0].value, s[0].timestamp_ms),
            (150.0, Some(1_700_000_000_000))
        );
        assert!(s[1].value.is_nan());
        assert_eq!(s[1].labels.len(), 1);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!(s[3].value, f64::INFINITY);
        assert_eq!(s[3].labels["b"], "2");
    }

    #[test]
    fn malformed_lines_are_reported_by_number() {
        let cases = [
            ("ok 1\nbad{a=\"x} 1", 2, "not closed"),
            ("m{a=x} 1", 1, "double quotes"),
            ("m{a\"x\"} 1", 1, "expected `=`"),
            ("m{a=\"1\" b=\"2\"} 1", 1, "expected `,` or `}`"),
            ("m{a=\"1\",a=\"2\"} 1", 1, "appears twice"),
            ("m", 1, "has no value"),
            ("m abc", 1, "not a number"),
            ("m 1 12x", 1, "not a timestamp"),
            ("m 1 12 extra", 1, "unexpected"),
            ("{a=\"b\"} 1", 1, "metric name"),
            ("<html>", 1, "metric name"),
            ("m{a=\"1\"", 1, "not closed"),
        ];
        for (text, line, needle) in cases {
            let e = parse(&format!("{text}\n")).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_body_cut_before_its_final_line_feed_is_refused() {
        // Cut inside the last value: `1234` would read as `12`, a fake counter reset.
        let e = parse("# TYPE m counter\nm 1234\nm{a=\"b\"} 12").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("line feed"), "{e}");
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("m 1\n").unwrap().len(), 1);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn label_values_round_trip(value in "\\PC{0,30}", n in 0u32..1000) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let text = format!("m{{v=\"{escaped}\",k=\"x,y\"}} {n}\n");
            let s = parse(&text).unwrap();
            prop_assert_eq!(&s[0].labels["v"], &value);
            prop_assert_eq!(&s[0].labels["k"], "x,y");
            prop_assert_eq!(s[0].value, f64::from(n));
        }
    }
}
