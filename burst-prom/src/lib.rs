//! Prometheus metric sources for burst: the HTTP query API and direct /metrics scraping.
