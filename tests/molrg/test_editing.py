"""Semantic editing along basis vectors (spec section 10)."""

import pytest
import torch

from molrg.analysis.editing import edit_along_basis, edit_effects, random_direction_edit
from molrg.data.synthetic import make_molrg


def test_basis_edit_changes_one_coordinate_random_edit_leaves_subspace():
    data = make_molrg(40, [4, 3], n_samples=6, seed=0)
    U = data.bases[0]
    x = data.X[data.labels == 0]
    edited = edit_along_basis(x, U, 2, [0.5, -1.0])
    assert edited.shape == (2, *x.shape)
    eff = edit_effects(x, edited, U)
    want = torch.zeros(2, x.shape[0], 4, dtype=torch.float64)
    want[0, :, 2], want[1, :, 2] = 0.5, -1.0
    torch.testing.assert_close(eff["coordinate_change"], want, atol=1e-12, rtol=0)
    assert eff["off_subspace"].max() < 1e-12
    rnd = edit_effects(x, random_direction_edit(x, [1.0], seed=1), U)
    # a random unit vector keeps about d/n of its energy in the subspace
    assert rnd["off_subspace"].mean() > 0.8
    step = (random_direction_edit(x, 1.0, seed=1)[0] - x).norm(dim=-1)
    torch.testing.assert_close(step, torch.ones(x.shape[0], dtype=torch.float64))
    with pytest.raises(ValueError, match="coord_index"):
        edit_along_basis(x, U, 4, 1.0)
