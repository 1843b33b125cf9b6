"""``GET /results``: a small public HTML page that shows a job's numbers, tables and figures.

The page carries no data: its script (``service/static/results.js``, served at ``/results/results.js``)
reads ``#job=<id>&key=<api key>`` from the URL fragment, which the browser never sends to the server, keeps
the key in memory only (no localStorage or cookie) and calls the API with a bearer header. It covers every
job kind by following the job's links: a fit's model (metrics, loss and other metric series, figures), a
sample set (every diagnostic as nested tables, the sample grid), a sweep (progress while it runs,
transitions N*(d), success-rate curves, heatmaps, cells, chunks), and any resource a new kind links to.
"""

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
SCRIPT = files("service") / "static" / "results.js"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>molrg results</title>
<style>
 body { font-family: sans-serif; margin: 1.5em; color: #222; }
 table { border-collapse: collapse; margin: 0.3em 0 0.8em; }
 td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; font-size: 13px; vertical-align: top; }
 td table { margin: 0; }
 table.rows td { text-align: right; }
 section { margin-bottom: 1.5em; }
 figure { display: inline-block; margin: 0.5em; vertical-align: top; }
 figure img { max-width: 100%; }
 figcaption { font-size: 13px; color: #555; }
 svg.chart { margin: 0.5em; background: #fafafa; }
 progress { width: 20em; }
 #error, .job-error { color: #b00; }
 #form label { display: block; margin: 0.3em 0; }
</style>
</head>
<body data-ready="loading">
<h1>molrg results</h1>
<form id="form" hidden>
 <p>Open as <code>/results#job=&lt;job id&gt;&amp;key=&lt;API key&gt;</code>, or fill in:</p>
 <label>job id <input id="job-id" size="40"></label>
 <label>API key <input id="api-key" type="password" size="40" autocomplete="off"></label>
 <button type="submit">show</button>
</form>
<div id="error"></div>
<main id="content"></main>
<script src="/results/results.js"></script>
</body>
</html>
"""


@router.get("/results", response_class=HTMLResponse)
def results_page() -> HTMLResponse:
    """The results page (static; data is fetched by its script with the key from the URL fragment)."""
    return HTMLResponse(PAGE)


@router.get("/results/results.js")
def results_script() -> Response:
    return Response(SCRIPT.read_bytes(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})
