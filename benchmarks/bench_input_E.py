"""Cost of the per-input E (issue 13 item 1): estimating E and q̲_E for the certified input
(:func:`semsmooth_core.errors.estimate_E_for_input`, sizes from
:func:`semsmooth_core.planner.plan_input_E`) against the forward-pass time of that input's
double-smoothing certification. Goal: <= 10 % at 28×28 and at 224×224, on CPU.

- 28×28: the shipped MNIST rotation model (``mnist_cnn_rot_vg_noise030``, preprocessing
  vignette+gauss:5:1), held-out digits; σ_γ = 30°, C = ±30°, σ_ε = 0.3, n0 = 50, n_γ = 100,
  n_ε = 200, α = 0.001 (the README's rotation run).
- 224×224: a shipped photo (``--photo``) resized to 224×224 RGB, an UNTRAINED torchvision
  ``resnet18`` (the cost of a forward pass does not depend on the weights), same smoothing.

Forward-pass time = the median time per input of ``--fwd-batches`` batches of the model on noisy
copies (the batch size of the certification, smaller at 224×224), times the forward passes of
the certification: n0 + n_γ·n_ε (fixed inner tests, the upper bound) and, for reference, the
sequential count measured in the README (~9,500 at 28×28; the ratio against it is printed too).
At 28×28 one real ``certify_double`` of one digit is timed as well, to check the extrapolation.
Medians of ``--repeats`` runs; the machine may be shared (timings are noisy).

    OMP_NUM_THREADS=1 python benchmarks/bench_input_E.py

Writes ``benchmarks/results/input_E_cost.json``.
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
sys.path.insert(0, str(ROOT))


def _fwd_seconds_per_input(model, x, batch, batches, sigma):
    """Median seconds per input of ``batches`` forward passes of ``batch`` noisy copies of x."""
    times = []
    with torch.no_grad():
        model(x.unsqueeze(0) + 0 * x)                     # warm-up
        for _ in range(batches):
            xb = x.unsqueeze(0) + sigma * torch.randn(batch, *x.shape)
            t0 = time.perf_counter()
            model(xb)
            times.append((time.perf_counter() - t0) / batch)
    return statistics.median(times)


def _case(name, model, x, setup, plan, cfg, repeats, batch, batches, seq_forward=None):
    from semsmooth_core import errors

    e_times, ests = [], []
    for r in range(repeats):
        est = errors.estimate_E_for_input(setup, x, plan.n_E, seed=r, E_cap=plan.E_cap, n_select=plan.n_select,
                                          select_quantile=plan.select_quantile, alpha_E=cfg["alpha_E"])
        e_times.append(est["seconds"])
        ests.append({k: est[k] for k in ("E", "q_E_lower", "n", "n_select", "E_capped")})
    per_input = _fwd_seconds_per_input(model, x, batch, batches, cfg["sigma_eps"])
    n_fwd = cfg["n0"] + cfg["n_gamma"] * cfg["n_eps"]
    fwd = per_input * n_fwd
    e_med = statistics.median(e_times)
    out = {"case": name, "input_shape": list(x.shape), "n_E": plan.n_E, "n_select": plan.n_select,
           "E_seconds_median": e_med, "E_seconds_all": e_times, "estimates": ests,
           "forward_seconds_per_input": per_input, "forward_passes_fixed": n_fwd,
           "certify_forward_seconds_fixed": fwd, "ratio_fixed": e_med / fwd}
    if seq_forward:
        out["forward_passes_sequential_reference"] = seq_forward
        out["ratio_sequential_reference"] = e_med / (per_input * seq_forward)
    print(f"{name}: E {e_med:.3f} s (n_E {plan.n_E} + select {plan.n_select}); forward {per_input * 1e3:.3f} ms/input "
          f"x {n_fwd} = {fwd:.1f} s; ratio {100 * out['ratio_fixed']:.2f} %"
          + (f" (sequential ~{seq_forward} passes: {100 * out['ratio_sequential_reference']:.2f} %)" if seq_forward else ""),
          file=sys.stderr)
    return out


def main() -> None:
    from semsmooth_core import errors, smoothing
    from semsmooth_core.data import embedded_mnist, embedded_photos
    from semsmooth_core.models import build, load_model
    from semsmooth_core.preprocess import Preprocess
    from semsmooth_core.repro import environment
    from semsmooth_core.runs import pipeline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist_cnn_rot_vg_noise030")
    ap.add_argument("--photo", default="coffee")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--digits", default="0,1,2", help="held-out digits for 28x28 (one E estimate per repeat each)")
    ap.add_argument("--skip-real-certify", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "input_E_cost.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    base = {"transform": "rotation", "sigma_gamma": 30.0, "attacker_range": 30.0, "sigma_eps": 0.3, "n0": 50,
            "n_gamma": 100, "n_eps": 200, "alpha_gamma": 0.001, "alpha_eps": 0.001, "alpha_E": 0.001,
            "interpolation": "bilinear"}
    results = {"goal": "per-input E seconds <= 10 % of the certification's forward-pass seconds",
               "config": base, "machine": "shared CPU box (other jobs running: timings are noisy)",
               "threads": 1, "cases": []}

    # ---- 28x28
    cfg = pipeline.validate_config({**base, "model": a.model})
    model, card, pp, device, pp_spec = pipeline.load_setup(cfg)
    cfg["preprocess"] = pp_spec
    plan = pipeline.input_E_plan(cfg)
    setup = pipeline.error_setup(cfg, pp)
    xh, _ = embedded_mnist("heldout")
    fwd_model = pipeline._Preprocessed(pp, model) if pp is not None else model
    for d in [int(v) for v in a.digits.split(",")]:
        results["cases"].append(_case(f"28x28 digit {d} ({a.model}, {pp_spec})", fwd_model, xh[d], setup, plan, cfg,
                                      a.repeats, 1000, 5, seq_forward=9500))
    if not a.skip_real_certify:
        t0 = time.perf_counter()
        cert = smoothing.certify_double(model, xh[0], "rotation", 30.0, 0.3, plan.E_cap * 0.9, 0.95, 50, 100, 200,
                                        0.001, 0.001, 0.001, preprocess=pp, attacker_range=30.0,
                                        generator=torch.Generator().manual_seed(0))
        results["real_certify_28x28"] = {"seconds": time.perf_counter() - t0, "n_forward": cert.n_forward,
                                         "note": "one certify_double of digit 0 with fixed n (transform, noise, "
                                                 "model, counting): the extrapolated forward time should be close"}
        print(f"real certify_double 28x28: {results['real_certify_28x28']['seconds']:.1f} s, "
              f"{cert.n_forward} passes", file=sys.stderr)

    # ---- 224x224
    from PIL import Image

    photos = embedded_photos()
    img = Image.open(photos[a.photo]).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255.0)
    torch.manual_seed(0)
    net = build("resnet18").eval()
    cfg2 = dict(cfg, preprocess="none")
    setup2 = errors.ErrorSetup("rotation", "bilinear", 30.0, 30.0, Preprocess.parse("none"))
    results["cases"].append(_case(f"224x224 photo {a.photo} (untrained resnet18)", net, x, setup2, plan, cfg2,
                                  a.repeats, 16, 3))
    results["environment"] = environment()
    results["command"] = "OMP_NUM_THREADS=1 python benchmarks/bench_input_E.py " + " ".join(sys.argv[1:])
    results["max_ratio_fixed"] = max(c["ratio_fixed"] for c in results["cases"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1, default=float))
    print(json.dumps({"max_ratio_fixed": results["max_ratio_fixed"], "out": a.out}))


if __name__ == "__main__":
    main()
