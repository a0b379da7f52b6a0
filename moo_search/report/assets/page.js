(function () {
"use strict";
const P = JSON.parse(document.getElementById("payload").textContent);
const byNumber = new Map(P.rows.map(r => [r.n, r]));
const PLOT_CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"]};
const el = (tag, attrs, text) => { const e = document.createElement(tag); if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
const fmt = v => (v === null || v === undefined) ? "–" : (typeof v === "number" ? (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : +v.toPrecision(4)) : String(v));
const arrow = d => d === "maximize" ? "↑" : "↓";

// ---- header
const c = P.counts;
document.getElementById("subtitle").textContent =
  P.metrics.map((m, i) => m + " " + arrow(P.directions[i])).join(" · ");
const cards = document.getElementById("cards");
function card(k, v, s) { const d = el("div", {class: "card"}); d.append(el("div", {class: "k"}, k), el("div", {class: "v"}, v)); if (s) d.append(el("div", {class: "s"}, s)); cards.append(d); }
const variants = P.rows.filter(r => r.derived_from !== null).length;
const complete = variants ? `${(c.COMPLETE || 0) - variants} trained + ${variants} variants` : `${c.COMPLETE || 0} complete`;
card("trials", String(P.rows.length), `${complete} · ${c.FAIL || 0} failed · ${c.RUNNING || 0} running · ${c.PRUNED || 0} pruned`);
card("hypervolume", fmt(P.hv), P.ref ? "reference point (" + P.ref.map(fmt).join(", ") + ")" : "no complete trial yet");
card("Pareto front", String(P.rows.filter(r => r.pareto).length), "feasible non-dominated trials");
if (P.reference_points) {
  const nf = P.rows.filter(r => r.pareto).length;
  card("vs reference front", fmt(P.hv) + " / " + fmt(P.reference_hv),
       "study / baselines HV (same point) · " + (P.front_undominated || 0) + " of " + nf + " front trials not dominated by any of " + P.reference_points + " baseline points"
       + " · baselines × " + P.reference_knobs + " over " + Object.entries(P.reference_axes || {}).map(([k, v]) => k.split(".").pop() + " " + fmt(v[0]) + "–" + fmt(v[1])).join(", ") + " (whatever the study searches)");
  const rt = P.reference_test;
  if (rt) card("vs reference front, on test", fmt(rt.hv) + " / " + fmt(rt.reference_hv),
       "both fronts chosen on validation, judged on test · " + rt.undominated + " of " + rt.n_front + " front trials not dominated");
  card("who wins", P.reference_verdict.replace(/^larger hypervolume: /, ""), "larger hypervolume at the same reference point, study vs baselines");
}
for (const pc of P.panel.cards) card(pc.title, pc.value, pc.detail);
const altered = P.rows.filter(r => r.artifacts === "altered").length;
if (altered) card("artifacts altered", String(altered), "trials whose files are not the ones they wrote: not exportable (see the table)");
P.metrics.forEach((m, i) => { const b = P.best[m]; card("best " + m + " " + arrow(P.directions[i]), b ? fmt(b.value) : "–", b ? "trial " + b.trial : ""); });

// ---- a selected trial's learning curve: its objectives at every checkpoint (rung)
function draw_curve(r) {
  const div = document.getElementById("curve");
  if (div.dataset.rendered) Plotly.purge(div);
  div.textContent = ""; delete div.dataset.rendered;
  if (!r.curve || !r.curve.length) {
    const why = r.derived_from !== null
      ? "No learning curve of its own: a variant reuses the trained model of trial " + r.derived_from + " (select that trial for its curve)."
      : P.rows.some(x => x.curve && x.curve.length)
        ? "No learning curve: this trial recorded no checkpoint."
        : "No learning curve: the study runs without early stopping (driver.early_stopping).";
    div.append(el("div", {class: "note"}, why));
    return;
  }
  const n = P.metrics.length, steps = r.curve.map(p => p.step);
  const data = P.metrics.map((m, i) => ({
    type: "scatter", mode: "lines+markers", name: m, x: steps, y: r.curve.map(p => p.values[i]),
    xaxis: "x" + (i ? i + 1 : ""), yaxis: "y" + (i ? i + 1 : ""), showlegend: false,
  }));
  const layout = {height: 190, margin: {l: 45, r: 10, t: 28, b: 30}, grid: {rows: 1, columns: n, pattern: "independent"},
    annotations: P.metrics.map((m, i) => ({text: m + " " + arrow(P.directions[i]), showarrow: false, xref: "x" + (i ? i + 1 : "") + " domain", yref: "paper", x: 0.5, y: 1.12, font: {size: 11}}))};
  div.dataset.rendered = "1";
  Plotly.newPlot(div, data, layout, PLOT_CONFIG);
}

// ---- figures: the first one now, the others when they come near the viewport
function draw_fig(id) {
  const div = document.getElementById(id), fig = P.figures[id];
  if (!div || !fig || div.dataset.rendered) return;
  div.dataset.rendered = "pending";
  Plotly.newPlot(div, fig.data, fig.layout, PLOT_CONFIG).then(() => { div.dataset.rendered = "1"; });
  div.on && div.on("plotly_click", ev => { const p = ev.points && ev.points[0]; if (p && typeof p.customdata === "number" && p.customdata >= 0) select(p.customdata); });
}
const lazy = ("IntersectionObserver" in window) ? new IntersectionObserver(entries => {
  for (const e of entries) if (e.isIntersecting) { lazy.unobserve(e.target); draw_fig(e.target.id); }
}, {rootMargin: "300px"}) : null;
for (const f of P.figure_specs) {
  const div = document.getElementById(f.id);
  if (!P.figures[f.id]) { if (div) div.append(el("div", {class: "empty"}, f.empty)); }
  else if (f.eager || !lazy) draw_fig(f.id);
  else lazy.observe(div);
}

// ---- 3-D view: any three objectives
if (P.figures["fig-3d"] && P.metrics.length >= 3) {
  const box = document.getElementById("axes-3d"), picks = [0, 1, 2];
  ["x", "y", "z"].forEach((ax, a) => {
    const s = el("select", {"data-axis": ax});
    P.metrics.forEach((m, i) => s.append(el("option", {value: String(i)}, m + " " + arrow(P.directions[i]))));
    s.value = String(picks[a]);
    s.addEventListener("change", () => { picks[a] = Number(s.value); redraw3d(); });
    box.append(el("span", {class: "note"}, ax + ":"), s);
  });
  function redraw3d() {
    const div = document.getElementById("fig-3d"), fig = P.figures["fig-3d"];
    const done = P.rows.filter(r => r.state === "COMPLETE");
    const groups = [done.filter(r => r.feasible && !r.pareto), done.filter(r => !r.feasible), done.filter(r => r.pareto)];
    const data = fig.data.map((tr, g) => g < 3 ? Object.assign({}, tr, {
      x: groups[g].map(r => r.obj[picks[0]]), y: groups[g].map(r => r.obj[picks[1]]),
      z: groups[g].map(r => r.obj[picks[2]]), customdata: groups[g].map(r => r.n)})
      : Object.assign({}, tr, {  // the reference front: its points, on the chosen axes
      x: P.reference_obj.map(v => v[picks[0]]), y: P.reference_obj.map(v => v[picks[1]]),
      z: P.reference_obj.map(v => v[picks[2]])}));
    const title = i => ({text: P.metrics[i] + " " + arrow(P.directions[i])});
    const layout = Object.assign({}, fig.layout, {scene: Object.assign({}, fig.layout.scene,
      {xaxis: {title: title(picks[0])}, yaxis: {title: title(picks[1])}, zaxis: {title: title(picks[2])}})});
    if (div.dataset.rendered) Plotly.react(div, data, layout, PLOT_CONFIG); else { fig.data = data; fig.layout = layout; }
  }
}

// ---- selection
function setPath(obj, path, value) { const parts = path.split("."); let node = obj; for (let i = 0; i < parts.length - 1; i++) { if (typeof node[parts[i]] !== "object" || node[parts[i]] === null) node[parts[i]] = {}; node = node[parts[i]]; } node[parts[parts.length - 1]] = value; }
function yaml(v, ind) {
  ind = ind || "";
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) { if (!v.length) return "[]"; if (v.every(x => typeof x !== "object" || x === null)) return "[" + v.map(x => yaml(x)).join(", ") + "]"; return v.map(x => "\n" + ind + "- " + yaml(x, ind + "  ").replace(/^\n\s*/, "")).join(""); }
  if (typeof v === "object") { const keys = Object.keys(v).sort(); if (!keys.length) return "{}"; return keys.map(k => "\n" + ind + k + ": " + yaml(v[k], ind + "  ").replace(/^ /, "")).join(""); }
  if (typeof v === "string") return /^[\w@.\/+-]+$/.test(v) ? v : JSON.stringify(v);
  return String(v);
}
// what the objective shows under a selected trial (objective.TrialTable): a header, then rows
function panelTable(tt) {
  const t = el("table", {class: "vs"}); const head = el("tr");
  tt.header.forEach((h, i) => head.append(el("th", i === 0 || i === tt.header.length - 1 ? {class: "l"} : null, h)));
  t.append(head);
  for (const row of tt.rows) {
    const tr = el("tr");
    row.forEach((cell, i) => tr.append(el("td", i === 0 || i === row.length - 1 ? {class: "l"} : null, cell)));
    t.append(tr);
  }
  return t;
}
let selected = null;
function select(n) {
  const r = byNumber.get(n); if (!r) return;
  selected = n;
  document.getElementById("selected-title").textContent = "Trial " + n + (r.anchor ? " (" + r.anchor + ")" : "") + (r.derived_from !== null ? " (variant of trial " + r.derived_from + ": its trained model, other inference settings)" : "") + " · " + r.state + (r.pareto ? " · on the Pareto front" : "") + (!r.feasible ? " · infeasible" : "");
  const box = document.getElementById("selected-metrics"); box.textContent = "";
  const t = el("table"); const head = el("tr"); head.append(el("th", {class: "l"}, "objective"), el("th", null, "validation"), el("th", null, "test")); t.append(head);
  P.metrics.forEach((m, i) => { const tr = el("tr"); tr.append(el("td", {class: "l"}, m + " " + arrow(P.directions[i])), el("td", null, fmt(r.obj[i])), el("td", null, fmt(r.test[i]))); t.append(tr); });
  box.append(t);
  const tt = P.panel.trial_tables[String(n)];
  if (tt) box.append(panelTable(tt));
  if (r.reason) box.append(el("div", {class: "note"}, "reason: " + r.reason));
  draw_curve(r);
  const cmd = P.export_base + " --trial " + n + " --out exports/" + P.slug + "-trial-" + n;
  document.getElementById("export-cmd").textContent = r.artifacts === "altered"
    ? "not exportable: " + r.artifact_problem
    : cmd + (r.artifacts === "missing" ? "   # its artifacts are not on the machine this page was built on" : "");
  let cfg = P.base_config ? JSON.parse(JSON.stringify(P.base_config)) : {};
  for (const [k, v] of Object.entries(r.params)) setPath(cfg, k, v);
  for (const k of ["search_space", "objectives", "constraints", "driver", "budget", "enqueue", "storage", "out_dir"]) delete cfg[k];
  document.getElementById("config").textContent = (P.base_config ? yaml(cfg) : yaml(r.params)).replace(/^\n/, "");
  document.querySelectorAll("#trials tbody tr").forEach(tr => tr.classList.toggle("sel", Number(tr.dataset.n) === n));
}
document.getElementById("btn-knee").addEventListener("click", () => { if (P.knee !== null) select(P.knee); });
document.getElementById("btn-compromise").addEventListener("click", () => { if (P.compromise !== null) select(P.compromise); });
if (P.knee === null) { document.getElementById("btn-knee").disabled = true; document.getElementById("btn-compromise").disabled = true; }

// ---- pseudo-weight sliders
const sliders = document.getElementById("sliders");
const weights = P.metrics.map(() => 1);
P.metrics.forEach((m, i) => {
  const lab = el("label"); const inp = el("input", {type: "range", min: "0", max: "100", value: "50", "data-i": String(i)});
  const out = el("span", {class: "note"}, "");
  lab.append(el("span", {style: "width:150px;display:inline-block"}, m), inp, out); sliders.append(lab);
  inp.addEventListener("input", () => { weights[i] = Number(inp.value); pickByWeights(); });
});
function pickByWeights() {
  const s = weights.reduce((a, b) => a + b, 0); if (s <= 0) return;
  const w = weights.map(x => x / s);
  sliders.querySelectorAll("span.note").forEach((sp, i) => sp.textContent = (100 * w[i]).toFixed(0) + "%");
  let best = null, bd = Infinity;
  for (const [n, pw] of Object.entries(P.pseudo_weights)) { let d = 0; pw.forEach((x, i) => d += (x - w[i]) ** 2); if (d < bd) { bd = d; best = Number(n); } }
  document.getElementById("weight-pick").textContent = best === null ? "No front yet." : "closest front trial: " + best;
  if (best !== null) select(best);
}
sliders.querySelectorAll("span.note").forEach(sp => sp.textContent = (100 / P.metrics.length).toFixed(0) + "%");

// ---- trade-offs
const ta = document.getElementById("to-a"), tb = document.getElementById("to-b");
P.metrics.forEach(m => { ta.append(el("option", {value: m}, m)); tb.append(el("option", {value: m}, m)); });
if (P.metrics.length > 1) tb.value = P.metrics[0], ta.value = P.metrics[1];
function showTradeoffs() {
  const box = document.getElementById("tradeoffs"); box.textContent = "";
  const steps = P.tradeoffs[ta.value + "|" + tb.value];
  if (!steps || !steps.length) { box.append(el("div", {class: "note"}, ta.value === tb.value ? "Pick two different objectives." : "Fewer than two front points for this pair.")); return; }
  const t = el("table"); const h = el("tr"); h.append(el("th", {class: "l"}, "from → to"), el("th", null, "gain " + ta.value), el("th", null, "cost in " + tb.value), el("th", null, "cost per unit")); t.append(h);
  for (const s of steps) { const tr = el("tr", {"data-n": String(s.to)}); tr.append(el("td", {class: "l"}, "trial " + s.from + " → " + s.to), el("td", null, "+" + fmt(s.gain)), el("td", null, "−" + fmt(s.cost)), el("td", null, fmt(s.rate))); tr.addEventListener("click", () => select(s.to)); t.append(tr); }
  box.append(t);
  const s0 = steps[Math.floor(steps.length / 2)];
  box.append(el("div", {class: "note"}, "e.g. trial " + s0.from + " → " + s0.to + ": +" + fmt(s0.gain) + " " + ta.value + " costs " + fmt(s0.cost) + " " + tb.value + "."));
}
ta.addEventListener("change", showTradeoffs); tb.addEventListener("change", showTradeoffs); showTradeoffs();

// ---- trial table
const baseCols = [{k: "n", label: "#"}, {k: "state", label: "state", l: true}, {k: "tags", label: "", l: true}]
  .concat(P.metrics.map((m, i) => ({k: "obj" + i, label: m + " " + arrow(P.directions[i]), get: r => r.obj[i]})))
  .concat(P.metrics.map((m, i) => ({k: "test" + i, label: m + " (test)", get: r => r.test[i]})));
const extraCols = P.extra_metrics.map((m, i) => ({k: "m" + i, label: m, get: r => r.m[i]}));
const tailCols = P.params.map(p => ({k: "p:" + p, label: p, get: r => r.params[p], l: true}))
  .concat([{k: "secs", label: "seconds"}, {k: "reason", label: "failure reason", l: true}]);
let cols = baseCols.concat(tailCols);
const get = (r, col) => col.get ? col.get(r) : (col.k === "tags" ? (r.pareto ? "front" : "") : r[col.k]);
const states = [...new Set(P.rows.map(r => r.state))].sort();
const sf = document.getElementById("state-filter"); states.forEach(s => sf.append(el("option", {value: s}, s)));
let sortKey = "n", sortDir = 1, page = 0; const PAGE = 100;
const thead = document.querySelector("#trials thead"), tbody = document.querySelector("#trials tbody");
function header() {
  thead.textContent = "";
  const hr = el("tr");
  cols.forEach(col => { const th = el("th", col.l ? {class: "l"} : null, col.label); th.addEventListener("click", () => { sortDir = sortKey === col.k ? -sortDir : 1; sortKey = col.k; page = 0; draw(); }); hr.append(th); });
  thead.append(hr);
}
header();
document.getElementById("all-metrics").addEventListener("change", e => {
  cols = e.target.checked ? baseCols.concat(extraCols, tailCols) : baseCols.concat(tailCols);
  if (!cols.find(c => c.k === sortKey)) sortKey = "n";
  header(); draw();
});
const text = r => [r.n, r.state, r.anchor, r.pareto ? "front" : "", r.feasible ? "" : "infeasible", r.reason, ...Object.entries(r.params).map(([k, v]) => k + "=" + v)].join(" ").toLowerCase();
function rowsView() {
  const q = document.getElementById("filter").value.trim().toLowerCase(), st = sf.value, fo = document.getElementById("front-only").checked;
  const col = cols.find(c => c.k === sortKey) || cols[0];
  return P.rows.filter(r => (!st || r.state === st) && (!fo || r.pareto) && (!q || text(r).includes(q)))
    .sort((a, b) => { const x = get(a, col), y = get(b, col); if (x === y) return a.n - b.n; if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1; return (x < y ? -1 : 1) * sortDir; });
}
function draw() {
  const view = rowsView(); const pages = Math.max(1, Math.ceil(view.length / PAGE)); page = Math.min(page, pages - 1);
  document.getElementById("table-count").textContent = view.length + " trials · page " + (page + 1) + "/" + pages;
  tbody.textContent = "";
  for (const r of view.slice(page * PAGE, (page + 1) * PAGE)) {
    const tr = el("tr", {"data-n": String(r.n)}); if (r.n === selected) tr.classList.add("sel");
    for (const col of cols) {
      const td = el("td", col.l ? {class: "l"} : null);
      if (col.k === "tags") {
        if (r.pareto) td.append(el("span", {class: "tag front"}, "front"));
        if (!r.feasible && r.state === "COMPLETE") td.append(el("span", {class: "tag inf"}, "infeasible"));
        if (r.state === "FAIL") td.append(el("span", {class: "tag fail"}, "failed"));
        if (r.anchor) td.append(el("span", {class: "tag anchor"}, r.anchor));
        if (r.artifacts === "altered") td.append(el("span", {class: "tag fail", title: r.artifact_problem}, "artifacts altered"));
        if (r.derived_from !== null) td.append(el("span", {class: "tag", title: "variant: the trained model of trial " + r.derived_from + " at other inference settings"}, "variant of #" + r.derived_from));
      } else td.textContent = fmt(get(r, col));
      tr.append(td);
    }
    tr.addEventListener("click", () => select(r.n));
    tbody.append(tr);
  }
}
document.getElementById("filter").addEventListener("input", () => { page = 0; draw(); });
sf.addEventListener("change", () => { page = 0; draw(); });
document.getElementById("front-only").addEventListener("change", () => { page = 0; draw(); });
document.getElementById("prev").addEventListener("click", () => { page = Math.max(0, page - 1); draw(); });
document.getElementById("next").addEventListener("click", () => { page += 1; draw(); });
draw();
window.mooSelect = select;  // for scripts and tests: select a trial by number
const linked = /^#trial-(\d+)$/.exec(location.hash);  // index.html#trial-7 opens on trial 7
if (linked && byNumber.has(Number(linked[1]))) select(Number(linked[1]));
else if (P.knee !== null) select(P.knee);
document.body.dataset.ready = "1";
})();
