"""Memory budget of a low-rank fit (spec section 11): no tensor grows with N^2, and a stated peak.

Every pairwise (N x N, n x n) product of the fitting code is built in chunks of at most
``WORKSPACE_BYTES``; the other tensors are linear in N and n. :func:`molrg.spec.fit_peak_bytes` (declared beside the contract, so the API can use it) estimates a
fit's peak bytes from its shape so that a service can derive its limits from one formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from molrg.spec import WORKSPACE_BYTES, fit_peak_bytes

__all__ = ["WORKSPACE_BYTES", "chunked", "chunks", "fit_peak_bytes"]


def chunks(total: int, bytes_per_item: int, workspace: int | None = None) -> Iterator[slice]:
    """Slices of range(total) whose items take at most ``workspace`` (default WORKSPACE_BYTES) bytes together."""
    budget = WORKSPACE_BYTES if workspace is None else workspace
    step = max(1, budget // max(1, bytes_per_item))
    for start in range(0, total, step):
        yield slice(start, min(total, start + step))


def chunked(fn: Callable[[slice], Tensor], total: int, bytes_per_item: int) -> Tensor:
    """torch.cat of fn(s) over :func:`chunks` along dim 0."""
    return torch.cat([fn(s) for s in chunks(total, bytes_per_item)])
