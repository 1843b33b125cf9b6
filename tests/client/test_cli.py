"""The client commands of ``molrg`` (click CliRunner) against the real API: exit codes, --json, --wait."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from service.cli import cli
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]


@pytest.fixture()
def run(embedded_stack: Stack, api_key: str):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"MOLRG_URL": embedded_stack.url, "MOLRG_API_KEY": api_key}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def _json(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_create_fit_sample_download(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = _json(run("datasets", "create-synthetic", "-n", "16", "-d", "3", "-N", "50", "--seed", "1", "--json"))
    assert ds["n_samples"] == 50 and ds["ambient_dim"] == 16 and ds["has_ground_truth"]
    human = run("datasets", "list")
    assert human.exit_code == 0 and ds["id"] in human.stdout
    assert ds["id"] in {d["id"] for d in _json(run("datasets", "list", "--json"))["items"]}

    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((30, 16)))
    up = _json(run("datasets", "upload", str(tmp_path / "x.npy"), "--name", "x", "--json"))
    assert up["source"] == "upload" and up["n_samples"] == 30

    job = _json(run("fit", ds["id"], "-K", "1", "-d", "3", "--method", "diffusion", "-o", "steps=60",
                    "--wait", "--json", "--timeout", "120"))
    assert job["status"] == "succeeded" and job["result"]["model_id"]
    model_id = job["result"]["model_id"]

    # Human --wait: the progress goes to stderr (plain lines: CliRunner's stderr is no terminal), the summary
    # to stdout.
    shown = run("fit", up["id"], "-K", "1", "-d", "2", "--method", "pca", "--wait")
    assert shown.exit_code == 0, shown.stderr
    assert "succeeded" in shown.stdout and "succeeded  100.0%" in shown.stderr and "\r" not in shown.stderr

    m = _json(run("models", "show", model_id, "--json"))
    assert m["dims"] == [3] and m["method"] == "diffusion"
    assert "recovery_error" in run("models", "show", model_id).stdout
    out = tmp_path / "bases.npz"
    assert run("models", "download", model_id, "-o", str(out)).exit_code == 0
    with np.load(out) as npz:
        assert npz["U_0"].shape == (16, 3)

    sj = _json(run("sample", model_id, "-N", "5", "--steps", "4", "--wait", "--json"))
    assert sj["status"] == "succeeded"
    assert run("sample-sets", "download", sj["result"]["sample_set_id"], "-o", str(tmp_path / "s.npy")).exit_code == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 16)

    assert _json(run("jobs", "show", job["id"], "--json"))["id"] == job["id"]
    assert job["id"] in {j["id"] for j in _json(run("jobs", "list", "--kind", "fit", "--json"))["items"]}
    watched = run("jobs", "watch", job["id"], "--json")
    assert watched.exit_code == 0
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[0]["event"] == "status" and events[-1]["event"] == "end"
    assert run("jobs", "watch", job["id"]).exit_code == 0


def test_cancelled_job_exits_3(run) -> None:  # type: ignore[no-untyped-def]
    ds = _json(run("datasets", "create-synthetic", "-n", "16", "-d", "3", "-N", "40", "--json"))
    job = _json(run("fit", ds["id"], "-K", "1", "-d", "3", "-o", "steps=200000", "-o", "tol=1e-15", "--json"))
    cancelled = _json(run("jobs", "cancel", job["id"], "--json"))
    assert cancelled["status"] in ("cancelled", "cancelling")
    watched = run("jobs", "watch", job["id"], "--timeout", "120")
    assert watched.exit_code == 3 and "cancelled" in watched.stderr


def test_errors_exit_nonzero_with_problem_on_stderr(run, embedded_stack: Stack) -> None:  # type: ignore[no-untyped-def]
    missing = run("jobs", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.exit_code == 1 and "not_found (404)" in missing.stderr and missing.stdout == ""
    bad = run("datasets", "create-synthetic", "-n", "4", "-d", "3,3", "-N", "10")
    assert bad.exit_code == 1 and "(422)" in bad.stderr
    usage = run("fit", "x", "-K", "1", "-d", "a,b")
    assert usage.exit_code == 2
    unauth = CliRunner().invoke(cli, ["datasets", "list"], env={"MOLRG_URL": embedded_stack.url,
                                                                "MOLRG_API_KEY": "nope"})
    assert unauth.exit_code == 1 and "(401)" in unauth.stderr


def test_sweep_wait_json(run) -> None:  # type: ignore[no-untyped-def]
    spec = json.dumps({"ambient_dim": 8, "dims": [2], "samples": [2, 4], "trials": 2, "methods": ["pca"]})
    job = _json(run("sweep", "--spec", spec, "--wait", "--json", "--timeout", "120"))
    assert job["status"] == "succeeded" and job["kind"] == "sweep"
    bad = run("sweep", "--spec", "{not json")
    assert bad.exit_code == 2
