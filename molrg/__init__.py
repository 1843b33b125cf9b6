"""molrg: diffusion models on mixtures of low-rank Gaussians (Wang et al., arXiv 2409.02426).

Pure science: imports torch, numpy, scipy and the standard library only. The public names below
are loaded lazily so ``import molrg`` stays cheap and pulls in no web, database or queue library.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # data (spec section 1)
    "make_molrg": "molrg.data.synthetic",
    "MoLRGData": "molrg.data.synthetic",
    "sample_molrg_batch": "molrg.data.synthetic",
    # metrics (section 6)
    "recovery_error": "molrg.analysis.metrics",
    "principal_angles": "molrg.analysis.metrics",
    # the estimator facade (sections 3-5, 8)
    "MoLRGDiffusion": "molrg.lowrank.estimator",
    "FitProgress": "molrg.lowrank.fitting",
    "fit_batched": "molrg.lowrank.fitting",
    # exact denoiser (section 3)
    "posterior_mean": "molrg.lowrank.analytic",
    "exact_denoiser": "molrg.lowrank.analytic",
    # sampling (section 8)
    "sample": "molrg.sampling.samplers",
    # neural denoisers and their references (sections 12-13)
    "NeuralDiffusion": "molrg.neural.model",
    "NeuralConfig": "molrg.neural.config",
    "EmpiricalDiffusion": "molrg.neural.references",
    "ExactPosterior": "molrg.neural.references",
    "train_ensemble": "molrg.neural.training",
    "sample_scores": "molrg.analysis.scores",
    # sweeps (section 7)
    "run_sweep": "molrg.sweeps.run",
    "SweepGrid": "molrg.sweeps.grid",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'molrg' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
