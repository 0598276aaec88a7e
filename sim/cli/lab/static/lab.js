// clustersim lab: the pages' behaviour. Every number drawn here comes from the JSON API, which
// runs the clustersim CLI's own commands; this file only reads controls, calls, and draws.
"use strict";

// Greyscale-readable series: dark-to-light with distinct dashes and markers.
const STYLE = [
  { color: "#1b3a6b", dash: "solid", symbol: "circle" },
  { color: "#c2571a", dash: "dash", symbol: "square" },
  { color: "#6a9fd8", dash: "dot", symbol: "diamond" },
  { color: "#444444", dash: "dashdot", symbol: "triangle-up" },
  { color: "#e6a94f", dash: "longdash", symbol: "x" },
  { color: "#8c8c8c", dash: "longdashdot", symbol: "star" },
];
const GIB = 2 ** 30;

// ---- small helpers ----------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
const fmt = (x, d = 3) => (x === null || x === undefined) ? "–"
  : Number(x).toLocaleString("en-US", { maximumSignificantDigits: d });
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }
function debounce(fn, ms) { let t; return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); }; }
function line(i, extra = {}) {
  const s = STYLE[i % STYLE.length];
  return { mode: "lines+markers", line: { color: s.color, dash: s.dash, width: 2.5 },
           marker: { color: s.color, symbol: s.symbol, size: 8 }, ...extra };
}
function bar(i, extra = {}) {
  const s = STYLE[i % STYLE.length];
  const patterns = ["", "/", ".", "x", "\\", "+"];
  return { type: "bar", marker: { color: s.color,
           pattern: { shape: patterns[i % patterns.length], bgcolor: s.color, fgcolor: "#fff", fillmode: "replace" },
           line: { color: "#000", width: 1 } }, ...extra };
}
function layout(title, xtitle, ytitle, extra = {}) {
  return { title: { text: title, font: { size: 14 }, x: 0.01, xanchor: "left" },
           margin: { l: 70, r: 20, t: 36, b: 110 },
           xaxis: { title: { text: xtitle } }, yaxis: { title: { text: ytitle } },
           legend: { orientation: "h", x: 0, y: -0.24, yanchor: "top" }, font: { size: 13, color: "#111" },
           hovermode: "closest", ...extra };
}
// legend inside the top-left corner (where rising curves leave room), for line charts
const INSIDE = { legend: { x: 0.01, y: 0.99, xanchor: "left", yanchor: "top", bgcolor: "rgba(255,255,255,0.85)",
                           bordercolor: "#999", borderwidth: 1 }, margin: { l: 70, r: 20, t: 36, b: 60 } };
function draw(id, traces, lay) {
  const el = document.getElementById(id);
  if (el && window.Plotly) Plotly.react(el, traces, lay, { responsive: true, displayModeBar: false });
}
function table(rows, cols) {
  const head = cols.map(c => `<th scope="col">${esc(c[1])}</th>`).join("");
  const body = rows.map(r => "<tr>" + cols.map(c => {
    const v = typeof c[0] === "function" ? c[0](r) : r[c[0]];
    return `<td data-key="${esc(typeof c[0] === "string" ? c[0] : c[1])}">${esc(v)}</td>`;
  }).join("") + "</tr>").join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
function setStatus(text) {
  const s = $("#status");
  if (!s) return;
  s.textContent = text;
  s.classList.toggle("error", text.startsWith("Error"));  // the charts still show the last valid setup
}

// ---- controls -> JSON options --------------------------------------------------------------
function controlValue(el) {
  if (el.type === "checkbox") return el.checked;
  if (el.dataset.values) {
    const v = el.dataset.values.split(",")[Number(el.value)];
    if (el.dataset.contexts) {  // a doubling list of contexts up to the chosen one
      const out = []; for (let c = Number(el.dataset.contexts); c <= Number(v); c *= 2) out.push(c);
      return out.join(",");
    }
    return Number(v);
  }
  if (el.type === "range" || el.type === "number") return Number(el.value);
  return el.value;
}
function readForm(form) {
  const opts = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    const v = controlValue(el);
    if (v === "" || v === null) continue;
    opts[el.name] = v;
  }
  for (const out of form.querySelectorAll("output[data-for]")) {
    const el = form.elements[out.dataset.for];
    let v = controlValue(el);
    if (el.dataset.contexts) v = Number(String(v).split(",").pop()).toLocaleString() + " tokens";
    out.textContent = typeof v === "number" ? v.toLocaleString() : v;
  }
  return opts;
}

// ---- API calls with a client cache and cancellation of stale requests ------------------------
const cache = new Map();
let inflight = null;
async function post(url, body) {
  const key = url + JSON.stringify(body);
  if (cache.has(key)) return cache.get(key);
  if (inflight) inflight.abort();
  inflight = new AbortController();
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify(body), signal: inflight.signal });
  const doc = await res.json();
  const out = { ok: res.ok, doc, command: res.headers.get("X-Clustersim-Command") };
  if (res.ok) cache.set(key, out);
  return out;
}

// ---- explorers ---------------------------------------------------------------------------
const EXPLORERS = {};

EXPLORERS.attention = {
  url: "/api/explore/attention",
  render(doc) {
    const names = Object.keys(doc.series);
    draw("chart-flops", names.map((n, i) => ({ ...line(i), name: n,
      x: doc.series[n].map(p => p.context), y: doc.series[n].map(p => p.attention_forward_flop / 1e12),
      hovertemplate: "%{x} tokens: %{y:.4g} TFLOP<extra>" + n + "</extra>" })),
      layout("Attention FLOPs vs context", "", "",
             { ...INSIDE, xaxis: { type: "log", title: { text: "context (tokens, log scale)" } },
               yaxis: { type: "log", title: { text: "forward TFLOP per sequence (log)" } } }));
    const full = doc.series.full, x = full.map(p => p.context);
    const logx = { type: "log", title: { text: "context (tokens, log scale)" } };
    draw("chart-flash-flops", [
      { ...line(0), name: "flash attention", x, y: full.map(p => p.attention_train_flop_flash / 1e12) },
      { ...line(1), name: "standard attention", x, y: full.map(p => p.attention_train_flop_standard / 1e12) },
    ], layout("Full attention, training: FLOPs", "", "", { ...INSIDE, xaxis: logx,
      yaxis: { type: "log", title: { text: "TFLOP per sequence, fwd+bwd (log)" } } }));
    draw("chart-flash-memory", [
      { ...line(0), name: "flash attention", x, y: full.map(p => p.activation_bytes_per_layer_flash / GIB) },
      { ...line(1), name: "standard attention", x, y: full.map(p => p.activation_bytes_per_layer_standard / GIB) },
    ], layout("Full attention, training: memory", "", "", { ...INSIDE, xaxis: logx,
      yaxis: { type: "log", title: { text: "activations kept (GiB per layer, log)" } } }));
    const rows = names.flatMap(n => doc.series[n].map(p => ({ variant: n, ...p })));
    $("#numbers").innerHTML = table(rows, [["variant", "variant"], ["context", "context (tokens)"],
      [r => fmt(r.attention_forward_flop / 1e12, 4), "attention fwd TFLOP/seq"],
      [r => fmt(r.forward_flop_per_token / 1e9, 4), "forward GFLOP/token"],
      [r => fmt(100 * r.attention_share, 3), "attention share (%)"],
      [r => fmt(r.activation_bytes_per_layer_flash / GIB, 4), "GiB/layer flash"],
      [r => fmt(r.activation_bytes_per_layer_standard / GIB, 4), "GiB/layer standard"]]);
  },
};

EXPLORERS.kv = {
  url: "/api/explore/kv",
  render(doc) {
    const names = Object.keys(doc.series), x = doc.contexts;
    const free = doc.series[names[0]].free_bytes_per_gpu / GIB;
    const traces = names.map((n, i) => ({ ...line(i), name: n, x,
      y: doc.series[n].points.map(p => p.kv_bytes_per_gpu / GIB),
      hovertemplate: "%{x} tokens: %{y:.4g} GiB<extra>" + n + "</extra>" }));
    traces.push({ mode: "lines", name: "free HBM per GPU", x: [x[0], x[x.length - 1]],
      y: [doc.series[names[1]].free_bytes_per_gpu / GIB, doc.series[names[1]].free_bytes_per_gpu / GIB],
      line: { color: "#000", dash: "dash", width: 1.5 } });
    draw("chart-kv", traces, layout(`KV cache per GPU, batch ${doc.batch}`, "context (tokens, log scale)", "KV cache per GPU (GiB, log)",
      { ...INSIDE, legend: { ...INSIDE.legend, x: 0.99, xanchor: "right", y: 0.01, yanchor: "bottom" },
        xaxis: { type: "log", title: { text: "context (tokens, log scale)" } }, yaxis: { type: "log", title: { text: "KV cache per GPU (GiB, log)" } } }));
    draw("chart-fit", names.map((n, i) => ({ ...bar(i), name: n, x: x.map(String),
      y: doc.series[n].points.map(p => p.max_sequences) })),
      layout("Sequences that fit in free HBM", "context (tokens)", "sequences (log)",
        { xaxis: { type: "category", title: { text: "context (tokens)" } }, yaxis: { type: "log", title: { text: "sequences (log)" } }, barmode: "group" }));
    const rows = names.flatMap(n => doc.series[n].points.map(p => ({ variant: n, ...p })));
    $("#numbers").innerHTML = `<p>Free HBM per GPU after weights: ${fmt(free, 4)} GiB (${names[0]}).</p>` +
      table(rows, [["variant", "variant"], ["context", "context (tokens)"],
        [r => fmt(r.kv_bytes / GIB, 4), "KV GiB (replica)"], [r => fmt(r.kv_bytes_per_gpu / GIB, 4), "KV GiB per GPU"],
        ["max_sequences", "sequences that fit"]]);
  },
};

EXPLORERS.moe = {
  url: "/api/explore/moe",
  render(doc) {
    const v = doc.rows.map(r => r.variant.replace(", ", "<br>"));
    draw("chart-params", [
      { ...bar(0), name: "total parameters", x: v, y: doc.rows.map(r => r.params_total / 1e9) },
      { ...bar(1), name: "active parameters per token", x: v, y: doc.rows.map(r => r.params_active / 1e9) },
    ], layout("Parameters: total vs active", "", "parameters (billions)", { barmode: "group" }));
    draw("chart-flops", [{ ...bar(2), name: "forward GFLOP per token", x: v, y: doc.rows.map(r => r.forward_flop_per_token / 1e9),
      hovertemplate: "%{x}: %{y:.4g} GFLOP/token<extra></extra>" }],
      layout(`Work per token (context ${doc.context})`, "", "forward GFLOP per token"));
    draw("chart-speed", [{ ...bar(3), name: "decode tokens/s", x: v, y: doc.rows.map(r => r.decode_tokens_per_s),
      hovertemplate: "%{x}: %{y:.4g} tokens/s<extra></extra>" }],
      layout(`Decode speed (batch ${doc.batch}, TP ${doc.tp})`, "", "decode throughput (tokens/s)"));
    const rt = doc.routing, idx = rt.expert_loads.map((_, i) => i);
    const loads = [{ ...bar(0), name: "token slots routed", x: idx, y: rt.expert_loads }];
    if (rt.capacity) loads.push({ mode: "lines", name: "capacity", x: [0, idx.length - 1], y: [rt.capacity, rt.capacity], line: { color: "#000", dash: "dash" } });
    draw("chart-loads", loads, layout(`Routing ${rt.tokens} tokens: busiest expert ${fmt(rt.busiest_expert_over_mean)}x the mean, ${fmt(100 * rt.dropped_fraction)}% dropped`,
      "expert index", "token slots (tokens x top-k)"));
    $("#numbers").innerHTML = table(doc.rows, [["variant", "model"],
      [r => fmt(r.params_total / 1e9, 4), "total params (B)"], [r => fmt(r.params_active / 1e9, 4), "active params (B)"],
      [r => fmt(r.forward_flop_per_token / 1e9, 4), "fwd GFLOP/token"], [r => fmt(r.weight_bytes / GIB, 4), "weights (GiB, bf16)"],
      [r => fmt(r.decode_step_s * 1e3, 4), "decode step (ms)"], [r => fmt(r.decode_tokens_per_s, 4), "decode tokens/s"]]);
  },
};

const MEMORY_PARTS = ["weights", "gradients", "optimizer", "activations", "other"];
EXPLORERS.parallel = {
  url: "/api/train",
  render(doc) {
    const mem = doc.memory_breakdown_bytes, t = doc.time_breakdown_s;
    const parts = MEMORY_PARTS.filter(k => k in mem).concat(Object.keys(mem).filter(k => !MEMORY_PARTS.includes(k)));
    const hbm = doc.memory_capacity_bytes || null;
    const traces = parts.map((k, i) => ({ ...bar(i), name: k, x: ["per GPU"], y: [mem[k] / GIB],
      hovertemplate: k + ": %{y:.4g} GiB<extra></extra>" }));
    const lay = layout(`Memory per GPU: ${fmt(doc.memory_per_gpu_bytes / GIB, 4)} of ${fmt(hbm / GIB, 3)} GiB ${doc.fits ? "(fits)" : "(DOES NOT FIT)"}`, "", "GiB per GPU", { barmode: "stack" });
    if (hbm) {
      lay.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: hbm / GIB, y1: hbm / GIB, line: { dash: "dash", color: "#000", width: 2 } }];
      lay.annotations = [{ xref: "paper", x: 1, y: hbm / GIB, xanchor: "right", yanchor: "bottom", showarrow: false, text: `HBM ${fmt(hbm / GIB, 3)} GiB` }];
      lay.yaxis = { title: { text: "GiB per GPU" }, range: [0, 1.08 * Math.max(hbm, doc.memory_per_gpu_bytes) / GIB] };
    }
    draw("chart-memory", traces, lay);
    const tparts = [["compute", "compute"], ["communication_exposed", "exposed communication"], ["pipeline_bubble", "pipeline bubble"]];
    draw("chart-time", tparts.map(([k, label], i) => ({ ...bar(i), name: label, x: ["step"], y: [t[k] * 1e3],
      hovertemplate: label + ": %{y:.4g} ms<extra></extra>" })),
      layout(`Step time ${fmt(doc.step_time_s * 1e3, 4)} ms` + (doc.step_time_s_low ? ` (band ${fmt(doc.step_time_s_low * 1e3, 3)}–${fmt(doc.step_time_s_high * 1e3, 3)})` : "") +
        ` · MFU ${fmt(100 * doc.mfu, 3)}% · ${doc.bottleneck}-bound`, "", "time (ms)", { barmode: "stack" }));
    const rows = [["step time (ms)", doc.step_time_s * 1e3], ["tokens/s", doc.tokens_per_s], ["MFU (%)", 100 * doc.mfu],
      ["memory per GPU (GiB)", doc.memory_per_gpu_bytes / GIB], ["fits", doc.fits], ["bottleneck", doc.bottleneck]]
      .concat(parts.map(k => [`  ${k} (GiB)`, mem[k] / GIB])).concat(tparts.map(([k, l]) => [`  ${l} (ms)`, t[k] * 1e3]));
    $("#numbers").innerHTML = table(rows.map(([k, v]) => ({ k, v: typeof v === "number" ? fmt(v, 5) : String(v) })), [["k", "quantity"], ["v", "value"]]);
  },
};

EXPLORERS.serving = { url: null, job: "serve", render: renderServing };

function renderServing(out) {
  const doc = out.result, kinds = [["mean", "mean"], ["p50", "p50"], ["p90", "p90"], ["p99", "p99"]];
  draw("chart-latency", ["ttft_s", "tpot_s"].map((m, i) => ({ ...bar(i), name: m === "ttft_s" ? "time to first token" : "time per output token",
    x: kinds.map(k => k[1]), y: kinds.map(k => doc[m][k[0]] === null ? null : doc[m][k[0]] * 1e3) })),
    layout(`${doc.config.policy}: ${fmt(doc.throughput_tokens_per_s, 4)} output tok/s${doc.saturated ? " · SATURATED" : ""}`, "statistic", "latency (ms, log)",
      { barmode: "group", yaxis: { type: "log", title: { text: "latency (ms, log)" } } }));
  const tl = out.timeline;
  draw("chart-overtime", [
    { ...line(0, { mode: "lines" }), name: "KV cache used (%)", x: tl.t_s, y: tl.kv_utilization.map(v => 100 * v) },
    { ...line(1, { mode: "lines" }), name: "sequences in batch", x: tl.t_s, y: tl.batch, yaxis: "y2" },
  ], layout("Over the run", "simulated time (s)", "KV cache used (%)",
    { yaxis: { rangemode: "tozero", title: { text: "KV cache used (%)" } },
      yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", tickmode: "auto", showgrid: false, title: { text: "sequences in batch" } },
      margin: { l: 70, r: 70, t: 36, b: 110 } }));
  const rows = ["ttft_s", "tpot_s", "e2e_s"].flatMap(m => kinds.map(k => ({ metric: m, stat: k[0], ms: doc[m][k[0]] === null ? "–" : fmt(doc[m][k[0]] * 1e3, 5) })));
  $("#numbers").innerHTML = `<p>${doc.requests_completed} completed, ${doc.requests_rejected} rejected; ` +
    `throughput ${fmt(doc.throughput_tokens_per_s, 5)} output tok/s; saturated: ${doc.saturated}` +
    (doc.speculative ? `; speculative decoding: ${fmt(doc.speculative.tokens_per_verification, 4)} tokens per verification (K=${doc.speculative.k})` : "") + ".</p>" + table(rows, [["metric", "metric"], ["stat", "statistic"], ["ms", "milliseconds"]]);
}

function renderTimeline(out) {
  const tl = out.timeline, kinds = [...new Set(tl.ops.map(o => o[3]))].sort();
  draw("chart-timeline", kinds.map((k, i) => {
    const ops = tl.ops.filter(o => o[3] === k);
    return { ...bar(i), orientation: "h", name: k, y: ops.map(o => tl.lanes[o[0]]), x: ops.map(o => o[2]),
             base: ops.map(o => o[1]), customdata: ops.map(o => o[5] > 1 ? `${o[4]} + ${o[5] - 1} more` : o[4]),
             hovertemplate: "%{customdata}<br>from %{base:.4g} ms for %{x:.4g} ms<extra>" + k + "</extra>" };
  }), layout(`DES step ${fmt(out.result.step_time_s * 1e3, 4)} ms (analytic ${fmt(out.result.analytic_step_time_s * 1e3, 4)} ms)` +
    (tl.shown_ms < tl.span_ms ? ` · first ${fmt(tl.shown_ms, 3)} ms drawn` : ""),
    "simulated time (ms)", "GPU and stream", { barmode: "overlay",
      yaxis: { autorange: "reversed", categoryorder: "array", categoryarray: tl.lanes, title: { text: "GPU and stream" } },
      margin: { l: 150, r: 20, t: 36, b: 110 } }));
}

// ---- cancellable jobs ---------------------------------------------------------------------
let currentJob = null;
async function runJob(command, options, onDone) {
  if (currentJob) await cancelJob();
  const res = await fetch("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify({ command, options }) });
  const job = await res.json();
  if (!res.ok) { $("#job-status").textContent = "Error: " + job.error; return; }
  currentJob = job.id;
  $("#command").textContent = job.command;
  const prog = $("#progress"), cancel = $("#cancel");
  prog.hidden = false; cancel.hidden = false; prog.removeAttribute("value");
  while (currentJob === job.id) {
    await new Promise(r => setTimeout(r, 300));
    const st = await (await fetch(`/api/jobs/${job.id}`)).json();
    if (currentJob !== job.id) return;
    if (st.progress !== null && st.progress !== undefined) prog.value = st.progress;
    $("#job-status").textContent = `${st.state}, ${st.elapsed_s.toFixed(1)} s`;
    if (st.state === "running") continue;
    prog.hidden = true; cancel.hidden = true; currentJob = null;
    if (st.state === "done") { onDone(st); $("#job-status").textContent = `done in ${st.elapsed_s.toFixed(1)} s`; }
    else $("#job-status").textContent = st.state + (st.error ? ": " + st.error : "");
  }
}
async function cancelJob() {
  const id = currentJob; currentJob = null;
  if (!id) return;
  await fetch(`/api/jobs/${id}`, { method: "DELETE" });
  $("#progress").hidden = true; $("#cancel").hidden = true;
  $("#job-status").textContent = "cancelled";
}

// ---- explorer page wiring -----------------------------------------------------------------
function servingOptions(opts) {
  const o = { ...opts };
  if (!o.draft_model) { delete o.draft_model; delete o.speculative_tokens; delete o.acceptance_rate; }
  return o;
}
async function updateExplorer(form, ex) {
  const opts = readForm(form);
  if (ex.job) return;
  const t0 = performance.now();
  setStatus("Computing…");
  try {
    const out = await post(ex.url, opts);
    if (!out.ok) { setStatus("Error: " + out.doc.error + " (charts show the last valid setup)"); return; }
    ex.render(out.doc);
    $("#command").textContent = out.command;
    form.dataset.updated = String(Number(form.dataset.updated || 0) + 1);
    setStatus(`Updated in ${Math.round(performance.now() - t0)} ms.`);
  } catch (e) { if (e.name !== "AbortError") setStatus("Error: " + e.message); }
}
function initExplorer(form) {
  const ex = EXPLORERS[form.dataset.explorer];
  const update = debounce(() => updateExplorer(form, ex), 120);
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  $("#cancel")?.addEventListener("click", cancelJob);
  if (form.dataset.explorer === "parallel") {
    $("#run-des").addEventListener("click", () => runJob("train", { ...readForm(form), engine: "des" }, renderTimeline));
  }
  if (ex.job) {
    const go = () => runJob("serve", servingOptions(readForm(form)), renderServing);
    $("#run-serve").addEventListener("click", go);
    form.addEventListener("change", debounce(go, 400));
    readForm(form); setStatus("Pick a setup and press Simulate (runs in the background; cancel any time).");
    go();
    return;
  }
  updateExplorer(form, ex);
}

// ---- exercises ---------------------------------------------------------------------------
const STORE = "clustersim-lab";
const MISCONCEPTIONS = (() => { try { return JSON.parse($("#misconceptions").textContent); } catch { return {}; } })();
function loadState() { try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch { return {}; } }
function saveState(s) { localStorage.setItem(STORE, JSON.stringify(s)); }
function state() {
  const s = loadState();
  if (!Number.isInteger(s.seed)) { s.seed = Math.floor(Math.random() * 10000); saveState(s); }
  s.progress = s.progress || {};
  return s;
}
function progressSummary(list) {
  const p = state().progress;
  const done = list.filter(x => p[x.id] && p[x.id].correct).length;
  $("#progress-summary").textContent = `${done} of ${list.length} solved.`;
}
function renderList(list, active) {
  const p = state().progress;
  $("#ex-list").innerHTML = list.map(x => {
    const st = p[x.id], mark = st ? (st.correct ? "✓ solved" : `${st.attempts} tried`) : "";
    return `<li><a href="#${esc(x.id)}" ${x.id === active ? 'aria-current="true"' : ""} data-id="${esc(x.id)}">` +
      `${esc(x.id)}</a> <span class="mark" data-progress="${esc(x.id)}">${esc(mark)}</span><br><small>${esc(x.topic)}</small></li>`;
  }).join("");
  progressSummary(list);
}
function givensHtml(doc) {
  const g = doc.givens || {};
  const keys = Object.keys(g);
  if (!keys.length) return "";
  return "<h3>Givens</h3><dl class=\"givens\">" + keys.map(k => {
    const v = g[k]; const text = (v && typeof v === "object") ? (v.value !== undefined ? `${v.value} ${v.unit || ""}` : JSON.stringify(v)) : v;
    return `<dt>${esc(k)}</dt><dd>${esc(text)}</dd>`;
  }).join("") + "</dl>";
}
async function showExercise(id, list) {
  const s = state();
  renderList(list, id);
  const box = $("#exercise");
  box.innerHTML = "<p>Loading…</p>";
  const res = await fetch(`/api/exercises/${encodeURIComponent(id)}?seed=${s.seed}`);
  const doc = await res.json();
  if (!res.ok) { box.innerHTML = `<p class="error">${esc(doc.error)}</p>`; return; }
  const hints = doc.hints || [];
  const levels = Number.isInteger(doc.hint_levels) ? doc.hint_levels : hints.length;
  box.innerHTML = `<h2>${esc(doc.id)}</h2><p class="meta">${esc(doc.lesson)} · ${esc(doc.topic)} · seed ${s.seed}</p>
    <p class="prompt" id="prompt">${esc(doc.prompt)}</p>${givensHtml(doc)}
    <form id="answer-form" class="answer"><label>Your answer (${esc(doc.unit)}, within ${Math.round(100 * doc.tolerance)}%)
      <input id="answer" name="answer" type="text" inputmode="decimal" autocomplete="off" required></label>
      <button type="submit">Check</button></form>
    <div class="hints"><button type="button" id="hint-btn" ${levels ? "" : "hidden"}>Show a hint (1 of ${levels})</button><ol id="hints"></ol></div>
    <div id="verdict" role="status" aria-live="polite"></div>
    <figure id="ex-chart-fig" hidden><div id="ex-chart" class="chart"></div><figcaption>What the simulator's answer is made of.</figcaption></figure>
    <div id="solution"></div><p class="cli" id="ex-cli" hidden>Same check on the command line: <code id="ex-command" tabindex="0"></code></p>`;
  let shown = 0;
  $("#hint-btn").addEventListener("click", async () => {
    if (shown >= levels) return;
    const text = await hintText(doc, s.seed, shown + 1, hints);
    $("#hints").insertAdjacentHTML("beforeend", `<li>${esc(text)}</li>`);
    shown += 1;
    const b = $("#hint-btn");
    if (shown >= levels) b.hidden = true; else b.textContent = `Show a hint (${shown + 1} of ${levels})`;
  });
  $("#answer-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    await checkAnswer(doc, $("#answer").value, list);
  });
}
async function hintText(doc, seed, level, hints) {
  if (!Number.isInteger(doc.hint_levels)) return hints[level - 1];
  const res = await fetch(`/api/exercises/${encodeURIComponent(doc.id)}/hint?seed=${seed}&level=${level}`);
  const out = await res.json();
  return res.ok ? out.hint : (hints[level - 1] || out.error);
}
async function solution(id, seed) {
  const res = await fetch(`/api/exercises/${encodeURIComponent(id)}/solution?seed=${seed}`);
  return res.ok ? res.json() : {};
}
function solutionHtml(out, show) {
  const steps = out.solution_steps || show.solution_steps;
  let html = "<h3>Worked solution</h3>";
  if (Array.isArray(steps) && steps.length) {
    html += "<ol class=\"steps\">" + steps.map(st => `<li>${esc(typeof st === "string" ? st : (st.text || st.step || JSON.stringify(st)))}</li>`).join("") + "</ol>";
  }
  if (typeof out.solution === "number") html += `<p>By hand from the givens: <strong>${fmt(out.solution, 4)} ${esc(out.unit)}</strong>.</p>`;
  html += `<p>The simulator's answer is <strong>${fmt(out.expected, 4)} ${esc(out.unit)}</strong>. ${esc(out.breakdown.bound)}.</p>`;
  if (out.simulator_adds) html += `<p>What the simulator adds: ${esc(out.simulator_adds)}</p>`;
  return html;
}
// SI unit of a breakdown -> (divisor, unit drawn)
const DISPLAY = { bytes: [GIB, "GiB"], s: [1e-3, "ms"], FLOP: [1e12, "TFLOP"], "FLOP/token": [1e9, "GFLOP/token"] };
async function checkAnswer(show, answer, list) {
  const s = state();
  const res = await fetch(`/api/exercises/${encodeURIComponent(show.id)}/check`, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ seed: s.seed, answer }) });
  const out = await res.json();
  const v = $("#verdict");
  if (!res.ok) { v.innerHTML = `<p class="error">${esc(out.error)}</p>`; return; }
  const p = s.progress[show.id] || { attempts: 0, correct: false };
  p.attempts += 1; p.correct = p.correct || out.correct; p.last = answer; p.seed = s.seed;
  s.progress[show.id] = p; saveState(s);
  v.innerHTML = `<p class="verdict ${out.correct ? "right" : "wrong"}" id="verdict-text">${out.correct ? "Correct" : "Not quite"}: ` +
    `you said ${esc(answer)} ${esc(out.unit)}, the simulator says ${fmt(out.expected, 4)} ${esc(out.unit)} (ratio ${fmt(out.ratio, 3)}).</p>` +
    `<p class="diagnosis" id="diagnosis"><strong>${esc(out.signature)}</strong>${out.misconception ? ` — misconception: “${esc(MISCONCEPTIONS[out.misconception] || out.misconception)}”` : ""}. ${esc(out.explanation)}${out.consequence ? " " + esc(out.consequence) : ""}</p>`;
  const parts = out.breakdown.parts || {};
  const keys = Object.keys(parts);
  if (keys.length) {
    $("#ex-chart-fig").hidden = false;
    const [scale, unit] = DISPLAY[out.breakdown.si_unit] || [1, out.breakdown.si_unit];
    draw("ex-chart", [{ ...bar(0), name: unit, x: keys, y: keys.map(k => parts[k] / scale),
      hovertemplate: "%{x}: %{y:.4g} " + unit + "<extra></extra>" }],
      layout("Simulator breakdown", "part", unit));
  }
  const solved = await solution(show.id, s.seed);  // `exercise solve`, where the CLI has it
  $("#solution").innerHTML = solutionHtml({ ...out, ...solved, expected: out.expected, unit: out.unit }, show);
  $("#ex-command").textContent = `clustersim exercise check ${show.id} --seed ${s.seed} --answer '${answer}'`;
  $("#ex-cli").hidden = false;
  renderList(list, show.id);
}
async function initExercises() {
  const s = state();
  const seedBox = $("#seed");
  seedBox.value = s.seed;
  const list = await (await fetch("/api/exercises")).json();
  const open = () => {
    const id = decodeURIComponent(location.hash.slice(1)) || list[0].id;
    showExercise(list.some(x => x.id === id) ? id : list[0].id, list);
  };
  seedBox.addEventListener("change", () => {
    const st = loadState(); const n = parseInt(seedBox.value, 10);
    if (Number.isInteger(n) && n >= 0) { st.seed = n; saveState(st); open(); }
  });
  $("#new-seed").addEventListener("click", () => {
    const st = loadState(); st.seed = Math.floor(Math.random() * 10000); saveState(st); seedBox.value = st.seed; open();
  });
  window.addEventListener("hashchange", open);
  open();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = $("#controls");
  if (form) initExplorer(form);
  if (document.body.dataset.page === "exercises") initExercises();
});
