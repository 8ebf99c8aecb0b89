"""Per-input worst case of the interpolation error over the attacker range (Fischer §6, the
malicious attacker): for a fixed input x and sampled β, a PROVEN upper bound on
max_{γ∈C} ‖ε(β, γ, x)‖₂.

Minimal version: a fixed regular grid of γ cells over C, each bounded by the interval analysis
of :func:`semsmooth_core.errors.eps_interval_bound` (sound per cell; the max over the cells
covers C). ``threshold`` is accepted so that a refining implementation can stop early once a
β's bound is below it; here it only sets ``below``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from semsmooth_core import errors


@dataclass
class MaxEps:
    bound: np.ndarray      # [B] sound upper bound on max_{γ∈C} ‖ε(β_i, γ, x)‖₂ (worst part)
    sampled: np.ndarray    # [B] max of the exact ‖ε‖ at the cell centres (a lower estimate)
    below: np.ndarray      # [B] bool: bound < threshold (all False without a threshold)
    cells: int             # cells in the grid (all dimensions together)
    seconds: float


def max_eps_upper(setup: errors.ErrorSetup, x: torch.Tensor, beta, threshold: float | None = None,
                  cells: int | None = None, chunk: int = 4096) -> MaxEps:
    """Upper bound per β on max over γ ∈ C of ‖ε(β, γ, x)‖₂ (max over parts) for one input
    ``x`` ``[C,H,W]`` (audio ``[T]``); ``beta`` ``[B,d]``. ``cells`` per dimension (default:
    :func:`errors.default_cells` with a 0.05 px motion and at most 256 cells in all)."""
    t0 = time.perf_counter()
    x1 = x.unsqueeze(0).float() if x.ndim in (1, 3) else x.float()
    dev = x1.device
    beta = torch.as_tensor(beta, dtype=torch.float64).reshape(-1, setup.t.dim).to(dev)
    hw = tuple(x1.shape[-2:])
    per_dim = cells if cells is not None else errors.default_cells(setup, hw, motion=0.05, cap=256)
    centers, half = errors._cell_grid(setup.C, int(per_dim), dev)
    K = len(centers)
    lmax = None
    if hasattr(setup.t, "motion_bound") and setup.t.modality == "image":
        b_all = (beta[:, None, :] + centers[None]).reshape(-1, setup.t.dim)
        lmax = max(float(setup.t.motion_bound(centers, half.expand_as(centers), *hw).max()),
                   float(setup.t.motion_bound(b_all, half.expand_as(b_all), *hw).max()))
    B = len(beta)
    bound = np.zeros(B)
    sampled = np.zeros(B)
    per = max(1, chunk // K)
    with torch.no_grad():
        for s in range(0, B, per):
            bb = beta[s:s + per]
            m = len(bb)
            b_rep = bb.repeat_interleave(K, dim=0)
            c_rep = centers.repeat(m, 1)
            xb = x1.expand(m * K, *x1.shape[1:])
            ub = errors.eps_interval_bound(setup, xb, b_rep, c_rep, half.expand_as(c_rep), lmax)
            bound[s:s + m] = ub.amax(dim=1).view(m, K).amax(dim=1).double().cpu().numpy()
            ex = errors.part_norms(errors.eps(setup, xb, b_rep.float(), c_rep.float()), setup.norm)
            sampled[s:s + m] = ex.amax(dim=1).view(m, K).amax(dim=1).double().cpu().numpy()
    below = bound < threshold if threshold is not None else np.zeros(B, dtype=bool)
    return MaxEps(bound, sampled, below, K, time.perf_counter() - t0)
