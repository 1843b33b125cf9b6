"""Semantic checks at the edge (after pydantic parsing): cross-field rules and size limits.

Every failure names the field (dotted path) and the reason, so the client can fix the request.
"""

from collections.abc import Callable
from typing import Any

from service.errors import FieldError, ValidationFailed
from service.schemas import FitCreate, SampleCreate, SyntheticSpec
from service.settings import ServiceSettings

Check = Callable[[Any, ServiceSettings], str | None]


def _positive_int(limit_attr: str | None = None, minimum: int = 1) -> Check:
    def check(value: Any, settings: ServiceSettings) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if value < minimum:
            return f"must be >= {minimum}, got {value}"
        if limit_attr is not None and value > getattr(settings, limit_attr):
            return f"{value} exceeds the limit {limit_attr}={getattr(settings, limit_attr)}"
        return None

    return check


def _positive_float(value: Any, settings: ServiceSettings) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {value!r}"
    if not 0 < value < 1e6:
        return f"must be in (0, 1e6), got {value}"
    return None


def _choice(*allowed: str) -> Check:
    def check(value: Any, settings: ServiceSettings) -> str | None:
        if value not in allowed:
            return f"must be one of {', '.join(allowed)}; got {value!r}"
        return None

    return check


# Known options per method, mirroring molrg.lowrank.fitting (which the API must not import): names and choices.
FIT_OPTIONS: dict[str, dict[str, Check]] = {
    "diffusion": {
        "model": _choice("auto", "linear", "hardmax", "softmax"),
        "schedule": _choice("vp", "ve", "edm"),
        "weighting": _choice("unit", "edm"),
        "n_quad": _positive_int("max_steps"),
        "lr": _positive_float,
        "steps": _positive_int("max_train_steps"),
        "restarts": _positive_int("max_restarts"),
        "init": _choice("random", "data", "pca", "ksubspaces"),
        "batch_size": _positive_int("max_rows"),
        "optimizer": _choice("adam", "sgd"),
        "retraction": _choice("qr", "polar"),
        "tol": _positive_float,
        "sigma_data": _positive_float,
    },
    "subspace_clustering": {
        "n_restarts": _positive_int("max_restarts"),
        "max_iter": _positive_int("max_train_steps"),
        "init": _choice("data", "random"),
    },
    "pca": {},
}


def _raise(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed(errors)


def _check_dims(dims: list[int], ambient_dim: int, field: str, errors: list[FieldError]) -> None:
    for i, d in enumerate(dims):
        if d < 1:
            errors.append(FieldError(f"{field}[{i}]", f"dims[{i}]={d} must be >= 1"))
        elif d >= ambient_dim:
            errors.append(FieldError(f"{field}[{i}]", f"dims[{i}]={d} must be < ambient_dim={ambient_dim}"))


def validate_synthetic(spec: SyntheticSpec, settings: ServiceSettings) -> None:
    """Cross-field rules and limits of a synthetic dataset request."""
    errors: list[FieldError] = []
    n, K = spec.ambient_dim, len(spec.dims)
    if n > settings.max_ambient_dim:
        errors.append(FieldError("synthetic.ambient_dim",
                                 f"ambient_dim={n} exceeds the limit max_ambient_dim={settings.max_ambient_dim}"))
    if K > settings.max_components:
        errors.append(FieldError("synthetic.dims",
                                 f"{K} components exceed the limit max_components={settings.max_components}"))
    _check_dims(spec.dims, n, "synthetic.dims", errors)
    if spec.orthogonal and sum(spec.dims) > n:
        errors.append(FieldError("synthetic.dims",
                                 f"sum(dims)={sum(spec.dims)} exceeds ambient_dim={n} for orthogonal subspaces"))
    if spec.weights is not None:
        if len(spec.weights) != K:
            errors.append(FieldError("synthetic.weights", f"len(weights)={len(spec.weights)} != len(dims)={K}"))
        elif any(not (w > 0 and w < float("inf")) for w in spec.weights):
            errors.append(FieldError("synthetic.weights", "weights must be positive and finite"))
    if (spec.n_samples is None) == (spec.samples_per_component is None):
        errors.append(FieldError("synthetic.n_samples", "give exactly one of n_samples and samples_per_component"))
    N = spec.n_samples or 0
    per = spec.samples_per_component
    if isinstance(per, list):
        if len(per) != K:
            errors.append(FieldError("synthetic.samples_per_component",
                                     f"len(samples_per_component)={len(per)} != len(dims)={K}"))
        if any(c < 1 for c in per):
            errors.append(FieldError("synthetic.samples_per_component", "every count must be >= 1"))
        N = sum(per)
    elif isinstance(per, int):
        if per < 1:
            errors.append(FieldError("synthetic.samples_per_component", f"must be >= 1, got {per}"))
        N = per * K
    field = "synthetic.n_samples" if spec.n_samples is not None else "synthetic.samples_per_component"
    if N > settings.max_rows:
        errors.append(FieldError(field, f"N={N} samples exceeds the limit max_rows={settings.max_rows}"))
    elif N * n > settings.max_dataset_values:
        errors.append(FieldError(field, f"N*n={N * n} values exceeds the limit "
                                        f"max_dataset_values={settings.max_dataset_values}"))
    _raise(errors)


def validate_fit(req: FitCreate, ambient_dim: int, settings: ServiceSettings) -> None:
    """Rules of a fit request against its dataset's ambient dimension and the limits."""
    errors: list[FieldError] = []
    K = req.n_components
    if K > settings.max_components:
        errors.append(FieldError("n_components", f"n_components={K} exceeds the limit "
                                                 f"max_components={settings.max_components}"))
    if req.method == "pca" and K != 1:
        errors.append(FieldError("n_components", f"method pca fits one subspace: n_components must be 1, got {K}"))
    if len(req.dims) != K:
        errors.append(FieldError("dims", f"len(dims)={len(req.dims)} != n_components={K}"))
    _check_dims(req.dims, ambient_dim, "dims", errors)
    known = FIT_OPTIONS[req.method]
    for key, value in req.options.items():
        check = known.get(key)
        if check is None:
            allowed = ", ".join(sorted(known)) or "none"
            errors.append(FieldError(f"options.{key}", f"unknown option for method {req.method} (known: {allowed})"))
        elif (reason := check(value, settings)) is not None:
            errors.append(FieldError(f"options.{key}", reason))
    _raise(errors)


def validate_sample(req: SampleCreate, ambient_dim: int, settings: ServiceSettings) -> None:
    """Limits of a sampling request."""
    errors: list[FieldError] = []
    if req.n_samples > settings.max_samples:
        errors.append(FieldError("n_samples", f"n_samples={req.n_samples} exceeds the limit "
                                              f"max_samples={settings.max_samples}"))
    elif req.n_samples * ambient_dim > settings.max_dataset_values:
        errors.append(FieldError("n_samples", f"n_samples*ambient_dim={req.n_samples * ambient_dim} exceeds "
                                              f"the limit max_dataset_values={settings.max_dataset_values}"))
    if req.steps > settings.max_steps:
        errors.append(FieldError("steps", f"steps={req.steps} exceeds the limit max_steps={settings.max_steps}"))
    _raise(errors)
