"""The load benchmark in its short form (bench/bench_load.py): a few seconds of concurrent clients against
the real service on PostgreSQL + Redis, zero errors, then every queued job ends ``succeeded``."""

import importlib.util
import shutil

import pytest

from tests.db.dbfixtures import port_open
from tests.sweeps.stack import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.postgres]


def test_load_short_form() -> None:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "bench_load.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.run(clients=10, duration=4.0, jobs=5, workers=2, drain_timeout=120.0, write_fraction=0.02)
    print(report)
    load, drain = report["load"], report["drain"]
    assert load["errors"] == 0, load["error_samples"]
    assert load["requests"] > 50 and load["reads"]["n"] > 0
    assert drain["all_succeeded"], drain
    assert drain["total_jobs"] >= 8
