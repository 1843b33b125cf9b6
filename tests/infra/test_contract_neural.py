"""The neural methods' declaration agrees with the library: spec.NeuralOptions holds exactly NeuralConfig's
fields (but the seed) with its defaults, and a neural fit the API accepts always builds a NeuralConfig and
a backbone in the worker (no request the API takes fails in the library's validation)."""

import dataclasses
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from molrg import spec
from molrg.neural import NeuralConfig, split_indices
from molrg.neural.config import image_layout
from molrg.neural.networks import build_backbone
from service.errors import ValidationFailed
from service.schemas import FIT_ADAPTER
from service.validation import validate_fit
from tests.infra.test_contract_layers import BIG, options_of
from workers import codec, neural


def test_options_are_the_config_fields_with_its_defaults() -> None:
    config_fields = {f.name: f.default for f in dataclasses.fields(NeuralConfig) if f.name != "seed"}
    declared = {name: f.default for name, f in spec.NeuralOptions.model_fields.items()}
    assert declared == config_fields
    assert set(spec.EmpiricalOptions.model_fields) == set()


@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4])
def test_unet_layout_is_the_library_layout(channels: int | None) -> None:
    for n in range(1, 400):
        try:
            expected: tuple[int, int] | None = image_layout(n, channels)
        except ValueError:
            expected = None
        assert spec.unet_layout(n, channels) == expected, n


def _body(method: str, dims: list[int], options: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"dataset_id": str(uuid.uuid4()), "method": method, "n_components": len(dims), "dims": dims,
            "options": options, "seed": seed}


neural_requests = st.tuples(
    st.builds(_body, st.sampled_from(["neural", "neural", "neural", "empirical"]),
              st.lists(st.integers(1, 3), min_size=1, max_size=2),
              st.one_of(options_of(spec.NeuralOptions),
                        options_of(spec.NeuralOptions).map(lambda d: {**d, "architecture": "unet"})),
              st.sampled_from([0, 7, spec.SEED_MAX])),
    st.sampled_from([1, 2, 7]),  # rows
    st.sampled_from([4, 6, 12, 16, 27, 48, 64]),  # n: squares, 3 r^2 with r odd / even, neither
)


def _library_accepts(body: dict[str, Any], n_rows: int, n: int) -> bool:
    """What the worker does with the stored request before training: parse, build the config and the network."""
    fit = codec.fit_params(body)
    if not isinstance(fit, spec.NeuralFit):
        return True  # empirical: nothing to build
    try:
        config = neural.neural_config(fit)
        build_backbone(config, n)
        split_indices(n_rows, config.split, config.seed)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(neural_requests)
def test_an_accepted_neural_fit_always_builds_in_the_worker(case: tuple[dict[str, Any], int, int]) -> None:
    body, n_rows, n = case
    try:
        req = FIT_ADAPTER.validate_python(body)
        validate_fit(req, n_rows, n, None, BIG)
    except (ValidationError, ValidationFailed):
        return
    stored = req.model_dump(mode="json", exclude_unset=True) | {"method": req.method}
    assert _library_accepts(stored, n_rows, n), (stored, n_rows, n)


@pytest.mark.parametrize(("options", "n", "rows"), [
    ({"architecture": "unet"}, 6, 7),  # 6 is no c r^2 with c = 1 or 3
    ({"architecture": "unet", "channels": 2}, 48, 7),  # 48 / 2 = 24 is no square
    ({"architecture": "unet", "depth": 3}, 16, 7),  # a unet has 1 or 2 resolutions
    ({"architecture": "unet"}, 27, 7),  # 3 x 3 x 3: two resolutions need an even size
    ({"emb_dim": 15}, 8, 7),
    ({"split": "halves"}, 8, 1),
    ({"ema": 1.0}, 8, 7),
])
def test_known_drifts_are_refused_by_api_and_library(options: dict[str, Any], n: int, rows: int) -> None:
    body = _body("neural", [2], options, 0)
    with pytest.raises((ValidationError, ValidationFailed)):
        validate_fit(FIT_ADAPTER.validate_python(body), rows, n, None, BIG)
    try:
        config = NeuralConfig(**options, seed=0)
        build_backbone(config, n)
        split_indices(rows, config.split, 0)
    except ValueError:
        return
    pytest.fail(f"the library accepts {options} on n = {n}, rows = {rows}")


@pytest.mark.parametrize("options", [
    {}, {"width": 7, "depth": 1, "emb_dim": 2}, {"width": 300, "depth": 5, "emb_dim": 32},
    {"architecture": "unet"}, {"architecture": "unet", "depth": 1, "width": 12, "emb_dim": 8},
    {"architecture": "unet", "width": 5, "channels": 3},
])
@pytest.mark.parametrize("n", [12, 48, 64])
def test_declared_parameter_count_is_the_networks(options: dict[str, Any], n: int) -> None:
    opts = spec.NeuralOptions(**options)
    if opts.architecture == "unet" and spec.unet_layout(n, opts.channels) is None:
        return
    net = build_backbone(neural.neural_config(spec.NeuralFit(dataset_id=uuid.uuid4(), n_components=1, dims=[1],
                                                             method="neural", options=opts)), n)
    assert spec.neural_parameter_count(opts, n) == sum(p.numel() for p in net.parameters())


def test_a_network_over_the_parameter_limit_is_refused() -> None:
    big = spec.NeuralOptions(width=8192, depth=4)  # ~200M parameters
    issues = spec.fit_errors("neural", 1, [2], big, n_features=48)
    assert [i.field for i in issues] == ["options.width"] and "parameters" in issues[0].reason
    assert spec.fit_errors("neural", 1, [2], spec.NeuralOptions(width=2048, depth=4), n_features=48) == []
