"""Memorisation against N and reproducibility of two halves for neural denoisers on the 8x8 digits.

    .venv/bin/python bench/neural_digits.py [--arch mlp|unet] [--ns 50,200,800,1797] [--steps 500]
        [--threads 1] [--samples 200] [--json out.json]

Data as the service's built-in ``digits`` (service/builtin.py): scikit-learn's 1,797 images, pixel values
0..16 divided by 16, as (N, 64) float64. For each N a seeded random subset of N rows (the same permutation,
so smaller subsets are nested in larger ones) trains

* one network (``split="none"``) on all N rows: ``memorised_fraction`` of ``--samples`` heun samples
  (18 steps, seed 0), memorised = NN1/NN2 distance ratio over its training rows < 1/3 (spec section 13);
* two networks (``split="halves"``) on disjoint halves of the same N rows, sampled from the same noise:
  ``reproducibility`` (fraction of pairs with cosine > 0.9, the median cosine) and each member's
  memorised fraction against its own half.

A fixed step count and the library's default recipe (NeuralConfig defaults: Adam, lr 5e-3 cosine, batch
256, no EMA) for every N; nothing is tuned per N. Wall-clock per fit is reported with ``uptime``'s load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch

from molrg.analysis.scores import memorised_mask, reproducibility
from molrg.neural import NeuralDiffusion


def load_digits_scaled() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().data, dtype=np.float64) / 16.0


def _options(arch: str, steps: int, args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"architecture": arch, "steps": steps, "seed": 0}
    if arch == "unet":
        opts.update(width=args.unet_width, depth=args.unet_depth, channels=1, batch_size=args.unet_batch)
    return opts


def _mem(samples: torch.Tensor, train: torch.Tensor) -> float:
    return float(memorised_mask(samples, train).double().mean())


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    X_all = torch.as_tensor(load_digits_scaled())
    perm = torch.randperm(X_all.shape[0], generator=torch.Generator().manual_seed(0))
    rows: list[dict[str, Any]] = []
    for N in args.ns:
        X = X_all[perm[:N]]
        row: dict[str, Any] = {"N": N, "arch": args.arch, "steps": args.steps}
        t0 = time.perf_counter()
        one = NeuralDiffusion(**_options(args.arch, args.steps, args)).fit(X)
        row["fit_s"] = time.perf_counter() - t0
        S = one.sample(args.samples, seed=0, sampler="heun", steps=18).detach().cpu().double()
        row["memorised_fraction"] = _mem(S, X)
        assert one.loss_history_ is not None
        row["final_loss"] = float(one.loss_history_[:, -1].mean())
        t0 = time.perf_counter()
        two = NeuralDiffusion(**_options(args.arch, args.steps, args), split="halves").fit(X)
        row["halves_fit_s"] = time.perf_counter() - t0
        A, B = (two.sample(args.samples, seed=0, sampler="heun", steps=18, member=b).detach().cpu().double()
                for b in range(2))
        rep = reproducibility(A, B)
        row["halves_N_each"] = N // 2
        row["reproducible_fraction"] = rep["reproducible_fraction"]
        row["cosine_median"] = rep["cosine_median"]
        row["halves_memorised_fraction"] = [_mem(A, X[two.train_indices_[0]]), _mem(B, X[two.train_indices_[1]])]
        rows.append(row)
        print(json.dumps(row), flush=True)  # noqa: T201
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["mlp", "unet"], default="mlp")
    ap.add_argument("--ns", default="50,200,800,1797")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unet-width", type=int, default=16)
    ap.add_argument("--unet-depth", type=int, default=1)
    ap.add_argument("--unet-batch", type=int, default=64)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.ns = [int(v) for v in args.ns.split(",")]
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = run(args)
    out = {"args": {k: v for k, v in vars(args).items() if k != "json"}, "rows": rows,
           "wall_s": time.perf_counter() - t0, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), flush=True)  # noqa: T201
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
