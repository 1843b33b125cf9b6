"""Client commands of the ``molrg`` CLI (datasets, fit, sample, sweep, jobs, models, sample-sets).

Registered onto the server's click group by ``service.cli`` (``register(cli)``); they talk HTTP only.
Connection: ``--url``/``MOLRG_URL`` (default http://127.0.0.1:8000) and ``--api-key``/``MOLRG_API_KEY``
(default: the key file ``$MOLRG_DATA_DIR/api-key`` or ``./molrg-data/api-key`` that ``molrg up`` writes).

Exit codes: 0 ok; 1 API error (problem ``code`` and detail on stderr); 2 usage error; 3 the job failed or
was cancelled (``--wait``, ``jobs watch``); 4 timed out waiting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from molrg import spec
from molrg_client import show
from molrg_client.cli_common import (
    EXIT_JOB,
    PLOTS_WAIT,
    TIMEOUT,
    WAIT,
    _emit,
    _finish_job,
    _ints,
    _options,
    _save_npy,
    _save_plots,
    _show_job,
    _submitted,
    client_command,
)
from molrg_client.cli_sweeps import sweep, sweeps
from molrg_client.client import Client

# ---------------------------------------------------------------- datasets


@click.group()
def datasets() -> None:
    """Create, upload and list datasets."""


@datasets.command("create-synthetic")
@click.option("--ambient-dim", "-n", type=int, required=True, help="Ambient dimension n.")
@click.option("--dims", "-d", required=True, help="Comma-separated d_k, e.g. 4,4.")
@click.option("--n-samples", "-N", type=int, default=None, help="Total samples N.")
@click.option("--samples-per-component", type=int, default=None, help="N_k (instead of --n-samples).")
@click.option("--noise-std", type=float, default=0.0, show_default=True)
@click.option("--non-orthogonal", is_flag=True, help="Random (not mutually orthogonal) subspaces.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", default="synthetic", show_default=True)
@client_command
def create_synthetic(client: Client, as_json: bool, ambient_dim: int, dims: str, n_samples: int | None,
                     samples_per_component: int | None, noise_std: float, non_orthogonal: bool, seed: int,
                     name: str) -> None:
    """Generate a synthetic MoLRG dataset (ground truth kept)."""
    ds = client.datasets.create_synthetic(ambient_dim, _ints(dims), n_samples=n_samples,
                                          samples_per_component=samples_per_component, noise_std=noise_std,
                                          orthogonal=not non_orthogonal, seed=seed, name=name)
    _emit(ds.raw, as_json, lambda: click.echo(f"dataset {ds.id}  {ds.name}  N={ds.n_samples} n={ds.ambient_dim}"))


@datasets.command("create-builtin")
@click.argument("dataset", type=click.Choice(["digits"]), default="digits")
@click.option("--classes", default=None, help="Comma-separated digits to keep (default all ten).")
@click.option("--name", default=None)
@client_command
def create_builtin(client: Client, as_json: bool, dataset: str, classes: str | None, name: str | None) -> None:
    """Create a built-in real dataset: scikit-learn's 8x8 handwritten digits (with labels)."""
    ds = client.datasets.create_builtin(dataset, name=name, classes=_ints(classes) if classes else None)
    _emit(ds.raw, as_json, lambda: click.echo(f"dataset {ds.id}  {ds.name}  N={ds.n_samples} n={ds.ambient_dim}"))


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None)
@client_command
def upload(client: Client, as_json: bool, path: str, name: str | None) -> None:
    """Upload an (N, n) array from a .npy, .csv or .json file."""
    ds = client.datasets.upload(path, name=name)
    _emit(ds.raw, as_json, lambda: click.echo(f"dataset {ds.id}  {ds.name}  N={ds.n_samples} n={ds.ambient_dim}"))


@datasets.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@client_command
def list_datasets(client: Client, as_json: bool, limit: int) -> None:
    """List datasets, newest first."""
    page = client.datasets.list(limit=limit)

    def human() -> None:
        for d in page.items:
            click.echo(f"{d.id}  {d.source:<9} N={d.n_samples:<6} n={d.ambient_dim:<5} {d.name}")

    _emit({"items": [d.raw for d in page.items], "next_cursor": page.next_cursor}, as_json, human)


@datasets.command("show")
@click.argument("dataset_id")
@client_command
def show_dataset(client: Client, as_json: bool, dataset_id: str) -> None:
    """Show a dataset: size, source, its generating spec, links."""
    ds = client.datasets.get(dataset_id)
    _emit(ds.raw, as_json, lambda: click.echo(show.show_dataset(ds.raw)))


@datasets.command("download")
@click.argument("dataset_id")
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True, help="Write the (N, n) .npy here.")
@client_command
def download_dataset(client: Client, as_json: bool, dataset_id: str, out: str) -> None:
    """Download a dataset's array as .npy."""
    _save_npy(client.datasets.download(dataset_id), out, as_json)


# ---------------------------------------------------------------- fit, sample, sweep


@click.command("fit")
@click.argument("dataset_id")
@click.option("--components", "-K", type=int, required=True, help="Number of subspaces K.")
@click.option("--dims", "-d", default=None,
              help="Comma-separated d_k (one per component); default: from the data (95%-energy rule).")
@click.option("--method", type=click.Choice(spec.METHODS), default="diffusion",
              show_default=True)
@click.option("--option", "-o", "option", multiple=True, help="Method option KEY=VALUE (JSON value), repeatable.")
@click.option("--seed", type=int, default=0, show_default=True)
@WAIT
@TIMEOUT
@client_command
def fit(client: Client, as_json: bool, dataset_id: str, components: int, dims: str | None, method: str,
        option: tuple[str, ...], seed: int, wait: bool, timeout: float | None) -> None:
    """Submit a fit job on a dataset (dims from the data when --dims is omitted)."""
    chosen = _ints(dims) if dims else client.datasets.auto_dims(dataset_id, components)
    if not dims:
        click.echo(f"dims from the data (95% energy): {','.join(map(str, chosen))}", err=True)
    job = client.fits.create(dataset_id, components, chosen, method=method, options=_options(option), seed=seed)
    _submitted(client, job, as_json, wait, timeout)


@click.command("sample")
@click.argument("model_id")
@click.option("--n-samples", "-N", type=int, default=100, show_default=True)
@click.option("--sampler", type=click.Choice(spec.SAMPLERS), default="heun", show_default=True)
@click.option("--steps", type=int, default=18, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@WAIT
@TIMEOUT
@client_command
def sample(client: Client, as_json: bool, model_id: str, n_samples: int, sampler: str, steps: int, seed: int,
           wait: bool, timeout: float | None) -> None:
    """Submit a sampling job from a fitted model."""
    job = client.samples.create(model_id, n_samples=n_samples, sampler=sampler, steps=steps, seed=seed)
    _submitted(client, job, as_json, wait, timeout)


# ---------------------------------------------------------------- jobs


@click.group()
def jobs() -> None:
    """List, show, watch and cancel jobs."""


@jobs.command("list")
@click.option("--kind", type=click.Choice(["fit", "sample", "sweep"]), default=None)
@click.option("--status", type=click.Choice(["queued", "running", "cancelling", "succeeded", "failed",
                                              "cancelled"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@client_command
def list_jobs(client: Client, as_json: bool, kind: str | None, status: str | None, limit: int) -> None:
    """List jobs, newest first."""
    page = client.jobs.list(kind=kind, status=status, limit=limit)

    def human() -> None:
        for j in page.items:
            click.echo(f"{j.id}  {j.kind:<6} {j.status:<10} {100 * j.progress:5.1f}%  "
                       f"{j.created_at:%Y-%m-%d %H:%M:%S}" if j.created_at else f"{j.id} {j.kind} {j.status}")

    _emit({"items": [j.raw for j in page.items], "next_cursor": page.next_cursor}, as_json, human)


@jobs.command("show")
@click.argument("job_id")
@client_command
def show_job(client: Client, as_json: bool, job_id: str) -> None:
    """Show a job: status, progress, error, result links."""
    job = client.jobs.get(job_id)
    _emit(job.raw, as_json, lambda: _show_job(job))


@jobs.command("watch")
@click.argument("job_id")
@TIMEOUT
@client_command
def watch_job(client: Client, as_json: bool, job_id: str, timeout: float | None) -> None:
    """Follow a job's live event stream with a progress bar until it ends (--json: one event per line)."""
    if as_json:
        final = client.jobs.wait(job_id, timeout=timeout,
                                 on_event=lambda ev: click.echo(json.dumps({"event": ev.event, "data": ev.data})))
        if final.status != "succeeded":
            sys.exit(EXIT_JOB)
        return
    _finish_job(client.jobs.wait(job_id, progress=True, timeout=timeout), False)


@jobs.command("cancel")
@click.argument("job_id")
@client_command
def cancel_job(client: Client, as_json: bool, job_id: str) -> None:
    """Cancel a job (queued: at once; running: at its next step)."""
    job = client.jobs.cancel(job_id)
    _emit(job.raw, as_json, lambda: click.echo(f"job {job.id} {job.status}"))


# ---------------------------------------------------------------- models and sample sets


@click.group()
def models() -> None:
    """Show and download fitted models."""


def _show_model(m: Any) -> None:
    click.echo(show.show_model(m.raw))


@models.command("show")
@click.argument("model_id")
@client_command
def show_model(client: Client, as_json: bool, model_id: str) -> None:
    """Show a fitted model: dims, weights, metrics, links."""
    m = client.models.get(model_id)
    _emit(m.raw, as_json, lambda: _show_model(m))


@models.command("download")
@click.argument("model_id")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the bases .npz here (default <model_id>-bases.npz).")
@client_command
def download_model(client: Client, as_json: bool, model_id: str, out: str | None) -> None:
    """Download a model's bases U_0..U_{K-1} as .npz."""
    out = out or f"{model_id}-bases.npz"
    payload = client.models.bases_npz(model_id)
    Path(out).write_bytes(payload)
    _emit({"path": out, "bytes": len(payload)}, as_json, lambda: click.echo(f"wrote {out} ({len(payload)} bytes)"))


@models.command("plots")
@click.argument("model_id")
@click.option("--out-dir", "-o", type=click.Path(file_okay=False), default=".", show_default=True)
@click.option("--prefix", default=None, help="File name prefix (default '<id>-'): <prefix><kind>.png.")
@PLOTS_WAIT
@client_command
def model_plots(client: Client, as_json: bool, model_id: str, out_dir: str, prefix: str | None, wait: float) -> None:
    """Download a model's figures (loss, projection, jacobian) as PNG files."""
    _save_plots(client.models, model_id, out_dir, prefix, as_json, wait)


@click.group("sample-sets")
def sample_sets() -> None:
    """Show and download sample sets."""


@sample_sets.command("show")
@click.argument("sample_set_id")
@client_command
def show_sample_set(client: Client, as_json: bool, sample_set_id: str) -> None:
    """Show a sample set and its diagnostics."""
    s = client.sample_sets.get(sample_set_id)
    _emit(s.raw, as_json, lambda: click.echo(show.show_sample_set(s.raw)))


@sample_sets.command("download")
@click.argument("sample_set_id")
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True, help="Write the samples .npy here.")
@client_command
def download_samples(client: Client, as_json: bool, sample_set_id: str, out: str) -> None:
    """Download the samples (n_samples, n) as .npy."""
    _save_npy(client.sample_sets.samples(sample_set_id), out, as_json)


@sample_sets.command("plots")
@click.argument("sample_set_id")
@click.option("--out-dir", "-o", type=click.Path(file_okay=False), default=".", show_default=True)
@click.option("--prefix", default=None, help="File name prefix (default '<id>-'): <prefix><kind>.png.")
@PLOTS_WAIT
@client_command
def sample_set_plots(client: Client, as_json: bool, sample_set_id: str, out_dir: str, prefix: str | None,
                     wait: float) -> None:
    """Download a sample set's figures (grid of samples with nearest training images, editing strip)."""
    _save_plots(client.sample_sets, sample_set_id, out_dir, prefix, as_json, wait)


# ---------------------------------------------------------------- delete


def _delete_command(group: click.Group, resource: str, label: str, summary: str) -> None:
    """``molrg <resource> delete ID``: 204 -> "deleted <label> ID"; 409 names the job to cancel first."""

    @group.command("delete", help=f"{summary} Refused (exit 1) while one of its jobs is queued or running: "
                                  "cancel it first.")
    @click.argument("ident", metavar="ID")
    @client_command
    def delete(client: Client, as_json: bool, ident: str) -> None:
        section = getattr(client, resource)
        section.delete(ident)
        _emit({"deleted": label, "id": ident}, as_json, lambda: click.echo(f"deleted {label} {ident}"))


_delete_command(datasets, "datasets", "dataset",
                "Delete a dataset with the fit jobs run on it, their models and everything sampled from them.")
_delete_command(models, "models", "model",
                "Delete a model with its fit job, plots, and the sample jobs and sample sets drawn from it.")
_delete_command(sample_sets, "sample_sets", "sample set", "Delete a sample set with its sample job and plots.")
_delete_command(jobs, "jobs", "job",
                "Delete a finished job with what it produced (model, sample set or sweep), metrics and plots.")
_delete_command(sweeps, "sweeps", "sweep", "Delete a finished sweep with its job, trials and heatmaps.")


COMMANDS = (datasets, fit, sample, sweep, sweeps, jobs, models, sample_sets)


def register(group: click.Group) -> None:
    """Add the client commands to the ``molrg`` group."""
    for command in COMMANDS:
        group.add_command(command)


@click.group()
def main() -> None:
    """molrg client commands (also available as ``molrg <command>``)."""


register(main)
