"""Shared parts of the ``molrg`` client commands: connection options, error-to-exit-code mapping, output.

``client_command`` adds ``--url``/``--api-key``/``--json``, builds the ``Client`` and maps API errors to exit
codes (1 API error, 3 job failed or cancelled, 4 timed out) with the problem on stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from molrg_client import show
from molrg_client.client import Client
from molrg_client.errors import MolrgError, MolrgTimeout
from molrg_client.types import Job

EXIT_API, EXIT_JOB, EXIT_TIMEOUT = 1, 3, 4


def _default_key() -> str | None:
    key = os.environ.get("MOLRG_API_KEY")
    if key:
        return key
    for folder in (os.environ.get("MOLRG_DATA_DIR"), "molrg-data"):
        if folder and (Path(folder) / "api-key").is_file():
            return (Path(folder) / "api-key").read_text().strip()
    return None


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers such as 4,4") from exc


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--option")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _emit(obj: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
    else:
        human()


def _save_npy(array: Any, out: str, as_json: bool) -> None:
    """Write a downloaded array to ``out`` as .npy and report its path and shape."""
    import numpy as np

    np.save(out, array)
    _emit({"path": out, "shape": list(array.shape)}, as_json, lambda: click.echo(f"wrote {out} {array.shape}"))


def client_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --url/--api-key/--json, build the Client, and map errors to exit codes with detail on stderr."""

    @click.option("--url", envvar="MOLRG_URL", default=None, help="API base URL (env MOLRG_URL).")
    @click.option("--api-key", envvar="MOLRG_API_KEY", default=None, help="Bearer key (env MOLRG_API_KEY).")
    @click.option("--json", "as_json", is_flag=True, help="Print the JSON resource (for scripts).")
    @functools.wraps(fn)
    def wrapper(url: str | None, api_key: str | None, as_json: bool, **kwargs: Any) -> None:
        client = Client(url, api_key or _default_key())
        try:
            fn(client, as_json, **kwargs)
        except MolrgTimeout as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_TIMEOUT)
        except MolrgError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_API)
        finally:
            client.close()

    return wrapper


def _wait(client: Client, job: Job, as_json: bool, timeout: float | None) -> Job:
    final = client.jobs.wait(job, progress=not as_json, timeout=timeout)
    return final


def _finish_job(job: Job, as_json: bool) -> None:
    _emit(job.raw, as_json, lambda: _show_job(job))
    if job.status != "succeeded":
        if job.status in ("failed", "cancelled"):
            click.echo(f"error: job {job.id} {job.status}" + (f": {job.error}" if job.error else ""), err=True)
            sys.exit(EXIT_JOB)


def _show_job(job: Job) -> None:
    click.echo(show.show_job(job.raw))


def _submitted(client: Client, job: Job, as_json: bool, wait: bool, timeout: float | None) -> None:
    if wait:
        _finish_job(_wait(client, job, as_json, timeout), as_json)
    else:
        _emit(job.raw, as_json, lambda: click.echo(f"submitted job {job.id} ({job.kind}, {job.status}); "
                                                   f"watch it with: molrg jobs watch {job.id}"))


WAIT = click.option("--wait", is_flag=True, help="Wait for the job with a live progress bar.")
TIMEOUT = click.option("--timeout", type=float, default=None, help="Give up waiting after this many seconds.")
PLOTS_WAIT = click.option("--wait", type=float, default=15.0, show_default=True,
                          help="Seconds to wait for the figures while there are none yet (they are rendered just "
                               "after the job ends).")


def _save_plots(section: Any, ident: str, out_dir: str, prefix: str | None, as_json: bool, wait: float) -> None:
    import time

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    plots, deadline = section.plots(ident), time.monotonic() + wait
    while not plots and time.monotonic() < deadline:  # figures are stored just after the job ends
        time.sleep(0.5)
        plots = section.plots(ident)
    for p in plots:
        path = folder / f"{ident + '-' if prefix is None else prefix}{p['kind']}.png"
        path.write_bytes(section.plot(ident, p["kind"]))
        saved.append({**p, "path": str(path)})

    def human() -> None:
        if not saved:
            click.echo("no plots")
        for p in saved:
            click.echo(f"wrote {p['path']}  {p['width']}x{p['height']}  {p['title']}")

    _emit(saved, as_json, human)
