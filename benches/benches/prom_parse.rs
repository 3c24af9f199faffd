//! burst-prom: parsing a 1 MB Prometheus query answer (instant vector JSON) and a 1 MB
//! `/metrics` exposition text, reported as throughput (MB/s).
//!
//! `cargo bench -p burst-benches --bench prom_parse`

#![allow(missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TARGET_BYTES: usize = 1_000_000;

/// An instant-vector answer with Istio-like label sets, about 1 MB.
fn vector_json() -> String {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    let mut i = 0u32;
    while out.len() < TARGET_BYTES {
        if i > 0 {
            out.push(',');
        }
        write!(
            out,
            r#"{{"metric":{{"destination_service":"svc-{}.ns-{}.svc.cluster.local","source_app":"app-{}","source_workload":"workload-{}","reporter":"source","response_code":"200"}},"value":[1700000000.123,"{}.{}"]}}"#,
            i % 97,
            i % 13,
            i % 31,
            i,
            i % 1000,
            i % 7
        )
        .expect("write to String");
        i += 1;
    }
    out.push_str("]}}");
    out
}

/// A `/metrics` page with counters, a histogram and label values that need escaping,
/// about 1 MB.
fn exposition_text() -> String {
    let mut out = String::from(
        "# HELP istio_requests_total Total requests.\n# TYPE istio_requests_total counter\n",
    );
    let mut i = 0u32;
    while out.len() < TARGET_BYTES {
        writeln!(
            out,
            r#"istio_requests_total{{reporter="source",destination_service="svc-{}.ns.svc.cluster.local",source_workload="workload-{}",request_path="/api/v1/items,{}",note="say \"hi\"\n"}} {}"#,
            i % 97,
            i,
            i % 10,
            u64::from(i) * 37
        )
        .expect("write to String");
        if i.is_multiple_of(50) {
            writeln!(
                out,
                "# TYPE d_{i} histogram\nd_{i}_bucket{{le=\"0.1\"}} 3\nd_{i}_bucket{{le=\"+Inf\"}} 4\nd_{i}_sum 1.5\nd_{i}_count 4"
            )
            .expect("write to String");
        }
        i += 1;
    }
    out
}

fn parse(c: &mut Criterion) {
    let json = vector_json();
    let text = exposition_text();
    let mut g = c.benchmark_group("prom_parse");

    g.throughput(Throughput::BytesDecimal(json.len() as u64));
    g.bench_function("query_vector_json_1MB", |b| {
        b.iter(|| burst_prom::api::parse_response(black_box(json.as_bytes())).expect("valid"))
    });

    g.throughput(Throughput::BytesDecimal(text.len() as u64));
    g.bench_function("exposition_text_1MB", |b| {
        b.iter(|| burst_prom::exposition::parse(black_box(&text)).expect("valid"))
    });
    // For reference: the upstream prometheus-parse crate on the same page (it mis-reads
    // the comma-containing labels, so this is speed only).
    g.bench_function("exposition_text_1MB_prometheus_parse", |b| {
        b.iter(|| {
            prometheus_parse::Scrape::parse(black_box(&text).lines().map(|l| Ok(l.to_owned())))
                .expect("parses")
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
