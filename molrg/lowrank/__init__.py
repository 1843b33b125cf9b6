"""Low-rank MoLRG denoisers and their solvers: closed form, losses, Stiefel optimisation, PCA, K-subspaces (sections 3-5)."""
