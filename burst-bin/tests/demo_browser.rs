//! The demo in a real headless Chromium, driven over WebDriver: type 20 in the frequency
//! field, see hashes and then `bursty-` ones once the controller switches, type 5, see
//! them stop. With a policy that warms up and pre-warms, the page shows the ramp's steps
//! and the pre-warm. Screenshots are saved under the test's target temp dir.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burst_testkit::{free_port, loopback, require_binary};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `burst demo` and returns it with the page URL it printed.
fn start_demo(policy: &std::path::Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burst"))
        .args(["demo", "--port", "0", "--policy", policy.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(url) = line.trim().strip_prefix("page") {
                    return (child, url.trim().to_owned());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("burst demo ended before printing the page URL: {e}"),
        }
    }
    panic!("burst demo printed no page URL within 30 s");
}

/// Starts chromedriver on a free port and waits until it accepts connections.
fn start_chromedriver(driver: &PathBuf) -> (Killed, u16) {
    let port = free_port().unwrap();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// The newest `n` hashes shown on the page, newest first.
async fn newest(c: &Client, n: usize) -> Vec<String> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('#hashes li')).slice(0, arguments[0]).map(e => e.textContent);",
            vec![json!(n)],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

async fn text_of(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Polls `check` every 200 ms for at most `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A WebDriver session of a headless `chromium` through the chromedriver on `port`, with
/// its profile under `dir`.
async fn browser(chromium: &std::path::Path, port: u16, dir: &std::path::Path) -> Client {
    let profile = dir.join("chromium-profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()), "--window-size=1200,1400",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap()
}

fn save(name: &str, png: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_bursty_hashes_while_bursting_and_not_after() {
    let chromium = require_binary("chromium", "chromium").unwrap_or_else(|e| panic!("{e}"));
    let driver =
        require_binary("chromedriver", "chromium-driver").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n").unwrap();
    let (_demo, page) = start_demo(&policy);
    let (_driver, port) = start_chromedriver(&driver);
    let c = browser(&chromium, port, dir.path()).await;

    c.goto(&page).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "String Hashr");
    let body = text_of(&c, "frequency-form").await;
    assert!(body.contains("What's the frequency?"), "{body}");
    let input = c.find(Locator::Id("frequency")).await.unwrap();
    assert_eq!(
        input.attr("placeholder").await.unwrap().as_deref(),
        Some("5")
    );
    // Bootstrap comes from the binary: its CSS variables are in effect.
    let css: Value = c
        .execute(
            "return getComputedStyle(document.documentElement).getPropertyValue('--bs-blue').trim();",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(css, json!("#0d6efd"));

    // A refused value shows a message and sends nothing.
    input.send_keys("abc").await.unwrap();
    wait_for("the refusal message", Duration::from_secs(10), || async {
        text_of(&c, "frequency-message")
            .await
            .contains("not a number")
    })
    .await;
    assert!(
        newest(&c, 1).await.is_empty(),
        "a refused frequency must not send load"
    );

    input.clear().await.unwrap();
    input.send_keys("20").await.unwrap();
    wait_for(
        "the frequency to be shared",
        Duration::from_secs(10),
        || async { text_of(&c, "current-frequency").await == "20" },
    )
    .await;
    wait_for("hashes on the page", Duration::from_secs(15), || async {
        newest(&c, 3).await.len() == 3
    })
    .await;
    wait_for(
        "bursty- hashes once the controller switches",
        Duration::from_secs(30),
        || async { newest(&c, 5).await.iter().any(|h| h.starts_with("bursty-")) },
    )
    .await;
    for h in newest(&c, 20).await {
        let hash = h.strip_prefix("bursty-").unwrap_or(&h);
        assert_eq!(hash.len(), 44, "{h}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    save("demo_browser_bursting.png", &c.screenshot().await.unwrap());

    input.clear().await.unwrap();
    input.send_keys("5").await.unwrap();
    wait_for("the new frequency", Duration::from_secs(10), || async {
        text_of(&c, "current-frequency").await == "5"
    })
    .await;
    wait_for(
        "bursty- hashes to stop",
        Duration::from_secs(30),
        || async {
            let top = newest(&c, 5).await;
            top.len() == 5 && top.iter().all(|h| !h.starts_with("bursty-"))
        },
    )
    .await;
    // They stay stopped while hashes keep coming.
    let before = newest(&c, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let top = newest(&c, 10).await;
    assert_ne!(top.first(), before.first(), "no new hashes at 5 rps");
    let fresh: Vec<&String> = top
        .iter()
        .take_while(|h| Some(*h) != before.first())
        .collect();
    assert!(
        fresh.len() >= 5,
        "expected ~15 new hashes in 3 s, got {}",
        fresh.len()
    );
    assert!(
        fresh.iter().all(|h| !h.starts_with("bursty-")),
        "bursty- after coming back: {fresh:?}"
    );
    let share = text_of(&c, "bursty-share").await;
    assert_eq!(share, "0%", "status shows bursty share {share}");
    let shot = save(
        "demo_browser_back_to_primary.png",
        &c.screenshot().await.unwrap(),
    );
    assert!(std::fs::metadata(shot).unwrap().len() > 10_000);
    c.close().await.unwrap();
}

/// The text of element `id`, or `None` while it is hidden.
async fn shown(c: &Client, id: &str) -> Option<String> {
    let e = c.find(Locator::Id(id)).await.unwrap();
    if e.is_displayed().await.unwrap() {
        Some(e.text().await.unwrap())
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_the_warm_up_ramp_and_the_prewarm() {
    let chromium = require_binary("chromium", "chromium").unwrap_or_else(|e| panic!("{e}"));
    let driver =
        require_binary("chromedriver", "chromium-driver").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    // A ramp of four steps 2 s apart; pre-warm looking 30 s ahead, released 5 s after.
    std::fs::write(
        &policy,
        "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n\
         warmup: {ramp: [10, 25, 50, 100], rampOver: 8s}\n\
         prewarm: {lead: 30s, hold: 5s}\n",
    )
    .unwrap();
    let (_demo, page) = start_demo(&policy);
    let (_driver, port) = start_chromedriver(&driver);
    let c = browser(&chromium, port, dir.path()).await;
    c.goto(&page).await.unwrap();

    // Before any load: the controller on primary, not pre-warmed, no ramp.
    wait_for("the controller's line", Duration::from_secs(10), || async {
        shown(&c, "controller")
            .await
            .is_some_and(|t| t.contains("Controller: burst 0%"))
    })
    .await;
    assert_eq!(shown(&c, "warmup").await, None);
    let idle = shown(&c, "prewarm").await.unwrap();
    assert!(idle.starts_with("pre-warm: not prepared"), "{idle}");

    let input = c.find(Locator::Id("frequency")).await.unwrap();
    input.send_keys("20").await.unwrap();
    // The ramp's steps as the page shows them, until all traffic is on burst.
    let mut steps: Vec<String> = Vec::new();
    let mut prepared = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while text_of(&c, "controller-burst").await != "100" {
        assert!(
            Instant::now() < deadline,
            "the page did not reach 100 % burst within 60 s; warm-up lines: {steps:?}"
        );
        if let Some(w) = shown(&c, "warmup").await
            && steps.last() != Some(&w)
        {
            if steps.is_empty() {
                save("demo_browser_warming.png", &c.screenshot().await.unwrap());
            }
            steps.push(w);
        }
        if let Some(p) = shown(&c, "prewarm").await
            && p.starts_with("pre-warm: prepared since")
        {
            prepared.get_or_insert(p);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("warm-up lines: {steps:#?}\npre-warm: {prepared:?}");
    assert!(
        steps.len() >= 2,
        "fewer than two ramp steps shown: {steps:?}"
    );
    for s in &steps {
        assert!(
            s.starts_with("warming: step ")
                && s.contains("/4, ")
                && s.ends_with("% to burst (toward 100 %)"),
            "{s}"
        );
    }
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("warming: step 1/4, 10 % to burst")
                || s.starts_with("warming: step 2/4, 25 % to burst")),
        "no early step shown: {steps:?}"
    );
    let prepared = prepared.expect("the page never showed the burst side prepared");
    assert!(
        prepared.contains("(forecast: crossing") || prepared.contains("(traffic is on burst)"),
        "{prepared}"
    );
    // At 100 % the ramp is over.
    wait_for("the warm-up line to go", Duration::from_secs(5), || async {
        shown(&c, "warmup").await.is_none()
    })
    .await;
    save("demo_browser_prewarmed.png", &c.screenshot().await.unwrap());

    input.clear().await.unwrap();
    input.send_keys("5").await.unwrap();
    // Back to primary, then released `hold` (5 s) later.
    wait_for(
        "the release on the page",
        Duration::from_secs(60),
        || async {
            shown(&c, "prewarm")
                .await
                .is_some_and(|t| t.starts_with("pre-warm: released at"))
        },
    )
    .await;
    assert_eq!(text_of(&c, "controller-burst").await, "0");
    c.close().await.unwrap();
}
