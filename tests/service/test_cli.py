"""The molrg CLI: api-key create prints the key last and it authenticates; up serves the API and stops cleanly."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from service.cli import DEFAULT_MAX_TASKS_PER_CHILD, beat_command, cli, worker_command, worker_env
from service.main import create_app
from service.settings import ServiceSettings
from tests.db.dbfixtures import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("MOLRG_DATABASE_URL", "MOLRG_BROKER_URL", "MOLRG_AUTH_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MOLRG_DATA_DIR", str(tmp_path / "d"))  # restored after the test
    return tmp_path / "d"


def test_api_key_create_prints_key_last_and_it_authenticates(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["api-key", "create", "--name", "ci", "--owner", "carol",
                                      "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("molrg_") and len(key) > 30
    settings = ServiceSettings(data_dir=data_dir)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/api/v1/jobs", headers={"Authorization": "Bearer molrg_wrong"}).status_code == 401
    listing = CliRunner().invoke(cli, ["api-key", "list", "--data-dir", str(data_dir)])
    assert "owner=carol" in listing.output and key not in listing.output
    key_id = listing.output.split()[0]
    assert CliRunner().invoke(cli, ["api-key", "revoke", key_id, "--data-dir", str(data_dir)]).exit_code == 0
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_worker_command_matches_contract() -> None:
    settings = ServiceSettings(data_dir=Path("/tmp/x"))
    cmd = worker_command(settings, 0, beat=True)
    assert cmd[:4] == [sys.executable, "-m", "celery", "-A"] and cmd[4:6] == ["workers.celery_app", "worker"]
    for flag, value in (("-Q", "gpu,cpu"), ("--pool", "prefork"), ("--concurrency", "1"),
                        ("--max-tasks-per-child", str(DEFAULT_MAX_TASKS_PER_CHILD)),
                        ("-s", "/tmp/x/celerybeat-schedule"), ("-l", "info")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "-B" in cmd and "--without-mingle" in cmd and "--without-gossip" in cmd
    assert "-B" not in worker_command(settings, 1, beat=False)
    one = worker_command(settings, 0, max_tasks_per_child=1)
    assert one[one.index("--max-tasks-per-child") + 1] == "1"
    beat = beat_command(settings)
    assert beat[4:6] == ["workers.celery_app", "beat"] and beat[beat.index("-s") + 1] == "/tmp/x/celerybeat-schedule"


def test_worker_env_shares_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServiceSettings(data_dir=Path("/tmp/x"))
    monkeypatch.delenv("MOLRG_TORCH_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert worker_env(settings, workers=2)["MOLRG_TORCH_THREADS"] == "4"
    assert worker_env(settings, workers=16)["MOLRG_TORCH_THREADS"] == "1"
    monkeypatch.setenv("MOLRG_TORCH_THREADS", "3")  # an explicit choice wins
    assert worker_env(settings, workers=2)["MOLRG_TORCH_THREADS"] == "3"


@pytest.mark.parametrize("api_workers", [1, 2])
def test_up_without_worker_serves_and_stops(data_dir: Path, api_workers: int) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "up", "--no-worker", "--port", str(port),
                             "--data-dir", str(data_dir), "--api-workers", str(api_workers)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        key_file = data_dir / "api-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"molrg API docs: http://127.0.0.1:{port}/docs" in out
    assert key in out  # printed once, on first start
    assert out.count("Started server process") == api_workers, out
