"""A 64 MB upload to a real ``uvicorn`` process: its peak memory rises by a bounded multiple of the stored
array, and ``/health/live`` keeps answering fast while the upload is parsed."""

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from migrations import upgrade_head
from tests.db.dbfixtures import create_pg_database, drop_pg_database, free_port, pg_available

pytestmark = pytest.mark.slow

MB = 1024 * 1024
# Peak RSS rise allowed for one upload: the stored float64 array three times (the .npy bytes built while
# parsing, plus what the database takes: libpq's send buffer on PostgreSQL; on SQLite the bound copy and the
# record it builds), plus working buffers. Measured: PostgreSQL 2.05-2.16x, SQLite 3.05-3.15x.
PEAK_FACTOR, PEAK_SLACK = 3.0, 48 * MB
# /health/live while a 64 MB upload is parsed (it froze for 22 s when uploads were parsed whole): p99 within
# 250 ms of its p99 on the same machine with no upload, so a loaded CI machine's scheduling is not counted.
# Measured on 2 shared cores at load average ~10: +36..126 ms.
LIVE_EXTRA_P99_S = 0.25


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]


def _serve(tmp: Path, db_url: str) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    env.update({"MOLRG_DATA_DIR": str(tmp), "MOLRG_DATABASE_URL": db_url, "MOLRG_AUTH_ENABLED": "false",
                "MOLRG_BROKER_URL": f"filesystem://{tmp}/broker"})
    log = open(tmp / "uvicorn.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp / "uvicorn.log").read_text()[-3000:]
        time.sleep(0.2)
    try:
        yield Server(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/molrg.db"
        upgrade_head(url)
        yield from _serve(tmp_path, url)
        return
    if not pg_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 unreachable")
    url = create_pg_database("molrg_mem")
    try:
        yield from _serve(tmp_path, url)
    finally:
        drop_pg_database(url)


def _payload(kind: str) -> tuple[bytes, str, tuple[int, int]]:
    rng = np.random.default_rng(0)
    if kind == "npy":
        X = rng.standard_normal((100_000, 84))  # 67.2 MB of float64
        buf = io.BytesIO()
        np.save(buf, X)
        return buf.getvalue(), "x.npy", X.shape
    X = np.round(rng.standard_normal((100_000, 30)), 15)
    text = "\n".join(",".join(f"{v:.15f}" for v in row) for row in X.tolist()).encode()
    if kind == "csv":
        return text, "x.csv", X.shape
    rows = b"],\n[".join(text.split(b"\n"))
    return b"[[" + rows + b"]]", "x.json", X.shape


PROBE = """
import json, sys, time, os, httpx
url, stop = sys.argv[1], sys.argv[2]
out = []
with httpx.Client(base_url=url, timeout=10) as c:
    while not os.path.exists(stop):
        t = time.perf_counter()
        assert c.get("/health/live").status_code == 200
        out.append(time.perf_counter() - t)
        time.sleep(0.02)
print(json.dumps(out))
"""


def _upload_while_probing(server: Server, content: bytes, filename: str,
                          tmp: Path) -> tuple[httpx.Response, int, int, list[float]]:
    """Upload; meanwhile sample the server's RSS here and time /health/live from another process
    (so the client's own work does not count as the server's latency)."""
    import json

    proc = psutil.Process(server.proc.pid)
    base = proc.memory_info().rss
    peak = base
    done = threading.Event()
    stop = tmp / f"stop-probe-{time.monotonic_ns()}"

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    probe = subprocess.Popen([sys.executable, "-c", PROBE, server.url, str(stop)], stdout=subprocess.PIPE)
    time.sleep(0.3)
    try:
        if content:
            r = httpx.post(server.url + "/api/v1/datasets/upload", files={"file": (filename, content)}, timeout=300)
        else:  # the baseline: the same probing for a while, no upload
            time.sleep(3)
            r = httpx.get(server.url + "/health/live")
    finally:
        done.set()
        stop.touch()
        sampler.join()
        out, _ = probe.communicate(timeout=30)
    return r, base, peak, json.loads(out)


@pytest.mark.parametrize("kind", ["npy", "csv", "json"])
def test_64mb_upload_has_bounded_peak_memory_and_live_stays_fast(server: Server, kind: str, tmp_path: Path) -> None:
    content, filename, shape = _payload(kind)
    # warm up: the first request imports and allocates what every later one reuses
    assert httpx.post(server.url + "/api/v1/datasets/upload", files={"file": ("w.csv", b"1,2\n")}).status_code == 201
    _, _, _, idle = _upload_while_probing(server, b"", "", tmp_path)
    r, base, peak, live = _upload_while_probing(server, content, filename, tmp_path)
    assert r.status_code == 201, r.text[:500]
    assert (r.json()["n_samples"], r.json()["ambient_dim"]) == shape
    stored = shape[0] * shape[1] * 8
    rise = peak - base
    p99 = float(np.quantile(live, 0.99)) if live else 0.0
    idle_p99 = float(np.quantile(idle, 0.99))
    print(f"\n{kind}: file {len(content) / MB:.1f} MB, stored array {stored / MB:.1f} MB, RSS {base / MB:.0f} -> "
          f"peak {peak / MB:.0f} MB (+{rise / MB:.0f} MB = {rise / stored:.2f}x the array); "
          f"/health/live n={len(live)} p99={p99 * 1000:.0f} ms max={max(live, default=0) * 1000:.0f} ms "
          f"(idle p99 {idle_p99 * 1000:.0f} ms)")
    assert rise < PEAK_FACTOR * stored + PEAK_SLACK, f"peak rose {rise / MB:.0f} MB for a {stored / MB:.0f} MB array"
    assert len(live) >= 3 and p99 < idle_p99 + LIVE_EXTRA_P99_S, (len(live), p99, idle_p99)


def test_64mb_download_streams(server: Server) -> None:
    content, filename, shape = _payload("npy")
    r = httpx.post(server.url + "/api/v1/datasets/upload", files={"file": (filename, content)}, timeout=300)
    assert r.status_code == 201, r.text[:300]
    link = r.json()["links"]["data"]
    del content
    proc = psutil.Process(server.proc.pid)
    time.sleep(0.5)
    base = peak = proc.memory_info().rss
    size = 0
    t0 = time.perf_counter()
    with httpx.stream("GET", server.url + link, timeout=300) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes(1 << 20):
            size += len(chunk)
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.002)  # a client slower than the server
    elapsed = time.perf_counter() - t0
    print(f"\ndownload {size / MB:.1f} MB in {elapsed:.1f} s: RSS {base / MB:.0f} -> peak {peak / MB:.0f} MB "
          f"(+{(peak - base) / MB:.0f} MB)")
    assert size == shape[0] * shape[1] * 8 + 128
    assert peak - base < 32 * MB  # chunks of 1 MiB, not the 64 MB blob
