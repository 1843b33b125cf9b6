"""Sweep commands of the ``molrg`` CLI: ``molrg sweep`` (submit) and ``molrg sweeps list | show | plots``
(``delete`` is added with the other resources' in :mod:`molrg_client.cli`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from molrg_client import show
from molrg_client.cli_common import TIMEOUT, WAIT, _emit, _submitted, client_command
from molrg_client.client import Client


@click.command("sweep")
@click.option("--spec", "spec", required=True,
              help="The sweep as JSON (fields of POST /api/v1/sweeps), inline or @file.json.")
@WAIT
@TIMEOUT
@client_command
def sweep(client: Client, as_json: bool, spec: str, wait: bool, timeout: float | None) -> None:
    """Submit a sample-complexity sweep."""
    text = Path(spec[1:]).read_text() if spec.startswith("@") else spec
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--spec") from exc
    job = client.sweeps.create(body)
    if not as_json and job.raw.get("sweep_id"):
        click.echo(f"sweep {job.raw['sweep_id']} ({job.raw.get('n_fits')} fits)")
    _submitted(client, job, as_json, wait, timeout)


@click.group()
def sweeps() -> None:
    """Sample-complexity sweeps (submit one with ``molrg sweep``)."""


@sweeps.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@client_command
def list_sweeps(client: Client, as_json: bool, limit: int) -> None:
    """List sweeps, newest first: id, status, fits and chunks done."""
    page = client.sweeps.list(limit=limit)

    def human() -> None:
        for sw in page.items:
            p = sw.raw.get("progress") or {}
            click.echo(f"{sw.id}  {str(sw.status):<10} fits {p.get('fits_done')}/{p.get('fits_total')}  chunks "
                       f"{p.get('chunks_done')}/{p.get('chunks_total') or '?'}  {sw.created_at:%Y-%m-%d %H:%M:%S}"
                       if sw.created_at else f"{sw.id} {sw.status}")

    _emit({"items": [sw.raw for sw in page.items], "next_cursor": page.next_cursor}, as_json, human)


@sweeps.command("show")
@click.argument("sweep_id")
@client_command
def show_sweep(client: Client, as_json: bool, sweep_id: str) -> None:
    """Show a sweep: progress, transitions N*(d) and the lines N* ~ d, success rates per cell, chunks."""
    sw = client.sweeps.get(sweep_id)
    _emit(sw.raw, as_json, lambda: click.echo(show.show_sweep(sw.raw)))


@sweeps.command("plots")
@click.argument("sweep_id")
@click.option("--out-dir", "-o", type=click.Path(file_okay=False), default=".", show_default=True)
@client_command
def sweep_plots(client: Client, as_json: bool, sweep_id: str, out_dir: str) -> None:
    """Download a finished sweep's figures: every heatmap and (neural sweeps) the curves against N_k / d."""
    sw = client.sweeps.get(sweep_id).raw
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ref in [*sw.get("heatmaps", []), *sw.get("figures", [])]:
        kind = ref.get("kind") or f"heatmap-{ref['method']}"
        path = out / f"{sweep_id}-{kind}-K{ref['n_components']}-n{ref['ambient_dim']}.png"
        query = {k: ref[k] for k in ("method", "n_components", "ambient_dim") if k in ref}
        data = client.sweeps.curves_png(sweep_id, **query) if ref.get("kind") == "curves" \
            else client.sweeps.heatmap_png(sweep_id, **query)
        path.write_bytes(data)
        written.append(str(path))
    if not written:
        raise click.ClickException(f"sweep {sweep_id} has no figures yet (they are rendered when it finishes)")
    _emit({"files": written}, as_json, lambda: click.echo("\n".join(written)))
