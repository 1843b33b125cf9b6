"""Worker figures: PNGs of the stated size; a failing figure never fails the job; MOLRG_PLOTS=0 disables."""

import numpy as np
import pytest

from workers import figures
from workers.plots import png_size


def test_loss_and_jacobian_pngs() -> None:
    f = figures.loss_png([1.0, 0.5, 0.25], method="diffusion")
    assert f.kind == "loss" and png_size(f.png) == (f.width, f.height) == (800, 500)
    res = {"n": 10, "sigmas": [10.0, 1.0, 0.1], "rank_ratio": [0.5, 0.4, 0.2], "energy": 0.99}
    j = figures.jacobian_png(res, [2, 3])
    assert png_size(j.png) == (800, 500)


def test_memorisation_ratio_and_image_figures() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 16))
    S = np.vstack([X[:2] + 1e-6, rng.standard_normal((6, 16))])
    nearest, ratio = figures.memorisation(S, X)
    assert list(nearest[:2]) == [0, 1] and np.all(ratio[:2] < 1e-3) and np.all(ratio[2:] > 1 / 3)
    U = np.linalg.qr(rng.standard_normal((16, 3)))[0]
    figs = figures.sample_figures(S, X, [U])
    assert [f.kind for f in figs] == ["grid", "editing"]
    assert all(png_size(f.png) == (f.width, f.height) for f in figs)
    assert figures.sample_figures(rng.standard_normal((4, 15)), rng.standard_normal((5, 15)), [U[:15]]) == []


def test_failing_figure_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        bases_ = [np.eye(4)[:, :2]]
        weights_ = [1.0]

        def sample(self, *a: object, **k: object) -> None:
            raise RuntimeError("boom")

    figs = figures.fit_figures(Broken(), np.random.default_rng(0).standard_normal((10, 4)), [1.0, 0.5], "pca")
    assert [f.kind for f in figs] == ["loss", "jacobian"] and "projection failed" in caplog.text


def test_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLRG_PLOTS", "0")
    assert not figures.enabled()
    monkeypatch.delenv("MOLRG_PLOTS")
    assert figures.enabled()
