"""Public endpoints: health, readiness (503 when the database is gone), Prometheus metrics, offline docs."""

import re
import uuid
from datetime import timedelta
from typing import Any

from db.base import utcnow
from db.enums import JobKind, JobStatus
from db.models import Job
from tests.service.factories import SYNTH, make_dataset, submit_fit
from tests.service.test_datasets import assert_problem

NOWHERE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1"


def test_live_and_ready(api: Any) -> None:
    assert api.client.get("/health/live").json() == {"status": "ok", "checks": {}}
    r = api.client.get("/health/ready")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_ready_503_and_requests_503_when_database_unreachable(make_api: Any) -> None:
    api = make_api(NOWHERE)
    r = api.client.get("/health/ready")
    body = assert_problem(r, 503, code="not_ready")
    assert body["checks"]["database"].startswith("unreachable") and body["checks"]["broker"] == "ok"
    assert api.client.get("/health/live").status_code == 200
    r = api.client.post("/api/v1/datasets", json=SYNTH, headers={"Authorization": "Bearer molrg_x"})
    assert_problem(r, 503, code="database_unavailable")
    assert api.client.get("/metrics").status_code == 200  # metrics still served


def test_ready_503_when_broker_unreachable(make_api: Any, sqlite_url: str) -> None:
    api = make_api(sqlite_url, broker_url="redis://127.0.0.1:1/0")
    body = assert_problem(api.client.get("/health/ready"), 503)
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"].startswith("unreachable")


def test_prometheus_metrics(api: Any) -> None:
    h = api.key()
    ds = make_dataset(api, h)
    submit_fit(api, h, ds["id"])
    now = utcnow()
    api.add(Job(id=uuid.uuid4(), owner="alice", kind=JobKind.fit, status=JobStatus.succeeded, params={},
                started_at=now, finished_at=now + timedelta(seconds=3)))
    api.client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=h)
    text = api.client.get("/metrics").text
    assert re.search(r'molrg_jobs\{kind="fit",status="queued"\} 1\.0', text)
    assert re.search(r'molrg_jobs\{kind="fit",status="succeeded"\} 1\.0', text)
    assert 'molrg_job_duration_seconds_bucket{kind="fit",le="5.0",status="succeeded"} 1.0' in text
    assert 'molrg_job_duration_seconds_bucket{kind="fit",le="2.0",status="succeeded"} 0.0' in text
    assert 'molrg_job_duration_seconds_sum{kind="fit",status="succeeded"} 3.0' in text
    assert 'route="/api/v1/jobs/{job_id}",status="404"' in text
    assert 'route="/api/v1/datasets",status="201"' in text


def test_docs_offline(sapi: Any) -> None:
    html = sapi.client.get("/docs")
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # no CDN
    assert "cdn" not in html.text.lower()
    for asset in assets:
        assert sapi.client.get(asset).status_code == 200, asset
    # Swagger UI 5 (fastapi-offline's build) reads the OpenAPI 3.1 schema as it is: no second schema URL.
    assert "url: '/openapi.json'" in html.text and "/docs/openapi.json" not in html.text
    assert sapi.client.get("/docs/openapi.json").status_code == 404
    assert sapi.client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = sapi.client.get("/docs/static/swagger-ui-bundle.js").text
    assert re.search(r'PACKAGE_VERSION:"5\.\d+\.\d+"', bundle), "not a Swagger UI 5 build"


def test_openapi_request_schemas_have_examples(sapi: Any) -> None:
    spec = sapi.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("DatasetCreate", "DiffusionFit", "PCAFit", "SubspaceClusteringFit", "SampleSpec"):
        assert schemas[name].get("examples"), name
    paths = spec["paths"]
    for path in ("/api/v1/datasets", "/api/v1/datasets/upload", "/api/v1/fits", "/api/v1/models/{model_id}/samples",
                 "/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/cancel",
                 "/api/v1/jobs/{job_id}/metrics", "/api/v1/models", "/api/v1/models/{model_id}",
                 "/api/v1/models/{model_id}/bases.npz", "/api/v1/sample-sets/{sample_set_id}",
                 "/api/v1/sample-sets/{sample_set_id}/samples.npy", "/api/v1/datasets/{dataset_id}/data.npy",
                 "/health/live", "/health/ready", "/metrics"):
        assert path in paths, path
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
