"""Schemathesis over the OpenAPI schema: every operation, authenticated, valid and invalid inputs.

The app runs in-process (ASGI) over a real migrated database with a recording queue. Each generated
request is sent twice over: with random path ids (mostly 404s) and, for half of the cases, with the
ids of resources that exist (so the handlers behind the 404 are fuzzed too). Every response must be
non-5xx and conform to the schema (status code, content type, headers, body). A third pass per operation
takes valid cases to the stores' bounds (text with NUL, integers at the INTEGER/BIGINT bounds) and must
find no 5xx either; the suite runs on SQLite and PostgreSQL. Bounded: a few examples per operation and
mode, so each backend's run stays around a minute on 2 cores.
"""

import os
import re
import time
import warnings
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("schemathesis")

import jsonschema_rs  # noqa: E402  (schemathesis's own validator)
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

from molrg_client.client import parse_sse  # noqa: E402
from tests.service.factories import insert_model, insert_sample_set, make_dataset

EXAMPLES = int(os.environ.get("MOLRG_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Values at what the stores accept: text with NUL (PostgreSQL text cannot hold it), text longer than the
# String(200) columns, integers at the INTEGER and BIGINT bounds and one past them. Each "edge" case is a valid generated case with every string of its
# query and body (or every integer) replaced by one of these.
NUL_TEXT = "a\x00b"
INT_BOUNDS = [2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**31) - 1, -(2**63) - 1]
TINY_SWEEP = {"ambient_dim": 8, "n_components": 1, "dims": [2], "samples": [3], "trials": 1, "methods": ["pca"]}


def _seed(api: Any, headers: dict[str, str]) -> dict[str, str]:
    """Resources that exist, by path-parameter name (jobs: a terminal one, so /events ends at once)."""
    ds = make_dataset(api, headers)
    job_id, model_id = insert_model(api, "alice", ds["id"])
    sweep = api.client.post("/api/v1/sweeps", json=TINY_SWEEP, headers=headers)
    assert sweep.status_code == 202, sweep.text
    return {"dataset_id": ds["id"], "job_id": job_id, "model_id": model_id,
            "sample_set_id": insert_sample_set(api, "alice", model_id), "sweep_id": sweep.json()["sweep_id"]}


def check_sse_events(body: str, doc: dict[str, Any]) -> int:
    """Validate every event of a server-sent-event body against the documented per-event schema: a known
    ``event`` name, a numeric ``id``, and JSON ``data`` that conforms to that event's ``contentSchema``
    (schemathesis checks the event objects; it leaves ``contentSchema`` to us). Returns the events checked."""
    media = doc["paths"]["/api/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    by_name = {item["properties"]["event"]["const"]: item for item in media["schema"]["oneOf"]}
    events = list(parse_sse(iter(body.split("\n"))))
    assert events, f"an event stream without events: {body[:300]!r}"
    for ev in events:
        assert ev.event in by_name, f"undocumented event {ev.event!r}"
        item = by_name[ev.event]
        assert ev.id is not None and re.fullmatch(item["properties"]["id"]["pattern"], ev.id), ev.id
        schema = {**item["properties"]["data"]["contentSchema"], "components": doc["components"]}
        jsonschema_rs.Draft202012Validator(schema, validate_formats=True).validate(ev.data)
    assert events[-1].event == "end", "the stream must end with an end event"
    return len(events)


def _edge(value: Any, kind: str) -> Any:
    """``value`` with every string (kind "nul", "long") or every integer (an int bound) replaced, recursively."""
    if isinstance(value, dict):
        return {(_edge(k, kind) if kind == "nul" else k): _edge(v, kind) for k, v in value.items()}
    if isinstance(value, list):
        return [_edge(v, kind) for v in value]
    if kind == "nul" and isinstance(value, str):
        return value[:3] + NUL_TEXT
    if kind == "long" and isinstance(value, str):
        return value + "x" * 300  # past the String(200) columns
    if kind not in ("nul", "long") and isinstance(value, int) and not isinstance(value, bool):
        return int(kind)
    return value


def _fuzz_edges(op: Any, headers: dict[str, str], ids: dict[str, str], stats: dict[str, Any], examples: int) -> None:
    """Valid cases pushed to the stores' bounds: no 5xx (a 4xx names the field, or the value is stored)."""
    kinds = ["nul", "long", *map(str, INT_BOUNDS)]

    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE), kind=st.sampled_from(kinds),
           known=st.booleans())
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def one(case: Any, kind: str, known: bool) -> None:
        if known and case.path_parameters:
            case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
        if case.query:
            case.query = _edge(case.query, kind)
        if isinstance(case.body, dict | list):
            case.body = _edge(case.body, kind)
        stats["cases"] += 1
        stats["edge_cases"] += 1
        response = case.call(headers=headers)
        stats["status"][response.status_code] += 1
        if response.status_code >= 500:
            stats["server_errors"].append(f"edge[{kind}] {op.label}: {response.status_code} {response.text[:300]}")
        elif kind == "nul" and response.status_code == 422 and "NUL" in response.text:
            stats["nul_refused"] += 1

    try:
        one()
    except Unsatisfiable:
        pass


def _fuzz_operation(op: Any, mode: Any, headers: dict[str, str], ids: dict[str, str], stats: dict[str, Any],
                    examples: int, doc: dict[str, Any]) -> None:
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
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
            if "text/event-stream" in str(response.headers.get("content-type", "")):
                stats["sse_events"] += check_sse_events(response.text, doc)
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
    stats: dict[str, Any] = {"operations": 0, "cases": 0, "status": Counter(), "server_errors": [], "failures": [],
                             "sse_events": 0, "edge_cases": 0, "nul_refused": 0}
    doc = app.openapi()

    # DELETEs last: one with the seeded ids removes them (and their jobs) for every operation after it
    ops = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE")
    for op in ops:
        stats["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _fuzz_operation(op, mode, headers, ids, stats, examples, doc)
    for op in ops:  # after the others: a valid DELETE here may remove the seeded resources
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _fuzz_edges(op, headers, ids, stats, examples)
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
          f"{len(stats['server_errors'])} 5xx, {len(stats['failures'])} failures, {stats['sse_events']} SSE events checked, "
          f"{stats['edge_cases']} edge cases ({stats['nul_refused']} NUL refused with 422), "
          f"{elapsed:.1f}s, "
          f"statuses {dict(sorted(stats['status'].items()))}")
    assert stats["operations"] >= 25
    assert not stats["server_errors"], "\n".join(stats["server_errors"][:20])
    assert not stats["failures"], "\n\n".join(stats["failures"][:10])
    assert stats["sse_events"] > 0  # the event stream of an existing job was fuzzed and every event checked
    assert stats["edge_cases"] > stats["operations"] and stats["nul_refused"] > 0
