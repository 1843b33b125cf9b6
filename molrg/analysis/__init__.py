"""Analysis of fitted models and samples: recovery metrics, sample diagnostics, Jacobian rank, editing (sections 6, 8-10, 13)."""
