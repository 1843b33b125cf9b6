"""Sample-complexity sweeps (spec sections 7 and 14)."""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
)

from molrg.spec.base import (
    MAX_AMBIENT_DIM,
    MAX_COMPONENTS,
    SAMPLE_SCORED_METHODS,
    FieldIssue,
    SamplesPer,
    Seed,
    SweepMethod,
    _Spec,
)
from molrg.spec.fits import (
    FIT_OPTIONS,
    DiffusionOptions,
    EmpiricalOptions,
    PCAOptions,
    SubspaceClusteringOptions,
    fit_errors,
)
from molrg.spec.networks import NeuralOptions

# ---------------------------------------------------------------- sweeps (section 7)


class ExactOptions(_Spec):
    """The exact MoLRG posterior mean with the trial's true bases (section 3): a reference, nothing to fit."""


class SweepMethodOptions(_Spec):
    """Options of each sweep method, as for a fit of that method."""

    diffusion: DiffusionOptions | None = None
    pca: PCAOptions | None = None
    subspace_clustering: SubspaceClusteringOptions | None = None
    neural: NeuralOptions | None = Field(None, description="The network and its training, as for a neural fit; "
                                                           "every trial trains one network (split: none).")
    empirical: EmpiricalOptions | None = None
    exact: ExactOptions | None = None

    def given(self) -> dict[str, _Spec]:
        """The methods whose options were given."""
        return {m: v for m in type(self).model_fields if (v := getattr(self, m)) is not None}

    def for_method(self, method: str) -> _Spec:
        """The options of ``method`` (its defaults when none were given)."""
        given = getattr(self, method, None)
        if given is not None:
            return given
        return ExactOptions() if method == "exact" else FIT_OPTIONS[method]()


_DEFAULT_SWEEP_METHODS: list[SweepMethod] = ["pca"]


class SweepSpec(_Spec):
    """A sample-complexity grid: every (n, K, d, samples) cell runs ``trials`` independent trials per method."""

    ambient_dim: int | list[int] = Field(default=48, description="Ambient dimension n, one value or a list.")
    n_components: int | list[int] = Field(default=1, description="K subspaces, one value or a list.")
    dims: list[int] = Field(min_length=1, max_length=256, description="Intrinsic dimensions d (rows).")
    samples: list[int] = Field(min_length=1, max_length=1024,
                               description="Sample sizes (columns): N_k per component, total N, or the ratio "
                                           "N_k / d (see samples_per).")
    samples_per: SamplesPer = Field(default="component",
                                    description="component: samples are N_k (N = K N_k); total: samples are N; "
                                                "dim_ratio: samples are ratios N_k / d (N_k = ratio x d), the "
                                                "axis on which neural curves of different d are compared.")
    noise_std: float = Field(default=0.0, ge=0.0, le=1e6, description="Std of isotropic noise added to the data.")
    orthogonal: bool = Field(default=True, description="Mutually orthogonal subspaces (needs K * d <= n).")
    trials: int = Field(default=20, ge=1, le=100_000, description="Independent trials per cell.")
    methods: list[SweepMethod] = Field(default_factory=lambda: list(_DEFAULT_SWEEP_METHODS), min_length=1, max_length=6,
                                       description="Methods, run on the same data per trial: pca (K = 1 cells), "
                                                   "subspace_clustering, diffusion (low-rank; a trial succeeds "
                                                   "when its recovery error is below success_threshold); neural "
                                                   "(one trained network per trial), and the references empirical "
                                                   "(the training set's denoiser) and exact (the true posterior), "
                                                   "scored by their samples: a trial succeeds when its "
                                                   "generalisation score is >= 0.5.")
    method_options: SweepMethodOptions = Field(default_factory=lambda: SweepMethodOptions(),
                                               description="Options per method, as for fits.")
    success_threshold: float = Field(default=0.5, gt=0.0, le=1e6,
                                     description="A trial succeeds when its recovery error is below this.")
    eval_samples: int = Field(default=256, ge=2, le=8192,
                              description="Samples drawn per trial of a sample-scored method (neural, empirical, "
                                          "exact) for its memorisation / generalisation scores.")
    eval_steps: int = Field(default=18, ge=1, le=1000,
                            description="Heun steps of those samples (Karras grid, as the sample jobs).")
    eval_at_steps: list[int] = Field(default_factory=list, max_length=32,
                                     description="neural: also score each trial's network after these training "
                                                 "steps (memorisation against training time; each < steps); "
                                                 "per cell in by_step.")
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

    def rows_of(self, n_components: int, d: int, samples: int) -> int:
        """N, the total number of samples of a trial of the cell (K, d, samples)."""
        if self.samples_per == "total":
            return samples
        return n_components * samples * (d if self.samples_per == "dim_ratio" else 1)

    def max_rows(self) -> int:
        """The largest N of a trial."""
        return max(self.rows_of(K, d, s) for K in self.components() for d in self.dims for s in self.samples)

    def scored_methods(self) -> list[str]:
        """The methods scored by their samples (neural and the references)."""
        return [m for m in self.methods if m in SAMPLE_SCORED_METHODS]


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
    neural = spec.method_options.neural
    if neural is not None and neural.split != "none":
        out.append(FieldIssue("method_options.neural.split", "a sweep trains one network per trial on all of its "
                                                             "data; use split 'halves' in a neural fit"))
    if spec.eval_at_steps:
        total = (neural or NeuralOptions()).steps
        if "neural" not in spec.methods:
            out.append(FieldIssue("eval_at_steps", "scores networks during training: needs 'neural' in methods"))
        elif len(set(spec.eval_at_steps)) != len(spec.eval_at_steps):
            out.append(FieldIssue("eval_at_steps", f"{spec.eval_at_steps} has duplicates"))
        elif not all(1 <= v < total for v in spec.eval_at_steps):
            out.append(FieldIssue("eval_at_steps", f"each step must be in [1, {total - 1}] (the final step "
                                                   f"{total} is always scored), got {spec.eval_at_steps}"))
    if spec.samples_per == "total" and spec.scored_methods():
        out.append(FieldIssue("samples_per", "neural, empirical and exact are compared per component: use "
                                             "'dim_ratio' (N_k / d) or 'component'"))
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
                if method == "exact":
                    continue
                options = spec.method_options.for_method(method)
                for issue in fit_errors(method, K, [dmax] * K, options, n_features=n):
                    out.append(FieldIssue(f"method_options.{method}" if issue.field.startswith("options")
                                          else "methods", f"{method}: {issue.reason}"))
    return sorted(set(out), key=out.index)
