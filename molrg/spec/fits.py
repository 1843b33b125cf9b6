"""Fit options per method, the fit job (one variant per method) and its data rules (spec sections 5, 12)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
)

from molrg.spec.base import (
    MAX_COMPONENTS,
    METHODS,
    NEURAL_METHODS,
    DiffusionInit,
    DiffusionModel,
    FieldIssue,
    KSubspacesInit,
    Optimizer,
    Retraction,
    Schedule,
    Seed,
    Weighting,
    _Spec,
    raise_for,
)
from molrg.spec.networks import (
    MAX_NEURAL_PARAMETERS,
    NeuralOptions,
    _unet_errors,
    neural_parameter_count,
)

# ---------------------------------------------------------------- fit options (spec section 5)


class _LossOptions(_Spec):
    """How the reported diffusion loss of a low-rank model is computed (section 2), and centring."""

    schedule: Schedule = Field("edm", description="Forward process of the loss: vp, ve or edm (section 2).")
    weighting: Weighting | None = Field(
        None, description="lambda_t of the loss: unit, or edm's (sigma^2+sd^2)/(sigma sd)^2 (sd: sigma_data, default "
                          "the data scale); default edm for the softmax model, unit for the exact losses.")
    n_quad: int = Field(64, ge=2, le=4096, description="Quadrature nodes over t of the exact expected loss.")
    center: bool = Field(False, description="Fit about the data mean (subtract it first); off: subspaces through 0.")

    def resolved_weighting(self, model: str | None = None) -> str:
        """lambda_t used: the option, else edm for the soft-max model and unit for the exact losses."""
        if self.weighting is not None:
            return self.weighting
        return "edm" if model == "softmax" else "unit"


class PCAOptions(_LossOptions):
    """K = 1 closed form: the top-d left singular vectors of the data (section 4)."""


class SubspaceClusteringOptions(_LossOptions):
    """K-subspaces: assign to argmax_k ||U_k^T x||, refit by SVD, repeat; best of restarts (section 5)."""

    n_restarts: int = Field(10, ge=1, le=256, description="Independent restarts; the best objective wins.")
    max_iter: int = Field(100, ge=1, le=100_000, description="Assignment/refit iterations per restart.")
    init: KSubspacesInit = Field("data", description="data: seeded from a point and its neighbours; random: Haar.")


class DiffusionOptions(_LossOptions):
    """Gradient training of the low-rank denoiser on the diffusion loss (sections 3-5, 11)."""

    model: DiffusionModel = Field(
        "auto", description="auto: linear for K = 1, hardmax for K >= 2 (exact loss); softmax: Monte-Carlo loss.")
    lr: float | None = Field(None, gt=0, le=100, description="Step size; default per model and optimizer.")
    steps: int = Field(2000, ge=1, le=1_000_000, description="Optimiser steps (stops early once converged).")
    restarts: int | None = Field(None, ge=1, le=256, description="Restarts trained as one batch; default 1 or 2.")
    init: DiffusionInit | None = Field(None, description="Start: random, data, pca or ksubspaces; default per K.")
    batch_size: int | None = Field(None, ge=1, le=65_536,
                                   description="Monte-Carlo batch of the soft-max loss (default 64).")
    optimizer: Optimizer = Field("adam", description="Riemannian adam or sgd on the Stiefel manifold.")
    retraction: Retraction = Field("qr", description="Retraction onto the Stiefel manifold: qr or polar.")
    tol: float | None = Field(None, gt=0, lt=1, description="Convergence of the exact-loss models: estimated distance "
                                                           "to a local optimum below tol (default 1e-5).")
    callback_every: int = Field(25, ge=1, le=1_000_000, description="Steps between progress reports.")
    sigma_data: float | None = Field(None, gt=0, le=1e6,
                                     description="Data scale of the soft-max loss's EDM weighting; default from data.")

    def resolved_model(self, n_components: int) -> str:
        """The model trained for K components: auto is linear for K = 1, hardmax for K >= 2."""
        if self.model != "auto":
            return self.model
        return "linear" if n_components == 1 else "hardmax"


class EmpiricalOptions(_Spec):
    """The empirical optimal denoiser: the posterior mean of the training set itself (section 12)."""


FIT_OPTIONS: dict[str, type[_Spec]] = {
    "diffusion": DiffusionOptions,
    "pca": PCAOptions,
    "subspace_clustering": SubspaceClusteringOptions,
    "neural": NeuralOptions,
    "empirical": EmpiricalOptions,
}


def parse_options(method: str, options: dict[str, Any] | None) -> _Spec:
    """The typed options of ``method`` from a dict; ValueError naming each bad option and why."""
    if method not in FIT_OPTIONS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    model = FIT_OPTIONS[method]
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as exc:
        known = ", ".join(model.model_fields) or "none"
        raise_for([
            FieldIssue(".".join(str(p) for p in ("options", *e["loc"])),
                       f"unknown option for method {method} (known: {known})" if e["type"] == "extra_forbidden"
                       else e["msg"])
            for e in exc.errors()
        ])
        raise


# ---------------------------------------------------------------- fit jobs


_EXAMPLE_ID = "5f0c6a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"


class _FitBase(_Spec):
    dataset_id: uuid.UUID = Field(description="The dataset to fit.")
    n_components: int = Field(ge=1, le=MAX_COMPONENTS, description="K, the number of subspaces.")
    dims: list[int] = Field(min_length=1, max_length=MAX_COMPONENTS,
                            description="d_k for each component (len == n_components).")
    seed: Seed = 0


class DiffusionFit(_FitBase):
    """Fit the low-rank denoiser by diffusion training."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{"dataset_id": _EXAMPLE_ID, "n_components": 2, "dims": [4, 4], "method": "diffusion", "options": {"steps": 2000}, "seed": 0}]})

    method: Literal["diffusion"] = "diffusion"
    options: DiffusionOptions = Field(default_factory=DiffusionOptions)


class PCAFit(_FitBase):
    """Fit one subspace by PCA."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{"dataset_id": _EXAMPLE_ID, "n_components": 1, "dims": [4], "method": "pca", "seed": 0}]})

    method: Literal["pca"]
    options: PCAOptions = Field(default_factory=PCAOptions)


class SubspaceClusteringFit(_FitBase):
    """Fit K subspaces by K-subspaces."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{"dataset_id": _EXAMPLE_ID, "n_components": 2, "dims": [4, 4], "method": "subspace_clustering", "options": {"n_restarts": 10}, "seed": 0}]})

    method: Literal["subspace_clustering"]
    options: SubspaceClusteringOptions = Field(default_factory=SubspaceClusteringOptions)


class NeuralFit(_FitBase):
    """Train a neural denoiser; ``n_components``/``dims`` name the subspaces read from it."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{"dataset_id": _EXAMPLE_ID, "n_components": 2, "dims": [4, 4], "method": "neural", "options": {"architecture": "mlp", "steps": 2000}, "seed": 0}]})

    method: Literal["neural"]
    options: NeuralOptions = Field(default_factory=NeuralOptions)


class EmpiricalFit(_FitBase):
    """The empirical (training-set) optimal denoiser; memorises by construction."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{"dataset_id": _EXAMPLE_ID, "n_components": 2, "dims": [4, 4], "method": "empirical", "seed": 0}]})

    method: Literal["empirical"]
    options: EmpiricalOptions = Field(default_factory=EmpiricalOptions)


def _method_tag(value: Any) -> str | None:
    # A missing method means diffusion (the default); an unknown one fails with pydantic's tag error.
    if isinstance(value, dict):
        return str(value.get("method", "diffusion"))
    return getattr(value, "method", None)


FitSpec = Annotated[
    Annotated[DiffusionFit, Tag("diffusion")]
    | Annotated[PCAFit, Tag("pca")]
    | Annotated[SubspaceClusteringFit, Tag("subspace_clustering")]
    | Annotated[NeuralFit, Tag("neural")]
    | Annotated[EmpiricalFit, Tag("empirical")],
    Discriminator(_method_tag, custom_error_type="invalid_method",
                  custom_error_message=f"method must be one of {', '.join(METHODS)}"),
]
FitVariant = DiffusionFit | PCAFit | SubspaceClusteringFit | NeuralFit | EmpiricalFit


def fit_errors(method: str, n_components: int, dims: list[int], options: _Spec, *, n_features: int,
               n_samples: int | None = None, true_dims: list[int] | None = None) -> list[FieldIssue]:
    """Rules of a fit against its data's shape (N, n) and, when known, the true d_k; empty when it can run."""
    out: list[FieldIssue] = []
    K = n_components
    if len(dims) != K:
        out.append(FieldIssue("dims", f"len(dims)={len(dims)} != n_components={K}"))
    for i, d in enumerate(dims):
        if d < 1:
            out.append(FieldIssue(f"dims[{i}]", f"dims[{i}]={d} must be >= 1"))
        elif d >= n_features:
            out.append(FieldIssue(f"dims[{i}]", f"dims[{i}]={d} must be < ambient_dim={n_features}"))
    if n_samples is not None and n_samples < 1:
        out.append(FieldIssue("dataset_id", "the dataset has no rows"))
    if method == "pca" and K != 1:
        out.append(FieldIssue("n_components", f"method pca fits one subspace: n_components must be 1, got {K}; "
                                              "use subspace_clustering for K >= 2"))
    if isinstance(options, DiffusionOptions):
        model = options.resolved_model(K)
        if model == "linear" and K != 1:
            out.append(FieldIssue("options.model", f"model linear needs n_components = 1, got {K}; "
                                                   "use hardmax or softmax"))
        if model != "softmax":
            for name in ("batch_size", "sigma_data"):
                if getattr(options, name) is not None:
                    out.append(FieldIssue(f"options.{name}", f"applies to the Monte-Carlo softmax model only; "
                                                             f"model {model} is trained on the exact loss"))
        elif options.tol is not None:
            out.append(FieldIssue("options.tol", "the Monte-Carlo softmax model has no convergence test; "
                                                 "tol applies to the exact-loss models"))
        if options.sigma_data is not None and options.resolved_weighting(model) != "edm":
            out.append(FieldIssue("options.sigma_data", "only used by weighting edm"))
    if isinstance(options, NeuralOptions) and options.architecture == "unet":
        out += _unet_errors(options, n_features)
    if isinstance(options, NeuralOptions) and not (options.architecture == "unet" and _unet_errors(options, n_features)):
        if (count := neural_parameter_count(options, n_features)) > MAX_NEURAL_PARAMETERS:
            out.append(FieldIssue("options.width", f"the network has {count:,} parameters, over the limit "
                                                   f"{MAX_NEURAL_PARAMETERS:,}; lower width or depth"))
    if isinstance(options, NeuralOptions):
        if options.split == "halves" and n_samples is not None and n_samples < 2:
            out.append(FieldIssue("options.split", f"halves needs at least 2 rows, the dataset has {n_samples}"))
    if true_dims is not None and method in NEURAL_METHODS and sorted(true_dims) != sorted(dims):
        out.append(FieldIssue("dims", f"dims={dims} do not match the dataset's ground truth d_k={true_dims}"))
    return out


def fit_spec_errors(fit: FitVariant, *, n_features: int, n_samples: int | None = None,
                    true_dims: list[int] | None = None) -> list[FieldIssue]:
    """:func:`fit_errors` of a parsed fit job."""
    return fit_errors(fit.method, fit.n_components, list(fit.dims), fit.options, n_features=n_features,
                      n_samples=n_samples, true_dims=true_dims)


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
