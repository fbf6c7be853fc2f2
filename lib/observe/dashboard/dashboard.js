// The metrics dashboard: reads /api/metrics with the key typed in this tab (kept in
// sessionStorage, sent as a Bearer token) and draws it with uPlot. Every value from the server is
// written with textContent, never as HTML.
"use strict";

(function () {
  const KEY = "metrics.apiKey";
  const COLORS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#862e9c", "#e8590c", "#0b7285", "#5c940d", "#c2255c"];
  const $ = (id) => document.getElementById(id);
  const charts = {};

  function status(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  async function metrics(params) {
    const headers = { accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.authorization = "Bearer " + key;
    const response = await fetch("/api/metrics?" + new URLSearchParams(params), { headers, cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error ? body.error.message : "HTTP " + response.status;
      throw new Error(response.status + ": " + message);
    }
    return body;
  }

  const seconds = (starts) => starts.map((iso) => Date.parse(iso) / 1000);
  const fmt = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
  const money = (value) => (value === null || value === undefined ? "–" : "$" + Number(value).toFixed(value < 1 ? 4 : 2));
  const pct = (value) => (value === null || value === undefined ? "–" : (value * 100).toFixed(1) + "%");
  // small figures (costs of a cent) keep their significant digits on an axis
  const axisNumber = (v) => (v === null ? "" : Math.abs(v) >= 1000 || v === 0 ? v.toLocaleString("en-US") : Number(v.toPrecision(3)).toString());
  const count = (value) => Number(value || 0).toLocaleString("en-US");

  function tiles(totals) {
    const items = [
      ["requests", count(totals.requests)],
      ["error rate", pct(totals.error_rate)],
      ["p95 latency", fmt(totals.latency_ms.p95, 0) + " ms"],
      ["p95 time to first token", fmt(totals.ttft_ms.p95, 0) + " ms"],
      ["cost", money(totals.cost_usd)],
      ["cache hit rate", pct(totals.cache_hit_rate)],
      ["tokens in / out", count(totals.tokens.input) + " / " + count(totals.tokens.output)],
      ["retries / fallbacks", count(totals.retries) + " / " + count(totals.fallbacks)],
    ];
    const box = $("tiles");
    box.replaceChildren();
    for (const [label, value] of items) {
      const tile = document.createElement("div");
      tile.className = "tile";
      const b = document.createElement("b");
      b.textContent = value;
      const span = document.createElement("span");
      span.textContent = label;
      tile.append(b, span);
      box.append(tile);
    }
  }

  function draw(id, x, lines, unit) {
    const target = $(id);
    const width = Math.max(300, target.clientWidth || 560);
    const options = {
      width,
      height: 240,
      scales: { x: { time: true } },
      series: [{}].concat(lines.map((line, i) => ({
        label: line.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: x.length < 60 },
        spanGaps: false,
      }))),
      axes: [{}, { label: unit, size: 64, values: (u, splits) => splits.map(axisNumber) }],
      legend: { live: false },
    };
    if (charts[id]) charts[id].destroy();
    target.replaceChildren();
    charts[id] = new uPlot(options, [x].concat(lines.map((line) => line.values)), target);
  }

  function table(id, columns, rows) {
    const el = $(id);
    el.replaceChildren();
    const head = el.createTHead().insertRow();
    for (const [title, , numeric] of columns) {
      const th = document.createElement("th");
      th.textContent = title;
      if (numeric) th.className = "num";
      head.append(th);
    }
    const body = el.createTBody();
    if (!rows.length) {
      const row = body.insertRow();
      row.className = "empty";
      const cell = row.insertCell();
      cell.colSpan = columns.length;
      cell.textContent = "none in this window";
      return;
    }
    for (const item of rows) {
      const row = body.insertRow();
      for (const [, value, numeric, className] of columns) {
        const cell = row.insertCell();
        cell.textContent = value(item);
        if (numeric) cell.className = "num";
        if (className) cell.className = className;
      }
    }
  }

  const requestColumns = [
    ["when", (r) => new Date(r.at).toLocaleString()],
    ["request id", (r) => r.request_id, false, "id"],
    ["function", (r) => r.function],
    ["status", (r) => String(r.status) + (r.error_code ? " " + r.error_code : "")],
    ["latency ms", (r) => fmt(r.latency_ms, 0), true],
    ["models", (r) => r.models.join(", ")],
    ["cost", (r) => money(r.cost_usd), true],
    ["user", (r) => r.user || ""],
  ];

  function render(main, models, users) {
    $("error-bound").textContent = (main.percentile_error * 100).toFixed(1) + "%";
    tiles(main.totals);
    const x = seconds(main.series.start);
    const total = main.series.total;
    draw("chart-requests", x, [
      { label: "requests", values: total.requests },
      { label: "errors", values: total.errors },
    ], "requests");
    draw("chart-latency", x, [
      { label: "p50", values: total.p50_ms },
      { label: "p95", values: total.p95_ms },
      { label: "p99", values: total.p99_ms },
    ], "ms");
    const modelLines = models.groups.map((g) => ({ label: g.group || "(none)", values: models.series.groups[g.group || ""].cost_usd }));
    draw("chart-cost", seconds(models.series.start), modelLines.length ? modelLines : [
      { label: "no model calls", values: models.series.total.cost_usd },
    ], "USD");
    draw("chart-cache", x, [
      { label: "hit rate", values: total.cache_hit_rate.map((v) => (v === null ? null : v * 100)) },
    ], "%");
    table("users", [
      ["user", (g) => g.group || "(no user)"],
      ["requests", (g) => count(g.requests), true],
      ["tokens in / out", (g) => count(g.tokens.input) + " / " + count(g.tokens.output), true],
      ["cost", (g) => money(g.cost_usd), true],
    ], users.groups);
    table("codes", [
      ["error code", (c) => c[0]],
      ["requests", (c) => count(c[1].count), true],
      ["share of all requests", (c) => pct(c[1].rate), true],
    ], Object.entries(main.totals.errors_by_code));
    table("slowest", requestColumns, main.recent.slowest);
    table("failed", requestColumns, main.recent.failed);
  }

  async function load() {
    const windowName = $("window").value;
    status("Loading…");
    try {
      const [main, models, users] = await Promise.all([
        metrics({ window: windowName, by: "function", recent: 20 }),
        metrics({ window: "30d", by: "model", sort: "cost", limit: 8, recent: 0 }),
        metrics({ window: windowName, by: "user", sort: "cost", limit: 10, recent: 0 }),
      ]);
      render(main, models, users);
      status("Updated " + new Date().toLocaleTimeString() + " · " + main.since + " to " + main.until + " (UTC)");
      document.body.dataset.loaded = "true";
    } catch (error) {
      status(error.message, true);
    }
  }

  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("key").value.trim();
    if (typed) sessionStorage.setItem(KEY, typed);
    $("key").value = "";
    load();
  });
  $("window").addEventListener("change", load);
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    status("Key removed from this tab.");
  });
  if (sessionStorage.getItem(KEY)) load();
})();
