"""Benchmark batched ensembles of neural denoisers against sequential fits (spec section 12).

    .venv/bin/python bench/bench_neural.py [--threads T] [--device cpu|cuda] [--members 16]
        [--small-steps 100] [--default-steps 30] [--json out.json]

Two sizes, both K = 2, n = 48, d = 4, N_k = 64 MoLRG data (a different dataset and seed per member):
(a) a small MLP (width 64): a loop of fits is bound by per-call overhead; target ensemble >= 4x.
    Run at the default batch 256 and at batch 64: at batch 256 the width-64 FiLM MLP already does
    66 MFLOP per member-step, so on this CPU the *ensemble* is bound by arithmetic there and the
    ratio is capped near (overhead + compute) / compute; batch 64 is the overhead-bound case;
(b) the default network (NeuralConfig(): 3 x 256, FiLM embedding, batch 256): both are bound by
    arithmetic; target: ensemble training throughput >= 30 % of this machine's float32 matmul peak,
    measured in the same run (best of several 1024^3 / 2048^3 torch.matmul, before and after);
    (b'') repeats the ensemble timing between two peak measurements, since on a shared CPU the
    peak moves with the load, and reports the ratio of each pair.
"Sequential" is the same train_ensemble code called once per member (B = 1). The timed runs use
fewer steps than a real fit (throughput does not depend on the step count); every call includes
its initialisation, data padding and random draws. FLOPs are counted analytically from the Linear
layers (forward 2 MAC, weight gradient 2 MAC, input gradient 2 MAC except for layers whose input
needs no gradient); element-wise work (SiLU, Adam, the loss) is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from typing import Any

import torch

from molrg.data.synthetic import make_molrg
from molrg.neural.config import NeuralConfig
from molrg.neural.networks import build_backbone
from molrg.neural.training import train_ensemble


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, repeats: int = 5) -> float:
    """Best float32 matmul FLOP/s over a few sizes and repeats."""
    best = 0.0
    for size in (1024, 2048):
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)
        a @ b
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, 2.0 * size**3 / (time.perf_counter() - t0))
    return best


def training_flops_per_step(config: NeuralConfig, n: int) -> float:
    """Analytic matmul FLOPs of one training step of one member (see module docstring)."""
    net = build_backbone(config, n)
    total = 0.0
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Linear):
            mac = m.in_features * m.out_features
            no_input_grad = name in ("layers.0", "emb")
            total += (4.0 if no_input_grad else 6.0) * mac
    return total * config.batch_size


def _datasets(members: int) -> list[torch.Tensor]:
    return [make_molrg(48, [4, 4], samples_per_component=64, seed=100 + b).X for b in range(members)]


def _time(fn: Any, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def compare(config: NeuralConfig, members: int, device: str) -> dict[str, Any]:
    Xs = _datasets(members)
    seeds = list(range(members))
    train_ensemble(replace(config, steps=2), Xs[:2], seeds[:2], device=device)  # warm-up
    ens = _time(lambda: train_ensemble(config, Xs, seeds, device=device), device)
    seq = _time(lambda: [train_ensemble(config, [X], [s], device=device) for X, s in zip(Xs, seeds, strict=True)],
                device)
    flops = training_flops_per_step(config, 48) * config.steps * members
    return {
        "members": members, "steps": config.steps, "width": config.width, "depth": config.depth,
        "batch_size": config.batch_size, "ensemble_s": ens, "sequential_s": seq, "speedup": seq / ens,
        "ensemble_ms_per_step": 1e3 * ens / config.steps,
        "sequential_ms_per_member_step": 1e3 * seq / (config.steps * members),
        "ensemble_flops": flops / ens, "sequential_flops": flops / seq,
        "flop_per_member_step": flops / (config.steps * members),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--small-steps", type=int, default=100)
    ap.add_argument("--default-steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3, help="paired (peak, ensemble) timings of (b)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {platform.node()} torch {torch.__version__} threads {torch.get_num_threads()} device {args.device}"
          f" load {_load()}")
    peak0 = matmul_peak(args.device)
    small = compare(NeuralConfig(width=64, steps=args.small_steps), args.members, args.device)
    small64 = compare(NeuralConfig(width=64, steps=args.small_steps, batch_size=64), args.members, args.device)
    default = compare(NeuralConfig(steps=args.default_steps), args.members, args.device)
    peak = max(peak0, matmul_peak(args.device))
    default["pct_of_peak"] = 100.0 * default["ensemble_flops"] / peak
    default["sequential_pct_of_peak"] = 100.0 * default["sequential_flops"] / peak
    # On a shared CPU the peak moves with the load: pair each ensemble timing with the peak measured
    # right before and right after it, and report the ratio per pair (against the larger peak).
    cfg = NeuralConfig(steps=args.default_steps)
    Xs, seeds = _datasets(args.members), list(range(args.members))
    flops = training_flops_per_step(cfg, 48) * cfg.steps * args.members
    pairs = []
    for _ in range(args.repeats):
        before = matmul_peak(args.device, repeats=3)
        wall = _time(lambda: train_ensemble(cfg, Xs, seeds, device=args.device), args.device)
        after = matmul_peak(args.device, repeats=3)
        pairs.append({"peak": max(before, after), "flops": flops / wall, "pct": 100.0 * flops / wall / max(before, after)})
    default["paired"] = pairs
    pcts = sorted(p["pct"] for p in pairs)
    default["paired_pct_median"] = pcts[len(pcts) // 2]
    rows = [
        ("(a) width 64: ensemble vs sequential", f"{args.members} x {small['steps']} steps",
         f"{small['speedup']:.1f}x", ">= 4x",
         f"ens {small['ensemble_ms_per_step']:.1f} ms/step, seq {small['sequential_ms_per_member_step']:.1f} ms/member-step"),
        ("(a') width 64, batch 64", f"{args.members} x {small64['steps']} steps",
         f"{small64['speedup']:.1f}x", ">= 4x",
         f"ens {small64['ensemble_ms_per_step']:.1f} ms/step, seq {small64['sequential_ms_per_member_step']:.1f} ms/member-step"),
        ("(b) default 3x256: ensemble vs sequential", f"{args.members} x {default['steps']} steps",
         f"{default['speedup']:.1f}x", "report",
         f"ens {default['ensemble_ms_per_step']:.1f} ms/step, seq {default['sequential_ms_per_member_step']:.1f} ms/member-step"),
        ("(b') default: ensemble throughput", f"{default['flop_per_member_step'] / 1e6:.0f} MFLOP/member-step",
         f"{default['ensemble_flops'] / 1e9:.1f} GFLOP/s", f"peak {peak / 1e9:.1f}",
         f"{default['pct_of_peak']:.0f}% of matmul peak (>= 30%); sequential {default['sequential_pct_of_peak']:.0f}%"),
        ("(b'') paired with adjacent peaks", f"{args.repeats} x {args.members} x {cfg.steps} steps",
         f"{default['paired_pct_median']:.0f}% median", ">= 30%",
         "; ".join(f"{p['flops'] / 1e9:.1f}/{p['peak'] / 1e9:.1f} GFLOP/s = {p['pct']:.0f}%" for p in pairs)),
    ]
    print(f"{'benchmark':44} {'work':28} {'measured':14} {'target':11} notes")
    for r in rows:
        print(f"{r[0]:44} {r[1]:28} {r[2]:14} {r[3]:11} {r[4]}")
    print(f"# load after: {_load()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"small": small, "small_batch64": small64, "default": default, "peak_flops": peak, "threads": torch.get_num_threads(),
                       "device": args.device, "load": _load()}, fh, indent=2)


if __name__ == "__main__":
    main()
