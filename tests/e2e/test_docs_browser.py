"""The docs page renders the operations in a real headless Chromium, with no internet."""

import shutil
import subprocess
import tempfile

import pytest

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup installs it as root)")
def test_docs_page_renders_operations_offline(stack: Stack) -> None:
    if stack.backend != "embedded":
        pytest.skip("the docs page does not depend on the backend")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", f"{stack.url}/docs"],
            capture_output=True, text=True, timeout=120,
        )
    dom = proc.stdout
    assert "swagger-ui" in dom, proc.stderr[-2000:]
    # Operations are rendered by Swagger UI's JavaScript (served locally), not present in the raw HTML.
    assert "opblock" in dom, "Swagger UI did not render any operation"
    for path in ("/api/v1/fits", "/api/v1/datasets", "/api/v1/jobs/{job_id}"):
        assert path in dom or path.replace("{job_id}", "{id}") in dom, path
