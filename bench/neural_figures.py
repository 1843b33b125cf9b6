"""The figures of the neural acceptance runs (spec sections 12-13) over HTTP, on a real stack (API + worker).

    .venv/bin/python bench/neural_figures.py [--out docs/img] [--json bench/results/neural_figures.json]

Four neural fits with the mlp defaults, each sampled (200 heun samples) and its worker-rendered figures
downloaded: MoLRG K = 2, n = 48, d = 4 with N_k = 4 (memorises) and N_k = 256 (generalises), and
scikit-learn's digits (the built-in dataset, scaled as the service does) with a 50-image subset
(uploaded as .npy) and all 1,797 images. Prints each fit's and sample's wall-clock and the scores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.builtin import load_digits  # noqa: E402
from tests.sweeps.stack import SweepStack, base_env  # noqa: E402


def run(stack: SweepStack, name: str, dataset: dict[str, Any], dims: list[int], out: Path) -> dict[str, Any]:
    c = stack.client
    assert c is not None
    t0 = time.perf_counter()
    fit = c.post("/api/v1/fits", json={"dataset_id": dataset["id"], "n_components": len(dims), "dims": dims,
                                       "method": "neural", "seed": 0}).raise_for_status().json()
    fit_job = stack.wait_job(fit["id"], timeout=1800)
    fit_s = time.perf_counter() - t0
    assert fit_job["status"] == "succeeded", fit_job
    model_id = fit_job["result"]["model_id"]
    t0 = time.perf_counter()
    smp = c.post(f"/api/v1/models/{model_id}/samples", json={"n_samples": 200, "seed": 0}).raise_for_status().json()
    smp_job = stack.wait_job(smp["id"], timeout=1800)
    sample_s = time.perf_counter() - t0
    assert smp_job["status"] == "succeeded", smp_job
    sample_set = smp_job["result"]["sample_set_id"]
    diag = c.get(f"/api/v1/sample-sets/{sample_set}").raise_for_status().json()["diagnostics"]
    files = []
    for owner, ident in (("models", model_id), ("sample-sets", sample_set)):
        deadline = time.monotonic() + 60  # figures are rendered after the result is committed
        while not (listed := c.get(f"/api/v1/{owner}/{ident}/plots").raise_for_status().json()) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        for plot in listed:
            path = out / f"neural_{name}_{plot['kind']}.png"
            path.write_bytes(c.get(plot["url"]).raise_for_status().content)
            files.append(path.name)
    mem = diag.get("memorisation", {})
    return {"name": name, "n_samples": dataset["n_samples"], "fit_s": round(fit_s, 1), "sample_s": round(sample_s, 1),
            "memorised_fraction": mem.get("memorised_fraction"), "generalisation_score": mem.get("generalisation_score"),
            "on_support_fraction": diag.get("true", {}).get("on_support_fraction"), "figures": files}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stack = SweepStack(Path(tempfile.mkdtemp(prefix="molrg-neural-figs-")), base_env())
    results = []
    try:
        stack.start_api()
        stack.start_worker()
        c = stack.client
        assert c is not None
        print(f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        for name, n_k in (("molrg_nk4", 4), ("molrg_nk256", 256)):
            ds = c.post("/api/v1/datasets", json={"name": name, "synthetic": {
                "ambient_dim": 48, "dims": [4, 4], "samples_per_component": n_k, "seed": 0}}).raise_for_status().json()
            results.append(run(stack, name, ds, [4, 4], args.out))
            print(results[-1], flush=True)
        X, _ = load_digits()
        buf = io.BytesIO()
        np.save(buf, X[np.random.default_rng(0).permutation(X.shape[0])[:50]])
        small = c.post("/api/v1/datasets/upload", files={"file": ("digits50.npy", buf.getvalue())}).raise_for_status()
        full = c.post("/api/v1/datasets/builtin", json={"dataset": "digits"}).raise_for_status()
        for name, ds in (("digits_n50", small.json()), ("digits_all", full.json())):
            results.append(run(stack, name, ds, [8], args.out))
            print(results[-1], flush=True)
    finally:
        stack.stop()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
