"""The one declaration of every job's contract: methods, options, samplers, datasets, sweeps.

Each option is declared once here with its type, range, default, choices and a one-line description.
The HTTP API uses these models as request bodies (so OpenAPI documents them), the workers parse stored
job params with them, the library validates its keyword arguments with them and the CLI takes its
choices from them. Rules that need the data (``d_k < n`` for the dataset chosen) are the ``*_errors``
functions below, called by the API before it accepts a job and by the library before it fits.

Imports pydantic and the standard library only (no torch, no web code): ``service`` may import it.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator

# ---------------------------------------------------------------- names

Method = Literal["diffusion", "pca", "subspace_clustering", "neural", "empirical"]
LOWRANK_METHODS: tuple[str, ...] = ("diffusion", "pca", "subspace_clustering")
NEURAL_METHODS: tuple[str, ...] = ("neural", "empirical")
METHODS: tuple[str, ...] = get_args(Method)
Sampler = Literal["heun", "ddim", "sde"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
Schedule = Literal["vp", "ve", "edm"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
Weighting = Literal["unit", "edm"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)
DiffusionModel = Literal["auto", "linear", "hardmax", "softmax"]
DiffusionInit = Literal["random", "data", "pca", "ksubspaces"]
KSubspacesInit = Literal["data", "random"]
Optimizer = Literal["adam", "sgd"]
Retraction = Literal["qr", "polar"]
Architecture = Literal["mlp", "unet"]
LRSchedule = Literal["cosine", "constant"]
SamplesPer = Literal["component", "total"]
SweepMethod = Literal["diffusion", "pca", "subspace_clustering"]

SEED_MAX = 2**63 - 1  # BIGINT on every backend
Seed = Annotated[int, Field(ge=0, le=SEED_MAX, description="Seed of the job's torch.Generator.")]
MAX_COMPONENTS = 64
MAX_AMBIENT_DIM = 4096


class FieldIssue(NamedTuple):
    """One broken rule: the dotted field path and why (e.g. ``dims[1]``, ``must be < n = 12``)."""

    field: str
    reason: str


class _Spec(BaseModel):
    # Unknown fields are an error, not silently dropped; specs are values.
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def raise_for(issues: list[FieldIssue]) -> None:
    """ValueError listing every issue (the library's way to report them)."""
    if issues:
        raise ValueError("; ".join(f"{i.field}: {i.reason}" for i in issues))


# ---------------------------------------------------------------- sampling (section 8)


class SampleSpec(_Spec):
    """Draw samples from a fitted model by reverse-time integration."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"n_samples": 100, "sampler": "heun", "steps": 18, "seed": 0}]})

    n_samples: int = Field(100, ge=1, le=1_000_000, description="Number of samples.")
    sampler: Sampler = Field("heun", description="heun (EDM deterministic), ddim, or sde (Euler-Maruyama).")
    steps: int = Field(18, ge=1, le=1000, description="Sampler steps.")
    seed: Seed = 0


class SampleJob(SampleSpec):
    """``Job.params`` of a sample job: the model and the sample spec."""

    model_id: uuid.UUID


# ---------------------------------------------------------------- datasets (section 1)


class SyntheticSpec(_Spec):
    """A MoLRG data set: x = U_k a + noise_std * e, with a ~ N(0, I_{d_k})."""

    ambient_dim: int = Field(ge=2, le=MAX_AMBIENT_DIM, description="Ambient dimension n.")
    dims: list[int] = Field(min_length=1, max_length=MAX_COMPONENTS, description="Intrinsic dimension d_k of each component.")
    n_samples: int | None = Field(default=None, ge=1, description="Total samples N (or samples_per_component).")
    samples_per_component: int | list[int] | None = Field(
        default=None, description="N_k: one count for all components or one per component.")
    weights: list[float] | None = Field(default=None, description="Mixture weights pi_k (normalised); default 1/K.")
    orthogonal: bool = Field(default=True, description="Mutually orthogonal subspaces (needs sum(dims) <= n).")
    balanced: bool = Field(default=True, description="Exact counts N_k = round(N pi_k); else i.i.d. labels.")
    noise_std: float = Field(default=0.0, ge=0.0, le=1e6, description="Std of additive isotropic noise.")
    seed: Seed = 0

    @field_validator("weights")
    @classmethod
    def _finite_weights(cls, w: list[float] | None) -> list[float] | None:
        if w is None:
            return None
        if any(not (math.isfinite(v) and v > 0) for v in w):
            raise ValueError("weights must be positive and finite")
        try:
            total = math.fsum(w)
        except OverflowError:
            total = math.inf
        if not math.isfinite(total):
            raise ValueError("the sum of the weights overflows; give them on a smaller scale")
        return w

    def counts(self) -> list[int]:
        """N_k per component (balanced or given); for i.i.d. labels the expected split."""
        K = len(self.dims)
        per = self.samples_per_component
        if per is not None:
            return [per] * K if isinstance(per, int) else list(per)
        return component_counts(int(self.n_samples or 0), self.normalised_weights())

    def total_samples(self) -> int:
        """N."""
        return sum(self.counts()) if self.samples_per_component is not None else int(self.n_samples or 0)

    def normalised_weights(self) -> list[float]:
        """pi_k summing to 1 (uniform by default; N_k / N when counts are given)."""
        K = len(self.dims)
        if self.weights is None:
            if self.samples_per_component is not None:
                c = [self.samples_per_component] * K if isinstance(self.samples_per_component, int) \
                    else list(self.samples_per_component)
                return [v / sum(c) for v in c] if sum(c) > 0 else [1.0 / K] * K
            return [1.0 / K] * K
        top = max(self.weights)  # scaled first, so a sum near the float limit stays finite
        total = math.fsum(v / top for v in self.weights)
        return [v / top / total for v in self.weights]


def component_counts(n_samples: int, weights: list[float]) -> list[int]:
    """Exact class sizes N_k summing to N from pi by largest-remainder rounding (section 1)."""
    raw = [n_samples * float(w) for w in weights]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: -(raw[k] - counts[k]))  # ties: lower index first
    for k in order[: n_samples - sum(counts)]:
        counts[k] += 1
    return counts


def synthetic_errors(spec: SyntheticSpec) -> list[FieldIssue]:
    """Cross-field rules of a synthetic dataset (section 1); empty when it can be generated."""
    out: list[FieldIssue] = []
    n, K = spec.ambient_dim, len(spec.dims)
    for i, d in enumerate(spec.dims):
        if d < 1:
            out.append(FieldIssue(f"dims[{i}]", f"dims[{i}]={d} must be >= 1"))
        elif d >= n:
            out.append(FieldIssue(f"dims[{i}]", f"dims[{i}]={d} must be < ambient_dim={n}"))
    if spec.orthogonal and sum(spec.dims) > n:
        out.append(FieldIssue("dims", f"sum(dims)={sum(spec.dims)} exceeds ambient_dim={n} for orthogonal "
                                      "subspaces; use orthogonal=false or smaller dims"))
    if spec.weights is not None and len(spec.weights) != K:
        out.append(FieldIssue("weights", f"len(weights)={len(spec.weights)} != len(dims)={K}"))
    if (spec.n_samples is None) == (spec.samples_per_component is None):
        out.append(FieldIssue("n_samples", "give exactly one of n_samples and samples_per_component"))
    per = spec.samples_per_component
    if isinstance(per, list):
        if len(per) != K:
            out.append(FieldIssue("samples_per_component", f"len(samples_per_component)={len(per)} != len(dims)={K}"))
        if any(c < 1 for c in per):
            out.append(FieldIssue("samples_per_component", "every count must be >= 1"))
    elif isinstance(per, int) and per < 1:
        out.append(FieldIssue("samples_per_component", f"must be >= 1, got {per}"))
    return out


class SyntheticArrays(NamedTuple):
    """A generated MoLRG dataset as numpy arrays (section 1)."""

    X: Any  # (N, n) float64
    labels: Any  # (N,) int64
    bases: list[Any]  # K arrays (n, d_k), orthonormal columns
    weights: Any  # (K,) float64 pi_k
    counts: list[int]  # N_k


def _signed_q(G: Any) -> Any:
    """Q of a QR with diag(R) > 0, so Q is a deterministic function of G."""
    import numpy as np

    Q, R = np.linalg.qr(G)
    sign = np.sign(np.diagonal(R))
    sign[sign == 0] = 1.0
    return Q * sign


def generate_synthetic(spec: SyntheticSpec) -> SyntheticArrays:
    """THE MoLRG generator: x = U_k a + noise_std e (section 1), a function of (spec, seed) alone.

    Every draw comes from one ``numpy.random.default_rng(seed)`` (never global state) in a fixed order:
    bases, label order, coefficients, noise. It lives in the declaration so the API (no torch), the
    sweeps and :func:`molrg.make_molrg` produce the same array for the same spec and seed. The noise
    is drawn last, so the clean part of X does not depend on ``noise_std``.
    """
    import numpy as np

    raise_for(synthetic_errors(spec))
    rng = np.random.default_rng(spec.seed)
    n, dims, K = spec.ambient_dim, list(spec.dims), len(spec.dims)
    if spec.orthogonal:
        Q = _signed_q(rng.standard_normal((n, sum(dims))))
        bases = [np.ascontiguousarray(b) for b in np.split(Q, np.cumsum(dims)[:-1], axis=1)]
    else:
        bases = [_signed_q(rng.standard_normal((n, d))) for d in dims]
    pi = np.asarray(spec.normalised_weights(), dtype=np.float64)
    N = spec.total_samples()
    if spec.balanced:
        counts = spec.counts()
        labels = rng.permutation(np.repeat(np.arange(K, dtype=np.int64), counts))
    else:
        labels = rng.choice(K, size=N, p=pi).astype(np.int64)
        counts = [int(c) for c in np.bincount(labels, minlength=K)]
    A = rng.standard_normal((N, max(dims)))
    X = np.empty((N, n), dtype=np.float64)
    for k, U_k in enumerate(bases):
        rows = labels == k
        X[rows] = A[rows, : dims[k]] @ U_k.T
    del A
    if spec.noise_std > 0:
        X += spec.noise_std * rng.standard_normal((N, n))
    return SyntheticArrays(X=X, labels=labels, bases=bases, weights=pi, counts=counts)


def synthetic_peak_bytes(spec: SyntheticSpec) -> int:
    """Peak memory of :func:`generate_synthetic` (X, coefficients and noise, float64): the budget's measure."""
    N = spec.total_samples()
    return 8 * N * (2 * spec.ambient_dim + max(spec.dims))


# ---------------------------------------------------------------- sweeps (section 7)


class SweepMethodOptions(_Spec):
    """Options of each sweep method, as for a fit of that method."""

    diffusion: DiffusionOptions | None = None
    pca: PCAOptions | None = None
    subspace_clustering: SubspaceClusteringOptions | None = None

    def given(self) -> dict[str, _Spec]:
        """The methods whose options were given."""
        return {m: v for m in ("diffusion", "pca", "subspace_clustering") if (v := getattr(self, m)) is not None}

    def for_method(self, method: str) -> _Spec:
        """The options of ``method`` (its defaults when none were given)."""
        return getattr(self, method, None) or FIT_OPTIONS[method]()


_DEFAULT_SWEEP_METHODS: list[SweepMethod] = ["pca"]


class SweepSpec(_Spec):
    """A sample-complexity grid: every (n, K, d, samples) cell runs ``trials`` independent trials per method."""

    ambient_dim: int | list[int] = Field(default=48, description="Ambient dimension n, one value or a list.")
    n_components: int | list[int] = Field(default=1, description="K subspaces, one value or a list.")
    dims: list[int] = Field(min_length=1, max_length=256, description="Intrinsic dimensions d (rows).")
    samples: list[int] = Field(min_length=1, max_length=1024,
                               description="Sample sizes (columns): N_k per component or total N.")
    samples_per: SamplesPer = Field(default="component",
                                    description="component: samples are N_k (N = K N_k); total: samples are N.")
    noise_std: float = Field(default=0.0, ge=0.0, le=1e6, description="Std of isotropic noise added to the data.")
    orthogonal: bool = Field(default=True, description="Mutually orthogonal subspaces (needs K * d <= n).")
    trials: int = Field(default=20, ge=1, le=100_000, description="Independent trials per cell.")
    methods: list[SweepMethod] = Field(default_factory=lambda: list(_DEFAULT_SWEEP_METHODS), min_length=1, max_length=3,
                                       description="Fit methods, run on the same data per trial: "
                                                   "pca (K = 1 cells), subspace_clustering, diffusion.")
    method_options: SweepMethodOptions = Field(default_factory=lambda: SweepMethodOptions(),
                                               description="Options per method, as for fits.")
    success_threshold: float = Field(default=0.5, gt=0.0, le=1e6,
                                     description="A trial succeeds when its recovery error is below this.")
    seed: Seed = Field(default=0, description="Sweep seed; trial seeds derive from it.")

    def ambient_dims(self) -> list[int]:
        """The list of n."""
        return self.ambient_dim if isinstance(self.ambient_dim, list) else [self.ambient_dim]

    def components(self) -> list[int]:
        """The list of K."""
        return self.n_components if isinstance(self.n_components, list) else [self.n_components]

    def methods_for(self, n_components: int) -> list[str]:
        """Methods that run on a K-component cell: pca only for K = 1 (section 5)."""
        return [m for m in self.methods if m != "pca" or n_components == 1]

    def n_fits(self) -> int:
        """Fits in the grid: cells x trials x applicable methods."""
        per_n = len(self.dims) * len(self.samples) * self.trials
        return len(self.ambient_dims()) * sum(per_n * len(self.methods_for(K)) for K in self.components())

    def max_rows(self) -> int:
        """The largest N of a trial."""
        return max(self.samples) * (max(self.components()) if self.samples_per == "component" else 1)


def _list_issues(name: str, values: list[Any], minimum: float, out: list[FieldIssue]) -> None:
    if len(set(values)) != len(values):
        out.append(FieldIssue(name, f"{values} has duplicates; list each value once"))
    for i, v in enumerate(values):
        if v < minimum:
            out.append(FieldIssue(f"{name}[{i}]" if len(values) > 1 else name, f"must be >= {minimum}, got {v}"))


def sweep_errors(spec: SweepSpec) -> list[FieldIssue]:
    """Cross-field rules of a sweep (section 7); empty when every trial of it can run."""
    out: list[FieldIssue] = []
    ns, Ks = spec.ambient_dims(), spec.components()
    _list_issues("ambient_dim", ns, 2, out)
    _list_issues("n_components", Ks, 1, out)
    _list_issues("dims", spec.dims, 1, out)
    _list_issues("samples", spec.samples, 1, out)
    for name, values in (("ambient_dim", ns), ("n_components", Ks)):
        if any(v > (MAX_AMBIENT_DIM if name == "ambient_dim" else MAX_COMPONENTS) for v in values):
            out.append(FieldIssue(name, f"{values} exceeds the limit "
                                        f"{MAX_AMBIENT_DIM if name == 'ambient_dim' else MAX_COMPONENTS}"))
    if len(set(spec.methods)) != len(spec.methods):
        out.append(FieldIssue("methods", f"{spec.methods} has duplicates"))
    if "pca" in spec.methods and Ks and 1 not in Ks:
        out.append(FieldIssue("methods", f"pca fits one subspace (K = 1) but n_components={Ks}; "
                                         "use subspace_clustering for K >= 2"))
    for method in spec.method_options.given():
        if method not in spec.methods:
            out.append(FieldIssue(f"method_options.{method}", f"{method!r} is not in methods={spec.methods}"))
    if out:
        return out
    dmax = max(spec.dims)
    for n in ns:
        if dmax >= n:
            out.append(FieldIssue("dims", f"d={dmax} must be < ambient_dim={n}"))
        for K in Ks:
            if spec.orthogonal and K * dmax > n:
                out.append(FieldIssue("dims", f"n_components*d={K}*{dmax}={K * dmax} exceeds ambient_dim={n}; "
                                              "orthogonal subspaces need K*d <= n (or set orthogonal=false)"))
            for method in spec.methods_for(K):
                options = spec.method_options.for_method(method)
                for issue in fit_errors(method, K, [dmax] * K, options, n_features=n):
                    out.append(FieldIssue(f"method_options.{method}" if issue.field.startswith("options")
                                          else "methods", f"{method}: {issue.reason}"))
    return sorted(set(out), key=out.index)
