"""MoLRGDiffusion facade: fit/sample/denoise round trip, from_bases, validation."""

import numpy as np
import pytest
import torch

from molrg.analysis.metrics import recovery_error
from molrg.data.synthetic import make_molrg
from molrg.lowrank.estimator import MoLRGDiffusion, NotFittedError


def _residual(x: torch.Tensor, bases: list[torch.Tensor]) -> torch.Tensor:
    res = torch.stack([(x - x @ U @ U.T).norm(dim=-1) for U in bases], -1).amin(-1)
    return res / x.norm(dim=-1)


def test_fit_sample_denoise_round_trip():
    data = make_molrg(12, [2, 2], samples_per_component=8, seed=0)
    model = MoLRGDiffusion(2, [2, 2], method="diffusion", seed=0, steps=400).fit(data.X)
    assert recovery_error(model.bases_, data.bases) < 0.1
    assert model.weights_ == pytest.approx([0.5, 0.5])
    assert set(model.objectives_) == {"diffusion_loss", "subspace_clustering_objective", "explained_energy"}
    assert model.objectives_["explained_energy"] == pytest.approx(1.0, abs=1e-4)
    assert len(model.loss_history_) > 0 and model.n_features_in_ == 12 and model.stopped_ is False
    x = model.sample(16, seed=1)
    assert x.shape == (16, 12)
    assert (_residual(x.to(torch.float64), model.bases_) < 1e-2).all()
    xt = data.X[:5] + 1e-3 * torch.randn(5, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    den = model.denoise(xt, 1e-3)
    U = model.bases_[0] if (data.X[:1] @ model.bases_[0]).norm() > (data.X[:1] @ model.bases_[1]).norm() else None
    assert torch.allclose(den, data.X[:5], atol=1e-2)
    assert U is None or torch.allclose(den[0], xt[0] @ U @ U.T, atol=1e-5)


def test_pca_and_from_bases():
    data = make_molrg(10, [3], n_samples=6, seed=4)
    model = MoLRGDiffusion(1, [3], method="pca").fit(data.X.numpy())
    assert recovery_error(model.bases_, data.bases) < 1e-6 and model.weights_ == [1.0]
    clone = MoLRGDiffusion.from_bases([np.asarray(U) for U in model.bases_], [1.0])
    x = clone.sample(4, seed=0)
    assert (_residual(x, model.bases_) < 1e-2).all()
    assert clone.get_config()["dims"] == [3]


def test_validation_and_not_fitted():
    model = MoLRGDiffusion(2, [2, 2], lr=0.1)
    with pytest.raises(NotFittedError):
        model.sample(3)
    with pytest.raises(ValueError, match="2-D"):
        model.fit(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(torch.full((4, 6), float("nan")))
    with pytest.raises(ValueError, match="dims"):
        MoLRGDiffusion(3, [2, 2]).fit(torch.randn(5, 6))
    with pytest.raises(ValueError, match="dims"):
        MoLRGDiffusion(1, [6]).fit(torch.randn(5, 6))
    with pytest.raises(ValueError, match="unknown option"):
        MoLRGDiffusion(1, [2], bogus=1).fit(torch.randn(5, 6))
    import json

    json.dumps(model.get_config())
