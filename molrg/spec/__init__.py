"""The one declaration of every job's contract: methods, options, samplers, datasets, sweeps.

Each option is declared once here with its type, range, default, choices and a one-line description.
The HTTP API uses these models as request bodies (so OpenAPI documents them), the workers parse stored
job params with them, the library validates its keyword arguments with them and the CLI takes its
choices from them. Rules that need the data (``d_k < n`` for the dataset chosen) are the ``*_errors``
functions beside them, called by the API before it accepts a job and by the library before it fits.

Imports pydantic and the standard library only (no torch, no web code): ``service`` may import it.
"""

from molrg.spec.base import (
    LOWRANK_METHODS,
    MAX_AMBIENT_DIM,
    MAX_COMPONENTS,
    METHODS,
    NEURAL_METHODS,
    SAMPLE_SCORED_METHODS,
    SAMPLERS,
    SCHEDULES,
    SEED_MAX,
    WEIGHTINGS,
    Architecture,
    DiffusionInit,
    DiffusionModel,
    FieldIssue,
    KSubspacesInit,
    LRSchedule,
    Method,
    Optimizer,
    Retraction,
    Sampler,
    SamplesPer,
    Schedule,
    Seed,
    SweepMethod,
    Weighting,
    raise_for,
)
from molrg.spec.datasets import (
    SyntheticArrays,
    SyntheticSpec,
    component_counts,
    generate_synthetic,
    synthetic_errors,
    synthetic_peak_bytes,
)
from molrg.spec.fits import (
    FIT_OPTIONS,
    WORKSPACE_BYTES,
    DiffusionFit,
    DiffusionOptions,
    EmpiricalFit,
    EmpiricalOptions,
    FitSpec,
    FitVariant,
    NeuralFit,
    PCAFit,
    PCAOptions,
    SubspaceClusteringFit,
    SubspaceClusteringOptions,
    fit_errors,
    fit_peak_bytes,
    fit_spec_errors,
    parse_options,
)
from molrg.spec.networks import (
    MAX_NEURAL_PARAMETERS,
    NeuralOptions,
    image_shape,
    neural_member_bytes,
    neural_parameter_count,
    unet_layout,
)
from molrg.spec.sampling import SampleJob, SampleSpec
from molrg.spec.sweeps import ExactOptions, SweepMethodOptions, SweepSpec, sweep_errors

__all__ = ["Architecture", "DiffusionFit", "DiffusionInit", "DiffusionModel", "DiffusionOptions", "EmpiricalFit", "EmpiricalOptions", "ExactOptions", "FIT_OPTIONS", "FieldIssue", "FitSpec", "FitVariant", "KSubspacesInit", "LOWRANK_METHODS", "LRSchedule", "MAX_AMBIENT_DIM", "MAX_COMPONENTS", "MAX_NEURAL_PARAMETERS", "METHODS", "Method", "NEURAL_METHODS", "NeuralFit", "NeuralOptions", "Optimizer", "PCAFit", "PCAOptions", "Retraction", "SAMPLERS", "SAMPLE_SCORED_METHODS", "SCHEDULES", "SEED_MAX", "SampleJob", "SampleSpec", "Sampler", "SamplesPer", "Schedule", "Seed", "SubspaceClusteringFit", "SubspaceClusteringOptions", "SweepMethod", "SweepMethodOptions", "SweepSpec", "SyntheticArrays", "SyntheticSpec", "WEIGHTINGS", "WORKSPACE_BYTES", "Weighting", "component_counts", "fit_errors", "fit_peak_bytes", "fit_spec_errors", "generate_synthetic", "image_shape", "neural_member_bytes", "neural_parameter_count", "parse_options", "raise_for", "sweep_errors", "synthetic_errors", "synthetic_peak_bytes", "unet_layout"]
