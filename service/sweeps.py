"""Sweep use cases: submit (job + sweep rows, publish after commit), read results, CSVs, heatmaps.

Reads only rows the workers wrote (report, trials, heatmap PNGs): no torch, molrg or matplotlib here.
"""

import csv
import io
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import sweeps as store
from db.enums import JobKind
from db.models import Job, Sweep, SweepTrial
from service import jobs as job_cases
from service.auth import Principal
from service.errors import FieldError, InvalidJobState, NotFound, ValidationFailed
from service.idempotency import find_replay, request_hash
from service.pagination import paginate
from service.queue import JobQueue
from service.scoping import API, get_visible, visible
from service.settings import ServiceSettings
from service.sweep_schemas import (
    ChunkRead,
    FigureRef,
    HeatmapRef,
    SweepCell,
    SweepCreate,
    SweepJobRead,
    SweepProgress,
    SweepRead,
    SweepSummary,
    Transition,
    TransitionRow,
    validate_sweep,
)

SCORE_COLUMNS = ("memorised_fraction", "generalisation_score", "on_support_fraction")
TRIAL_CSV_COLUMNS = ("method", "n_components", "ambient_dim", "d", "samples", "trial", "seed", "error",
                     "mean_error", "success", "fit_seconds", "chunk", *SCORE_COLUMNS, "scores_by_step")
CELL_CSV_COLUMNS = ("method", "n_components", "ambient_dim", "d", "samples", "trials", "successes",
                    "success_rate", "error_median", "error_p90", "error_mean", *SCORE_COLUMNS)


def submit_sweep(session: Session, queue: JobQueue, principal: Principal, req: SweepCreate,
                 settings: ServiceSettings, idempotency_key: str | None) -> SweepJobRead:
    """Validate, add the job and its sweep row in one transaction; the job is published after commit."""
    spec = req.model_dump(mode="json") | {"method_options": {
        m: o.model_dump(mode="json", exclude_unset=True) for m, o in req.method_options.given().items()}}
    digest = request_hash("sweeps", spec)
    if (existing := find_replay(session, Job, principal.owner, idempotency_key, digest)) is None:
        n_fits = validate_sweep(req, settings)
        sweep_id = uuid.uuid4()
        submitted = job_cases._submit(session, queue, principal, JobKind.sweep, {**spec, "sweep_id": str(sweep_id)},
                                      settings, idempotency_key, digest)
        if not submitted.replayed:
            store.create_sweep(session, owner=principal.owner, job_id=submitted.job.id, spec=spec,
                               fits_total=n_fits, sweep_id=sweep_id)
        job = submitted.job
    else:
        job = existing
    sweep = store.sweep_for_job(session, job.id)
    if sweep is None:  # a replayed key that named a non-sweep job
        raise InvalidJobState(f"Idempotency-Key {idempotency_key!r} belongs to a {job.kind} job")
    read = job_cases.to_read(job)
    return SweepJobRead(**read.model_dump(), sweep_id=sweep.id, n_fits=sweep.fits_total)


def get_sweep(session: Session, principal: Principal, sweep_id: uuid.UUID) -> Sweep:
    return get_visible(session, Sweep, sweep_id, principal, "sweep")


def _links(sweep: Sweep) -> dict[str, str]:
    base = f"{API}/sweeps/{sweep.id}"
    return {"self": base, "job": f"{API}/jobs/{sweep.job_id}", "cancel": f"{API}/jobs/{sweep.job_id}/cancel",
            "trials_csv": f"{base}/trials.csv", "cells_csv": f"{base}/cells.csv", "heatmap": f"{base}/heatmap.png",
            "curves": f"{base}/curves.png"}


def _progress(sweep: Sweep) -> SweepProgress:
    if sweep.chunks_total:
        fraction = sweep.chunks_done / sweep.chunks_total
    else:
        fraction = 0.0
    return SweepProgress(chunks_done=sweep.chunks_done, chunks_total=sweep.chunks_total, fits_done=sweep.fits_done,
                         fits_total=sweep.fits_total, fraction=min(fraction, 1.0))


def _job(session: Session, sweep: Sweep) -> Job:
    return session.get_one(Job, sweep.job_id)


def to_summary(session: Session, sweep: Sweep) -> SweepSummary:
    job = _job(session, sweep)
    return SweepSummary(id=sweep.id, job_id=sweep.job_id, status=str(job.status), n_fits=sweep.fits_total,
                        progress=_progress(sweep), created_at=sweep.created_at, links=_links(sweep))


def _transition(raw: dict[str, Any]) -> Transition:
    rows = []
    for r in raw.get("rows", []):
        logistic = r.get("logistic") or {}
        rows.append(TransitionRow(d=r["d"], n_star=r.get("n_star"), n_star_logistic=r.get("n_star_logistic"),
                                  logistic_width=logistic.get("width"), logistic_status=logistic.get("status")))
    return Transition(method=raw["method"], n_components=raw["n_components"], ambient_dim=raw["ambient_dim"],
                      rows=rows, linear_fit=raw.get("linear_fit"), linear_fit_logistic=raw.get("linear_fit_logistic"),
                      collapse=raw.get("collapse"))


def to_read(session: Session, sweep: Sweep) -> SweepRead:
    """The sweep with its latest report (partial while chunks are still running)."""
    job = _job(session, sweep)
    report = sweep.report or {}
    base = f"{API}/sweeps/{sweep.id}/heatmap.png"
    heatmaps = [HeatmapRef(method=m, n_components=K, ambient_dim=n, width=w, height=h,
                           url=f"{base}?method={m}&n_components={K}&ambient_dim={n}")
                for m, K, n, w, h in store.heatmaps(session, sweep.id)]
    figures = [FigureRef(kind=kind, n_components=K, ambient_dim=n, width=w, height=h,
                         url=f"{API}/sweeps/{sweep.id}/{kind}.png?n_components={K}&ambient_dim={n}")
               for kind, K, n, w, h in store.figures(session, sweep.id)]
    return SweepRead(
        id=sweep.id, job_id=sweep.job_id, status=str(job.status), error=job.error, spec=sweep.spec,
        n_fits=sweep.fits_total, progress=_progress(sweep), final=bool(sweep.report_final),
        cells=[SweepCell.model_validate(c) for c in report.get("cells", [])],
        transitions=[_transition(t) for t in report.get("transitions", [])], heatmaps=heatmaps, figures=figures,
        chunks=[ChunkRead.model_validate(c) for c in store.chunks(session, sweep.id)],
        created_at=sweep.created_at, finished_at=sweep.finished_at, links=_links(sweep),
    )


def list_sweeps(session: Session, principal: Principal, limit: int, cursor: str | None) -> tuple[list[Sweep], str | None]:
    return paginate(session, visible(select(Sweep), Sweep, principal), Sweep, limit, cursor)


def _csv(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def trials_csv(session: Session, principal: Principal, sweep_id: uuid.UUID) -> str:
    """One row per stored trial: grid position, seed, method, error, success, fit time."""
    sweep = get_sweep(session, principal, sweep_id)
    rows: list[SweepTrial] = store.trial_rows(session, sweep.id)
    return _csv(TRIAL_CSV_COLUMNS, [
        (t.method, t.n_components, t.ambient_dim, t.d, t.samples, t.trial, t.seed, t.error, t.mean_error,
         int(t.success), t.fit_seconds, t.chunk_index, *(getattr(t, c) for c in SCORE_COLUMNS),
         json.dumps(t.scores_by_step, sort_keys=True) if t.scores_by_step else None) for t in rows])


def cells_csv(session: Session, principal: Principal, sweep_id: uuid.UUID) -> str:
    """One row per (method, cell) of the latest report."""
    sweep = get_sweep(session, principal, sweep_id)
    cells = (sweep.report or {}).get("cells", [])
    return _csv(CELL_CSV_COLUMNS, [tuple(c.get(k) for k in CELL_CSV_COLUMNS) for c in cells])


def _pick(field_name: str, value: Any, available: list[Any]) -> Any:
    if value is not None:
        if value not in available:
            raise ValidationFailed([FieldError(field_name, f"{value!r} is not in this sweep (have {available})")])
        return value
    if len(available) != 1:
        raise ValidationFailed([FieldError(field_name, f"this sweep has several values {available}; choose one")])
    return available[0]


def heatmap(session: Session, principal: Principal, sweep_id: uuid.UUID, method: str | None,
            n_components: int | None, ambient_dim: int | None) -> tuple[bytes, int, int]:
    """PNG bytes, width and height of one (method, K, n) heatmap rendered by the worker."""
    sweep = get_sweep(session, principal, sweep_id)
    spec = sweep.spec
    ks = spec["n_components"] if isinstance(spec["n_components"], list) else [spec["n_components"]]
    ns = spec["ambient_dim"] if isinstance(spec["ambient_dim"], list) else [spec["ambient_dim"]]
    K = _pick("n_components", n_components, list(ks))
    n = _pick("ambient_dim", ambient_dim, list(ns))
    methods = [m for m in spec["methods"] if m != "pca" or K == 1]
    m = _pick("method", method, methods)
    row = store.heatmap_png(session, sweep.id, m, K, n)
    if row is None:
        if not sweep.report_final:
            raise InvalidJobState("the heatmap is rendered when the sweep's last chunk finishes; "
                                  f"progress {sweep.chunks_done}/{sweep.chunks_total or '?'} chunks")
        raise NotFound("heatmap", f"{m}/K={K}/n={n}")
    return row.png, row.width, row.height


def figure(session: Session, principal: Principal, sweep_id: uuid.UUID, kind: str, n_components: int | None,
           ambient_dim: int | None) -> tuple[bytes, int, int]:
    """PNG bytes, width and height of one (kind, K, n) sweep figure rendered by the worker."""
    sweep = get_sweep(session, principal, sweep_id)
    stored = [(K, n) for k, K, n, _, _ in store.figures(session, sweep.id) if k == kind]
    if not stored:
        if not sweep.report_final:
            raise InvalidJobState(f"the {kind} figure is rendered when the sweep's last chunk finishes; "
                                  f"progress {sweep.chunks_done}/{sweep.chunks_total or '?'} chunks")
        raise NotFound(f"{kind} figure", f"sweep {sweep.id} (only sweeps with neural, empirical or exact have one)")
    K = _pick("n_components", n_components, sorted({K for K, _ in stored}))
    n = _pick("ambient_dim", ambient_dim, sorted({n for k2, n in stored if k2 == K}))
    row = store.figure_png(session, sweep.id, kind, K, n)
    if row is None:
        raise NotFound(f"{kind} figure", f"K={K}/n={n}")
    return row.png, row.width, row.height
