"""A real uvicorn server for the app (loopback), for concurrency tests: in a process of its own (so the test's
client does not share the server's interpreter lock), or on a thread of the test process (to patch it);
and a ``/health/live`` prober in a process of its own."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from db.session import make_engine, make_sessionmaker, session_scope
from service.auth import create_api_key
from service.main import create_app
from service.settings import ServiceSettings
from tests.db.dbfixtures import free_port


class Served:
    """``create_app(settings)`` behind uvicorn on 127.0.0.1; ``headers(owner)`` makes an API key."""

    def __init__(self, data_dir: Path, database_url: str, in_process: bool = False, **overrides: Any) -> None:
        self.settings = ServiceSettings(data_dir=data_dir, database_url=database_url, **overrides)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.server: uvicorn.Server | None = None
        if in_process:
            self.app = create_app(self.settings)
            self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                                        timeout_graceful_shutdown=2))
            self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)
            self.thread.start()
        else:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
            env |= {f"MOLRG_{k.upper()}": str(v) for k, v in {"data_dir": data_dir, "database_url": database_url,
                                                              **overrides}.items()}
            self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app",
                                          "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                          "--timeout-graceful-shutdown", "2"], env=env)
        deadline = time.monotonic() + 60
        while not self._up():
            alive = self.thread.is_alive() if self.server else self.proc is not None and self.proc.poll() is None
            if not alive or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.engine = make_engine(database_url)
        self.maker = make_sessionmaker(self.engine)

    def _up(self) -> bool:
        if self.server is not None:
            return bool(self.server.started)
        try:
            return httpx.get(self.url + "/health/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def headers(self, owner: str = "alice") -> dict[str, str]:
        with session_scope(self.maker) as s:
            _row, key = create_api_key(s, name="test", owner=owner)
        return {"Authorization": f"Bearer {key}"}

    def gauge(self, text: str, name: str) -> float | None:
        return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), None)

    def close(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(timeout=30)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "engine"):
            self.engine.dispose()


PROBE = r"""
import http.client, json, select, sys, time
host, port, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
lat, errors = [], []
conn = http.client.HTTPConnection(host, port, timeout=10)
while not select.select([sys.stdin], [], [], every)[0]:  # until the parent closes our stdin
    t0 = time.perf_counter()
    try:
        conn.request("GET", "/health/live")
        resp = conn.getresponse()
        resp.read()
        (lat.append(time.perf_counter() - t0) if resp.status == 200 else errors.append(resp.status))
    except (OSError, http.client.HTTPException) as exc:
        errors.append(repr(exc))
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=10)
print(json.dumps({"lat": lat, "errors": errors}))
"""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class LiveProbe:
    """``GET /health/live`` every ``every`` s from a process of its own, so that a load generator's event
    loop (sharing the cores) does not add to the latencies measured; ``stop`` returns the summary."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.proc = subprocess.Popen([sys.executable, "-c", PROBE, host, port, str(every)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def stop(self) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=30)
        data = json.loads(out)
        lat = data["lat"]
        return {"n": len(lat), "p50_ms": round(_pct(lat, 0.5) * 1e3, 1), "p99_ms": round(_pct(lat, 0.99) * 1e3, 1),
                "max_ms": round(max(lat, default=float("nan")) * 1e3, 1), "errors": len(data["errors"]),
                "error_samples": data["errors"][:5]}
