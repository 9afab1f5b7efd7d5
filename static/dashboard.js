// The live dashboard: one snapshot on connect, then one per interval from /ws/dashboard.
// Readable from a phone (420 px) to a desk (1440 px): charts take their box's width, tables
// scroll inside their box, and nothing is wider than the screen. Times are UTC everywhere;
// each provider has one colour on every chart and table; latency is on a log scale, so one
// slow call does not flatten the rest; legends show the latest values without hovering.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const statusLine = document.getElementById("status");
  const palette = ["#8250df", "#9a6700", "#bf3989", "#1b7c83", "#57606a", "#0550ae"];
  const known = { kimi: "#0969da", glm: "#cf222e", local: "#1a7f37" };
  const charts = {};
  let updates = 0;
  // Which range the charts and the per-tool and per-provider tables show: "hour" (per minute)
  // or "day" (per hour). Both come in every snapshot.
  let range = "hour";

  function providerColour(name) {
    if (known[name]) return known[name];
    let hash = 0;
    for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
    return palette[hash % palette.length];
  }

  function size(element) {
    const width = Math.max(240, element.clientWidth);
    return { width: width, height: width < 480 ? 180 : 220 };
  }

  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  const msValue = (u, v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) : v.toFixed(0)) + " ms";
  const usdValue = (u, v) => (v === null || v === undefined ? "–" : "$" + v.toFixed(4));

  // One time chart per id, rebuilt only when its series change; the legend then shows each
  // series' latest value (the last minute with data).
  function timeChart(id, series, data, { log = false, unit = "" } = {}) {
    const element = document.getElementById(id);
    const key = id + ":" + series.map((s) => s.label).join(",") + ":" + element.clientWidth;
    if (!charts[id] || charts[id].key !== key) {
      if (charts[id]) charts[id].plot.destroy();
      const options = {
        ...size(element),
        tzDate: utc,
        series: [{ label: "UTC" }].concat(series.map((s) => ({
          label: s.label, stroke: s.colour, width: 2, spanGaps: true, points: { show: true, size: 4 },
          value: unit === "ms" ? msValue : unit === "$" ? usdValue : undefined,
        }))),
        scales: log ? { y: { distr: 3, log: 10 } } : {},
        axes: [{}, unit === "$" ? { size: 64, values: (u, ticks) => ticks.map((v) => "$" + v.toFixed(4)) } : { size: 56 }],
        legend: { live: true },
        // At rest (no cursor on the chart) the legend shows each series' latest value.
        hooks: { draw: [showLatest], setCursor: [showLatest] },
      };
      charts[id] = { key: key, plot: new uPlot(options, data, element) };
    } else {
      charts[id].plot.setData(data);
    }
  }

  function showLatest(u) {
    if (u.cursor.idx !== null && u.cursor.idx !== undefined && u.cursor.left >= 0) return;  // the user is pointing
    let last = -1;
    u.data[0].forEach((_, i) => { if (u.data.slice(1).some((d) => d[i] !== null && d[i] !== undefined)) last = i; });
    if (last >= 0) u.setLegend({ idx: last }, false);
  }

  function cell(value, className) {
    const td = document.createElement("td");
    if (value instanceof Node) td.appendChild(value);
    else td.textContent = value;
    if (className) td.className = className;
    return td;
  }

  function fill(id, header, rows) {
    const table = document.getElementById(id);
    const head = document.createElement("tr");
    header.forEach((h) => { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    table.replaceChildren(head, ...rows.map((cells) => {
      const row = document.createElement("tr");
      cells.forEach((c) => row.appendChild(c instanceof HTMLElement && c.tagName === "TD" ? c : cell(c)));
      return row;
    }));
  }

  function swatch(name) {
    const span = document.createElement("span");
    const mark = document.createElement("i");
    mark.className = "swatch";
    mark.style.background = providerColour(name);
    span.append(mark, name);
    return span;
  }

  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }
  function ms(value) { return value === null || value === undefined ? "–" : value.toFixed(1); }

  // Per-tool latency as rows with bars on a log scale (10 ms … the slowest p99): every value
  // is written out, and tool names never run together however many there are.
  function toolBars(tools) {
    const top = Math.max(10, ...tools.map((t) => t.latency.total_latency_ms.p99 || 0));
    const scale = (v) => (v > 1 ? Math.log10(v) / Math.log10(top) : 0) * 100;
    const rows = tools.map((t) => {
      const l = t.latency.total_latency_ms;
      const bars = document.createElement("div");
      ["p50", "p95", "p99"].forEach((p) => {
        const bar = document.createElement("div");
        bar.className = "bar " + p;
        bar.style.width = scale(l[p]).toFixed(1) + "%";
        bar.title = p + " " + ms(l[p]) + " ms";
        bars.appendChild(bar);
      });
      return [t.tool, t.count, cell(ms(l.p50), "num"), cell(ms(l.p95), "num"), cell(ms(l.p99), "num"), cell(bars, "bars")];
    });
    fill("tools", ["tool", "calls", "p50", "p95", "p99", "p50 / p95 / p99 (log)"], rows);
  }

  function errorRows(errors) {
    if (!errors.length) return [[cell("nothing new, escalating or regressed", "msg"), "", "", "", ""]];
    return errors.map((e) => {
      const link = document.createElement("a");
      link.href = "/admin/errors_app/errorinvestigation/" + e.id + "/change/";
      link.textContent = e.type;
      return [cell(link), cell(e.message, "msg"), cell(String(e.count), "num"), cell(e.substatus, "sub-" + e.substatus),
        e.last.slice(0, 19).replace("T", " ")];
    });
  }

  function render(s) {
    const day = range === "day";
    const series = day ? s.series_day : s.series;
    document.querySelectorAll("[data-range-label]").forEach((label) => {
      label.textContent = day ? label.dataset.day : label.dataset.hour;
    });
    const minutes = series.minutes;
    timeChart("calls-chart", [{ label: "calls", colour: "#0969da" }, { label: "errors", colour: "#cf222e" }],
      [minutes, series.calls, series.errors]);
    const providers = Object.keys(series.p95_by_provider);
    timeChart("latency-chart",
      providers.length ? providers.map((p) => ({ label: p, colour: providerColour(p) })) : [{ label: "(no provider calls)", colour: "#57606a" }],
      [minutes].concat(providers.length ? providers.map((p) => series.p95_by_provider[p]) : [minutes.map(() => null)]),
      { log: true, unit: "ms" });
    // A log scale has no zero: a minute whose calls never waited shows no point.
    const positive = (values) => values.map((v) => (v > 0 ? v : null));
    timeChart("waits-chart", [{ label: "mean wait", colour: "#1b7c83" }, { label: "longest wait", colour: "#9a6700" }],
      [minutes, positive(series.wait_mean_ms), positive(series.wait_max_ms)], { log: true, unit: "ms" });
    toolBars(day ? s.tools_day : s.tools);
    const spend = s.spend, spenders = Object.keys(spend.cost_by_provider);
    timeChart("spend-chart",
      spenders.length ? spenders.map((p) => ({ label: p, colour: providerColour(p) })) : [{ label: "(nothing spent)", colour: "#57606a" }],
      [spend.days].concat(spenders.length ? spenders.map((p) => spend.cost_by_provider[p]) : [spend.days.map(() => 0)]),
      { unit: "$" });
    const usd = (value) => "$" + value.toFixed(4);
    const cost = (row) => usd(row.cost_usd) + (row.unpriced_calls ? " + " + row.unpriced_calls + " with no price" : "");
    fill("spend-models", ["provider", "model", "calls", "tokens in (cached)", "tokens out", "cost"], spend.models.map((m) =>
      [swatch(m.provider || "(none)"), m.model || "(none)", m.calls, m.tokens_in + " (" + m.cached_tokens + ")", m.tokens_out,
        cell(cost(m), "num")]));
    fill("spend-users", ["user", "calls", "cost"], spend.users.map((u) => [u.user, u.calls, cell(cost(u), "num")]));
    fill("errors", ["error", "message", "times", "state", "last (UTC)"], errorRows(s.errors));
    fill("providers", ["provider", "calls", "errors", "p50 ms", "p95 ms", "p99 ms"], (day ? s.providers_day : s.providers).map((p) =>
      [swatch(p.provider || "(none)"), p.count, (100 * p.error_rate).toFixed(1) + "%", cell(ms(p.latency.total_latency_ms.p50), "num"),
        cell(ms(p.latency.total_latency_ms.p95), "num"), cell(ms(p.latency.total_latency_ms.p99), "num")]));
    const pools = [["global", s.throttle.global]].concat(Object.entries(s.throttle.providers));
    fill("throttle", ["pool", "in use", "waiting", "limit"], pools.map(([name, p]) =>
      [name === "global" ? name : swatch(name), p.in_use, p.waiting, p.limit]));
    fill("circuits", ["provider", "state", "failed"], Object.entries(s.circuits).map(([name, c]) =>
      [swatch(name), cell(c.state, "state-" + c.state), c.failures + "/" + c.calls]));
    const p = s.process;
    fill("process", ["", ""], [["pid", p.pid], ["memory (RSS)", mb(p.rss_bytes)], ["WebSockets open", p.sockets],
      ["calls in flight", p.calls_in_flight], ["frames in / s", p.frames_in_per_s], ["frames out / s", p.frames_out_per_s]]);
    const f = s.files, last = f.last_cleanup;
    fill("files", ["", ""], [["blobs", f.blobs], ["stored", mb(f.bytes)], ["unreferenced", f.unreferenced],
      ["last cleanup (UTC)", last ? last.at.slice(0, 19).replace("T", " ") + " (" + last.status + ")" : "never"],
      ["removed then", last ? last.blobs_removed + " blobs, " + mb(last.bytes_freed) : "–"]]);
    updates += 1;
    statusLine.dataset.updates = String(updates);
    statusLine.textContent = "live · updated " + s.at.slice(11, 19) + " UTC · every " + config.interval_s + " s";
  }

  let latest = null;
  window.addEventListener("resize", () => { if (latest) render(latest); });
  document.querySelectorAll("[data-range]").forEach((button) => {
    button.addEventListener("click", () => {
      range = button.dataset.range;
      document.querySelectorAll("[data-range]").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      if (latest) render(latest);
    });
  });

  function connect(delay) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(scheme + "://" + location.host + "/ws/dashboard");
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.op === "snapshot") { latest = message.snapshot; render(latest); }
      else if (message.op === "error") statusLine.textContent = message.error.message;
    };
    socket.onopen = () => { delay = 500; };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4403) {  // logged out, or no longer staff
        statusLine.textContent = "the feed has ended: " + (event.reason || "log in again") + " (reload the page)";
        return;
      }
      statusLine.textContent = "disconnected; reconnecting…";
      setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
    };
  }
  connect(500);
})();
