// The molrg results page: reads #job=<id>&key=<API key> from the URL fragment (never sent to the server),
// keeps the key in this script's memory only (no localStorage, no cookie) and calls the API with it.
// Generic over job kinds: it follows the job's links (model, sample_set, sweep, ...) and renders each
// resource as nested tables (objects inside objects become tables inside cells, lists of objects become
// column tables), its figures (links.plots, a sweep's heatmaps) as decoded images, the job's metric series
// (e.g. the training loss) and a sweep's success-rate curves as SVG, and polls while the job runs.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const SKIP_LINKS = new Set(["self", "cancel", "metrics", "dataset", "source_model"]);
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];

const fragment = new URLSearchParams(location.hash.slice(1));
const session = { key: fragment.get("key") || "", job: fragment.get("job") || "" };  // memory only

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(4));
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}

const isRows = (v) => Array.isArray(v) && v.length > 0 && v.every((x) => x && typeof x === "object" && !Array.isArray(x));
const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);

function value(v) {
  if (isRows(v)) return rowsTable(v);
  if (isObject(v)) return Object.keys(v).length ? objectTable(v) : "{}";
  return inline(v);
}

function inline(v) {  // scalars and (nested) lists of scalars on one line
  return Array.isArray(v) ? "[" + v.map(inline).join(", ") + "]" : isObject(v) ? JSON.stringify(v) : fmt(v);
}

function objectTable(obj, cls) {
  const table = el("table", { class: cls || "kv" });
  for (const [k, v] of Object.entries(obj)) table.append(el("tr", { "data-key": k }, el("th", {}, k), el("td", {}, value(v))));
  return table;
}

function rowsTable(rows, columns, cls) {
  const cols = columns || [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return el("table", { class: cls || "rows" },
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, cols.map((c) => el("td", {}, value(r[c])))))));
}

async function api(path, as) {
  const r = await fetch(path, { headers: session.key ? { Authorization: "Bearer " + session.key } : {} });
  if (!r.ok) {
    let p = {};
    try { p = await r.json(); } catch (e) { /* not problem+json */ }
    throw new Error((p.code || r.status) + ": " + (p.detail || r.statusText));
  }
  return as === "blob" ? r.blob() : r.json();
}

// ------------------------------------------------------------------ figures (PNG with the bearer key)

async function figure(ref, kind) {
  const img = el("img", { alt: ref.title || kind, class: "figure", "data-kind": kind });
  const fig = el("figure", {}, img, el("figcaption", {}, ref.title || kind));
  const loaded = new Promise((ok, bad) => { img.onload = ok; img.onerror = () => bad(new Error("image " + kind)); });
  img.src = URL.createObjectURL(await api(ref.url, "blob"));
  await loaded;
  img.dataset.naturalWidth = img.naturalWidth;
  img.classList.add(img.naturalWidth === ref.width && img.naturalHeight === ref.height ? "img-ok" : "img-bad");
  return fig;
}

// ------------------------------------------------------------------ SVG line charts

function chart(title, series, xLabel, yLabel, opts) {
  const W = 520, H = 300, L = 60, R = 120, T = 24, B = 40;
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return null;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = opts && opts.y ? opts.y : [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const text = (x, y, s, anchor) => svg("text", { x, y, "text-anchor": anchor || "middle", "font-size": 11 }, s);
  const g = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "chart", "data-title": title });
  g.append(text(W / 2, 14, title), svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#999" }));
  for (const [v, anchor] of [[x0, "start"], [x1, "end"]]) g.append(text(sx(v), H - B + 14, fmt(v), anchor));
  for (const v of [y0, y1]) g.append(text(L - 4, sy(v) + 4, fmt(v), "end"));
  g.append(text((L + W - R) / 2, H - 6, xLabel), text(12, T - 8, yLabel, "start"));
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const d = s.points.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
    g.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.5, "data-series": s.name }));
    if (s.points.length < 40) for (const p of s.points) g.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: color }));
    g.append(svg("line", { x1: W - R + 10, x2: W - R + 28, y1: T + 12 + 16 * i, y2: T + 12 + 16 * i, stroke: color, "stroke-width": 2 }));
    g.append(text(W - R + 32, T + 16 + 16 * i, s.name, "start"));
  });
  return g;
}

async function metricCharts(job) {
  if (!job.links || !job.links.metrics) return [];
  const first = await api(job.links.metrics + "?max_points=500");
  const out = [];
  for (const name of first.names || []) {
    const m = name === first.name ? first : await api(job.links.metrics + "?name=" + encodeURIComponent(name) + "&max_points=500");
    const c = chart(name + " (" + m.total_points + " points)", [{ name, points: m.points.map((p) => [p.step, p.value]) }], "step", name);
    if (c) out.push(c);
  }
  return out;
}

function successCurves(cells) {
  const groups = new Map();
  for (const c of cells) {
    const key = `method=${c.method} K=${c.n_components} n=${c.ambient_dim}`;
    if (!groups.has(key)) groups.set(key, new Map());
    const byD = groups.get(key);
    if (!byD.has(c.d)) byD.set(c.d, []);
    byD.get(c.d).push([c.samples, c.success_rate]);
  }
  return [...groups].map(([key, byD]) => chart("success rate vs N, " + key,
    [...byD].sort((a, b) => a[0] - b[0]).map(([d, p]) => ({ name: "d = " + d, points: p.sort((a, b) => a[0] - b[0]) })),
    "N (samples)", "success", { y: [0, 1] }));
}

// ------------------------------------------------------------------ resources

function sweepSection(s) {
  const box = el("section", { class: "sweep", "data-id": s.id }, el("h2", {}, "sweep " + s.id));
  const p = s.progress || {};
  box.append(el("p", {}, `${s.status}${s.final ? "" : " (partial results)"}: fits ${p.fits_done}/${p.fits_total}, ` +
                          `chunks ${p.chunks_done}/${fmt(p.chunks_total)}`));
  box.append(el("h3", {}, "spec"), objectTable(s.spec || {}));
  const tr = el("div", { class: "transitions" }, el("h3", {}, "transitions N*(d)"));
  for (const t of s.transitions || []) {
    const lines = ["linear_fit", "linear_fit_logistic"].filter((k) => t[k]).map((k) =>
      `${k}: N* = ${fmt(t[k].slope)} d ${t[k].intercept < 0 ? "-" : "+"} ${fmt(Math.abs(t[k].intercept))} (r2 ${fmt(t[k].r2)})`);
    tr.append(el("h4", {}, `method=${t.method} K=${t.n_components} n=${t.ambient_dim}`), el("p", {}, lines.join("; ")),
              rowsTable(t.rows || [], null, "rows transitions-table"));
  }
  box.append(tr);
  const curves = el("div", { class: "curves" }, el("h3", {}, "success rate curves"));
  for (const c of successCurves(s.cells || [])) if (c) curves.append(c);
  box.append(curves, el("div", { class: "heatmaps figures" }));
  box.append(el("details", { class: "cells" }, el("summary", {}, `cells (${(s.cells || []).length})`),
                rowsTable(s.cells || [], null, "rows cells-table")));
  if ((s.chunks || []).length) box.append(el("details", {}, el("summary", {}, "chunks"), rowsTable(s.chunks)));
  return box;
}

function resourceSection(name, r) {
  if (Array.isArray(r.cells) && Array.isArray(r.transitions)) return sweepSection(r);
  const rest = Object.fromEntries(Object.entries(r).filter(([k]) => k !== "links"));
  return el("section", { class: name.replace(/_/g, "-"), "data-id": r.id }, el("h2", {}, name.replace(/_/g, " ") + " " + r.id),
            objectTable(rest), el("div", { class: "figures" }));
}

async function figuresOf(r, section) {
  const refs = [];
  if (Array.isArray(r.heatmaps)) for (const h of r.heatmaps) refs.push([h, "heatmap", `heatmap ${h.method} K=${h.n_components} n=${h.ambient_dim}`]);
  if (r.links && r.links.plots) for (const p of await api(r.links.plots)) refs.push([p, p.kind, p.title]);
  const box = section.querySelector(".figures");
  const figs = await Promise.all(refs.map(([ref, kind, title]) => figure({ ...ref, title }, kind)));
  box.replaceChildren(...figs);
}

// ------------------------------------------------------------------ the job

function jobSection(job) {
  const head = Object.fromEntries(Object.entries(job).filter(([k]) => !["links", "progress_detail"].includes(k)));
  const detail = job.progress_detail ? Object.entries(job.progress_detail).map(([k, v]) => k + " " + fmt(v)).join(", ") : "";
  return el("section", { class: "job" }, el("h2", {}, `${job.kind} job ${job.id}`),
            el("p", { class: "progress" }, el("progress", { max: 1, value: job.progress || 0 }),
               ` ${job.status} ${(100 * (job.progress || 0)).toFixed(1)}% ${detail}`),
            job.error ? el("p", { class: "job-error" }, job.error) : null,
            el("details", { class: "job-details" }, el("summary", {}, "job details"), objectTable(head)));
}

async function related(job) {
  const out = [];
  for (const [name, link] of Object.entries(job.links || {})) {
    if (SKIP_LINKS.has(name) || !link.startsWith("/api/")) continue;
    try { out.push([name, await api(link)]); } catch (e) { if (TERMINAL.has(job.status)) throw e; }
  }
  return out;
}

async function render() {
  const job = await api("/api/v1/jobs/" + encodeURIComponent(session.job));
  const resources = await related(job);
  const sections = resources.map(([name, r]) => [r, resourceSection(name, r)]);
  const main = document.getElementById("content");
  main.replaceChildren(jobSection(job), ...sections.map(([, s]) => s));
  const charts = await metricCharts(job);  // e.g. the training loss, growing while the fit runs
  if (charts.length) main.querySelector(".job").append(el("div", { class: "metrics" }, el("h3", {}, "metrics"), charts));
  if (!TERMINAL.has(job.status)) { document.body.dataset.ready = "running"; return false; }
  await Promise.all(sections.map(([r, s]) => figuresOf(r, s)));
  return true;
}

let generation = 0;  // a new fragment starts a new loop; the old one stops

async function start() {
  const mine = ++generation;
  const err = document.getElementById("error");
  err.textContent = "";
  document.body.dataset.ready = "loading";
  if (!session.job) { document.getElementById("form").hidden = false; document.body.dataset.ready = "idle"; return; }
  document.getElementById("form").hidden = true;
  try {
    while (!(await render())) {
      await new Promise((ok) => setTimeout(ok, 1000));
      if (mine !== generation) return;
    }
    if (mine === generation) document.body.dataset.ready = "1";
  } catch (e) {
    err.textContent = String(e.message || e);
    document.body.dataset.ready = "error";
  }
}

document.getElementById("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  session.job = document.getElementById("job-id").value.trim();
  session.key = document.getElementById("api-key").value.trim();
  location.hash = new URLSearchParams({ job: session.job, key: session.key }).toString();
});
window.addEventListener("hashchange", () => {
  const f = new URLSearchParams(location.hash.slice(1));
  session.job = f.get("job") || "";
  session.key = f.get("key") || session.key;
  start();
});
start();
