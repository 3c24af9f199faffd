//! What the bench reads: CPU and memory of a process from /proc, tick counts and
//! durations from burstd's /metrics, writes from the API server's own metrics.

use anyhow::Context;

/// CPU seconds (user + system) of a process.
pub(super) fn cpu_secs(pid: &str, clk_tck: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(") ").context("odd /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).context("utime")?.parse()?;
    let stime: f64 = f.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / clk_tck)
}

/// A `/proc/PID/status` figure in KiB (`VmHWM`, `VmRSS`).
pub(super) fn status_kib(pid: &str, key: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key}"))?;
    let kib: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kib)
}

/// Clock ticks per second of /proc CPU times.
pub(super) fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The tick histogram summed over every policy: (upper bound, cumulative count) pairs,
/// sum and count; plus the `burstd_policies` gauge.
#[derive(Debug, Default, Clone)]
pub(super) struct Ticks {
    pub(super) buckets: Vec<(f64, f64)>,
    pub(super) sum: f64,
    pub(super) count: f64,
    pub(super) policies: f64,
    pub(super) writes_failed: f64,
}

/// Sums burstd's tick counters and histogram buckets over its policies.
pub(super) fn parse_ticks(text: &str) -> Ticks {
    let mut t = Ticks::default();
    let mut buckets: std::collections::BTreeMap<u64, f64> = Default::default();
    for line in text.lines() {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if let Some(rest) = name_labels.strip_prefix("burstd_tick_duration_seconds_bucket{") {
            if let Some(le) = rest.split("le=\"").nth(1).and_then(|s| s.split('"').next()) {
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                *buckets.entry(le.to_bits()).or_default() += v;
            }
        } else if name_labels.starts_with("burstd_tick_duration_seconds_sum") {
            t.sum += v;
        } else if name_labels.starts_with("burstd_tick_duration_seconds_count") {
            t.count += v;
        } else if name_labels == "burstd_policies" {
            t.policies = v;
        } else if name_labels.starts_with("burstd_status_write_errors_total")
            || name_labels.starts_with("burstd_router_errors_total")
        {
            t.writes_failed += v;
        }
    }
    t.buckets = buckets
        .into_iter()
        .map(|(k, v)| (f64::from_bits(k), v))
        .collect();
    t.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    t
}

/// Quantile `q` of the ticks between two snapshots, interpolated inside a bucket.
pub(super) fn quantile(before: &Ticks, after: &Ticks, q: f64) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|(le, c)| {
            let b = before
                .buckets
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |x| x.1);
            (*le, c - b)
        })
        .collect();
    let total = delta.last().map_or(0.0, |x| x.1);
    let want = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, c) in &delta {
        if c >= want {
            if le.is_infinite() {
                return lower.0;
            }
            let span = c - lower.1;
            let frac = if span > 0.0 {
                (want - lower.1) / span
            } else {
                1.0
            };
            return lower.0 + (le - lower.0) * frac;
        }
        lower = (le, c);
    }
    f64::NAN
}

/// burstd's ticks, read from its /metrics at `url`.
pub(super) async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Ticks> {
    let text = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_ticks(&text))
}

/// Writes and VirtualService GETs the API server has answered so far
/// (`apiserver_request_total`, from its own `/metrics`).
pub(super) async fn server_requests(client: &kube::Client) -> anyhow::Result<ServerRequests> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(ServerRequests {
        writes: sum_writes(&text),
        route_gets: sum_route_gets(&text),
    })
}

/// Counts from the API server's `apiserver_request_total`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ServerRequests {
    /// Write requests (every resource).
    pub(super) writes: f64,
    /// GETs of single VirtualServices (the routers' reads when no watch serves them).
    pub(super) route_gets: f64,
}

/// GETs of VirtualServices in `apiserver_request_total` (LIST and WATCH are other verbs).
pub(super) fn sum_route_gets(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("resource=\"virtualservices\"") && l.contains("verb=\"GET\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The API server's write requests (POST, PUT, PATCH, APPLY, DELETE) in
/// `apiserver_request_total`.
pub(super) fn sum_writes(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            [
                "\"POST\"",
                "\"PUT\"",
                "\"PATCH\"",
                "\"APPLY\"",
                "\"DELETE\"",
            ]
            .iter()
            .any(|v| l.contains(&format!("verb={v}")))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// The 1, 5 and 15 minute load averages.
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE burstd_tick_duration_seconds histogram
burstd_tick_duration_seconds_sum{policy=\"default/a\"} 0.5
burstd_tick_duration_seconds_count{policy=\"default/a\"} 100
burstd_tick_duration_seconds_bucket{le=\"0.001\",policy=\"default/a\"} 0
burstd_tick_duration_seconds_bucket{le=\"0.002\",policy=\"default/a\"} 50
burstd_tick_duration_seconds_bucket{le=\"0.004\",policy=\"default/a\"} 100
burstd_tick_duration_seconds_bucket{le=\"+Inf\",policy=\"default/a\"} 100
burstd_tick_duration_seconds_sum{policy=\"default/b\"} 0.5
burstd_tick_duration_seconds_count{policy=\"default/b\"} 100
burstd_tick_duration_seconds_bucket{le=\"0.001\",policy=\"default/b\"} 0
burstd_tick_duration_seconds_bucket{le=\"0.002\",policy=\"default/b\"} 50
burstd_tick_duration_seconds_bucket{le=\"0.004\",policy=\"default/b\"} 100
burstd_tick_duration_seconds_bucket{le=\"+Inf\",policy=\"default/b\"} 100
burstd_policies 2
";

    #[test]
    fn ticks_are_summed_over_policies() {
        let t = parse_ticks(TEXT);
        assert_eq!(t.count, 200.0);
        assert_eq!(t.sum, 1.0);
        assert_eq!(t.policies, 2.0);
        assert_eq!(
            t.buckets,
            vec![
                (0.001, 0.0),
                (0.002, 100.0),
                (0.004, 200.0),
                (f64::INFINITY, 200.0)
            ]
        );
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_of_the_window() {
        let after = parse_ticks(TEXT);
        let before = Ticks::default();
        // Half the ticks are at most 2 ms: the median is the bucket's upper edge.
        assert!((quantile(&before, &after, 0.5) - 0.002).abs() < 1e-12);
        // 99 % lies 98 % of the way through the (2 ms, 4 ms] bucket.
        assert!((quantile(&before, &after, 0.99) - 0.00396).abs() < 1e-12);
        // Only ticks after `before` count.
        let mut earlier = after.clone();
        earlier.buckets = vec![
            (0.001, 0.0),
            (0.002, 100.0),
            (0.004, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!(quantile(&earlier, &after, 0.5) > 0.002);
    }

    #[test]
    fn writes_are_the_write_verbs_of_apiserver_request_total() {
        let text = "\
apiserver_request_total{code=\"200\",resource=\"virtualservices\",verb=\"PATCH\"} 7
apiserver_request_total{code=\"201\",resource=\"events\",verb=\"POST\"} 3
apiserver_request_total{code=\"200\",resource=\"leases\",verb=\"PUT\"} 2
apiserver_request_total{code=\"200\",resource=\"virtualservices\",verb=\"GET\"} 100
apiserver_request_total{code=\"200\",resource=\"burstpolicies\",verb=\"WATCH\"} 1
apiserver_request_duration_seconds_count{verb=\"PATCH\"} 50
";
        assert_eq!(sum_writes(text), 12.0);
        assert_eq!(sum_route_gets(text), 100.0);
    }
}
