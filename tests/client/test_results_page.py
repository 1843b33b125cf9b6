"""The results page (a job's numbers and figures) renders in headless Chromium, fetching with the key."""

import re
import shutil
import subprocess
import tempfile

import pytest

from molrg_client import Client
from tests.client.conftest import wait_plots
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _dom(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )
    return proc.stdout + "\n<!--stderr-->" + proc.stderr[-1500:]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_results_page_shows_numbers_and_figures(client: Client, embedded_stack: Stack, api_key: str) -> None:
    ds = client.datasets.create_synthetic(ambient_dim=16, dims=[2, 2], n_samples=60, seed=4)
    job = client.jobs.wait(client.fits.create(ds, 2, [2, 2], method="diffusion", options={"steps": 30}), timeout=120)
    assert job.status == "succeeded", job.error
    wait_plots(lambda: client.models.plots(job.model_id), {"loss", "projection", "jacobian"})
    dom = _dom(f"{embedded_stack.url}/results#job={job.id}&key={api_key}")
    assert 'data-ready="1"' in dom, dom[-3000:]
    assert "recovery_error" in dom and job.id in dom
    for kind in ("loss", "projection", "jacobian"):
        assert f'class="img-ok" data-kind="{kind}"' in dom, dom[-3000:]
    assert 'class="img-bad"' not in dom
    bad = _dom(f"{embedded_stack.url}/results#job={job.id}&key=wrong")
    assert 'data-ready="error"' in bad
    assert re.search(r'<div id="error">[^<]+</div>', bad), bad[-3000:]
