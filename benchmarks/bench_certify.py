"""Certification benchmarks (issue 4): overhead of the certification machinery, and the
forward-pass saving of sequential inner tests.

1. **Overhead ratio**: double smoothing (fixed n's) on ``--overhead-inputs`` held-out digits; the
   certification time divided by the time of the bare forward passes of the SAME number of inputs
   through the SAME model in the SAME run (random inputs of the same shape, same batch size). Median
   of ``--repeats`` runs each, as wall-clock and as process CPU time (the CPU-time ratio is the
   robust one on a shared machine, where wall-clock time depends on the other jobs). Goal <= 1.05
   on CPU. ``--seq-inputs 0`` runs only this part.
2. **Sequential saving**: each of ``--seq-inputs`` held-out digits is certified twice with the same
   per-input seed — fixed n_ε (Fischer §6.2) and the sound sequential inner test
   (``--sequential looks|mixture``) — and the forward passes per input and the decisions are
   compared. "Same decision" = same prediction (class or abstain); the radius difference is
   reported too. Goal: >= 2x fewer forward passes with the same decision on >= 95 %.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_certify --model mnist_cnn_noise025

Writes ``benchmarks/results/certify_<model>.json``. E and q_E_lower are GIVEN (``--E``,
``--q-E-lower``; default 0.3 / 0.97, the paper's MNIST Table 1 values) — the benchmark measures
cost and agreement, not the E estimate.
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


def main() -> None:
    from semsmooth_core import smoothing
    from semsmooth_core.runs import pipeline
    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.repro import environment

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist_cnn_noise025",
                    help="shipped name or checkpoint; 'untrained:ARCH' (e.g. untrained:resnet18_small) times an "
                         "untrained architecture for MNIST-shaped inputs (the cost does not depend on the weights)")
    ap.add_argument("--transform", default="rotation")
    ap.add_argument("--sigma-gamma", type=float, default=10.0)
    ap.add_argument("--range", type=float, default=10.0, help="attacker range C = [-r, r]")
    ap.add_argument("--sigma-eps", type=float, default=0.25)
    ap.add_argument("--E", type=float, default=0.3)
    ap.add_argument("--q-E-lower", type=float, default=0.97)
    ap.add_argument("--n0", type=int, default=20)
    ap.add_argument("--n-gamma", type=int, default=100)
    ap.add_argument("--n-eps", type=int, default=200)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--overhead-inputs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seq-inputs", type=int, default=20)
    ap.add_argument("--sequential", default="looks", choices=["looks", "mixture"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model_ref = a.model
    if a.model.startswith("untrained:"):
        import tempfile

        from semsmooth_core.models import build, save_checkpoint

        arch = a.model.split(":", 1)[1]
        torch.manual_seed(0)
        model_ref = str(Path(tempfile.mkdtemp()) / f"{arch}_untrained.pt")
        save_checkpoint(model_ref, build(arch).eval(), arch, {}, {"summary": f"untrained {arch}, for timing"})
    cfg = pipeline.validate_config({
        "model": model_ref, "transform": a.transform, "sigma_gamma": a.sigma_gamma, "sigma_eps": a.sigma_eps,
        "E": a.E, "q_E_lower": a.q_E_lower, "n0": a.n0, "n_gamma": a.n_gamma, "n_eps": a.n_eps,
        "alpha_gamma": a.alpha, "alpha_eps": a.alpha, "alpha_E": a.alpha, "batch_size": a.batch_size,
        "attacker_range": [[-a.range, a.range]], "device": a.device})
    model, card, pp, device, pp_spec = pipeline.load_setup(cfg)
    cfg["preprocess"] = pp_spec
    x_all, y_all = load_dataset("mnist", "heldout")

    # ---- 1. overhead ratio
    def bare(n_inputs: int) -> float:
        # inputs drawn on the device, as certification draws its noise there (drawing on the CPU
        # and copying would charge the baseline a host-to-device copy that certification skips)
        g = torch.Generator(device=device).manual_seed(0)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            done = 0
            while done < n_inputs:
                b = min(a.batch_size, n_inputs - done)
                xb = torch.rand((b, *x_all.shape[1:]), generator=g, device=device)
                model(xb).argmax(-1)
                done += b
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, time.process_time() - c0

    ratios, cert_times, bare_times, cpu_ratios = [], [], [], []
    n_fwd = 0
    for rep in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        n_fwd = 0
        for i in range(a.overhead_inputs):
            c = pipeline.certify_one({**cfg, "sequential": None}, x_all[i], model, pp,
                                     pipeline.input_generator(0, i))
            n_fwd += c.n_forward
        if device.type == "cuda":
            torch.cuda.synchronize()
        tc, cc = time.perf_counter() - t0, time.process_time() - c0
        tb, cb = bare(n_fwd)
        cert_times.append(tc)
        bare_times.append(tb)
        ratios.append(tc / tb)
        cpu_ratios.append(cc / cb)
        print(f"overhead run {rep}: certify {tc:.2f} s, bare {tb:.2f} s for {n_fwd} passes, ratio {tc / tb:.3f}",
              file=sys.stderr)

    # ---- 2. sequential saving
    idx = np.linspace(0, len(x_all) - 1, a.seq_inputs).astype(int).tolist() if a.seq_inputs else []
    rows = []
    for i in idx:
        out = {}
        for mode in ("fixed", a.sequential):
            c = pipeline.certify_one({**cfg, "sequential": None if mode == "fixed" else mode}, x_all[i], model,
                                     pp, pipeline.input_generator(0, i))
            out[mode] = c
        f, s = out["fixed"], out[a.sequential]
        rows.append({"index": i, "label": int(y_all[i]), "fixed_prediction": f.label, "seq_prediction": s.label,
                     "fixed_radius": f.radius, "seq_radius": s.radius, "fixed_n_forward": f.n_forward,
                     "seq_n_forward": s.n_forward, "fixed_seconds": f.seconds, "seq_seconds": s.seconds})
        print(f"input {i}: fixed {f.label}/{f.radius:.2f} ({f.n_forward}) seq {s.label}/{s.radius:.2f} "
              f"({s.n_forward})", file=sys.stderr)
    seq_skipped = not rows
    if seq_skipped:
        rows = [{"fixed_prediction": 0, "seq_prediction": 0, "fixed_n_forward": 0, "seq_n_forward": 1,
                 "fixed_radius": 0.0, "seq_radius": 0.0, "fixed_seconds": 0.0, "seq_seconds": 0.0}]
    same = [r["fixed_prediction"] == r["seq_prediction"] for r in rows]
    fwd_f = float(np.mean([r["fixed_n_forward"] for r in rows]))
    fwd_s = float(np.mean([r["seq_n_forward"] for r in rows]))
    rdiff = [abs(r["fixed_radius"] - r["seq_radius"]) for r in rows]
    res = {
        "benchmark": "certify", "model": a.model, "model_card_accuracy": card.get("heldout_clean_accuracy"),
        "settings": {k: getattr(a, k) for k in vars(a)}, "preprocess": pp_spec, "device": str(device),
        "overhead": {"ratio_median": statistics.median(ratios), "ratios": ratios,
                     "cpu_time_ratio_median": statistics.median(cpu_ratios), "cpu_time_ratios": cpu_ratios,
                     "certify_seconds": cert_times, "bare_forward_seconds": bare_times,
                     "forward_passes": n_fwd, "inputs": a.overhead_inputs},
        "sequential": {"method": a.sequential, "inputs": len(rows),
                       "forward_passes_per_input_fixed": fwd_f, "forward_passes_per_input_sequential": fwd_s,
                       "saving_factor": fwd_f / fwd_s, "same_decision_rate": float(np.mean(same)),
                       "median_abs_radius_difference": float(np.median(rdiff)),
                       "max_abs_radius_difference": float(np.max(rdiff)),
                       "seconds_per_input_fixed": float(np.mean([r["fixed_seconds"] for r in rows])),
                       "seconds_per_input_sequential": float(np.mean([r["seq_seconds"] for r in rows])),
                       "rows": rows},
        "environment": environment(),
        **({"sequential": "not run (--seq-inputs 0)"} if seq_skipped else {}),
        "command": "OMP_NUM_THREADS=1 python -m benchmarks.bench_certify " + " ".join(sys.argv[1:]),
    }
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"certify_{Path(a.model.replace(':', '_')).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    seq = res["sequential"] if isinstance(res["sequential"], dict) else {}
    print(json.dumps({k: v for k, v in seq.items() if k != "rows"} | {
        "overhead_ratio": res["overhead"]["ratio_median"],
        "overhead_cpu_time_ratio": res["overhead"]["cpu_time_ratio_median"]}))


if __name__ == "__main__":
    main()
