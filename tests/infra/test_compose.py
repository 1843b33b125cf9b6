"""The docker-compose stack and the Dockerfile, checked without a Docker engine."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_present(compose: dict) -> None:
    assert {"postgres", "redis", "migrate", "api", "worker-gpu", "worker-cpu", "beat"} <= set(compose["services"])


@pytest.mark.parametrize("name", ["postgres", "redis", "api"])
def test_compose_healthchecks(compose: dict, name: str) -> None:
    assert compose["services"][name]["healthcheck"]["test"]


def test_compose_startup_order(compose: dict) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    for name in ("api", "worker-gpu", "worker-cpu", "beat"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["migrate"]["condition"] == "service_completed_successfully", name


def test_compose_gpu_worker(compose: dict) -> None:
    gpu = compose["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    cmd = gpu["command"]
    assert cmd[cmd.index("-Q") + 1] == "gpu"
    assert cmd[cmd.index("--concurrency") + 1] == "1"
    assert cmd[cmd.index("--max-tasks-per-child") + 1] == "1"
    assert cmd[cmd.index("--pool") + 1] == "prefork"
    assert gpu["build"]["target"] == "worker"
    cpu = compose["services"]["worker-cpu"]["command"]
    assert "cpu" in cpu[cpu.index("-Q") + 1].split(",")
    assert int(cpu[cpu.index("--max-tasks-per-child") + 1]) > 1  # CPU children are reused (small jobs)


def test_compose_api_runs_several_server_processes(compose: dict) -> None:
    # the Dockerfile's uvicorn CMD reads WEB_CONCURRENCY as its --workers default
    assert int(compose["services"]["api"]["environment"]["WEB_CONCURRENCY"]) >= 2


def test_compose_env_points_at_stack(compose: dict) -> None:
    env = compose["services"]["api"]["environment"]
    assert env["MOLRG_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in env["MOLRG_DATABASE_URL"]
    assert env["MOLRG_BROKER_URL"].startswith("redis://redis:")
    assert compose["services"]["api"]["build"]["target"] == "api"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_config_validates() -> None:
    proc = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def _stages(text: str) -> dict[str, str]:
    """Split a Dockerfile into its build stages by `FROM ... AS name`."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.M | re.I)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_dockerfile_targets() -> None:
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert {"base", "api", "worker"} <= set(stages)
    assert "torch" not in stages["api"].replace('".[api]"', ""), "the API image must not install torch"
    assert '".[api]"' in stages["api"]
    assert re.search(r'pip install "torch==\$\{TORCH_VERSION\}" --index-url "\$\{TORCH_INDEX\}"', stages["worker"])
    assert "download.pytorch.org/whl/cu" in (ROOT / "Dockerfile").read_text()
    assert "--concurrency" in stages["worker"] and "--max-tasks-per-child" in stages["worker"]
