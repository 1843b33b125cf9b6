"""Sweep grid, seeds, chunking, reproducibility and merge (spec section 7)."""

import json
from types import SimpleNamespace

import pytest
import torch

from molrg.sweeps.grid import Cell, Chunk, SweepGrid, derive_seed, plan_chunks, trial_seed
from molrg.sweeps.run import TrialResult, merge, run_chunk, run_sweep, summarise


def tiny_pca(X, dims, method, *, seed=0, device=None, callback=None, **options):
    """Private batched PCA (K = 1): top-d right singular vectors of each X_b.

    With N < d the missing directions are random; like the real solvers it draws them without a
    batch dimension, so a row's result does not depend on the batch it ran in.
    """
    d = dims[0]
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)  # (B, min(N,n), n)
    B, n = X.shape[0], X.shape[2]
    U = X.new_zeros(B, 1, n, d)
    r = min(d, Vh.shape[1])
    U[:, 0, :, :r] = Vh[:, :r, :].transpose(1, 2)
    if r < d:  # fewer samples than d: complete with arbitrary orthonormal directions
        G = torch.randn(n, d - r, generator=torch.Generator().manual_seed(seed), dtype=X.dtype).expand(B, n, d - r)
        P = U[:, 0, :, :r]
        G = G - P @ (P.transpose(1, 2) @ G)
        U[:, 0, :, r:] = torch.linalg.qr(G)[0]
    return SimpleNamespace(bases=U, info={"converged": torch.ones(B, dtype=torch.bool), "solver": "tiny"})


def tiny_pca_padded(X, dims, method, *, seed=0, device=None, callback=None, n_valid=None, **options):
    """Same, accepting zero-padded rows past ``n_valid[b]`` (so different N share one call)."""
    outs = [tiny_pca(X[b : b + 1, : int(n_valid[b])], dims, method, seed=seed) for b in range(X.shape[0])]
    U = torch.cat([o.bases for o in outs])
    return SimpleNamespace(bases=U, info={"converged": torch.ones(X.shape[0], dtype=torch.bool),
                                          "solver": "tiny", "calls": 1})


def tiny_grid(**kw):
    base = dict(ambient_dims=[12], n_components=[1], dims=[2, 3], samples=[1, 2, 3, 4, 5],
                samples_per="total", trials=4, methods=["pca"], seed=7)
    base.update(kw)
    return SweepGrid(**base)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(samples=[0, 3]), "samples"),
        (dict(trials=0), "trials"),
        (dict(methods=["nope"]), "methods"),
        (dict(methods=["pca"], n_components=[2]), "methods"),
        (dict(n_components=[2], dims=[7], methods=["subspace_clustering"]), "orthogonal"),
        (dict(dims=[12]), "dims"),
        (dict(samples_per="each"), "samples_per"),
        (dict(method_options={"diffusion": {}}), "method_options"),
        (dict(noise_std=-1.0), "noise_std"),
        (dict(dims=[2, 2]), "dims"),
    ],
)
def test_grid_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        tiny_grid(**kw).validate()


def test_grid_counts_skip_pca_for_k2_and_round_trip():
    g = tiny_grid(n_components=[1, 2], methods=["pca", "subspace_clustering"],
                  method_options={"subspace_clustering": {"n_restarts": 3}}, dims=[2, 3])
    g.validate()
    assert g.n_cells == 1 * 2 * 2 * 5
    # K=1 cells run both methods, K=2 cells only subspace_clustering.
    assert g.n_fits == 4 * (10 * 2 + 10 * 1)
    assert g.methods_for(2) == ("subspace_clustering",)
    back = SweepGrid.from_dict(json.loads(json.dumps(g.to_dict())))
    assert back == g
    with pytest.raises(ValueError, match="unknown fields"):
        SweepGrid.from_dict({**g.to_dict(), "bogus": 1})


def test_seeds_stable_and_distinct():
    g = tiny_grid()
    assert derive_seed(0, 48, 1, 2, 3, 0) == derive_seed(0, 48, 1, 2, 3, 0)
    assert 0 <= derive_seed("x") < 2**63
    seeds = {trial_seed(g, c, t) for c in g.cells() for t in range(g.trials)}
    assert len(seeds) == g.n_cells * g.trials
    assert trial_seed(g, Cell(12, 1, 2, 3), 1) != trial_seed(tiny_grid(seed=8), Cell(12, 1, 2, 3), 1)


def test_seed_is_pinned():
    """blake2b of a canonical string: the same in every process and Python version (unlike hash())."""
    assert derive_seed(0, 48, 2, 4, 8, 3) == 6741354275983813891


@pytest.mark.parametrize("max_fits", [1, 3, 4, 7, 20, 10_000])
def test_chunk_plan_covers_each_unit_once(max_fits):
    g = tiny_grid(n_components=[1, 2], methods=["pca", "subspace_clustering"], trials=5)
    chunks = plan_chunks(g, max_fits_per_chunk=max_fits)
    units = [u for ch in chunks for u in ch.units()]
    expected = [(c, t) for c in g.cells() for t in range(g.trials)]
    assert sorted(units) == sorted(expected) and len(units) == len(expected)
    for ch in chunks:
        fits = sum(len(g.methods_for(c.n_components)) for c in ch.cells) * (ch.trial_stop - ch.trial_start)
        assert fits <= max(max_fits, 2)
        assert Chunk.from_dict(json.loads(json.dumps(ch.to_dict()))) == ch


@pytest.mark.parametrize("solver", [tiny_pca, tiny_pca_padded])
def test_run_chunk_independent_of_chunking_and_merge_idempotent(solver):
    g = tiny_grid()
    whole = run_chunk(g, plan_chunks(g, 10_000)[0], solver=solver)
    pieces = [r for ch in plan_chunks(g, 3) for r in run_chunk(g, ch, solver=solver)]
    assert len(whole) == g.n_fits == len(pieces)

    def strip(rs):
        return sorted((r.key, r.seed, r.error, r.success) for r in rs)

    assert strip(whole) == strip(pieces)
    # A re-run chunk produces duplicates: merge drops them and the report does not double count.
    dup = merge(whole, pieces, whole[:5])
    assert len(dup) == len(whole)
    assert summarise(g, whole + pieces).to_dict()["cells"] == summarise(g, whole).to_dict()["cells"]
    r0 = whole[0]
    assert TrialResult.from_dict(json.loads(json.dumps(r0.to_dict()))) == r0
    assert r0.converged is True and r0.info["solver"] == "tiny"


@pytest.mark.parametrize("solver", [tiny_pca, None], ids=["private", "fit_batched"])
def test_tiny_pca_sweep_transition_at_d(solver):
    g = tiny_grid()
    report = run_sweep(g, solver=solver, max_fits_per_chunk=8)
    for c in report.cells:
        assert c.success_rate == (1.0 if c.samples >= c.d else 0.0), c
    tr = report.transition("pca", 1, 12)
    assert [r.n_star for r in tr.rows] == [2, 3]
    assert (tr.linear_fit.slope, tr.linear_fit.intercept) == pytest.approx((1.0, 0.0))


def test_padded_batches_span_sample_sizes():
    g = tiny_grid()
    calls = []

    def spy(X, dims, method, **kw):
        calls.append((X.shape, kw["n_valid"].tolist()))
        return tiny_pca_padded(X, dims, method, **kw)

    run_chunk(g, plan_chunks(g)[0], solver=spy, pad_samples=True)
    assert len(calls) == 2  # one call per d, all five N at once
    assert calls[0][0] == (5 * 4, 5, 12) and calls[0][1] == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4


def test_callback_can_stop_a_chunk():
    g = tiny_grid()
    seen = []
    out = run_chunk(g, plan_chunks(g)[0], solver=tiny_pca, callback=lambda p: seen.append(p) or True)
    assert len(seen) == 1 and len(out) == seen[0].batch_size == g.trials


def test_real_solvers_independent_of_chunking():
    """fit_batched (padded N, shared restart draws): results do not depend on the chunking.

    Diffusion uses random init here: with data-seeded init, zero-padding changes the rounding of
    the seeding SVDs and Adam (elementwise scaling) amplifies it along flat directions, so cells at
    the non-identifiable N_k = d can end at slightly different points (see bench/README.md).
    """
    g = tiny_grid(n_components=[1, 2], dims=[2], samples=[2, 3], samples_per="component", trials=3,
                  methods=["pca", "subspace_clustering", "diffusion"],
                  method_options={"subspace_clustering": {"n_restarts": 3},
                                  "diffusion": {"steps": 20, "retraction": "polar", "init": "random"}})
    whole = run_chunk(g, plan_chunks(g, 10_000)[0])
    pieces = [r for ch in plan_chunks(g, 5) for r in run_chunk(g, ch)]
    a = {r.key: r.error for r in whole}
    b = {r.key: r.error for r in pieces}
    assert a.keys() == b.keys() and len(a) == g.n_fits
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-9), k
    K2 = [r for r in whole if r.n_components == 2 and r.method == "subspace_clustering"]
    assert K2 and all(r.info["method"] == "subspace_clustering" for r in K2)


def test_sweep_in_worker_processes_equals_the_sweep_in_turn():
    """run_sweep(n_jobs=2): the same trials and results as in this process, a callback per chunk."""
    g = tiny_grid(n_components=[1], dims=[2, 3], samples=[2, 4], samples_per="total", trials=3,
                  methods=["pca", "diffusion"], method_options={"diffusion": {"steps": 50}})
    here = run_sweep(g, max_fits_per_chunk=12)
    seen: list = []
    there = run_sweep(g, max_fits_per_chunk=12, n_jobs=2, callback=seen.append)
    assert len(plan_chunks(g, 12)) == len(seen) == 2 and seen[-1].fits_done == seen[-1].fits_total == g.n_fits
    def cells(report):
        return {(c.method, c.d, c.samples): (c.trials, c.successes, c.error_mean, c.error_p90) for c in report.cells}

    assert cells(here) == cells(there) and sum(c.trials for c in there.cells) == g.n_fits
    assert [t.rows for t in here.transitions] == [t.rows for t in there.transitions]
    with pytest.raises(ValueError, match="n_jobs"):
        run_sweep(g, n_jobs=0)


def test_reproduce_paper_grids_are_valid():
    from molrg.reproduce import paper_grids

    exps = paper_grids(quick=False)
    assert [e.grid.validate().n_fits for e in exps] == [3920, 3920, 490]
    assert all(e.grid.dims == tuple(range(2, 9)) and e.grid.samples == tuple(range(2, 16)) for e in exps)
    assert len(paper_grids(quick=True, skip_softmax=True)) == 2
