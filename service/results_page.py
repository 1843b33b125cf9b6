"""``GET /results``: a small public HTML page that shows a job's numbers and figures.

The page carries no data: its JavaScript reads ``#job=<id>&key=<api key>`` from the URL fragment (never
sent to the server; the key is then kept in the browser's localStorage) and calls the API with a bearer
header: the job, its model or sample set, their scalar metrics/diagnostics and their PNG figures.
"""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>molrg results</title>
<style>
 body { font-family: sans-serif; margin: 1.5em; color: #222; }
 table { border-collapse: collapse; margin: 0.5em 0 1em; }
 td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 14px; }
 figure { display: inline-block; margin: 0.5em; vertical-align: top; }
 figcaption { font-size: 13px; color: #555; }
 #error { color: #b00; }
</style>
</head>
<body>
<h1>molrg results</h1>
<p id="hint">Open as <code>/results#job=&lt;job id&gt;&amp;key=&lt;API key&gt;</code>.</p>
<div id="error"></div>
<div id="summary"></div>
<div id="figures"></div>
<ul id="checks"></ul>
<script>
(async function () {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get("key") || localStorage.getItem("molrg-key") || "";
  if (params.get("key")) localStorage.setItem("molrg-key", params.get("key"));
  const jobId = params.get("job");
  const err = (m) => { document.getElementById("error").textContent = m; document.body.dataset.ready = "error"; };
  if (!jobId) { err("no job id in the URL fragment"); return; }
  const headers = key ? { Authorization: "Bearer " + key } : {};
  async function get(path) {
    const r = await fetch(path, { headers });
    if (!r.ok) {
      let p = {}; try { p = await r.json(); } catch (e) {}
      throw new Error((p.code || r.status) + ": " + (p.detail || r.statusText));
    }
    return r;
  }
  function table(title, obj) {
    const rows = Object.entries(obj).filter(([k, v]) => v === null || typeof v !== "object");
    let h = "<h2>" + title + "</h2><table>";
    for (const [k, v] of rows) h += "<tr><th>" + k + "</th><td>" + (typeof v === "number" ? +v.toPrecision(6) : v) + "</td></tr>";
    return h + "</table>";
  }
  try {
    const job = await (await get("/api/v1/jobs/" + jobId)).json();
    let html = table("job " + job.id, { kind: job.kind, status: job.status, progress: job.progress,
                                        duration_s: job.duration_s, attempts: job.attempts, error: job.error });
    let plotsUrl = null;
    const result = job.result || {};
    if (result.model_id) {
      const m = await (await get("/api/v1/models/" + result.model_id)).json();
      html += table("model " + m.id, Object.assign({ method: m.method, n_components: m.n_components,
                                                     dims: m.dims.join(","), ambient_dim: m.ambient_dim }, m.metrics));
      plotsUrl = m.links.plots;
    } else if (result.sample_set_id) {
      const s = await (await get("/api/v1/sample-sets/" + result.sample_set_id)).json();
      html += table("sample set " + s.id, Object.assign({ n_samples: s.n_samples, sampler: s.sampler, steps: s.steps },
                                                        s.diagnostics));
      plotsUrl = s.links.plots;
    }
    document.getElementById("summary").innerHTML = html;
    const plots = plotsUrl ? await (await get(plotsUrl)).json() : [];
    const figs = document.getElementById("figures");
    const checks = document.getElementById("checks");
    await Promise.all(plots.map(async (p) => {
      const blob = await (await get(p.url)).blob();
      const img = new Image();
      img.alt = p.kind;
      const loaded = new Promise((ok, bad) => { img.onload = ok; img.onerror = bad; });
      img.src = URL.createObjectURL(blob);
      const fig = document.createElement("figure");
      fig.appendChild(img);
      const cap = document.createElement("figcaption");
      cap.textContent = p.title;
      fig.appendChild(cap);
      figs.appendChild(fig);
      await loaded;
      const li = document.createElement("li");
      const ok = img.naturalWidth === p.width && img.naturalHeight === p.height;
      li.className = ok ? "img-ok" : "img-bad";
      li.dataset.kind = p.kind;
      li.textContent = p.kind + " " + img.naturalWidth + "x" + img.naturalHeight + (ok ? " ok" : " expected " + p.width + "x" + p.height);
      checks.appendChild(li);
    }));
    document.getElementById("hint").remove();
    document.body.dataset.ready = "1";
  } catch (e) { err(String(e.message || e)); }
})();
</script>
</body>
</html>
"""


@router.get("/results", response_class=HTMLResponse)
def results_page() -> HTMLResponse:
    """The results page (static; data is fetched by its script with the key from the URL fragment)."""
    return HTMLResponse(PAGE)
