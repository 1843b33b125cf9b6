"""The API process never imports torch, workers, or of molrg more than its declaration (even after serving)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, tempfile
from pathlib import Path
import service.main, service.cli
from fastapi.testclient import TestClient
from migrations import upgrade_head
from service.settings import ServiceSettings
d = Path(tempfile.mkdtemp())
s = ServiceSettings(data_dir=d, auth_enabled=False)
upgrade_head(s.database_url)
with TestClient(service.main.create_app(s)) as c:
    assert c.get("/api/v1/jobs").status_code == 200
    assert c.get("/metrics").status_code == 200
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "workers")
             or (m.split(".")[0] == "molrg" and m != "molrg" and m.split(".")[:2] != ["molrg", "spec"]))
print("BAD", bad)
"""


def test_service_does_not_import_torch_molrg_or_workers() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BAD []" in out.stdout, out.stdout


def test_importing_main_connects_to_nothing() -> None:
    code = "import service.main as m; import sys; print('sqlalchemy.engine' in sys.modules, hasattr(m, 'app'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "False"  # no module-level app: create_app() builds it
