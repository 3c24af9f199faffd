//! The Prometheus answer and exposition oracles, on their own so the cargo-fuzz targets can
//! include this file with only `burst-prom` and `burst-core` as dependencies.

use std::time::Duration;

use burst_core::Timestamp;
use burst_prom::api::{QueryData, parse_response};
use burst_prom::{Selected, SeriesRule, exposition, select};

/// Prometheus' query API answer: parsing never panics, and a selected value is a finite
/// number >= 0 (NaN, infinities and negatives are errors, empty is "no data").
pub fn prom_response(data: &[u8]) -> Result<(), String> {
    let Ok(response) = parse_response(data) else {
        return Ok(());
    };
    let now = Timestamp::from_duration(Duration::from_secs(1_700_000_000));
    for rule in [SeriesRule::Error, SeriesRule::Sum, SeriesRule::Max] {
        let data: QueryData = response.data.clone();
        if let Ok(Selected::Value { value, .. }) =
            select(data, rule, now, Duration::from_secs(3600 * 24 * 365 * 100))
            && !(value.is_finite() && value >= 0.0)
        {
            return Err(format!("select gave {value} under {rule:?}"));
        }
    }
    Ok(())
}

/// The text exposition format: parsing never panics; a body that parses ends with a line
/// feed (or is blank), and every sample has a metric name.
pub fn exposition(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(samples) = exposition::parse(text) else {
        return Ok(());
    };
    if !text.trim().is_empty() && !text.ends_with('\n') {
        return Err("a body without a final line feed was accepted".into());
    }
    if let Some(s) = samples.iter().find(|s| s.name.is_empty()) {
        return Err(format!("a sample without a name: {s:?}"));
    }
    Ok(())
}
