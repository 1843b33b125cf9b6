"""Delete through the real stack (``molrg up``: API + Celery worker): client methods and ``molrg <resource>
delete``; a running fit blocks its dataset's delete with a 409 naming it, and once cancelled it keeps its
loss history; the fix-the-request errors over real HTTP (curl's default form type, a wrong-kind id)."""

import time

import httpx
import pytest
from click.testing import CliRunner

from molrg_client import Client, MolrgError
from service.cli import cli
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]


def _running(client: Client, job_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (job := client.jobs.get(job_id)).status != "running" or job.progress <= 0:
        assert job.status in ("queued", "running"), job.error
        assert time.monotonic() < deadline, "fit never started"
        time.sleep(0.2)


def test_client_and_cli_delete(client: Client, embedded_stack: Stack, api_key: str) -> None:
    env = {"MOLRG_URL": embedded_stack.url, "MOLRG_API_KEY": api_key}
    runner = CliRunner()
    ds = client.datasets.create_synthetic(ambient_dim=12, dims=[2, 3], n_samples=40, seed=5, name="to-delete")

    # A long diffusion fit: deleting its dataset (or the job) while it runs is a 409 naming the job.
    long = client.fits.create(ds, 2, [2, 3], method="diffusion",
                              options={"steps": 1_000_000, "callback_every": 1, "tol": 1e-300})
    _running(client, long.id)
    with pytest.raises(MolrgError) as exc:
        client.datasets.delete(ds)
    assert exc.value.status == 409 and exc.value.code == "resource_in_use" and long.id in exc.value.detail
    refused = runner.invoke(cli, ["datasets", "delete", ds.id], env=env)
    assert refused.exit_code == 1 and long.id in refused.stderr and "cancel it first" in refused.stderr
    client.jobs.cancel(long)
    cancelled = client.jobs.wait(long, timeout=60)
    assert cancelled.status == "cancelled"
    history = client.jobs.metrics(long, "loss")
    assert history["total_points"] >= 1, history  # the loss so far is kept

    # A finished fit and a sample set: delete them one level at a time, from the CLI and the client.
    fit = client.jobs.wait(client.fits.create(ds, 2, [2, 3], method="subspace_clustering"), timeout=120)
    model = client.models.get(fit.result["model_id"])
    assert "loss" not in model.links  # subspace clustering has no loss history
    sampled = client.jobs.wait(client.samples.create(model, n_samples=5, steps=4), timeout=120)
    sample_set = sampled.result["sample_set_id"]
    shown = runner.invoke(cli, ["sample-sets", "delete", sample_set], env=env)
    assert shown.exit_code == 0 and shown.stdout.strip() == f"deleted sample set {sample_set}", shown.stderr
    with pytest.raises(MolrgError) as exc:
        client.jobs.get(sampled.id)
    assert exc.value.status == 404
    again = runner.invoke(cli, ["sample-sets", "delete", sample_set, "--json"], env=env)
    assert again.exit_code == 1 and "not_found" in again.stderr

    client.models.delete(model)
    with pytest.raises(MolrgError) as exc:
        client.jobs.get(fit.id)
    assert exc.value.status == 404
    done = runner.invoke(cli, ["datasets", "delete", ds.id, "--json"], env=env)
    assert done.exit_code == 0 and '"deleted": "dataset"' in done.stdout, done.stderr
    with pytest.raises(MolrgError) as exc:
        client.jobs.get(long.id)  # the cancelled fit went with its dataset
    assert exc.value.status == 404


def test_fix_the_request_errors_over_http(client: Client, embedded_stack: Stack, api_key: str) -> None:
    h = {"Authorization": f"Bearer {api_key}"}
    # What `curl -d '{...}'` sends without -H 'Content-Type: application/json'.
    r = httpx.post(f"{embedded_stack.url}/api/v1/datasets", timeout=30,
                   headers=h | {"Content-Type": "application/x-www-form-urlencoded"},
                   content=b'{"name": "x", "synthetic": {"ambient_dim": 8, "dims": [2], "n_samples": 5}}')
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in r.json()["detail"]
    r = httpx.post(f"{embedded_stack.url}/api/v1/datasets/upload", headers=h, files={"data": ("x.csv", b"1,2\n")},
                   timeout=30)
    assert r.status_code == 422 and "multipart/form-data field `file`" in r.json()["errors"][0]["reason"]

    ds = client.datasets.create_synthetic(ambient_dim=8, dims=[2], n_samples=20, seed=1)
    fit = client.jobs.wait(client.fits.create(ds, 1, [2], method="pca"), timeout=120)
    with pytest.raises(MolrgError) as exc:
        client.samples.create(fit.id, n_samples=3)  # a job id where a model id belongs
    assert exc.value.status == 404
    assert f"{fit.id} is a fit job (succeeded); its model is {fit.result['model_id']}" in exc.value.detail
    client.datasets.delete(ds)
