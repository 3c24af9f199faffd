//! Parsing of Prometheus HTTP API answers (`/api/v1/query` and `/api/v1/query_range`).
//!
//! [`parse_response`] turns a body into a [`QueryResponse`] and [`parse_range_response`]
//! into a [`RangeResponse`], or into an [`Error`] that carries Prometheus' own `errorType`
//! and `error` message. They never panic, whatever the bytes (property tests feed them
//! arbitrary input).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};

use crate::Error;

/// A successful answer of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    /// The result.
    pub data: QueryData,
    /// Warnings Prometheus attached (e.g. partial results from a federated store).
    pub warnings: Vec<String>,
    /// Informational notices (Prometheus 2.54 and later).
    pub infos: Vec<String>,
}

/// The result of an instant query, by `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    /// An instant vector: zero or more labelled series.
    Vector(Vec<Sample>),
    /// A single number (no labels).
    Scalar(Sample),
    /// A result type that does not give one number per series (`matrix` or `string`).
    Other(String),
}

/// One sample: a series' labels, the evaluation time and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (empty for a scalar or an aggregation without `by`).
    pub labels: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// The value, as Prometheus printed it (NaN and infinities included).
    pub value: f64,
}

/// Parses the body of an `/api/v1/query` answer.
///
/// `status: "error"` bodies become [`Error::Prometheus`]; bodies that are not a Prometheus
/// answer become [`Error::Response`]; native-histogram samples, which have no single value,
/// are rejected with a hint.
pub fn parse_response(body: &[u8]) -> Result<QueryResponse, Error> {
    let envelope: Envelope<RawData> = open_envelope(body)?;
    let data = match envelope.data {
        Some(RawData::Vector(samples)) => QueryData::Vector(
            samples
                .into_iter()
                .map(RawVectorSample::into_sample)
                .collect::<Result<_, _>>()?,
        ),
        Some(RawData::Scalar(pair)) => QueryData::Scalar(Sample {
            labels: BTreeMap::new(),
            timestamp: pair.0,
            value: pair.1.0,
        }),
        Some(RawData::Matrix(_)) => QueryData::Other("matrix".into()),
        Some(RawData::String(_)) => QueryData::Other("string".into()),
        None => {
            return Err(Error::Response(
                "`status` is `success` but `data` is missing".into(),
            ));
        }
    };
    Ok(QueryResponse {
        data,
        warnings: envelope.warnings,
        infos: envelope.infos,
    })
}

/// A successful answer of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeResponse {
    /// One entry per series, in Prometheus' order.
    pub series: Vec<MatrixSeries>,
    /// Warnings Prometheus attached.
    pub warnings: Vec<String>,
    /// Informational notices (Prometheus 2.54 and later).
    pub infos: Vec<String>,
}

/// One series of a `matrix` result.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSeries {
    /// The series' labels (empty for an aggregation without `by`).
    pub labels: BTreeMap<String, String>,
    /// `(seconds since the Unix epoch, value)` pairs, as Prometheus printed them (NaN and
    /// infinities included). Steps without a value are simply absent.
    pub values: Vec<(f64, f64)>,
}

/// Parses the body of an `/api/v1/query_range` answer.
///
/// `status: "error"` bodies become [`Error::Prometheus`]; bodies that are not a Prometheus
/// answer, or whose result is not a `matrix`, become [`Error::Response`]; native-histogram
/// series, which have no single value, are rejected with a hint.
pub fn parse_range_response(body: &[u8]) -> Result<RangeResponse, Error> {
    let envelope: Envelope<RawRangeData> = open_envelope(body)?;
    let series = match envelope.data {
        Some(RawRangeData::Matrix(series)) => series
            .into_iter()
            .map(RawMatrixSeries::into_series)
            .collect::<Result<_, _>>()?,
        Some(RawRangeData::Vector(_) | RawRangeData::Scalar(_) | RawRangeData::String(_)) => {
            return Err(Error::Response(
                "a range query answered with a result that is not a `matrix`".into(),
            ));
        }
        None => {
            return Err(Error::Response(
                "`status` is `success` but `data` is missing".into(),
            ));
        }
    };
    Ok(RangeResponse {
        series,
        warnings: envelope.warnings,
        infos: envelope.infos,
    })
}

/// Reads the common envelope and turns `status: "error"` into [`Error::Prometheus`].
fn open_envelope<D: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Envelope<D>, Error> {
    let envelope: Envelope<D> = serde_json::from_slice(body).map_err(|e| {
        Error::Response(format!(
            "{e} (body starts with: {})",
            body_excerpt(body, 120)
        ))
    })?;
    match envelope.status.as_str() {
        "success" => Ok(envelope),
        "error" => Err(Error::Prometheus {
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: envelope
                .error
                .unwrap_or_else(|| "(no message given)".into()),
        }),
        other => Err(Error::Response(format!(
            "unknown status `{other}` (expected `success` or `error`)"
        ))),
    }
}

/// Up to `max` characters of `body`, lossily decoded, for error messages.
pub(crate) fn body_excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// Formats a label set the way PromQL does: `{a="x", b="y"}`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Parses a sample value as Prometheus (Go) prints it: `1.5`, `1e+06`, `NaN`, `+Inf`, `-Inf`.
pub fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust also accepts `inf`, `infinity` and `nan` in any case; Go's printer never
            // writes those, so treat them like the canonical spellings.
            s.parse::<f64>().ok()
        }
    }
}

#[derive(Deserialize)]
#[serde(bound = "D: Deserialize<'de>")]
struct Envelope<D> {
    status: String,
    data: Option<D>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum RawData {
    Vector(Vec<RawVectorSample>),
    Scalar(SamplePair),
    Matrix(IgnoredAny),
    String(IgnoredAny),
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum RawRangeData {
    Matrix(Vec<RawMatrixSeries>),
    Vector(IgnoredAny),
    Scalar(IgnoredAny),
    String(IgnoredAny),
}

#[derive(Deserialize)]
struct RawMatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<SamplePair>,
    histograms: Option<IgnoredAny>,
}

impl RawMatrixSeries {
    fn into_series(self) -> Result<MatrixSeries, Error> {
        if self.histograms.is_some() {
            return Err(Error::Response(format!(
                "series {} holds native histograms, which have no single value; wrap the query in histogram_count(...) or histogram_sum(...)",
                format_labels(&self.metric)
            )));
        }
        Ok(MatrixSeries {
            labels: self.metric,
            values: self
                .values
                .into_iter()
                .map(|SamplePair(t, GoFloat(v))| (t, v))
                .collect(),
        })
    }
}

#[derive(Deserialize)]
struct RawVectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<SamplePair>,
    histogram: Option<IgnoredAny>,
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Deserialize)]
struct SamplePair(f64, GoFloat);

struct GoFloat(f64);

impl RawVectorSample {
    fn into_sample(self) -> Result<Sample, Error> {
        match (self.value, self.histogram) {
            (Some(SamplePair(timestamp, GoFloat(value))), _) => Ok(Sample {
                labels: self.metric,
                timestamp,
                value,
            }),
            (None, Some(_)) => Err(Error::Response(format!(
                "series {} is a native histogram, which has no single value; wrap the query in histogram_count(...) or histogram_sum(...)",
                format_labels(&self.metric)
            ))),
            (None, None) => Err(Error::Response(format!(
                "series {} has neither `value` nor `histogram`",
                format_labels(&self.metric)
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for GoFloat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = GoFloat;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sample value as a string, like \"1.5\" or \"NaN\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoFloat, E> {
                parse_go_float(v)
                    .map(GoFloat)
                    .ok_or_else(|| E::custom(format!("`{v}` is not a number")))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("1e+06"), Some(1e6));
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("-Inf"), Some(f64::NEG_INFINITY));
        assert!(parse_go_float("NaN").unwrap().is_nan());
        assert_eq!(parse_go_float("-0.25"), Some(-0.25));
        assert_eq!(parse_go_float("abc"), None);
        assert_eq!(parse_go_float(""), None);
    }

    #[test]
    fn vector_with_labels() {
        let r = parse_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"job":"a"},"value":[1700000000.5,"2.5"]}]}}"#,
        )
        .unwrap();
        let QueryData::Vector(v) = r.data else {
            panic!("not a vector")
        };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].labels["job"], "a");
        assert_eq!((v[0].timestamp, v[0].value), (1_700_000_000.5, 2.5));
    }

    #[test]
    fn unknown_result_type_and_garbage_are_response_errors() {
        let e = parse_response(br#"{"status":"success","data":{"resultType":"blob","result":1}}"#)
            .unwrap_err();
        assert_eq!(e.kind(), "response");
        let e = parse_response(b"<html>502 Bad Gateway</html>").unwrap_err();
        assert!(e.to_string().contains("502 Bad Gateway"), "{e}");
        let e = parse_response(br#"{"status":"success"}"#).unwrap_err();
        assert!(e.to_string().contains("`data` is missing"), "{e}");
        let e = parse_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`x` is not a number"), "{e}");
    }

    #[test]
    fn labels_format_like_promql() {
        let mut l = BTreeMap::new();
        l.insert("b".to_string(), "y\"q".to_string());
        l.insert("a".to_string(), "x".to_string());
        assert_eq!(format_labels(&l), r#"{a="x", b="y\"q"}"#);
    }

    #[test]
    fn matrix_with_nan_and_labels() {
        let r = parse_range_response(
            br#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{},"values":[[1700000000,"2.5"],[1700000001,"NaN"],[1700000003,"1e+01"]]}]},
                "warnings":["w"]}"#,
        )
        .unwrap();
        assert_eq!(r.series.len(), 1);
        assert!(r.series[0].labels.is_empty());
        let v = &r.series[0].values;
        assert_eq!(v[0], (1_700_000_000.0, 2.5));
        assert!(v[1].1.is_nan());
        assert_eq!(v[2], (1_700_000_003.0, 10.0));
        assert_eq!(r.warnings, vec!["w".to_string()]);
    }

    #[test]
    fn range_errors_keep_prometheus_message_and_reject_other_results() {
        let e = parse_range_response(
            br#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), "prometheus");
        assert!(e.to_string().contains("11,000 points"), "{e}");
        let e = parse_range_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a `matrix`"), "{e}");
        let e = parse_range_response(
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"histograms":[[1,{}]]}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("histogram_count"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_response(&body);
            let _ = parse_range_response(&body);
        }

        #[test]
        fn json_shaped_input_never_panics(
            status in prop_oneof![Just("success".to_string()), Just("error".to_string()), "[a-z]{0,8}"],
            rt in prop_oneof![Just("vector".to_string()), Just("scalar".to_string()), Just("matrix".to_string()), "[a-z]{0,6}"],
            value in prop_oneof![Just("\"1\"".to_string()), Just("\"NaN\"".to_string()), Just("1".to_string()), "\"[-+0-9.eInfa]{0,8}\""],
            ts in any::<f64>(),
        ) {
            let ts = if ts.is_finite() { ts.to_string() } else { "0".into() };
            let body = format!(
                r#"{{"status":"{status}","data":{{"resultType":"{rt}","result":[{{"metric":{{"a":"b"}},"value":[{ts},{value}]}}]}},"errorType":"e","error":"m"}}"#
            );
            let _ = parse_response(body.as_bytes());
            let scalar = format!(r#"{{"status":"{status}","data":{{"resultType":"{rt}","result":[{ts},{value}]}}}}"#);
            let _ = parse_response(scalar.as_bytes());
        }
    }
}
