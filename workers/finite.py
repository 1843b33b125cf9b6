"""Results that stop being finite fail the job with a reason a user can act on, before anything is stored.

On SQLite a NaN became NULL and the INSERT failed with the SQL statement in ``job.error``; on PostgreSQL
the NaN was stored and the job succeeded with nulls where floats belong. Both now fail the same way:
``NonFiniteResult: the loss became NaN at step 12; the data's scale (max |x| = 1e+300) overflows float64
...``. :func:`user_message` keeps SQL, bound parameters and tracebacks out of any message a user sees.
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sqlalchemy import exc as sa_exc

FLOAT64_MAX = float(np.finfo(np.float64).max)
MAX_MESSAGE_CHARS = 1000


class NonFiniteResult(Exception):
    """A fit or sample produced NaN or infinite numbers; the message says where and what to change."""


def data_scale(X: np.ndarray) -> str:
    """Why float64 arithmetic on ``X`` may overflow, or '' when its scale is ordinary."""
    peak = float(np.max(np.abs(X))) if X.size else 0.0
    # A diffusion fit sums products of up to four data values (covariances of the noised data and their
    # squares): measured, a 24 x 6 fit ran at max|x| = 1.6e77 and failed at 3.3e77; N*n*|x|^4 = 1.8e308 at 3.3e76.
    limit = (FLOAT64_MAX / max(X.size, 1)) ** 0.25
    if peak > limit:
        return (f"the data's scale (max |x| = {peak:.3g}) overflows float64 (for {X.shape[0]} x {X.shape[1]} "
                f"values |x| must stay below ~{limit:.3g}): rescale the data, e.g. standardise it or divide it "
                f"by {peak:.3g}")
    return ""


def _not_finite(values: Any) -> bool:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=float)
    return not bool(np.isfinite(arr).all())


def _label(v: float) -> str:
    return "NaN" if math.isnan(v) else ("+inf" if v > 0 else "-inf")


def check_fit(history: Sequence[float], bases: Sequence[Any], weights: Any, X: np.ndarray) -> None:
    """Raise :class:`NonFiniteResult` when the loss, the bases or the weights of a fit are not finite."""
    scale = data_scale(X)
    bad = next((i for i, v in enumerate(history) if not math.isfinite(v)), None)
    if bad is not None:
        hint = scale or "lower the learning rate (options.lr) or rescale the data"
        raise NonFiniteResult(f"the loss became {_label(history[bad])} at step {bad}; {hint}")
    if any(_not_finite(U) for U in bases) or _not_finite(weights):
        hint = scale or "the data may be degenerate (constant or duplicated rows); check it or rescale it"
        raise NonFiniteResult(f"the fitted bases or weights are NaN or infinite; {hint}")


def explain_fit_error(exc: BaseException, X: np.ndarray) -> None:
    """A fit that raised on data whose scale overflows float64 fails with that reason instead (and the
    numerical error as detail); other errors are left to the caller."""
    if isinstance(exc, NonFiniteResult):
        return
    if scale := data_scale(X):
        raise NonFiniteResult(f"the fit failed ({type(exc).__name__}: {_first_line(str(exc))}); {scale}") from exc


def check_samples(samples: Any, X: np.ndarray) -> None:
    """Raise :class:`NonFiniteResult` when drawn samples hold NaN or infinite values."""
    arr = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    finite = np.isfinite(arr)
    if not finite.all():
        hint = data_scale(X) or "use more sampler steps, or another sampler (e.g. heun)"
        raise NonFiniteResult(f"{int(finite.size - finite.sum())} of {finite.size} sampled values are NaN or "
                              f"infinite; {hint}")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def user_message(exc: BaseException) -> str:
    """``Type: reason`` for ``job.error``: a database error gives its driver's first line only (no SQL
    statement, bound parameters or DETAIL with row values); any message is one paragraph, capped."""
    if isinstance(exc, sa_exc.StatementError):
        orig = exc.orig if exc.orig is not None else exc
        reason = _first_line(str(orig)) or type(orig).__name__
        return f"{type(exc).__name__}: the database refused the job's result: {reason}"
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return f"{type(exc).__name__}: database error"
    text = str(exc).split("\nTraceback (most recent call last)")[0].strip()
    return f"{type(exc).__name__}: {text}"[:MAX_MESSAGE_CHARS]
