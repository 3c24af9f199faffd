-- wrk script: POST {"str": ...} as JSON (the String Hashr worker's request), and print a
-- machine-readable summary line at the end.
-- Optional pacing: WRK_DELAY_MS=10 makes each connection wait 10 ms between requests, so
-- -c N gives about N * 1000 / 10 requests/s (an open-ish, fixed-rate load as wrk2 does).
wrk.method = "POST"
wrk.body = '{"str":"the quick brown fox jumps over the lazy dog"}'
wrk.headers["Content-Type"] = "application/json"

local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")

if pause > 0 then
  delay = function()
    return pause
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
