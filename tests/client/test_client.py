"""The Python client against the real API (``molrg up``: API + Celery worker, embedded default)."""

import subprocess
import sys

import numpy as np
import pytest

from molrg_client import Client, Dataset, Job, Model, MolrgError, SampleSet

pytestmark = [pytest.mark.e2e]


def test_client_imports_without_torch_or_server_packages() -> None:
    code = ("import sys, molrg_client; bad = [m for m in ('torch', 'molrg', 'workers', 'service', 'db') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLRG_URL", "http://example.invalid:1234/")
    monkeypatch.setenv("MOLRG_API_KEY", "k123")
    c = Client()
    assert c.url == "http://example.invalid:1234" and c.api_key == "k123"
    assert c._http.headers["Authorization"] == "Bearer k123"
    c.close()


def test_datasets_fit_sample_roundtrip(client: Client) -> None:
    ds = client.datasets.create_synthetic(ambient_dim=12, dims=[2, 3], n_samples=60, seed=3, name="two")
    assert isinstance(ds, Dataset) and ds.n_samples == 60 and ds.ambient_dim == 12 and ds.has_ground_truth
    X = client.datasets.download(ds)
    assert X.shape == (60, 12) and X.dtype == np.float64
    assert [U.shape for U in client.datasets.bases(ds)] == [(12, 2), (12, 3)]
    assert client.datasets.labels(ds).shape == (60,)
    assert client.datasets.get(ds.id).name == "two"
    assert ds.id in {d.id for d in client.datasets.list(limit=100).items}

    up = client.datasets.upload(X[:20], name="uploaded")
    assert up.source == "upload" and up.n_samples == 20
    np.testing.assert_allclose(client.datasets.download(up), X[:20])

    job = client.fits.create(up, n_components=1, dims=[5], method="pca")
    assert isinstance(job, Job) and job.kind == "fit" and job.status == "queued"
    seen: list[str] = []
    job = client.jobs.wait(job, timeout=120, on_event=lambda ev: seen.append(ev.event))
    assert job.status == "succeeded", job.error
    assert seen[0] == "status" and seen[-1] == "end"
    model = client.models.get(job.model_id)
    assert isinstance(model, Model) and model.dims == [5] and model.ambient_dim == 12 and model.dataset_id == up.id
    bases = client.models.bases(model)
    assert len(bases) == 1 and bases[0].shape == (12, 5)
    np.testing.assert_allclose(bases[0].T @ bases[0], np.eye(5), atol=1e-8)
    assert job.id in {j.id for j in client.jobs.list(kind="fit").items}

    sjob = client.jobs.wait(client.samples.create(model, n_samples=7, steps=4), timeout=120)
    assert sjob.status == "succeeded", sjob.error
    ss = client.sample_sets.get(sjob.sample_set_id)
    assert isinstance(ss, SampleSet) and ss.n_samples == 7 and ss.model_id == model.id
    assert client.sample_sets.samples(ss).shape == (7, 12)


def test_errors_carry_problem_fields(client: Client) -> None:
    with pytest.raises(MolrgError) as exc:
        client.jobs.get("00000000-0000-0000-0000-000000000000")
    assert exc.value.status == 404 and exc.value.code == "not_found" and "not found" in exc.value.detail
    with pytest.raises(MolrgError) as exc:
        client.datasets.create_synthetic(ambient_dim=4, dims=[3, 3], n_samples=10)
    assert exc.value.status == 422 and exc.value.errors and "field" in exc.value.errors[0]
    with Client(client.url, "wrong-key") as bad, pytest.raises(MolrgError) as exc:
        bad.datasets.list()
    assert exc.value.status == 401


def test_cancel_queued_or_running_job(client: Client) -> None:
    ds = client.datasets.create_synthetic(ambient_dim=12, dims=[2], n_samples=30)
    job = client.fits.create(ds, n_components=1, dims=[2], method="diffusion", options={"steps": 5000, "tol": 1e-12})
    cancelled = client.jobs.cancel(job)
    assert cancelled.status in ("cancelled", "cancelling", "succeeded")
    final = client.jobs.wait(job, timeout=120)
    assert final.terminal


def test_wait_timeout_raises(client: Client) -> None:
    from molrg_client import MolrgTimeout

    ds = client.datasets.create_synthetic(ambient_dim=12, dims=[2], n_samples=30)
    job = client.fits.create(ds, n_components=1, dims=[2], method="diffusion", options={"steps": 200000, "tol": 1e-15})
    try:
        with pytest.raises(MolrgTimeout) as exc:
            client.jobs.wait(job, timeout=1.0)
        assert exc.value.code == "timeout"
    finally:
        client.jobs.cancel(job)
        client.jobs.wait(job, timeout=120)
