// String Hashr page: live hashes and status over Server-Sent Events, frequency over POST.
(function () {
  "use strict";
  var MAX_ITEMS = 50, MAX_POINTS = 120;
  var list = document.getElementById("hashes");
  var input = document.getElementById("frequency");
  var message = document.getElementById("frequency-message");
  var canvas = document.getElementById("chart");
  var points = [];
  var lastStatus = null;

  function text(id, v) { document.getElementById(id).textContent = v; }

  function addHash(h) {
    var li = document.createElement("li");
    li.className = "list-group-item" + (h.indexOf("bursty-") === 0 ? " bursty" : "");
    li.textContent = h;
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_ITEMS) { list.removeChild(list.lastChild); }
  }

  function fmt(x) { return (Math.round(x * 10) / 10).toString(); }

  function showStatus(s) {
    lastStatus = s;
    text("current-frequency", fmt(s.frequency));
    text("sent-rate", fmt(s.sent_per_sec));
    text("received-rate", fmt(s.received_per_sec));
    text("bursty-share", s.bursty_share === null ? "–" : Math.round(s.bursty_share * 100) + "%");
    text("errors", s.load.failed);
    text("skipped", s.load.skipped);
    text("in-flight", s.load.in_flight);
    text("subscription", s.subscription);
    text("dropped", s.dropped_total);
    var kinds = Object.keys(s.load.errors);
    text("error-detail", kinds.length ? "errors by kind: " + kinds.map(function (k) { return k + " " + s.load.errors[k]; }).join(", ") : "");
    showController(s.controller);
  }

  // The controller steering the traffic, when the server runs one next to the page (burst demo).
  function showController(c) {
    var box = document.getElementById("controller");
    box.hidden = !c;
    if (!c) { return; }
    text("controller-burst", c.burst_weight);
    text("controller-rule", c.rule || "–");
    text("controller-reason", c.reason || "");
    var w = c.warmup, warmup = document.getElementById("warmup");
    warmup.hidden = !w;
    if (w) {
      warmup.textContent = "warming: step " + w.step + "/" + w.steps + ", " + c.burst_weight + " % to burst" +
        (w.toward === null ? "" : " (toward " + w.toward + " %)");
    }
    var p = c.prewarm, prewarm = document.getElementById("prewarm");
    prewarm.hidden = !p;
    if (p) {
      var since = p.since_s === null ? "" : " " + fmt(p.since_s) + " s";
      var line = p.prepared ? "pre-warm: prepared since" + since + (p.reason ? " (" + p.reason + ")" : "")
        : (p.since_s === null ? "pre-warm: not prepared" : "pre-warm: released at" + since);
      prewarm.textContent = line + (p.forecast ? " · forecast: " + p.forecast : "");
    }
  }

  function draw() {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, pad = 30;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#dee2e6"; ctx.lineWidth = 1;
    ctx.strokeRect(pad, 5, w - 2 * pad, h - pad);
    var maxRate = 1;
    points.forEach(function (p) { maxRate = Math.max(maxRate, p.sent_per_sec); });
    if (lastStatus) { maxRate = Math.max(maxRate, lastStatus.frequency); }
    maxRate = Math.ceil(maxRate * 1.1);
    ctx.fillStyle = "#6c757d"; ctx.font = "11px sans-serif";
    ctx.fillText(maxRate + "/s", 0, 14); ctx.fillText("0", 18, h - pad + 4);
    ctx.fillText("100%", w - pad + 2, 14); ctx.fillText("0%", w - pad + 2, h - pad + 4);
    function line(key, scale, color) {
      ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
      var started = false;
      points.forEach(function (p, i) {
        var v = p[key];
        if (v === null || v === undefined) { started = false; return; }
        var x = pad + (w - 2 * pad) * (i + MAX_POINTS - points.length) / (MAX_POINTS - 1);
        var y = 5 + (h - pad - 5) * (1 - Math.min(v / scale, 1));
        if (started) { ctx.lineTo(x, y); } else { ctx.moveTo(x, y); started = true; }
      });
      ctx.stroke();
    }
    line("sent_per_sec", maxRate, "#0d6efd");
    line("bursty_share", 1, "#fd7e14");
  }

  function addPoint(p) {
    points.push({ sent_per_sec: p.sent_per_sec, bursty_share: p.bursty_share });
    while (points.length > MAX_POINTS) { points.shift(); }
  }

  var events = new EventSource("/events");
  events.addEventListener("hello", function (e) {
    var d = JSON.parse(e.data);
    list.innerHTML = "";
    d.history.slice().reverse().forEach(addHash);
    points = [];
    d.series.forEach(addPoint);
    showStatus(d.status);
    draw();
  });
  events.addEventListener("hashes", function (e) { JSON.parse(e.data).forEach(addHash); });
  events.addEventListener("status", function (e) {
    var s = JSON.parse(e.data);
    showStatus(s); addPoint(s); draw();
  });

  function send() {
    var value = input.value;
    fetch("/api/frequency", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ frequency: value })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (r) {
      if (r.ok) {
        message.className = "form-text text-success";
        message.textContent = r.body.frequency === 0 ? "Stopped." : "Sending " + r.body.frequency + " requests per second.";
      } else {
        message.className = "form-text text-danger";
        message.textContent = r.body.error;
      }
    }).catch(function (err) {
      message.className = "form-text text-danger";
      message.textContent = "cannot reach the server: " + err;
    });
  }

  var timer = null;
  input.addEventListener("input", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(function () { timer = null; send(); }, 400);
  });
  document.getElementById("frequency-form").addEventListener("submit", function (e) {
    e.preventDefault();
    if (timer) { clearTimeout(timer); timer = null; }
    send();
  });
  draw();
})();
