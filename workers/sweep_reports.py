"""A sweep's report and figures from its stored trials (spec sections 7, 14): the partial report a chunk
refreshes, and the final one the last chunk writes with the heatmaps, the curves figure and the job's
terminal status in one transaction."""

import logging
import math
import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import sweeps as store
from db.session import session_scope
from molrg.spec import SAMPLE_SCORED_METHODS, SweepSpec
from molrg.sweeps.grid import SweepGrid
from molrg.sweeps.run import TrialResult, summarise
from workers import plots

logger = logging.getLogger(__name__)


def grid_from_spec(params: dict[str, Any]) -> SweepGrid:
    """The engine's grid from the stored API spec, parsed by the one declaration (molrg.spec.SweepSpec)."""
    fields = set(SweepSpec.model_fields)
    return SweepGrid.from_spec(SweepSpec.model_validate({k: v for k, v in params.items() if k in fields})).validate()



def _report(session: Session, sweep_id: uuid.UUID) -> tuple[dict[str, Any], int, SweepGrid]:
    sweep = store.get_sweep(session, sweep_id)
    assert sweep is not None
    grid = grid_from_spec(dict(sweep.spec))
    rows = store.trial_rows(session, sweep_id)
    trials = [TrialResult(ambient_dim=r.ambient_dim, n_components=r.n_components, d=r.d, samples=r.samples,
                          samples_per=grid.samples_per, trial=r.trial, seed=int(r.seed), method=r.method,
                          error=float(r.error), mean_error=float(r.mean_error if r.mean_error is not None
                                                                 else r.error),
                          success=bool(r.success), fit_seconds=float(r.fit_seconds),
                          memorised_fraction=r.memorised_fraction, generalisation_score=r.generalisation_score,
                          on_support_fraction=r.on_support_fraction, scores_by_step=r.scores_by_step) for r in rows]
    return report_dict(summarise(grid, trials).to_dict()), len(trials), grid


def report_dict(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored report: the engine's report with ``n_star_logistic`` flattened into each row."""
    out = {k: v for k, v in raw.items() if k != "grid"}
    for tr in out.get("transitions", []):
        for row in tr.get("rows", []):
            logistic = row.get("logistic") or {}
            row["n_star_logistic"] = logistic.get("n50")
    return _finite(out)


def _finite(value: Any) -> Any:
    """Replace NaN/inf floats by None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def refresh_report(maker: sessionmaker[Session], sweep_id: uuid.UUID) -> None:
    """Store a partial report of the trials stored so far (skipped if a newer one is there)."""
    with session_scope(maker) as session:
        report, fits, _ = _report(session, sweep_id)
        store.store_report(session, sweep_id, report, fits, final=False)


def finalize(maker: sessionmaker[Session], sweep_id: uuid.UUID) -> str | None:
    """Final report + heatmaps + the job's terminal status, in one transaction."""
    with session_scope(maker) as session:
        report, fits, grid = _report(session, sweep_id)
        groups = sorted({(c["method"], c["n_components"], c["ambient_dim"]) for c in report["cells"]})
        store.store_report(session, sweep_id, report, fits, final=True)
        for method, K, n in groups:
            png = plots.heatmap_png(report["cells"], method=method, n_components=K, ambient_dim=n,
                                    samples_per=grid.samples_per)
            width, height = plots.png_size(png)
            store.store_heatmap(session, sweep_id, method, K, n, png, width, height)
        for K, n in sorted({(K, n) for m, K, n in groups if m in SAMPLE_SCORED_METHODS}):
            png = plots.curves_png(report["cells"], report["transitions"], n_components=K, ambient_dim=n,
                                   samples_per=grid.samples_per)
            width, height = plots.png_size(png)
            store.store_figure(session, sweep_id, "curves", K, n, png, width, height)
        result = {"sweep_id": str(sweep_id), "n_fits": grid.n_fits, "fits_done": fits,
                  "transitions": [{"method": t["method"], "n_components": t["n_components"],
                                   "ambient_dim": t["ambient_dim"], "linear_fit": t["linear_fit"]}
                                  for t in report["transitions"]]}
        status = store.finish_sweep(session, sweep_id, result)
    logger.info("sweep %s finished: %s (%d fits)", sweep_id, status, fits)
    return None if status is None else str(status)
