"""Neural sample-complexity sweeps in the library (spec section 14): the N_k / d axis, chunks sized by
memory, the batched references against their one-trial oracles, chunk independence, thresholds and
collapse."""

from __future__ import annotations

import math

import pytest
import torch

from molrg import spec
from molrg.neural.references import empirical_posterior_mean
from molrg.sweeps.grid import Cell, SweepGrid, plan_chunks
from molrg.sweeps.run import TrialResult, run_chunk, summarise
from molrg.sweeps.scored import ScoredTrial, _empirical_denoiser, run_scored
from molrg.sweeps.transition import build_report

TINY_NET = {"width": 16, "depth": 2, "steps": 40, "batch_size": 32}


def grid(**kw: object) -> SweepGrid:
    base: dict = {"ambient_dims": (8,), "n_components": (2,), "dims": (1, 2), "samples": (1, 4),
                  "samples_per": "dim_ratio", "trials": 2, "methods": ("neural", "empirical", "exact"),
                  "method_options": {"neural": TINY_NET}, "eval_samples": 32, "eval_steps": 6, "seed": 5}
    merged = {**base, **kw}
    if "neural" not in merged["methods"]:
        merged["method_options"] = {}
    return SweepGrid(**merged)  # type: ignore[arg-type]


def test_dim_ratio_samples_are_ratios_of_d() -> None:
    g = grid()
    assert g.samples_per_component(Cell(8, 2, 2, 4)) == 8
    assert g.n_total_samples(Cell(8, 2, 2, 4)) == 16
    assert g.to_spec().max_rows() == 2 * 4 * 2
    (trial,) = [t for t in run_chunk(grid(methods=("subspace_clustering",)), plan_chunks(
        grid(methods=("subspace_clustering",)))[0]) if (t.d, t.samples, t.trial) == (2, 4, 0)]
    assert trial.error < 1e-6  # N_k = 8 > d: recovered; the data had N = 16 rows


@pytest.mark.parametrize(("change", "field"), [
    ({"method_options": {"neural": {"split": "halves"}}}, "method_options.neural.split"),
    ({"samples_per": "total"}, "samples_per"),
    ({"method_options": {"neural": {"architecture": "unet"}}}, "method_options.neural"),
])
def test_neural_sweep_rules_name_the_field(change: dict, field: str) -> None:
    body = {"ambient_dim": 8, "n_components": 2, "dims": [1, 2], "samples": [1, 4], "samples_per": "dim_ratio",
            "methods": ["neural", "empirical"], **change}
    issues = spec.sweep_errors(spec.SweepSpec.model_validate(body))
    assert field in {i.field for i in issues}, issues


def test_neural_chunks_are_sized_by_the_memory_budget() -> None:
    g = grid(dims=(1, 2, 3), samples=(1, 2, 4, 8), trials=3)
    per = g.neural_member_bytes(8)
    assert per >= 4 * 4 * spec.neural_parameter_count(spec.NeuralOptions(**TINY_NET), 8)  # weights, grad, Adam
    for members in (1, 2, 5, 12, 100):
        chunks = plan_chunks(g, chunk_bytes=members * per)
        units = [u for c in chunks for u in c.units()]
        assert sorted(units) == sorted((c, t) for c in g.cells() for t in range(3))  # each exactly once
        assert max(len(c.units()) for c in chunks) <= members
        if members in (1, 12, 100):  # whole cells of 3 trials pack evenly
            assert len(chunks) == math.ceil(36 / members)
    low_rank = grid(methods=("diffusion",), dims=(1, 2, 3), samples=(1, 2, 4, 8), trials=3)
    assert len(plan_chunks(low_rank, chunk_bytes=1)) == 1  # the budget is for networks only


def _trials(g: SweepGrid, cells: list[Cell]) -> list[ScoredTrial]:
    from molrg.data.synthetic import sample_molrg_batch
    from molrg.sweeps.grid import trial_seed

    out = []
    for cell in cells:
        seeds = [trial_seed(g, cell, t) for t in range(g.trials)]
        b = sample_molrg_batch(seeds, cell.ambient_dim, [cell.d] * cell.n_components,
                               samples_per_component=g.samples_per_component(cell))
        out += [ScoredTrial(cell, t, seeds[t], b.X[t], b.labels[t], b.bases[t, :, :, :cell.d])
                for t in range(g.trials)]
    return out


def test_batched_empirical_denoiser_equals_the_one_trial_posterior_mean() -> None:
    g = grid()
    trials = _trials(g, [Cell(8, 2, 1, 1), Cell(8, 2, 2, 4)])  # N = 2 and N = 16: padded and masked
    D = _empirical_denoiser(trials, None)
    x = torch.randn(len(trials) * 5, 8, dtype=torch.float64)
    sigma = torch.rand(len(trials) * 5, dtype=torch.float64) + 0.05
    out = D(x, sigma).reshape(len(trials), 5, 8)
    for b, t in enumerate(trials):
        expect = empirical_posterior_mean(x[5 * b:5 * b + 5], t.X, sigma[5 * b:5 * b + 5])
        torch.testing.assert_close(out[b], expect, rtol=1e-10, atol=1e-12)


def test_references_bracket_every_cell() -> None:
    g = grid(eval_samples=64)
    trials = _trials(g, [Cell(8, 2, 2, 1), Cell(8, 2, 2, 4)])
    empirical = run_scored(g, "empirical", trials)
    exact = run_scored(g, "exact", trials)
    assert empirical is not None and exact is not None
    for e in empirical:  # its samples are training points: memorised, on support, generalisation 0
        assert e.memorised_fraction == 1.0 and e.generalisation_score == 0.0 and e.on_support_fraction == 1.0
    for e in exact:  # the true posterior: on support; only chance neighbours count as memorised (~3^-d)
        assert e.on_support_fraction == 1.0 and e.generalisation_score >= 0.75
        assert e.error < 0.5  # the read-out at sigma = 0.05 blurs near the origin, where responsibilities mix


def test_a_trial_does_not_depend_on_its_chunk() -> None:
    g = grid(methods=("neural",), trials=1)
    cells = [Cell(8, 2, 1, 1), Cell(8, 2, 2, 4)]
    alone = run_scored(g, "neural", _trials(g, cells[1:]))
    together = run_scored(g, "neural", _trials(g, cells))
    assert alone is not None and together is not None
    a, b = alone[0], together[1]
    assert a.memorised_fraction == b.memorised_fraction and a.on_support_fraction == b.on_support_fraction
    assert a.error == pytest.approx(b.error, abs=1e-4)


def test_run_chunk_reports_training_steps_and_stops_when_told() -> None:
    g = grid(methods=("neural", "exact"), trials=1)
    seen = []

    def callback(p: object) -> bool:
        seen.append(p)
        return getattr(p, "step", None) is not None and p.step >= 10  # type: ignore[attr-defined]

    done = run_chunk(g, plan_chunks(g)[0], callback=callback)
    assert done == [] and seen[-1].step >= 10 and seen[-1].total_steps == 40  # stopped mid-training
    full = run_chunk(g, plan_chunks(g)[0])
    assert {t.method for t in full} == {"neural", "exact"} and len(full) == 2 * 4
    for t in full:
        assert t.generalisation_score is not None and 0.0 <= t.generalisation_score <= 1.0
        assert t.success == (t.generalisation_score >= 0.5) and math.isfinite(t.error)


def _scored(method: str, d: int, samples: int, trial: int, score: float) -> TrialResult:
    return TrialResult(ambient_dim=8, n_components=2, d=d, samples=samples, samples_per="dim_ratio", trial=trial,
                       seed=0, method=method, error=0.1, mean_error=0.1, success=score >= 0.5, fit_seconds=0.0,
                       memorised_fraction=1 - score, generalisation_score=score, on_support_fraction=1.0)


def test_thresholds_and_collapse_from_the_median_score() -> None:
    # d = 2 crosses at ratio 4 and d = 4 at ratio 8; medians of 3 trials
    scores = {2: {1: [0.0, 0.1, 0.0], 2: [0.2, 0.4, 0.3], 4: [0.6, 0.5, 0.9], 8: [0.9, 1.0, 0.9]},
              4: {1: [0.0, 0.0, 0.0], 2: [0.1, 0.0, 0.2], 4: [0.3, 0.6, 0.4], 8: [0.7, 0.8, 0.6]}}
    trials = [_scored("neural", d, s, t, v) for d, row in scores.items() for s, vs in row.items()
              for t, v in enumerate(vs)]
    report = build_report({"samples_per": "dim_ratio", "eval_samples": 100}, trials)
    (tr,) = report.transitions
    assert [(r.d, r.n_star) for r in tr.rows] == [(2, 4), (4, 8)]
    assert tr.collapse is not None and tr.collapse.n_star_max_over_min == 2.0 and tr.collapse.crossed == 2
    for r, (lo, hi) in zip(tr.rows, [(2, 4), (4, 8)], strict=True):
        assert r.logistic.status == "ok" and lo <= r.logistic.n50 <= hi  # crossing, back on the ratio axis
    cell = report.cell("neural", 2, 8, 2, 4)
    assert cell is not None and cell.generalisation_score == 0.6 and cell.memorised_fraction == 0.4
    assert summarise(grid(), trials).transitions[0].collapse is not None


def test_reproduce_runs_the_neural_grid(tmp_path, capsys, monkeypatch) -> None:
    import dataclasses

    from molrg import reproduce

    full = reproduce.neural_grid().grid.validate()
    assert full.dims == (2, 4, 6) and full.samples == (1, 2, 4, 8, 16, 32, 64) and full.samples_per == "dim_ratio"
    assert full.n_fits == 3 * 7 * 2 * 4
    quick = reproduce.neural_grid(quick=True, neural={"steps": 20, "width": 16})
    assert quick.grid.samples == (1, 8, 64) and quick.grid.method_options["neural"] == {"steps": 20, "width": 16}
    small = dataclasses.replace(quick, grid=dataclasses.replace(  # the same path, a CPU-test-sized grid
        quick.grid, ambient_dims=(8,), dims=(1, 2), eval_samples=16, eval_steps=4,
        method_options={**quick.grid.method_options, "diffusion": {"steps": 20}}))
    monkeypatch.setattr(reproduce, "neural_grid", lambda *a, **k: small)
    out = reproduce.main(["--neural", "--quick", "--json", str(tmp_path / "r.json")])
    text = capsys.readouterr().out
    assert "generalisation_score, median over trials" in text and "collapse across d" in text
    report = out["experiments"][0]["report"]
    methods = {c["method"] for c in report["cells"]}
    assert methods == {"neural", "empirical", "exact", "diffusion"} and (tmp_path / "r.json").exists()


def test_eval_at_steps_scores_the_networks_during_training() -> None:
    g = grid(methods=("neural",), trials=1, eval_at_steps=(10, 25))
    with pytest.raises(ValueError, match="eval_at_steps"):
        grid(methods=("neural",), eval_at_steps=(40,)).validate()  # the final step is always scored
    with pytest.raises(ValueError, match="eval_at_steps"):
        grid(methods=("exact",), eval_at_steps=(10,)).validate()
    trials = run_chunk(g, plan_chunks(g)[0])
    for t in trials:
        assert t.scores_by_step is not None and set(t.scores_by_step) == {"10", "25"}
        for scores in t.scores_by_step.values():
            assert set(scores) == {"memorised_fraction", "on_support_fraction", "generalisation_score"}
            assert all(0.0 <= v <= 1.0 for v in scores.values())
    report = summarise(g, trials)
    cell = report.cells[0]
    assert cell.by_step is not None and cell.by_step["10"]["generalisation_score"] == \
        [t for t in trials if (t.d, t.samples) == (cell.d, cell.samples)][0].scores_by_step["10"]["generalisation_score"]
    # a snapshot is the network at that step: the networks of a 25-step run equal the 25-step snapshot
    from molrg.neural.config import NeuralConfig
    from molrg.neural.training import train_ensemble

    X = [torch.randn(12, 8, generator=torch.Generator().manual_seed(1))]
    cfg = NeuralConfig(**TINY_NET, lr_schedule="constant")
    full = train_ensemble(cfg, X, [3], snapshot_steps=[25])
    short = train_ensemble(NeuralConfig(**{**TINY_NET, "steps": 25}, lr_schedule="constant"), X, [3])
    for k, v in short.networks.params.items():
        torch.testing.assert_close(full.snapshots[25].params[k], v)
