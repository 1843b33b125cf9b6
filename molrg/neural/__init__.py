"""Neural diffusion models (spec section 12): EDM-preconditioned mlp / unet denoisers trained as
batched ensembles, and the two closed-form references (empirical and exact MoLRG posterior).

Layout (as EDM keeps networks, preconditioning/loss and training apart):
``config`` (typed NeuralConfig), ``precond`` (c_skip/c_out/c_in/c_noise, loss weight, sigma draws),
``networks`` (backbones F), ``ensemble`` (stacked members, vmapped), ``training`` (one Adam over
the stack), ``references`` (empirical / exact denoisers), ``model`` (the NeuralDiffusion facade).
"""

from molrg.neural.config import NeuralConfig
from molrg.neural.model import NeuralDiffusion, split_indices
from molrg.neural.precond import (
    Preconditioned,
    edm_loss,
    edm_loss_weight,
    edm_scalings,
    sample_training_sigmas,
)
from molrg.neural.references import EmpiricalDiffusion, ExactPosterior, empirical_denoiser
from molrg.neural.training import EnsembleResult, TrainProgress, train_ensemble

__all__ = [
    "EmpiricalDiffusion",
    "EnsembleResult",
    "ExactPosterior",
    "NeuralConfig",
    "NeuralDiffusion",
    "Preconditioned",
    "TrainProgress",
    "edm_loss",
    "edm_loss_weight",
    "edm_scalings",
    "empirical_denoiser",
    "sample_training_sigmas",
    "split_indices",
    "train_ensemble",
]
