"""The built-in digits dataset (read from scikit-learn's package data), dims from the data, image figures."""

import numpy as np
import pytest
from click.testing import CliRunner

from molrg_client import Client
from molrg_client.dims import choose_dims, energy_dim
from service.cli import cli
from tests.client.conftest import wait_plots
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]


def test_energy_rule() -> None:
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((20, 3)))[0]
    Z = rng.standard_normal((100, 3)) @ U.T
    assert energy_dim(Z) <= 3 and energy_dim(np.eye(20)) == 19  # 19/20 = 95%
    labels = np.repeat([0, 1], 50)
    assert choose_dims(Z, 2, labels) == [energy_dim(Z[:50]), energy_dim(Z[50:])]
    assert choose_dims(Z, 3, labels) == [energy_dim(Z)] * 3


def test_digits_fit_sample_figures(client: Client, embedded_stack: Stack, api_key: str) -> None:
    runner = CliRunner()
    env = {"MOLRG_URL": embedded_stack.url, "MOLRG_API_KEY": api_key}
    import json

    made = runner.invoke(cli, ["datasets", "create-builtin", "digits", "--classes", "0,1", "--json"], env=env)
    assert made.exit_code == 0, made.stderr
    ds = json.loads(made.stdout)
    assert ds["source"] == "builtin" and ds["ambient_dim"] == 64 and ds["spec"]["image_shape"] == [8, 8]
    X, y = client.datasets.download(ds["id"]), client.datasets.labels(ds["id"])
    assert X.shape == (ds["n_samples"], 64) and set(np.unique(y)) == {0, 1} and 0 <= X.min() and X.max() <= 1

    fitted = runner.invoke(cli, ["fit", ds["id"], "-K", "2", "--method", "subspace_clustering", "--wait", "--json"],
                           env=env)
    assert fitted.exit_code == 0, fitted.stderr
    assert "dims from the data (95% energy)" in fitted.stderr
    job = json.loads(fitted.stdout)
    model = client.models.get(job["result"]["model_id"])
    assert model.dims == choose_dims(X, 2, y)

    sj = client.jobs.wait(client.samples.create(model, n_samples=16, steps=8), timeout=120)
    assert sj.status == "succeeded", sj.error
    kinds = wait_plots(lambda: client.sample_sets.plots(sj.sample_set_id), {"grid", "editing"})
    assert set(kinds) == {"grid", "editing"}
    diag = client.sample_sets.get(sj.sample_set_id).diagnostics
    assert diag  # memorisation and residual diagnostics are stored with the samples
