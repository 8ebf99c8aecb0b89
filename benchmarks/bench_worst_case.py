"""Tightness and speed of the worst-case bound on max_{γ∈C} ‖ε(β, γ, x)‖₂ (issue 13, item 2).

For each row (transform × interpolation) it draws ``n_x`` MNIST held-out digits and ``n_beta``
smoothing parameters β ~ N(0, σ²) per digit, runs ``worstcase.max_eps_upper`` (one call per digit,
its β batched, one CPU thread) and reports per (β, x):

- ``ratio_dense``: bound / the largest exact ‖ε‖₂ on a DENSE γ grid (2,001 points for a 1-D
  parameter, 61 × 61 for translation) — an independent lower estimate of the true maximum, so the
  ratio is an upper estimate of how loose the bound is; median and q95 over the pairs;
- ``ratio_own``: bound / the largest exact value the refinement itself found (cell centres);
- ``cpu_seconds_per_pair``: process CPU time per (β, x) (one thread), median over ``repeats`` runs
  (CPU time, not wall time: the benchmark machine is shared and wall time includes waiting);
  ``wall_seconds_per_pair`` likewise.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_worst_case            # all rows
    python -m benchmarks.bench_worst_case --rows rotation:bicubic --n-x 2 --n-beta 3

Writes benchmarks/results/worst_case_bound.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from semsmooth_core import errors as E  # noqa: E402
from semsmooth_core import worstcase as WC  # noqa: E402
from semsmooth_core.data import embedded_mnist  # noqa: E402
from semsmooth_core.repro import environment  # noqa: E402

PRE = "vignette+gauss:5:1"          # the shipped model mnist_cnn_rot_vg_noise030's preprocessing
#: transform: (σ, C half-width, dense points per dimension, max_cells)
SETTINGS = {
    "rotation": (30.0, 30.0, 2001, 1024),          # degrees; σ_γ of the model card's certification
    "translation": (3.0, 4.0, 61, 1024),           # pixels, the transform's defaults
    "scaling": (0.2, 0.2, 2001, 1024),             # log-factor, the transform's defaults
}
ROWS = [f"{t}:{ip}" for t in SETTINGS for ip in ("bilinear", "bicubic")]


def dense_max(setup, x, beta, n_dense: int) -> np.ndarray:
    """Per β: the largest exact ‖ε(β, γ, x)‖₂ over a dense γ grid covering C (ends included)."""
    axes = [torch.linspace(lo, hi, n_dense) for lo, hi in setup.C]
    gam = torch.cartesian_prod(*axes).view(-1, len(axes)) if len(axes) > 1 else axes[0][:, None]
    out = np.zeros(len(beta))
    with torch.no_grad():
        for b in range(len(beta)):
            for i in range(0, len(gam), 4096):
                g = gam[i:i + 4096]
                e = E.eps(setup, x[None].expand(len(g), *x.shape), beta[b][None].expand(len(g), -1), g)
                out[b] = max(out[b], float(E.part_norms(e.double(), setup.norm).amax()))
    return out


def bench_row(transform: str, interpolation: str, n_x: int = 4, n_beta: int = 4, rel_tol: float = 0.4,
              max_cells: int | None = None, repeats: int = 2, seed: int = 0) -> dict:
    sig, C, n_dense, mc = SETTINGS[transform]
    max_cells = max_cells or mc
    setup = E.ErrorSetup(transform, interpolation, sig, C, PRE)
    data, _ = embedded_mnist("heldout")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[:n_x]
    betas = torch.randn(n_x, n_beta, setup.t.dim, generator=g) * torch.tensor(setup.sigma)
    cpu, wall = [], []
    res = []
    for rep in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        res = [WC.max_eps_upper(setup, data[int(i)], betas[k], rel_tol=rel_tol, max_cells=max_cells, device="cpu")
               for k, i in enumerate(idx)]
        cpu.append((time.process_time() - c0) / (n_x * n_beta))
        wall.append((time.perf_counter() - w0) / (n_x * n_beta))
    bound = torch.cat([r.bound for r in res]).numpy()
    own = torch.cat([r.sampled for r in res]).numpy()
    cells = torch.cat([r.cells for r in res]).numpy()
    dense = np.concatenate([dense_max(setup, data[int(i)], betas[k], n_dense) for k, i in enumerate(idx)])
    best = np.maximum(dense, own)
    if (bound < best).any():
        raise AssertionError(f"{transform}/{interpolation}: bound below an exact value — unsound")
    rd, ro = bound / best, bound / np.maximum(own, 1e-12)
    return {"transform": transform, "interpolation": interpolation, "sigma": list(setup.sigma),
            "C": [list(c) for c in setup.C], "preprocess": PRE, "pairs": int(n_x * n_beta),
            "inputs": [int(i) for i in idx], "rel_tol": rel_tol, "max_cells": max_cells,
            "dense_points": n_dense ** setup.t.dim,
            "ratio_dense_median": float(np.median(rd)), "ratio_dense_q95": float(np.quantile(rd, 0.95)),
            "ratio_own_median": float(np.median(ro)), "ratio_own_q95": float(np.quantile(ro, 0.95)),
            "bound_median": float(np.median(bound)), "dense_max_median": float(np.median(dense)),
            "cells_median": float(np.median(cells)), "cells_max": int(cells.max()),
            "hit_max_cells": float((cells >= max_cells - 4).mean()),
            "cpu_seconds_per_pair": statistics.median(cpu), "wall_seconds_per_pair": statistics.median(wall),
            "repeats": repeats}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=ROWS, help="transform:interpolation rows")
    ap.add_argument("--n-x", type=int, default=4)
    ap.add_argument("--n-beta", type=int, default=4)
    ap.add_argument("--rel-tol", type=float, default=0.4)
    ap.add_argument("--max-cells", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "worst_case_bound.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    t0 = time.perf_counter()
    for spec in a.rows:
        tr, ip = spec.split(":")
        r = bench_row(tr, ip, a.n_x, a.n_beta, a.rel_tol, a.max_cells, a.repeats)
        rows.append(r)
        print(f"{tr:12s} {ip:9s} ratio(dense) median {r['ratio_dense_median']:.3f} q95 {r['ratio_dense_q95']:.3f}  "
              f"own {r['ratio_own_median']:.3f}  cells {r['cells_median']:.0f}  "
              f"{r['cpu_seconds_per_pair']:.3f} s CPU/pair", flush=True)
    out = {"command": "python -m benchmarks.bench_worst_case " + " ".join(argv if argv is not None else sys.argv[1:]),
           "what": "sound upper bound on max over gamma in C of ||eps(beta, gamma, x)||_2 (worstcase.max_eps_upper) "
                   "vs the largest exact value on a dense gamma grid; one CPU thread; CPU seconds per (beta, x)",
           "machine_note": "shared 2-core machine (other jobs running): CPU time is reported as the primary timing",
           "threads": 1, "rows": rows, "total_wall_seconds": time.perf_counter() - t0, "environment": environment()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
