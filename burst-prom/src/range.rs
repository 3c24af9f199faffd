//! [`RangeClient`]: the history of one query, from Prometheus' `/api/v1/query_range`.
//!
//! Prometheus refuses a range query with more than 11,000 points per series, so longer
//! ranges are fetched in chunks of at most [`MAX_POINTS_PER_REQUEST`] steps that do not
//! overlap, and stitched into one grid with one entry per step. A step without a value (no
//! sample, or NaN) is a gap, `None`, never 0.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use burst_core::Timestamp;
use url::Url;

use crate::Error;
use crate::api::{RangeResponse, format_labels, parse_range_response};
use crate::http::{HttpClient, HttpClients, HttpConfig};
use crate::prometheus::{api_endpoint, call_api};

/// The most points Prometheus returns per series and request (its `query_range` limit).
pub const MAX_POINTS_PER_REQUEST: u64 = 11_000;

/// The most steps one [`RangeClient::fetch`] covers, over all its requests (about 23 days
/// at a 1 s step): it bounds the memory and the number of requests.
pub const MAX_POINTS: u64 = 2_000_000;

/// Queries longer than this (URL-encoded) go as a POST form.
const POST_ABOVE_BYTES: usize = 2000;

/// One query over a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// PromQL returning one series (aggregate with `sum(...)`), e.g.
    /// `sum(rate(istio_requests_total{reporter="source"}[1m]))`.
    pub query: String,
    /// The first step (millisecond resolution, as Prometheus).
    pub start: Timestamp,
    /// The end of the range; the last step is the last one not after it.
    pub end: Timestamp,
    /// Time between steps (at least 1 ms, whole milliseconds).
    pub step: Duration,
}

/// The value of the query at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeSample {
    /// The step's time.
    pub at: Timestamp,
    /// The value (finite, `>= 0`), or `None` for a gap (no sample or NaN).
    pub value: Option<f64>,
}

/// The stitched history of a [`RangeQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct RangeHistory {
    /// The labels of the one series (empty for `sum(...)`).
    pub labels: BTreeMap<String, String>,
    /// One sample per step from `start` to `end`, in time order, gaps included.
    pub samples: Vec<RangeSample>,
    /// How many requests it took (ranges above [`MAX_POINTS_PER_REQUEST`] steps take more
    /// than one).
    pub requests: usize,
}

/// Fetches range queries from Prometheus (or a compatible API: Thanos, Mimir, Cortex),
/// with the same HTTP settings as [`crate::PrometheusSource`].
///
/// ```no_run
/// use std::time::Duration;
/// use burst_core::Timestamp;
/// use burst_prom::{HttpClients, HttpConfig, RangeClient, RangeQuery};
///
/// # async fn demo() -> Result<(), burst_prom::Error> {
/// let client = RangeClient::new("http://localhost:9090", &HttpConfig::default(), &HttpClients::new())?;
/// let history = client
///     .fetch(&RangeQuery {
///         query: "sum(rate(istio_requests_total[1m]))".into(),
///         start: Timestamp::from_duration(Duration::from_secs(1_700_000_000)),
///         end: Timestamp::from_duration(Duration::from_secs(1_700_003_600)),
///         step: Duration::from_secs(1),
///     })
///     .await?;
/// let gaps = history.samples.iter().filter(|s| s.value.is_none()).count();
/// println!("{} steps, {gaps} gaps", history.samples.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RangeClient {
    endpoint: Url,
    http: HttpClient,
    points_per_request: u64,
}

/// The steps of a range: `start_ms + i * step_ms` for `i` in `0..len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grid {
    start_ms: u64,
    step_ms: u64,
    len: u64,
}

impl RangeClient {
    /// A client for the Prometheus at `url` (any path prefix kept); checks the settings.
    pub fn new(url: &str, http: &HttpConfig, clients: &HttpClients) -> Result<RangeClient, Error> {
        Ok(RangeClient {
            endpoint: api_endpoint(url, "api/v1/query_range")?,
            http: HttpClient::new(http, clients)?,
            points_per_request: MAX_POINTS_PER_REQUEST,
        })
    }

    /// Fetches at most `points` steps per request (1 to [`MAX_POINTS_PER_REQUEST`]), for
    /// APIs with a lower limit than Prometheus'.
    pub fn with_points_per_request(mut self, points: u64) -> Result<RangeClient, Error> {
        if !(1..=MAX_POINTS_PER_REQUEST).contains(&points) {
            return Err(Error::config(
                "points_per_request",
                format!("{points} is not between 1 and {MAX_POINTS_PER_REQUEST}"),
            ));
        }
        self.points_per_request = points;
        Ok(self)
    }

    /// The `/api/v1/query_range` URL used.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Fetches `query`'s history, in as many requests as the range needs, and stitches
    /// the answers into one sample per step.
    ///
    /// Errors: a bad range or step ([`Error::Config`]), several series
    /// ([`Error::SeveralRangeSeries`]), no sample at all ([`Error::NoSamples`]), an infinite
    /// or negative value ([`Error::InvalidValue`]), and every HTTP or Prometheus error of a
    /// request.
    pub async fn fetch(&self, query: &RangeQuery) -> Result<RangeHistory, Error> {
        let grid = Grid::of(query)?;
        let mut values: Vec<Option<f64>> = vec![None; usize_from(grid.len)?];
        let mut label_sets: BTreeSet<BTreeMap<String, String>> = BTreeSet::new();
        let mut requests = 0;
        for (first, last) in grid.chunks(self.points_per_request) {
            let form: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("query", &query.query)
                .append_pair("start", &seconds(grid.at_ms(first)))
                .append_pair("end", &seconds(grid.at_ms(last)))
                .append_pair("step", &seconds(grid.step_ms))
                .finish();
            tracing::debug!(
                query = %query.query,
                first_step = first,
                last_step = last,
                "fetching a range"
            );
            let response = call_api(
                &self.http,
                &self.endpoint,
                form,
                POST_ABOVE_BYTES,
                parse_range_response,
            )
            .await?;
            requests += 1;
            for warning in &response.warnings {
                tracing::warn!(query = %query.query, warning = %warning, "prometheus answered with a warning");
            }
            stitch(&grid, response, &mut values, &mut label_sets)?;
            if label_sets.len() > 1 {
                return Err(several(&label_sets));
            }
        }
        if values.iter().all(Option::is_none) {
            return Err(Error::NoSamples {
                query: query.query.clone(),
                start: seconds(grid.start_ms),
                end: seconds(grid.at_ms(grid.len - 1)),
            });
        }
        let samples = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| RangeSample {
                at: Timestamp::from_duration(Duration::from_millis(grid.at_ms(i as u64))),
                value,
            })
            .collect();
        Ok(RangeHistory {
            labels: label_sets.into_iter().next().unwrap_or_default(),
            samples,
            requests,
        })
    }
}

impl Grid {
    fn of(query: &RangeQuery) -> Result<Grid, Error> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let step_ms = ms(query.step);
        if step_ms == 0 {
            return Err(Error::config(
                "step",
                format!(
                    "{} is not a step; use at least 1ms, e.g. 1s",
                    humantime::format_duration(query.step)
                ),
            ));
        }
        if !query.step.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(Error::config(
                "step",
                format!(
                    "{} is not a whole number of milliseconds, the resolution of Prometheus",
                    humantime::format_duration(query.step)
                ),
            ));
        }
        let start_ms = ms(query.start.as_duration());
        let end_ms = ms(query.end.as_duration());
        if start_ms >= end_ms {
            return Err(Error::config(
                "end",
                format!(
                    "the end {} is not after the start {}; give an end later than the start",
                    seconds(end_ms),
                    seconds(start_ms)
                ),
            ));
        }
        let len = (end_ms - start_ms) / step_ms + 1;
        if len > MAX_POINTS {
            return Err(Error::config(
                "step",
                format!(
                    "the range has {len} steps of {}, more than the {MAX_POINTS} one fetch takes; use a larger step or a shorter range",
                    humantime::format_duration(query.step)
                ),
            ));
        }
        Ok(Grid {
            start_ms,
            step_ms,
            len,
        })
    }

    fn at_ms(&self, index: u64) -> u64 {
        self.start_ms + index * self.step_ms
    }

    /// Consecutive `(first, last)` step indexes, at most `per_request` steps each.
    fn chunks(&self, per_request: u64) -> impl Iterator<Item = (u64, u64)> {
        let len = self.len;
        let per = per_request.max(1);
        (0..len.div_ceil(per)).map(move |i| (i * per, ((i + 1) * per).min(len) - 1))
    }

    /// The step index of a sample time, if it is one of the grid's steps.
    fn index_of(&self, seconds: f64) -> Option<u64> {
        let ms = (seconds * 1000.0).round();
        if !ms.is_finite() || ms < self.start_ms as f64 {
            return None;
        }
        let offset = (ms as u64).checked_sub(self.start_ms)?;
        (offset.is_multiple_of(self.step_ms) && offset / self.step_ms < self.len)
            .then_some(offset / self.step_ms)
    }
}

/// Puts one answer's samples on the grid; a step already filled keeps its first value.
fn stitch(
    grid: &Grid,
    response: RangeResponse,
    values: &mut [Option<f64>],
    label_sets: &mut BTreeSet<BTreeMap<String, String>>,
) -> Result<(), Error> {
    for series in response.series {
        if series.values.is_empty() {
            continue;
        }
        for &(t, value) in &series.values {
            let index = grid.index_of(t).ok_or_else(|| {
                Error::Response(format!(
                    "series {} has a sample at {t}, which is not one of the requested steps",
                    format_labels(&series.labels)
                ))
            })?;
            if value.is_nan() {
                continue;
            }
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::InvalidValue {
                    series: format!("{} at {t}", format_labels(&series.labels)),
                    value,
                });
            }
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| values.get_mut(i))
                && slot.is_none()
            {
                *slot = Some(value);
            }
        }
        label_sets.insert(series.labels);
    }
    Ok(())
}

fn several(label_sets: &BTreeSet<BTreeMap<String, String>>) -> Error {
    const SHOWN: usize = 5;
    let mut shown: Vec<String> = label_sets.iter().take(SHOWN).map(format_labels).collect();
    if label_sets.len() > SHOWN {
        shown.push(format!("and {} more", label_sets.len() - SHOWN));
    }
    Error::SeveralRangeSeries {
        count: label_sets.len(),
        label_sets: shown.join(", "),
    }
}

/// Milliseconds as the decimal seconds Prometheus takes: `1700000000.5`.
fn seconds(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("{}", ms / 1000),
        frac => format!("{}.{frac:03}", ms / 1000),
    }
}

fn usize_from(n: u64) -> Result<usize, Error> {
    usize::try_from(n)
        .map_err(|_| Error::config("step", format!("{n} steps do not fit in memory here")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MatrixSeries;

    fn query(start: u64, end: u64, step: Duration) -> RangeQuery {
        RangeQuery {
            query: "sum(x)".into(),
            start: Timestamp::from_duration(Duration::from_secs(start)),
            end: Timestamp::from_duration(Duration::from_secs(end)),
            step,
        }
    }

    #[test]
    fn chunks_cover_every_step_once_within_the_limit() {
        let grid = Grid::of(&query(1000, 1000 + 25_000, Duration::from_secs(1))).unwrap();
        assert_eq!(grid.len, 25_001);
        let chunks: Vec<_> = grid.chunks(MAX_POINTS_PER_REQUEST).collect();
        assert_eq!(
            chunks,
            vec![(0, 10_999), (11_000, 21_999), (22_000, 25_000)]
        );
        // A range of exactly the limit is one request.
        let grid = Grid::of(&query(0, 10_999, Duration::from_secs(1))).unwrap();
        assert_eq!(grid.chunks(MAX_POINTS_PER_REQUEST).count(), 1);
        // The last step is the last one not after the end.
        let grid = Grid::of(&query(0, 10, Duration::from_secs(3))).unwrap();
        assert_eq!((grid.len, grid.at_ms(grid.len - 1)), (4, 9000));
    }

    #[test]
    fn bad_ranges_and_steps_name_the_setting() {
        let e = Grid::of(&query(10, 10, Duration::from_secs(1))).unwrap_err();
        assert!(matches!(e, Error::Config { key: "end", .. }), "{e}");
        assert!(e.to_string().contains("not after the start 10"), "{e}");
        let e = Grid::of(&query(0, 10, Duration::ZERO)).unwrap_err();
        assert!(matches!(e, Error::Config { key: "step", .. }), "{e}");
        let e = Grid::of(&query(0, 10, Duration::from_micros(1500))).unwrap_err();
        assert!(
            e.to_string().contains("whole number of milliseconds"),
            "{e}"
        );
        let e = Grid::of(&query(0, 40 * 86_400, Duration::from_secs(1))).unwrap_err();
        assert!(e.to_string().contains("larger step"), "{e}");
    }

    #[test]
    fn stitching_keeps_gaps_and_drops_duplicates() {
        let grid = Grid::of(&query(100, 104, Duration::from_secs(1))).unwrap();
        let mut values = vec![None; 5];
        let mut labels = BTreeSet::new();
        let answer = |values: Vec<(f64, f64)>| RangeResponse {
            series: vec![MatrixSeries {
                labels: BTreeMap::new(),
                values,
            }],
            warnings: vec![],
            infos: vec![],
        };
        stitch(
            &grid,
            answer(vec![(100.0, 1.0), (101.0, f64::NAN), (102.0, 2.0)]),
            &mut values,
            &mut labels,
        )
        .unwrap();
        // An overlapping answer: step 102 again (another value) and 104.
        stitch(
            &grid,
            answer(vec![(102.0, 9.0), (104.0, 3.0)]),
            &mut values,
            &mut labels,
        )
        .unwrap();
        assert_eq!(values, vec![Some(1.0), None, Some(2.0), None, Some(3.0)]);
        assert_eq!(labels.len(), 1);

        let e = stitch(&grid, answer(vec![(100.5, 1.0)]), &mut values, &mut labels).unwrap_err();
        assert!(
            e.to_string().contains("not one of the requested steps"),
            "{e}"
        );
        let e = stitch(
            &grid,
            answer(vec![(101.0, f64::INFINITY)]),
            &mut values,
            &mut labels,
        )
        .unwrap_err();
        assert_eq!(e.kind(), "invalid_value");
        let e = stitch(&grid, answer(vec![(101.0, -1.0)]), &mut values, &mut labels).unwrap_err();
        assert!(e.to_string().contains("at 101"), "{e}");
    }

    #[test]
    fn sub_second_times_are_sent_as_decimal_seconds() {
        assert_eq!(seconds(1_700_000_000_000), "1700000000");
        assert_eq!(seconds(1_700_000_000_050), "1700000000.050");
        let grid = Grid::of(&RangeQuery {
            query: "x".into(),
            start: Timestamp::from_duration(Duration::from_millis(1_500)),
            end: Timestamp::from_duration(Duration::from_millis(2_600)),
            step: Duration::from_millis(250),
        })
        .unwrap();
        assert_eq!(grid.len, 5);
        assert_eq!(grid.index_of(2.5), Some(4));
        assert_eq!(grid.index_of(2.6), None);
        assert_eq!(grid.index_of(1.25), None);
    }
}
