"""Warnings of the molrg library (sklearn style)."""


class ConvergenceWarning(UserWarning):
    """A fit stopped before its convergence test passed (see ``converged_`` / ``info["converged"]``)."""


class NonZeroMeanWarning(UserWarning):
    """The data have a clear non-zero mean while the model's subspaces pass through 0 (use ``center=True``)."""
