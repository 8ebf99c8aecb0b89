"""Time estimates for long work (issue 15: "n's time estimate and a confirmation above a few
minutes"). Pure functions, no streamlit: a page measures forward passes per second with a short
warm-up on this device and multiplies by the planned number of forward passes.
"""

from __future__ import annotations

import math
import time

import torch

from semsmooth_core.validation import SemsmoothError


def estimate_seconds(n_forward: int, seconds_per_forward: float) -> float:
    """Seconds for ``n_forward`` forward passes (single inputs, counted as the certify functions'
    ``n_forward``) at ``seconds_per_forward`` each. No overhead term: an estimate, not a bound."""
    n_forward, spf = int(n_forward), float(seconds_per_forward)
    if n_forward < 0:
        raise SemsmoothError(f"n_forward must be >= 0, got {n_forward}")
    if not math.isfinite(spf) or spf < 0:
        raise SemsmoothError(f"seconds per forward pass must be a finite number >= 0, got {seconds_per_forward}")
    return n_forward * spf


def measure_seconds_per_forward(model, x: torch.Tensor, batch_size: int, repeats: int = 2,
                                max_batch: int = 256) -> float:
    """Seconds per single-input forward pass of ``model`` on batches like ``x`` (one input without
    the batch dimension), timed on ``min(batch_size, max_batch)`` copies after one untimed warm-up
    batch; the median of ``repeats`` timed batches. Runs where the model's parameters live."""
    b = max(1, min(int(batch_size), int(max_batch)))
    p = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = p.device if p is not None else torch.device("cpu")
    batch = x.to(device=device, dtype=torch.float32).unsqueeze(0).expand(b, *x.shape).contiguous()
    times = []
    with torch.no_grad():
        model(batch)  # warm-up (allocations, kernels)
        for _ in range(max(1, int(repeats))):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2] / b


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h`` (for estimates shown to a user)."""
    s = float(seconds)
    if not math.isfinite(s):
        return "unknown"
    if s < 90:
        return f"{s:.0f} s" if s >= 1 else f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
