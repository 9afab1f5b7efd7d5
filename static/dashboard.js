// The live dashboard: one snapshot on connect, then one per interval from /ws/dashboard.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const statusLine = document.getElementById("status");
  const colours = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#bf3989"];
  const charts = {};
  let updates = 0;

  function size(element) {
    return { width: Math.max(320, element.clientWidth - 8), height: 220 };
  }

  function timeChart(id, seriesNames, data) {
    const element = document.getElementById(id);
    const key = id + ":" + seriesNames.join(",");
    if (charts[id] && charts[id].key === key) {
      charts[id].plot.setData(data);
      return;
    }
    if (charts[id]) charts[id].plot.destroy();
    const series = [{}].concat(seriesNames.map((label, i) => ({
      label: label, stroke: colours[i % colours.length], width: 2, spanGaps: true, points: { show: true, size: 4 },
    })));
    charts[id] = { key: key, plot: new uPlot({ ...size(element), series: series, axes: [{}, {}] }, data, element) };
  }

  function toolChart(tools) {
    const element = document.getElementById("tools-chart");
    const names = tools.map((t) => t.tool);
    const x = names.map((_, i) => i);
    // Nested bars: p99 widest at the back, p50 narrowest in front, so none hides another.
    const parts = ["p99", "p95", "p50"];
    const widths = { p99: 0.6, p95: 0.42, p50: 0.24 };
    const data = [x].concat(parts.map((p) => tools.map((t) => t.latency.total_latency_ms[p])));
    const key = "tools:" + names.join(",");
    if (charts.tools && charts.tools.key === key) {
      charts.tools.plot.setData(data);
      return;
    }
    if (charts.tools) charts.tools.plot.destroy();
    const series = [{}].concat(parts.map((p, i) => ({
      label: p, fill: colours[i] + "cc", stroke: colours[i], paths: uPlot.paths.bars({ size: [widths[p], 80] }), points: { show: false },
    })));
    const options = {
      ...size(element),
      series: series,
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, names.length - 0.5)] } },
      axes: [{ values: (u, splits) => splits.map((v) => names[v] ?? ""), splits: () => x }, {}],
    };
    charts.tools = { key: key, plot: new uPlot(options, data, element) };
  }

  function fill(id, rows) {
    const table = document.getElementById(id);
    table.replaceChildren(...rows.map((cells) => {
      const row = document.createElement("tr");
      cells.forEach((cell) => {
        const td = document.createElement("td");
        if (cell && typeof cell === "object") { td.textContent = cell.text; td.className = cell.className; }
        else td.textContent = cell;
        row.appendChild(td);
      });
      return row;
    }));
  }

  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }
  function ms(value) { return value === null || value === undefined ? "–" : value.toFixed(1); }

  function render(s) {
    const minutes = s.series.minutes;
    timeChart("calls-chart", ["calls", "errors"], [minutes, s.series.calls, s.series.errors]);
    const providers = Object.keys(s.series.p95_by_provider);
    timeChart("latency-chart", providers.length ? providers : ["(no provider calls)"],
      [minutes].concat(providers.length ? providers.map((p) => s.series.p95_by_provider[p]) : [minutes.map(() => null)]));
    toolChart(s.tools);
    fill("providers", [["provider", "calls", "errors", "p50", "p95", "p99"]].concat(s.providers.map((p) =>
      [p.provider || "(none)", p.count, (100 * p.error_rate).toFixed(1) + "%", ms(p.latency.total_latency_ms.p50), ms(p.latency.total_latency_ms.p95), ms(p.latency.total_latency_ms.p99)])));
    const pools = [["global", s.throttle.global]].concat(Object.entries(s.throttle.providers));
    fill("throttle", [["pool", "in use", "waiting", "limit"]].concat(pools.map(([name, p]) => [name, p.in_use, p.waiting, p.limit])));
    fill("circuits", Object.entries(s.circuits).map(([name, c]) => [name, { text: c.state, className: "state-" + c.state }, c.failures + "/" + c.calls + " failed"]));
    const p = s.process;
    fill("process", [["pid", p.pid], ["memory (RSS)", mb(p.rss_bytes)], ["WebSockets open", p.sockets], ["calls in flight", p.calls_in_flight],
      ["frames in / s", p.frames_in_per_s], ["frames out / s", p.frames_out_per_s]]);
    const f = s.files, last = f.last_cleanup;
    fill("files", [["blobs", f.blobs], ["stored", mb(f.bytes)], ["unreferenced", f.unreferenced],
      ["last cleanup", last ? last.at.slice(0, 19).replace("T", " ") + " (" + last.status + ")" : "never"],
      ["removed then", last ? last.blobs_removed + " blobs, " + mb(last.bytes_freed) : "–"]]);
    updates += 1;
    statusLine.dataset.updates = String(updates);
    statusLine.textContent = "live · updated " + s.at.slice(11, 19) + " UTC · every " + config.interval_s + " s";
  }

  function connect(delay) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(scheme + "://" + location.host + "/ws/dashboard");
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.op === "snapshot") render(message.snapshot);
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
