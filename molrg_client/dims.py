"""Intrinsic dimensions from data when the user gives none: the 95%-energy rule.

For a set of rows ``Z`` (uncentred: MoLRG subspaces pass through the origin) with singular values
``s_1 >= s_2 >= ...``, ``energy_dim(Z)`` is the smallest ``d`` with ``sum_{i<=d} s_i^2 >= 0.95 sum_i s_i^2``.

``choose_dims(X, K, labels)``: when the dataset has labels and ``K`` equals the number of classes,
``d_k`` is the energy dimension of class k (classes in increasing order: one component per class);
otherwise every ``d_k`` is the energy dimension of the whole dataset. Each ``d_k`` is capped at ``n - 1``.
"""

import numpy as np

ENERGY = 0.95


def energy_dim(Z: np.ndarray, energy: float = ENERGY) -> int:
    s2 = np.linalg.svd(np.asarray(Z, dtype=np.float64), compute_uv=False) ** 2
    if s2.sum() <= 0:
        return 1
    return int(np.searchsorted(np.cumsum(s2) / s2.sum(), energy - 1e-12) + 1)


def choose_dims(X: np.ndarray, n_components: int, labels: np.ndarray | None = None,
                energy: float = ENERGY) -> list[int]:
    n = X.shape[1]
    if labels is not None:
        classes = np.unique(labels)
        if len(classes) == n_components:
            return [min(energy_dim(X[labels == c], energy), n - 1) for c in classes]
    return [min(energy_dim(X, energy), n - 1)] * n_components
