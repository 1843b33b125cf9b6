"""Fit options per method, the fit job (one variant per method) and its data rules (spec sections 5, 12)."""

from __future__ import annotations

import math
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
    MAX_AMBIENT_DIM,
    MAX_COMPONENTS,
    METHODS,
    NEURAL_METHODS,
    Architecture,
    DiffusionInit,
    DiffusionModel,
    FieldIssue,
    KSubspacesInit,
    LRSchedule,
    Optimizer,
    Retraction,
    Schedule,
    Seed,
    Weighting,
    _Spec,
    raise_for,
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


class NeuralOptions(_Spec):
    """An EDM-preconditioned network denoiser trained by denoising score matching (section 12).

    Exactly the fields of ``molrg.neural.NeuralConfig`` but its seed (the fit's seed), with its defaults;
    the worker builds the config from these options in one place (``workers.neural.neural_config``).
    """

    architecture: Architecture = Field("mlp", description="mlp (any n) or unet (square images, n = c r^2).")
    width: int | None = Field(None, ge=1, le=8192, description="mlp hidden width, or unet channels at the top "
                                                              "resolution; null: 256 for mlp, 32 for unet.")
    depth: int | None = Field(None, ge=1, le=32, description="mlp hidden layers, or unet resolutions (1 or 2); "
                                                            "null: 3 for mlp, 2 for unet.")
    channels: int | None = Field(None, ge=1, le=MAX_AMBIENT_DIM,
                                 description="unet image channels c of the (c, r, r) layout of n = c r^2; "
                                             "null: 1 if n is a square, else 3.")
    emb_dim: int = Field(64, ge=2, le=1024, multiple_of=2,
                         description="Size of the sinusoidal noise embedding (even: sin and cos halves).")
    steps: int = Field(2000, ge=1, le=1_000_000, description="Adam steps (fixed; no early stop).")
    batch_size: int = Field(256, ge=1, le=65_536, description="Training samples per step (drawn with replacement).")
    lr: float = Field(5e-3, gt=0, le=1, description="Peak Adam learning rate.")
    lr_schedule: LRSchedule = Field("cosine", description="cosine decay to 0 at the last step, or constant.")
    ema: float = Field(0.0, ge=0, lt=1, description="EMA decay of the weights used for denoising (e.g. 0.999); "
                                                    "0: no EMA.")
    grad_clip: float = Field(1.0, ge=0, le=1e6, description="Clip each network's own gradient norm (0: off).")
    sigma_data: float | None = Field(None, gt=0, le=1e6,
                                     description="EDM sigma_data; null: the data's RMS per coordinate.")
    p_mean: float = Field(-1.2, ge=-20, le=20, description="Training noise levels: ln sigma ~ N(p_mean, p_std^2).")
    p_std: float = Field(1.2, gt=0, le=20, description="Training noise levels: ln sigma ~ N(p_mean, p_std^2).")
    split: Literal["none", "halves"] = Field(
        "none", description="none: one network on all data; halves: two networks on disjoint halves "
                            "(reproducibility).")


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


def _square_image(n: int) -> tuple[int, int] | None:
    """(c, r) with n = c r^2 and c in (1, 3), if n is a square grey or colour image (unique when it exists)."""
    for c in (1, 3):
        if n % c == 0:
            r = math.isqrt(n // c)
            if r * r * c == n and r >= 2:
                return c, r
    return None


def image_shape(n: int) -> tuple[int, int, int]:
    """(c, r, r) of data with n = c r^2 (for the unet); ValueError otherwise."""
    shape = _square_image(n)
    if shape is None:
        raise ValueError(f"architecture unet needs square images, n = c r^2 with c in (1, 3); got n = {n}")
    return shape[0], shape[1], shape[1]


def unet_layout(n: int, channels: int | None = None) -> tuple[int, int] | None:
    """(c, r) with n = c r^2 as the unet reads it (``molrg.neural.config.image_layout``): c = channels,
    else 1 then 3; None when there is no such layout."""
    for c in [channels] if channels is not None else [1, 3]:
        if n % c == 0:
            r = math.isqrt(n // c)
            if r * r * c == n:
                return c, r
    return None


MAX_NEURAL_PARAMETERS = 2**27  # per network: ~134M (0.5 GiB float32; ~2.7 GiB with gradients, Adam and EMA)


def _resblock_parameters(cin: int, cout: int, e: int) -> int:
    skip = cin * cout + cout if cin != cout else 0
    return 2 * cin + 9 * cin * cout + cout + 2 * e * cout + 2 * cout + 2 * cout + 9 * cout * cout + cout + skip


def neural_parameter_count(options: NeuralOptions, n: int) -> int:
    """Parameters of one network of ``options`` on ambient dimension n (as ``molrg.neural.networks`` builds it;
    the unet needs a layout, :func:`unet_layout`)."""
    e = options.emb_dim
    if options.architecture == "mlp":
        w = options.width if options.width is not None else 256
        depth = options.depth if options.depth is not None else 3
        hidden = n * w + w + (depth - 1) * (w * w + w)
        return e * e + e + hidden + depth * (2 * e * w + 2 * w) + w * n + n
    layout = unet_layout(n, options.channels)
    if layout is None:
        raise ValueError(f"n = {n} has no unet layout")
    c = layout[0]
    w = options.width if options.width is not None else 32
    depth = options.depth if options.depth is not None else 2
    blocks = [(w, w), (w, 2 * w), (2 * w, 2 * w), (4 * w, 2 * w), (3 * w, w)] if depth == 2 \
        else [(w, w), (w, w), (2 * w, w)]
    body = sum(_resblock_parameters(a, b, e) for a, b in blocks)
    return e * e + e + 9 * c * w + w + body + 2 * w + 9 * w * c + c


def neural_member_bytes(options: NeuralOptions, n: int, n_samples: int, itemsize: int = 4) -> int:
    """Upper estimate of one ensemble member's training memory on n features and N samples (section 14).

    Weights, gradients, two Adam moments and the EMA copy; the saved activations of one batch (an mlp
    keeps ~8 tensors of its width per hidden layer, a unet ~12 feature maps per channel of its widest
    resolution); the member's drawn indices, noise levels and noise for ``molrg.neural.training``'s
    draw chunk (<= 2^20 elements); its padded data; and a 1.5x allowance for temporaries.
    """
    P = neural_parameter_count(options, n)
    copies = 4 + (1 if options.ema > 0 else 0)
    bs = options.batch_size
    if options.architecture == "mlp":
        w = options.width if options.width is not None else 256
        depth = options.depth if options.depth is not None else 3
        act = bs * (2 * n + 8 * depth * w + 4 * options.emb_dim)
    else:
        w = options.width if options.width is not None else 32
        layout = unet_layout(n, options.channels) or (1, max(1, math.isqrt(n)))
        act = bs * 12 * 2 * w * layout[1] ** 2
    draws = min(64, max(1, (1 << 20) // max(1, bs * n))) * bs * (n + 3)
    return int(1.5 * itemsize * (copies * P + act + draws + n_samples * n))


def _unet_errors(options: NeuralOptions, n: int) -> list[FieldIssue]:
    layout = unet_layout(n, options.channels)
    if layout is None:
        given = f"channels={options.channels}" if options.channels is not None else "channels 1 or 3"
        return [FieldIssue("options.channels" if options.channels is not None else "options.architecture",
                           f"unet needs square images, n = c r^2; n = {n} has no such layout with {given}")]
    depth = options.depth if options.depth is not None else 2
    if depth not in (1, 2):
        return [FieldIssue("options.depth", f"depth={depth}: a unet has 1 or 2 resolutions")]
    if depth == 2 and layout[1] % 2:
        return [FieldIssue("options.depth", f"a 2-resolution unet needs an even image size; n = {n} is "
                                            f"{layout[0]} x {layout[1]} x {layout[1]} (use depth 1)")]
    return []


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
