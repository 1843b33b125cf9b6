"""Schemathesis over the OpenAPI schema: every operation, authenticated, valid and invalid inputs.

The app runs in-process (ASGI) over a real migrated database with a recording queue. Each generated
request is sent twice over: with random path ids (mostly 404s) and, for half of the cases, with the
ids of resources that exist (so the handlers behind the 404 are fuzzed too). Every response must be
non-5xx and conform to the schema (status code, content type, headers, body). Bounded: a few
examples per operation and mode, so the whole run stays well under a minute on 2 cores.
"""

import os
import time
import warnings
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("schemathesis")

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.factories import insert_model, insert_sample_set, make_dataset

EXAMPLES = int(os.environ.get("MOLRG_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
TINY_SWEEP = {"ambient_dim": 8, "n_components": 1, "dims": [2], "samples": [3], "trials": 1, "methods": ["pca"]}


def _seed(api: Any, headers: dict[str, str]) -> dict[str, str]:
    """Resources that exist, by path-parameter name (jobs: a terminal one, so /events ends at once)."""
    ds = make_dataset(api, headers)
    job_id, model_id = insert_model(api, "alice", ds["id"])
    sweep = api.client.post("/api/v1/sweeps", json=TINY_SWEEP, headers=headers)
    assert sweep.status_code == 202, sweep.text
    return {"dataset_id": ds["id"], "job_id": job_id, "model_id": model_id,
            "sample_set_id": insert_sample_set(api, "alice", model_id), "sweep_id": sweep.json()["sweep_id"]}


def _fuzz_operation(op: Any, mode: Any, headers: dict[str, str], ids: dict[str, str], stats: dict[str, Any],
                    examples: int) -> None:
    @given(case=op.as_strategy(generation_mode=mode), known=st.booleans())
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def one(case: Any, known: bool) -> None:
        if known and case.path_parameters:
            case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
        stats["cases"] += 1
        # a generated Authorization header would replace ours: the key is always sent
        response = case.call(headers=headers)
        stats["status"][response.status_code] += 1
        label = f"{mode.value} {op.label}"
        if response.status_code >= 500:
            stats["server_errors"].append(f"{label}: {response.status_code} {response.text[:300]}")
        checks = CHECKS
        if "text/event-stream" in str(response.headers.get("content-type", "")):
            # the SSE body is a stream of events, documented as a string (no per-event itemSchema yet)
            checks = [c for c in CHECKS if c is not response_schema_conformance]
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, keep fuzzing
            stats["failures"].append(f"{label}: {str(exc)[:1500]}")

    try:
        one()
    except Unsatisfiable:  # nothing to negate (an operation without parameters)
        pass


def run_fuzz(api: Any, examples: int = EXAMPLES) -> dict[str, Any]:
    headers = api.key("alice")
    ids = _seed(api, headers)
    app = api.client.app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    stats: dict[str, Any] = {"operations": 0, "cases": 0, "status": Counter(), "server_errors": [], "failures": []}

    for result in schema.get_all_operations():
        op = result.ok()
        stats["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _fuzz_operation(op, mode, headers, ids, stats, examples)
    return stats


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_schemathesis_all_operations_no_5xx_and_schema_conformant(make_api: Any, backend: str,
                                                                   request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "db_url_pg")
    api = make_api(url)
    t0 = time.monotonic()
    stats = run_fuzz(api)
    elapsed = time.monotonic() - t0
    print(f"\nfuzz[{backend}]: {stats['operations']} operations, {stats['cases']} cases, "
          f"{len(stats['server_errors'])} 5xx, {len(stats['failures'])} failures, {elapsed:.1f}s, "
          f"statuses {dict(sorted(stats['status'].items()))}")
    assert stats["operations"] >= 25
    assert not stats["server_errors"], "\n".join(stats["server_errors"][:20])
    assert not stats["failures"], "\n\n".join(stats["failures"][:10])
