use super::*;
use crate::pubsub::MemoryPubSub;
use async_trait::async_trait;
use axum::http::Request;
use loadgen::SendFailure;
use tower::ServiceExt;

#[derive(Default)]
struct Sink {
    count: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl RequestSender for Sink {
    async fn send(&self, _: String) -> Result<(), SendFailure> {
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

async fn frontend() -> (Frontend, Arc<MemoryPubSub>) {
    let bus = Arc::new(MemoryPubSub::new());
    let config = FrontendConfig::new(Url::parse("http://127.0.0.1:9/").unwrap());
    let f = Frontend::start_with_sender(config, bus.clone(), Arc::new(Sink::default()))
        .await
        .unwrap();
    (f, bus)
}

async fn text(r: Response) -> String {
    let b = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    String::from_utf8(b.to_vec()).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(body: &str) -> Request<Body> {
    Request::post("/api/frequency")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn page_keeps_the_original_text_and_serves_bootstrap_locally() {
    let (f, _) = frontend().await;
    let r = f.router().oneshot(get("/")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = text(r).await;
    for needle in [
        "<title>String Hashr</title>",
        "Lets hash some things!",
        "What&#39;s the frequency?",
        r#"placeholder="5""#,
        "The current hash values",
        r#"href="/assets/bootstrap.min.css""#,
        r#"<canvas id="chart""#,
    ] {
        assert!(
            html.contains(needle) || html.contains(&needle.replace("&#39;", "'")),
            "page lacks {needle}"
        );
    }
    assert!(!html.contains("cdn"), "page must not load from a CDN");
    let r = f
        .router()
        .oneshot(get("/assets/bootstrap.min.css"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let css = text(r).await;
    assert!(css.contains("Bootstrap  v5") && css.contains("Licensed under MIT"));
    let r = f.router().oneshot(get("/assets/app.js")).await.unwrap();
    assert!(text(r).await.contains("EventSource"));
}

#[tokio::test]
async fn frequency_is_validated_and_global() {
    let (f, _) = frontend().await;
    let r = f
        .router()
        .oneshot(post_json(r#"{"frequency": "20"}"#))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(text(r).await, r#"{"frequency":20.0}"#);
    assert_eq!(f.frequency(), 20.0);
    let r = f
        .router()
        .oneshot(post_json(r#"{"frequency": 7.5}"#))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(f.frequency(), 7.5);
    for (body, needle) in [
        (r#"{"frequency": ""}"#, "empty"),
        (r#"{"frequency": null}"#, "empty"),
        (r#"{"frequency": "abc"}"#, "not a number"),
        (r#"{"frequency": "-5"}"#, "negative"),
        (r#"{"frequency": -5}"#, "negative"),
        (r#"{"frequency": "100000"}"#, "above the limit of 5000"),
        (r#"{"frequency": true}"#, "not a number"),
    ] {
        let r = f.router().oneshot(post_json(body)).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let t = text(r).await;
        assert!(t.contains(needle), "{body}: {t}");
        assert_eq!(
            f.frequency(),
            7.5,
            "a refused value must not change the rate"
        );
    }
    let r = f
        .router()
        .oneshot(post_json(r#"{"freq": 5}"#))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f.router().oneshot(post_json("nope")).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f
        .router()
        .oneshot(
            Request::post("/api/frequency")
                .header("content-type", "text/plain")
                .body(Body::from("5"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(r#"{{"frequency": "{}"}}"#, " ".repeat(2000));
    let r = f.router().oneshot(post_json(&big)).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // 0 stops.
    let r = f
        .router()
        .oneshot(post_json(r#"{"frequency": "0"}"#))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(f.frequency(), 0.0);
    // The API and the method agree on validation.
    assert!(f.set_frequency("5001").is_err());
    assert_eq!(f.set_frequency("5").unwrap(), 5.0);
}

#[tokio::test]
async fn health_follows_the_subscription_and_status_is_json() {
    let (f, _) = frontend().await;
    let mut ok = false;
    for _ in 0..100 {
        let r = f.router().oneshot(get("/_healthz")).await.unwrap();
        if r.status() == StatusCode::OK {
            assert_eq!(text(r).await, "ok");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "frontend never became ready");
    let r = f.router().oneshot(get("/api/status")).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(v["max_frequency"], 5000.0);
    assert!(v["load"]["sent"].is_u64());
    let r = f.router().oneshot(get("/metrics")).await.unwrap();
    let m = text(r).await;
    assert!(m.contains("hashr_load_sent_total"), "{m}");
    assert!(
        m.contains(r#"http_requests_total{method="GET",path="/api/status",status="200"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn events_stream_hello_then_hashes_and_end_on_shutdown() {
    let (f, bus) = frontend().await;
    bus.publish(CHANNEL, "before-page").await.unwrap();
    // Wait until the relay saw it (history for later pages).
    for _ in 0..100 {
        if f.relay().received == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = f.router().oneshot(get("/events")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = r.into_body().into_data_stream();
    let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: hello\n"), "{first}");
    assert!(first.contains("before-page"), "{first}");
    bus.publish(CHANNEL, "bursty-abc").await.unwrap();
    let mut seen = String::new();
    while !seen.contains("bursty-abc") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("hash relayed within 5 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("event: hashes\ndata: [\"bursty-abc\"]"),
        "{seen}"
    );
    f.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(c) = body.next().await {
            c.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream must end on shutdown");
    assert_eq!(f.frequency(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn status_reports_rates_and_bursty_share_each_second() {
    let (f, bus) = frontend().await;
    f.set_frequency("10").unwrap();
    // Let one full status period pass with 3 normal and 1 bursty hash.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for m in ["a", "b", "c", "bursty-d"] {
        bus.publish(CHANNEL, m).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = f.status();
    assert_eq!(s.frequency, 10.0);
    assert!((s.sent_per_sec - 10.0).abs() < 1e-9, "{s:?}");
    assert_eq!(s.received_per_sec, 4.0);
    assert_eq!(s.bursty_share, Some(0.25));
    assert_eq!(s.bursty_total, 1);
    assert_eq!(s.subscription, "subscribed");
}

#[tokio::test(start_paused = true)]
async fn the_controller_view_reaches_the_status_only_once_set() {
    use controller::{ControllerView, PrewarmView, WarmupView};
    let (f, _) = frontend().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = f.router().oneshot(get("/api/status")).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    assert_eq!(v["controller"], serde_json::Value::Null, "{v}");

    f.set_controller(Some(ControllerView {
        burst_weight: 25,
        rule: Some("warming".into()),
        reason: Some("warming toward 100% (step 2/4)".into()),
        warmup: Some(WarmupView {
            step: 2,
            steps: 4,
            toward: Some(100),
        }),
        prewarm: Some(PrewarmView {
            prepared: true,
            since_s: Some(12.5),
            reason: Some("traffic is on burst".into()),
            forecast: None,
        }),
    }));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = f.router().oneshot(get("/api/status")).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
    let c = &v["controller"];
    assert_eq!(c["burst_weight"], 25, "{v}");
    assert_eq!(c["warmup"]["step"], 2);
    assert_eq!(c["warmup"]["steps"], 4);
    assert_eq!(c["prewarm"]["prepared"], true);
    assert_eq!(c["prewarm"]["since_s"], 12.5);

    f.set_controller(None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(f.status().controller, None);
}
