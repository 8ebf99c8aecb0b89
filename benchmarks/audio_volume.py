"""The README's audio table: held-out accuracy and certified robustness against volume changes.

1. E for int16 volume changes (Fischer §5.2, §7.3 setting: σ_γ = 3 dB, C = [-3, 3] dB,
   α_E = 0.001): ``semsmooth_core.audio.estimate_volume_E`` on the TRAINING clips
   (``data/speech_words/train.npz``, rebuilt by ``scripts/synth_speech.py``; falls back to the
   held-out clips when absent, and says so), at the quantile ``--q``.
2. Double smoothing over β (dB) with inner Gaussian noise on the waveform, through the same
   runner as ``python -m semsmooth_core certify`` (``semsmooth_core.runs.pipeline.certify_inputs``), on
   evenly spaced held-out clips (speakers never used for training).
3. The table row (Fischer Table 2 form): base accuracy, smoothed accuracy, radius percentiles
   25/50/75 (dB, over certified-correct clips), seconds per clip; and a baseline measured in the
   same run: the time of the ``n_forward`` plain batched forward passes alone (median of 3), so
   the overhead of the certification machinery is reported as a ratio.

    OMP_NUM_THREADS=1 python -m benchmarks.audio_volume --model speech_cnn --clips 30
    OMP_NUM_THREADS=1 python -m benchmarks.audio_volume --model silero_vad --clips 10

    OMP_NUM_THREADS=1 python -m benchmarks.audio_volume --model speech_cnn --clips 30 --range 6 --tag _C6

Writes ``benchmarks/results/audio_<model><tag>.json``.
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="speech_cnn")
    ap.add_argument("--clips", type=int, default=30, help="evenly spaced held-out clips (of 200)")
    ap.add_argument("--sigma-gamma", type=float, default=3.0)
    ap.add_argument("--range", type=float, default=3.0, help="attacker range C = [-r, r] dB")
    ap.add_argument("--sigma-eps", type=float, default=None, help="default: the model card's sigma_eps (or 0.01)")
    ap.add_argument("--q", type=float, default=0.99)
    ap.add_argument("--E-samples", type=int, default=4000)
    ap.add_argument("--n0", type=int, default=10)
    ap.add_argument("--n-gamma", type=int, default=100)
    ap.add_argument("--n-eps", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=0.001, help="alpha_gamma = alpha_eps = alpha_E")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="", help="suffix of the result file: audio_<model><tag>.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import semsmooth_core.data.speech as speech  # registers the dataset "speech-words"
    from semsmooth_core import audio
    from semsmooth_core.runs import pipeline, summary
    from semsmooth_core.models import load_model
    from semsmooth_core.repro import environment

    model, card = load_model(args.model)
    from semsmooth_core.runs.config import resolve   # σ_ε: flag > model card > default, as certify

    sigma_eps = float(resolve({"model": args.model, "dataset": "speech-words", "smoothing": "noise",
                               "sigma_eps": args.sigma_eps}, card)[0].sigma_eps)
    try:
        xe, _, _ = speech.embedded_speech("train")
        e_data = "train (data/speech_words/train.npz)"
    except Exception:
        xe, _, _ = speech.embedded_speech("heldout")
        e_data = "heldout (training clips not built)"
    est = audio.estimate_volume_E(xe, n=args.E_samples, q=args.q, alpha_E=args.alpha, sigma_db=args.sigma_gamma,
                                  C=(-args.range, args.range), seed=args.seed + 7919)
    del xe
    n_all = 200
    idx = np.linspace(0, n_all - 1, args.clips).round().astype(int).tolist()
    cfg = {"dataset": "speech-words", "model": args.model, "transform": "volume", "sigma_gamma": args.sigma_gamma,
           "sigma_eps": sigma_eps, "E": est["E"], "q_E_lower": est["q_E_lower"], "n0": args.n0,
           "n_gamma": args.n_gamma, "n_eps": args.n_eps, "alpha_gamma": args.alpha, "alpha_eps": args.alpha,
           "alpha_E": args.alpha, "attacker_range": args.range, "batch_size": 500, "seed": args.seed}
    rows: list[dict] = []
    if args.model == "silero_vad":
        # speech / no-speech: every held-out clip is speech (class 1)
        _orig = speech.embedded_speech

        def as_vad(split="heldout"):
            x, y, meta = _orig(split)
            return x, torch.ones_like(y), meta
        speech.embedded_speech = as_vad
    t0 = time.perf_counter()
    out = pipeline.certify_inputs(cfg, idx, rows.append,
                                  progress=lambda d, t: print(f"  clip {d}/{t}", file=sys.stderr, flush=True))
    wall = time.perf_counter() - t0

    # baseline in the same run: the same number of forward passes, plain batches of noisy clips
    x, _ = speech._speech_words(indices=idx[:1])
    n_fwd = int(np.median([r["n_forward"] for r in rows]))
    times = []
    with torch.no_grad():
        for _ in range(3):
            t1 = time.perf_counter()
            done = 0
            while done < n_fwd:
                b = min(500, n_fwd - done)
                model(x.expand(b, -1) + sigma_eps * torch.randn(b, x.shape[1]))
                done += b
            times.append(time.perf_counter() - t1)
    secs = [r["seconds"] for r in rows]
    table = summary.table_row(rows, cfg)
    table.update({"radius unit": "dB", "certified accuracy": out["certified_accuracy"],
                  "seconds/clip (median)": statistics.median(secs)})
    result = {
        "command": "OMP_NUM_THREADS=1 python -m benchmarks.audio_volume " + " ".join(sys.argv[1:]),
        "model": args.model, "model_card": {k: card.get(k) for k in ("summary", "heldout_clean_accuracy",
                                                                       "heldout_noise_accuracy", "sigma_eps")},
        "E_estimate": {k: est[k] for k in ("E", "q", "q_E", "q_E_lower", "k", "n", "alpha_E", "quantiles",
                                           "sigma_db", "C", "predicted_rounding_l2")} | {"data": e_data},
        "config": out["config"], "clips": idx, "table": [table], "summary": {k: v for k, v in out.items()
                                                                             if k not in ("config", "environment")},
        "seconds_per_clip": {"median": statistics.median(secs), "mean": float(np.mean(secs))},
        "baseline_forward_only_seconds": {"median": statistics.median(times), "runs": times, "n_forward": n_fwd},
        "overhead_ratio": statistics.median(secs) / statistics.median(times),
        "wall_seconds": wall, "rows": rows, "environment": {k: str(v) for k, v in environment().items()},
        "threads": args.threads,
    }
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    path = res / f"audio_{args.model}{args.tag}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({"file": str(path), "E": est["E"], "q_E_lower": est["q_E_lower"], **table}, default=str))


if __name__ == "__main__":
    main()
