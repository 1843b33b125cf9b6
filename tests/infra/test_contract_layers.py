"""One declaration, every layer: requests generated from molrg.spec are accepted or refused alike by the API's
edge checks, the worker's parsing and the library's validation (no request one layer takes and another refuses).

The strategies are built from the declaration itself (each option's annotation, range and choices), with
values just inside and just outside each range, wrong choices and unknown keys, so the test follows the
declaration as it grows.
"""

import types
import typing
import uuid
from typing import Any

import pytest
import torch
from annotated_types import Ge, Gt, Le, Lt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from molrg import MoLRGDiffusion, spec
from molrg.lowrank.fitting import _validate as library_validate
from molrg.sweeps.grid import SweepGrid
from service.errors import ValidationFailed
from service.schemas import FIT_ADAPTER
from service.settings import ServiceSettings
from service.sweep_schemas import SweepCreate, validate_sweep
from service.validation import validate_fit
from workers import codec
from workers.sweeps import grid_from_spec

# Deployment limits as large as the declaration's ranges: only the contract decides here.
BIG = ServiceSettings(max_train_steps=10**9, max_restarts=10**9, max_components=10**9, max_rows=10**9,
                      max_ambient_dim=10**9, max_sweep_fits=10**12)
N_ROWS, N_FEATURES = 7, 6


def _bounds(info: Any) -> tuple[float | None, float | None, bool, bool]:
    lo = hi = None
    lo_open = hi_open = False
    for m in info.metadata:
        if isinstance(m, Ge):
            lo = m.ge
        elif isinstance(m, Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, Le):
            hi = m.le
        elif isinstance(m, Lt):
            hi, hi_open = m.lt, True
    return lo, hi, lo_open, hi_open


def _values(annotation: Any, info: Any) -> st.SearchStrategy[Any]:
    """Valid and invalid values of one declared option."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_values(a, info) if a is not type(None) else st.none() for a in args])
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(args), st.sampled_from(args), st.just("not-a-choice"))
    if annotation is bool:
        return st.one_of(st.booleans(), st.booleans(), st.just("yes"))
    lo, hi, lo_open, hi_open = _bounds(info)
    if annotation is int:
        lo_i, hi_i = int(lo if lo is not None else -5), int(hi if hi is not None else 10**6)
        inside = st.one_of(st.sampled_from([lo_i, lo_i + 1, hi_i - 1, hi_i]), st.integers(lo_i, hi_i))
        return st.one_of(inside, inside, inside, st.sampled_from([lo_i - 1, hi_i + 1, 1.5]))
    if annotation is float:
        lo_f, hi_f = float(lo if lo is not None else -1.0), float(hi if hi is not None else 1e6)
        inside = st.floats(lo_f, hi_f, exclude_min=lo_open, exclude_max=hi_open, allow_nan=False)
        edges = [v for v, ok in ((lo_f, not lo_open), (hi_f, not hi_open)) if ok]
        outside = st.sampled_from([lo_f - 1e-3, hi_f + 1e-3, "x"] + ([] if edges else [lo_f]))
        return st.one_of(inside, inside, *( [st.sampled_from(edges)] if edges else []), outside)
    return st.just(None)


def options_of(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of some of ``model``'s options (valid or not), sometimes with an unknown key."""
    fields = {name: _values(f.annotation, f) for name, f in model.model_fields.items()}
    base = st.fixed_dictionaries({}, optional=fields) if fields else st.just({})
    return st.one_of(base, base, base, base.map(lambda d: {**d, "bogus_option": 1}))


def _fit_body(method: str, dims: list[int], k_shift: int, options: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"dataset_id": str(uuid.uuid4()), "method": method, "n_components": max(len(dims) + k_shift, 0),
            "dims": dims, "options": options, "seed": seed}


# Mostly well-formed requests (so many are accepted), each with a chance of one broken part.
fit_requests = st.sampled_from(spec.LOWRANK_METHODS).flatmap(lambda m: st.builds(
    _fit_body, st.just(m),
    st.one_of(st.lists(st.integers(1, N_FEATURES - 1), min_size=1, max_size=3),
              st.lists(st.integers(0, N_FEATURES + 1), min_size=1, max_size=3)),
    st.sampled_from([0, 0, 0, 0, 1, -1]),
    options_of(spec.FIT_OPTIONS[m]),
    st.sampled_from([0, 5, spec.SEED_MAX, -1, spec.SEED_MAX + 1]),
))


def _api_accepts(body: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """The API's decision, and the params it would store (as service.jobs.submit_fit does)."""
    try:
        req = FIT_ADAPTER.validate_python(body)
        validate_fit(req, N_ROWS, N_FEATURES, None, BIG)
    except (ValidationError, ValidationFailed):
        return False, None
    return True, req.model_dump(mode="json", exclude_unset=True) | {"method": req.method}


def _library_accepts(body: dict[str, Any]) -> bool:
    """The estimator's checks at fit time (its own, then fit_batched's), without fitting."""
    X = torch.randn(N_ROWS, N_FEATURES, generator=torch.Generator().manual_seed(0))
    options = dict(body.get("options", {}))
    est = MoLRGDiffusion(body["n_components"], body["dims"], body["method"], seed=body["seed"], **options)
    try:
        Xt = est._validate(X)
        library_validate(Xt[None], body["dims"], body["method"], options)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fit_requests)
def test_fit_requests_are_judged_alike_by_api_worker_and_library(body: dict[str, Any]) -> None:
    api, stored = _api_accepts(body)
    library = _library_accepts(body)
    assert api == library, (body, api, library)
    if api:
        assert stored is not None
        fit = codec.fit_params(stored)  # the worker parses what the API stored
        kwargs = codec.estimator_kwargs(fit, torch.device("cpu"))
        opts = {k: v for k, v in kwargs.items() if k not in ("n_components", "dims", "method", "seed", "device")}
        X = torch.randn(1, N_ROWS, N_FEATURES, generator=torch.Generator().manual_seed(0))
        library_validate(X, kwargs["dims"], kwargs["method"], opts)


sweep_requests = st.fixed_dictionaries({
    "dims": st.lists(st.integers(0, 9), min_size=1, max_size=3),
    "samples": st.lists(st.integers(0, 5), min_size=1, max_size=3),
    "methods": st.lists(st.sampled_from(spec.LOWRANK_METHODS), min_size=1, max_size=3),
    "trials": st.integers(0, 3),
}, optional={
    "ambient_dim": st.one_of(st.integers(1, 12), st.lists(st.integers(1, 12), min_size=1, max_size=2)),
    "n_components": st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=1, max_size=2)),
    "samples_per": st.sampled_from(["component", "total", "rows"]),
    "orthogonal": st.booleans(),
    "noise_std": st.floats(-1, 1, allow_nan=False),
    "method_options": st.fixed_dictionaries({}, optional={m: options_of(spec.FIT_OPTIONS[m])
                                                          for m in spec.LOWRANK_METHODS}),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sweep_requests)
def test_sweep_requests_are_judged_alike_by_api_worker_and_library(body: dict[str, Any]) -> None:
    try:
        req = SweepCreate.model_validate(body)
        validate_sweep(req, BIG)
        api = True
    except (ValidationError, ValidationFailed):
        api = False
    try:
        SweepGrid.from_spec(spec.SweepSpec.model_validate(body)).validate()
        library = True
    except ValueError:
        library = False
    assert api == library, (body, api, library)
    if api:
        stored = req.model_dump(mode="json") | {"method_options": {
            m: o.model_dump(mode="json", exclude_unset=True) for m, o in req.method_options.given().items()}}
        grid = grid_from_spec(stored)  # the worker's grid from what the API stored
        assert grid.n_fits == req.n_fits()


@pytest.mark.parametrize("body", [
    {"n_components": 2, "dims": [2, 2], "method": "diffusion", "options": {"model": "linear"}},
    {"n_components": 1, "dims": [2], "method": "subspace_clustering", "options": {"init": "pca"}},
    {"n_components": 1, "dims": [2], "method": "pca", "options": {"steps": 10}},
    {"n_components": 2, "dims": [2, 2], "method": "pca"},
])
def test_known_drifts_are_refused_everywhere(body: dict[str, Any]) -> None:
    body = {"dataset_id": str(uuid.uuid4()), "seed": 0, **body}
    assert _api_accepts(body) == (False, None)
    assert not _library_accepts(body)


def test_names_have_one_source() -> None:
    """Samplers, methods and their option models are the declaration's names everywhere."""
    from molrg.lowrank.fitting import METHODS as FIT_METHODS
    from molrg.sampling.samplers import SAMPLERS
    from molrg.sweeps.grid import KNOWN_METHODS

    assert set(SAMPLERS) == set(spec.SAMPLERS)
    assert set(spec.FIT_OPTIONS) == set(spec.METHODS)
    assert FIT_METHODS == KNOWN_METHODS == spec.LOWRANK_METHODS
