"""Worker-rendered figures, served from their model / sample set: they decode, with the stated size."""

import io

import pytest
from PIL import Image

from molrg_client import Client
from tests.client.conftest import wait_plots

pytestmark = [pytest.mark.e2e]


def _check(png: bytes, meta: dict) -> None:
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        assert im.format == "PNG" and im.size == (meta["width"], meta["height"])


def test_fit_and_sample_plots(client: Client) -> None:
    ds = client.datasets.create_synthetic(ambient_dim=64, dims=[3, 3], n_samples=80, seed=2)
    job = client.jobs.wait(client.fits.create(ds, 2, [3, 3], method="diffusion", options={"steps": 40}),
                           timeout=180)
    assert job.status == "succeeded", job.error
    model = client.models.get(job.model_id)
    assert model.links["plots"].endswith(f"/models/{model.id}/plots")
    plots = wait_plots(lambda: client.models.plots(model), {"loss", "projection", "jacobian"})
    assert set(plots) == {"loss", "projection", "jacobian"}
    for kind, meta in plots.items():
        _check(client.models.plot(model, kind), meta)
    r = client._http.get(plots["jacobian"]["url"])
    assert r.headers["content-type"] == "image/png" and r.headers["X-Image-Width"] == str(plots["jacobian"]["width"])

    sjob = client.jobs.wait(client.samples.create(model, n_samples=16, steps=6), timeout=120)
    assert sjob.status == "succeeded", sjob.error
    splots = wait_plots(lambda: client.sample_sets.plots(sjob.sample_set_id), {"grid", "editing"})
    assert set(splots) == {"grid", "editing"}  # n = 64 is an 8x8 image
    for kind, meta in splots.items():
        _check(client.sample_sets.plot(sjob.sample_set_id, kind), meta)

    from molrg_client.errors import MolrgError

    with pytest.raises(MolrgError) as exc:
        client.models.plot(model, "nope")
    assert exc.value.status == 404 and exc.value.code == "not_found"
