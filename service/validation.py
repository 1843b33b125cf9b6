"""Edge checks after pydantic parsing: the declaration's data rules (molrg.spec) plus this service's limits.

The rules themselves live in :mod:`molrg.spec`, beside the declaration, so the library and the worker
apply the same ones; this module adds the deployment's size limits (settings) and names the field.
"""

from molrg import spec
from service.errors import FieldError, ValidationFailed
from service.schemas import SampleCreate, SyntheticSpec
from service.settings import ServiceSettings


def _raise(issues: list[spec.FieldIssue], prefix: str = "") -> None:
    if issues:
        raise ValidationFailed([FieldError(prefix + i.field, i.reason) for i in issues])


def _over(field: str, what: str, value: int, limit_name: str, limit: int) -> list[spec.FieldIssue]:
    return [spec.FieldIssue(field, f"{what}={value} exceeds the limit {limit_name}={limit}")] if value > limit else []


def validate_synthetic(req: SyntheticSpec, settings: ServiceSettings) -> None:
    """Cross-field rules and limits of a synthetic dataset request."""
    issues = spec.synthetic_errors(req)
    issues += _over("ambient_dim", "ambient_dim", req.ambient_dim, "max_ambient_dim", settings.max_ambient_dim)
    issues += _over("dims", "len(dims)", len(req.dims), "max_components", settings.max_components)
    if not issues:
        N = req.total_samples()
        field = "n_samples" if req.n_samples is not None else "samples_per_component"
        issues += _over(field, "N", N, "max_rows", settings.max_rows)
        issues += _over(field, "N*n", N * req.ambient_dim, "max_dataset_values", settings.max_dataset_values)
        if not issues and (peak := spec.synthetic_peak_bytes(req)) > settings.synthetic_budget_bytes:
            issues.append(spec.FieldIssue(field, f"generating N={N} x n={req.ambient_dim} needs ~{peak >> 20} MiB, over "
                                                 f"the limit synthetic_budget_bytes={settings.synthetic_budget_bytes}; "
                                                 "generate fewer samples (or upload the array)"))
    _raise(issues, "synthetic.")


def validate_fit(req: spec.FitVariant, n_samples: int, ambient_dim: int, true_dims: list[int] | None,
                 settings: ServiceSettings) -> None:
    """Rules of a fit request against its dataset's shape and ground truth, and the limits."""
    issues = spec.fit_spec_errors(req, n_features=ambient_dim, n_samples=n_samples, true_dims=true_dims)
    issues += _over("n_components", "n_components", req.n_components, "max_components", settings.max_components)
    opts = req.options
    steps = getattr(opts, "steps", None) or getattr(opts, "max_iter", None)
    if steps is not None:
        name = "steps" if hasattr(opts, "steps") else "max_iter"
        issues += _over(f"options.{name}", name, steps, "max_train_steps", settings.max_train_steps)
    restarts = getattr(opts, "restarts", None) or getattr(opts, "n_restarts", None)
    if restarts is not None:
        name = "restarts" if hasattr(opts, "restarts") else "n_restarts"
        issues += _over(f"options.{name}", name, restarts, "max_restarts", settings.max_restarts)
    if not issues and req.method in spec.LOWRANK_METHODS:
        # The service's size limit follows from the library's stated peak memory of the fit.
        model = opts.resolved_model(req.n_components) if isinstance(opts, spec.DiffusionOptions) else "linear"
        peak = spec.fit_peak_bytes(1, n_samples, ambient_dim, req.n_components, max(req.dims), restarts or 2,
                                   method=req.method, model=model, batch_size=getattr(opts, "batch_size", None) or 64)
        if peak > settings.job_memory_budget_bytes:
            issues.append(spec.FieldIssue("dataset_id", (
                f"this fit needs ~{peak >> 20} MiB (N={n_samples}, n={ambient_dim}, K={req.n_components}, "
                f"restarts={restarts or 2}), over the limit job_memory_budget_bytes={settings.job_memory_budget_bytes}; "
                "use fewer restarts or components, or a smaller dataset")))
    _raise(issues)


def validate_sample(req: SampleCreate, ambient_dim: int, settings: ServiceSettings) -> None:
    """Limits of a sampling request."""
    issues = _over("n_samples", "n_samples", req.n_samples, "max_samples", settings.max_samples)
    if not issues:
        issues += _over("n_samples", "n_samples*ambient_dim", req.n_samples * ambient_dim, "max_dataset_values",
                        settings.max_dataset_values)
    issues += _over("steps", "steps", req.steps, "max_steps", settings.max_steps)
    _raise(issues)
