"""``Client``: one method per API operation; arrays come back as numpy, errors as ``MolrgError``."""

from __future__ import annotations

import builtins
import io
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import numpy as np
from httpx_sse import EventSource, SSEError, connect_sse

from molrg_client.errors import ConnectionFailed, MolrgError, MolrgTimeout
from molrg_client.progress import JobProgress, describe_detail  # noqa: F401  (re-exported)
from molrg_client.types import Dataset, Event, Job, Model, Page, SampleSet, Sweep

DEFAULT_URL = "http://127.0.0.1:8000"
API = "/api/v1"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _id(obj: Any) -> str:
    return str(getattr(obj, "id", obj))


class _Section:
    def __init__(self, client: Client) -> None:
        self._c = client


class Datasets(_Section):
    def create_synthetic(self, ambient_dim: int, dims: list[int], *, n_samples: int | None = None,
                         samples_per_component: int | list[int] | None = None, name: str = "synthetic",
                         noise_std: float = 0.0, orthogonal: bool = True, weights: list[float] | None = None,
                         balanced: bool = True, seed: int = 0, idempotency_key: str | None = None) -> Dataset:
        """Generate a synthetic MoLRG dataset (its true bases and labels are kept)."""
        spec: dict[str, Any] = {"ambient_dim": ambient_dim, "dims": list(dims), "noise_std": noise_std,
                                "orthogonal": orthogonal, "balanced": balanced, "seed": seed}
        if n_samples is not None:
            spec["n_samples"] = n_samples
        if samples_per_component is not None:
            spec["samples_per_component"] = samples_per_component
        if weights is not None:
            spec["weights"] = list(weights)
        body = {"name": name, "synthetic": spec}
        return Dataset.from_json(self._c._json("POST", "/datasets", json=body, idempotency_key=idempotency_key))

    def upload(self, data: Any, *, name: str | None = None, idempotency_key: str | None = None) -> Dataset:
        """Upload an (N, n) array (numpy array, or a path to a .npy/.csv/.json file)."""
        if isinstance(data, str | os.PathLike):
            path = os.fspath(data)
            with open(path, "rb") as fh:
                content, filename = fh.read(), os.path.basename(path)
        else:
            buf = io.BytesIO()
            np.save(buf, np.asarray(data, dtype=np.float64), allow_pickle=False)
            content, filename = buf.getvalue(), "data.npy"
        form = {"name": name} if name else None
        return Dataset.from_json(self._c._json("POST", "/datasets/upload", files={"file": (filename, content)},
                                               data=form, idempotency_key=idempotency_key))

    def list(self, *, limit: int = 50, cursor: str | None = None) -> Page[Dataset]:
        return self._c._page("/datasets", Dataset, {"limit": limit, "cursor": cursor})

    def get(self, dataset: Any) -> Dataset:
        return Dataset.from_json(self._c._json("GET", f"/datasets/{_id(dataset)}"))

    def create_builtin(self, dataset: str = "digits", *, name: str | None = None,
                       classes: builtins.list[int] | None = None,
                       scale: bool = True, idempotency_key: str | None = None) -> Dataset:
        """A built-in real dataset (``digits``: scikit-learn's 8x8 handwritten digits, with labels)."""
        body: dict[str, Any] = {"dataset": dataset, "scale": scale}
        if name:
            body["name"] = name
        if classes is not None:
            body["classes"] = list(classes)
        return Dataset.from_json(self._c._json("POST", "/datasets/builtin", json=body, idempotency_key=idempotency_key))

    def auto_dims(self, dataset: Any, n_components: int, energy: float = 0.95) -> builtins.list[int]:
        """Dims from the data by the 95%-energy rule (``molrg_client.dims``), per class when K = #classes."""
        from molrg_client.dims import choose_dims

        ds = dataset if isinstance(dataset, Dataset) else self.get(dataset)
        X = self.download(ds)
        labels = self.labels(ds) if "labels" in ds.links else None
        return choose_dims(X, n_components, labels, energy)

    def download(self, dataset: Any) -> np.ndarray:
        """The (N, n) float64 data."""
        return self._c._npy(f"/datasets/{_id(dataset)}/data.npy")

    def labels(self, dataset: Any) -> np.ndarray:
        """The true labels (N,) of a synthetic dataset."""
        return self._c._npy(f"/datasets/{_id(dataset)}/labels.npy")

    def bases(self, dataset: Any) -> builtins.list[np.ndarray]:
        """The true bases U_0..U_{K-1} of a synthetic dataset."""
        return self._c._npz_list(f"/datasets/{_id(dataset)}/bases.npz")

    def delete(self, dataset: Any) -> None:
        """Delete a dataset with the fit jobs run on it, their models and everything sampled from them.

        Raises ``MolrgError(409, 'resource_in_use')`` naming the job to cancel first while one of them runs.
        """
        self._c._request("DELETE", f"/datasets/{_id(dataset)}")


class Fits(_Section):
    def create(self, dataset: Any, n_components: int, dims: list[int] | None = None, *, method: str = "diffusion",
               options: dict[str, Any] | None = None, seed: int = 0, idempotency_key: str | None = None) -> Job:
        """Submit a fit job (returns the queued job; ``client.jobs.wait`` it).

        ``dims=None``: chosen from the data by the 95%-energy rule (``Datasets.auto_dims``).
        """
        if dims is None:
            dims = self._c.datasets.auto_dims(dataset, n_components)
        body = {"dataset_id": _id(dataset), "n_components": n_components, "dims": list(dims), "method": method,
                "options": options or {}, "seed": seed}
        return Job.from_json(self._c._json("POST", "/fits", json=body, idempotency_key=idempotency_key))


class Samples(_Section):
    def create(self, model: Any, *, n_samples: int = 100, sampler: str = "heun", steps: int = 18, seed: int = 0,
               idempotency_key: str | None = None) -> Job:
        """Submit a sampling job from a fitted model."""
        body = {"n_samples": n_samples, "sampler": sampler, "steps": steps, "seed": seed}
        return Job.from_json(self._c._json("POST", f"/models/{_id(model)}/samples", json=body,
                                           idempotency_key=idempotency_key))


class Sweeps(_Section):
    def create(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        """Submit a sample-complexity sweep (fields as ``POST /sweeps``); the job has ``sweep_id``."""
        return Job.from_json(self._c._json("POST", "/sweeps", json=spec, idempotency_key=idempotency_key))

    def get(self, sweep: Any) -> Sweep:
        return Sweep.from_json(self._c._json("GET", f"/sweeps/{_id(sweep)}"))

    def list(self, *, limit: int = 50, cursor: str | None = None) -> Page[Sweep]:
        return self._c._page("/sweeps", Sweep, {"limit": limit, "cursor": cursor})

    def cancel(self, sweep: Any) -> Job:
        return Job.from_json(self._c._json("POST", f"/sweeps/{_id(sweep)}/cancel"))

    def cells_csv(self, sweep: Any) -> str:
        return self._c._bytes(f"/sweeps/{_id(sweep)}/cells.csv").decode()

    def heatmap_png(self, sweep: Any, **query: Any) -> bytes:
        return self._c._bytes(f"/sweeps/{_id(sweep)}/heatmap.png", params=query)

    def trials_csv(self, sweep: Any) -> str:
        """One row per trial (with the sample scores of neural, empirical and exact trials)."""
        return self._c._bytes(f"/sweeps/{_id(sweep)}/trials.csv").decode()

    def curves_png(self, sweep: Any, **query: Any) -> bytes:
        """Generalisation and memorised fraction against N_k / d per d (sweeps with neural/empirical/exact)."""
        return self._c._bytes(f"/sweeps/{_id(sweep)}/curves.png", params=query)

    def delete(self, sweep: Any) -> None:
        """Delete a finished sweep with its job, trials and heatmaps."""
        self._c._request("DELETE", f"/sweeps/{_id(sweep)}")


class Jobs(_Section):
    def get(self, job: Any) -> Job:
        return Job.from_json(self._c._json("GET", f"/jobs/{_id(job)}"))

    def list(self, *, kind: str | None = None, status: str | None = None, limit: int = 50,
             cursor: str | None = None) -> Page[Job]:
        return self._c._page("/jobs", Job, {"kind": kind, "status": status, "limit": limit, "cursor": cursor})

    def cancel(self, job: Any) -> Job:
        return Job.from_json(self._c._json("POST", f"/jobs/{_id(job)}/cancel"))

    def metrics(self, job: Any, name: str = "loss", max_points: int = 200) -> dict[str, Any]:
        return self._c._json("GET", f"/jobs/{_id(job)}/metrics", params={"name": name, "max_points": max_points})

    def events(self, job: Any, *, timeout: float | None = None) -> Iterator[Event]:
        """Server-sent events of a job (``status``, ``progress``, ``end``) until it is terminal."""
        yield from self._c._sse(f"/jobs/{_id(job)}/events", timeout=timeout)

    def wait(self, job: Any, *, progress: bool = False, timeout: float | None = None,
             on_event: Callable[[Event], None] | None = None, raise_on_failure: bool = False) -> Job:
        """Block until the job is terminal (via the event stream; polling if the stream breaks).

        ``progress=True`` shows the progress on stderr (``molrg_client.progress``: a rich bar on a terminal,
        plain lines in a log) with the current step and loss, noise level, or fits done.
        ``raise_on_failure=True`` raises ``MolrgError(code='job_failed'|'job_cancelled')``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = JobProgress() if progress else None
        final: Job | None = None
        try:
            try:
                for ev in self.events(job, timeout=timeout):
                    if bar is not None:
                        bar.update(ev.data)
                    if on_event is not None:
                        on_event(ev)
                    if ev.event == "end":
                        final = Job.from_json(ev.data)
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        raise MolrgTimeout(f"job {_id(job)} still {ev.data.get('status')} after {timeout}s")
            except (httpx.TransportError, ConnectionFailed, SSEError):
                pass  # no usable event stream: poll instead
            while final is None:  # fallback: poll
                current = self.get(job)
                if bar is not None:
                    bar.update(current.raw)
                if current.terminal:
                    final = current
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise MolrgTimeout(f"job {_id(job)} still {current.status} after {timeout}s")
                time.sleep(0.5)
        except httpx.ReadTimeout as exc:
            raise MolrgTimeout(f"job {_id(job)} not finished after {timeout}s") from exc
        finally:
            if bar is not None:
                bar.close()
        if raise_on_failure and final.status != "succeeded":
            raise MolrgError(0, f"job_{final.status}", final.error or f"job {final.id} {final.status}")
        return final

    def delete(self, job: Any) -> None:
        """Delete a finished job with what it produced (model, sample set or sweep), metrics and plots."""
        self._c._request("DELETE", f"/jobs/{_id(job)}")


class Models(_Section):
    def get(self, model: Any) -> Model:
        return Model.from_json(self._c._json("GET", f"/models/{_id(model)}"))

    def list(self, *, dataset: Any = None, limit: int = 50, cursor: str | None = None) -> Page[Model]:
        params = {"limit": limit, "cursor": cursor, "dataset_id": _id(dataset) if dataset is not None else None}
        return self._c._page("/models", Model, params)

    def bases(self, model: Any) -> builtins.list[np.ndarray]:
        """The fitted bases: a list of K arrays (n, d_k)."""
        return self._c._npz_list(f"/models/{_id(model)}/bases.npz")

    def bases_npz(self, model: Any) -> bytes:
        return self._c._bytes(f"/models/{_id(model)}/bases.npz")

    def plots(self, model: Any) -> builtins.list[dict[str, Any]]:
        """The model's figures: ``kind`` (loss, projection, jacobian), ``title``, ``width``, ``height``, ``url``."""
        return self._c._json_list(f"/models/{_id(model)}/plots")

    def plot(self, model: Any, kind: str) -> bytes:
        """One figure as PNG bytes."""
        return self._c._bytes(f"/models/{_id(model)}/plots/{kind}.png")

    def delete(self, model: Any) -> None:
        """Delete a model with its fit job, plots, and the sample jobs and sample sets drawn from it."""
        self._c._request("DELETE", f"/models/{_id(model)}")


class SampleSets(_Section):
    def get(self, sample_set: Any) -> SampleSet:
        return SampleSet.from_json(self._c._json("GET", f"/sample-sets/{_id(sample_set)}"))

    def list(self, *, model: Any = None, limit: int = 50, cursor: str | None = None) -> Page[SampleSet]:
        params = {"limit": limit, "cursor": cursor, "model_id": _id(model) if model is not None else None}
        return self._c._page("/sample-sets", SampleSet, params)

    def samples(self, sample_set: Any) -> np.ndarray:
        """The samples (n_samples, n)."""
        return self._c._npy(f"/sample-sets/{_id(sample_set)}/samples.npy")

    def plots(self, sample_set: Any) -> builtins.list[dict[str, Any]]:
        """The sample set's figures (``grid``, ``editing`` for square images)."""
        return self._c._json_list(f"/sample-sets/{_id(sample_set)}/plots")

    def plot(self, sample_set: Any, kind: str) -> bytes:
        return self._c._bytes(f"/sample-sets/{_id(sample_set)}/plots/{kind}.png")

    def delete(self, sample_set: Any) -> None:
        """Delete a sample set with its sample job and plots."""
        self._c._request("DELETE", f"/sample-sets/{_id(sample_set)}")


class Client:
    """``Client(url=None, api_key=None)``: defaults from ``MOLRG_URL`` and ``MOLRG_API_KEY``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = (url or os.environ.get("MOLRG_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("MOLRG_API_KEY")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self.datasets = Datasets(self)
        self.fits = Fits(self)
        self.samples = Samples(self)
        self.sweeps = Sweeps(self)
        self.jobs = Jobs(self)
        self.models = Models(self)
        self.sample_sets = SampleSets(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- transport helpers

    def _request(self, method: str, path: str, *, idempotency_key: str | None = None,
                 **kwargs: Any) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        if "params" in kwargs and kwargs["params"]:
            kwargs["params"] = {k: v for k, v in kwargs["params"].items() if v is not None}
        try:
            response = self._http.request(method, API + path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise MolrgError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._request(method, path, **kwargs).json()

    def _json_list(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """GET an endpoint whose body is a JSON array of objects."""
        return self._request("GET", path, **kwargs).json()

    def _bytes(self, path: str, **kwargs: Any) -> bytes:
        return self._request("GET", path, **kwargs).content

    def _npy(self, path: str) -> np.ndarray:
        return np.load(io.BytesIO(self._bytes(path)), allow_pickle=False)

    def _npz_list(self, path: str) -> list[np.ndarray]:
        with np.load(io.BytesIO(self._bytes(path)), allow_pickle=False) as npz:
            keys = sorted((k for k in npz.files if k.startswith("U_")), key=lambda k: int(k[2:]))
            return [npz[k] for k in keys]

    def _page(self, path: str, cls: Any, params: dict[str, Any]) -> Page[Any]:
        body = self._json("GET", path, params=params)
        return Page(items=[cls.from_json(item) for item in body["items"]], next_cursor=body.get("next_cursor"))

    def _sse(self, path: str, timeout: float | None = None) -> Iterator[Event]:
        read_timeout = httpx.Timeout(10.0, read=timeout if timeout is not None else 60.0)
        try:
            with connect_sse(self._http, "GET", API + path, timeout=read_timeout) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise MolrgError.from_response(source.response)
                yield from events_of(source)
        except httpx.ConnectError as exc:
            raise ConnectionFailed(f"cannot reach {self.url}: {exc}") from exc


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Decode ``text/event-stream`` lines (e.g. ``response.iter_lines()``) with httpx-sse, lazily."""
    stream = httpx.Response(200, headers={"content-type": "text/event-stream"},
                            content=(line.encode() + b"\n" for line in lines))
    yield from events_of(EventSource(stream))


def events_of(source: EventSource) -> Iterator[Event]:
    """The events of an httpx-sse ``EventSource`` as ``Event`` (JSON data; comments and ``retry`` skipped)."""
    for sse in source.iter_sse():
        if sse.data:
            yield Event(event=sse.event, data=sse.json(), id=sse.id or None)
