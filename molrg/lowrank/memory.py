"""Memory budget of a low-rank fit (spec section 11): no tensor grows with N^2, and a stated peak.

Every pairwise (N x N, n x n) product of the fitting code is built in chunks of at most
``WORKSPACE_BYTES``; the other tensors are linear in N and n. :func:`fit_peak_bytes` estimates a
fit's peak bytes from its shape so that a service can derive its limits from one formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

WORKSPACE_BYTES = 256 * 2**20  # largest chunk of a pairwise (m x m per fit) computation


def fit_peak_bytes(
    B: int, N: int, n: int, K: int, dmax: int, R: int = 1, *, method: str = "diffusion", model: str = "linear",
    batch_size: int = 64, itemsize: int = 8, workspace: int = WORKSPACE_BYTES,
) -> int:
    """Upper estimate of the peak bytes of ``fit_batched`` on X (B, N, n) with K bases (n, dmax), R restarts.

    Counts the live tensors of each method (float64 copies where the code makes them, 8 bytes), the
    chunked pairwise workspace, and a 1.5x allowance for temporaries.
    """
    f8 = 8
    data = B * N * n * (itemsize + f8)  # X and its float64 copy
    bases = B * R * K * n * dmax
    rows = B * R * K * N
    if method == "pca":
        core = B * N * n * f8 * 2 + B * n * min(N, n) * f8
    elif method == "subspace_clustering":
        core = f8 * (8 * bases + 4 * rows + 4 * B * R * N + B * R * dmax * n)
    else:
        core = f8 * (12 * bases + 3 * rows * dmax + 4 * rows + 4 * B * R * N)
        if model == "softmax":
            Mb = B * R * batch_size
            core += f8 * (12 * Mb * n + 8 * Mb * K * dmax + 4 * Mb * K)
    return int(1.5 * (data + core) + workspace)


def chunks(total: int, bytes_per_item: int, workspace: int | None = None) -> Iterator[slice]:
    """Slices of range(total) whose items take at most ``workspace`` (default WORKSPACE_BYTES) bytes together."""
    budget = WORKSPACE_BYTES if workspace is None else workspace
    step = max(1, budget // max(1, bytes_per_item))
    for start in range(0, total, step):
        yield slice(start, min(total, start + step))


def chunked(fn: Callable[[slice], Tensor], total: int, bytes_per_item: int) -> Tensor:
    """torch.cat of fn(s) over :func:`chunks` along dim 0."""
    return torch.cat([fn(s) for s in chunks(total, bytes_per_item)])
