"""Fischer Tables 2/3-style tables on the embedded MNIST held-out set: rotation and translation,
bilinear and bicubic, double smoothing through the shared runner (``pipeline.certify_inputs``, the
code behind ``python -m semsmooth_core certify``).

For each (transform, interpolation): E at quantile ``--q`` of ‖ε‖₂ is estimated on the TRAINING
split with the model's preprocessing (``pipeline.estimate_E``; Fischer §6, Tables 1/4), then
``--images`` evenly spaced held-out digits are certified. Columns as the paper: f acc. (base
model, clean), g acc. (certified, radius > 0), radius percentiles 25/50/75 over certified-correct
images († = clipped to the attacker range C), seconds per image, n_γ, n_ε, α; plus certified
accuracy at the radius ``--at`` (degrees for rotation, pixels for translation) and E, q̲_E, ρ.

    OMP_NUM_THREADS=1 python scripts/certify_tables.py --model mnist_cnn_rot_noise025 --images 20

Writes benchmarks/results/certify_tables_<model>.json and .md. Rotation: σ_γ = 30°, C = [-30°, 30°]
(default), translation: σ_γ = 4 px, C = [-4, 4]² (the paper's MNIST Table 3/4 setting).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {"rotation": {"sigma_gamma": 30.0, "C": 30.0, "at": 20.0},
           "translation": {"sigma_gamma": 4.0, "C": 4.0, "at": 2.0}}


def main() -> None:
    from semsmooth_core import pipeline
    from semsmooth_core.summary import certified_accuracy

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist_cnn_rot_noise025")
    ap.add_argument("--transforms", default="rotation,translation")
    ap.add_argument("--interpolations", default="bilinear,bicubic")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--sigma-eps", type=float, default=None, help="default: the model card's sigma_eps")
    ap.add_argument("--preprocess", default="auto")
    ap.add_argument("--q", type=float, default=0.95)
    ap.add_argument("--E-samples", type=int, default=3000)
    ap.add_argument("--n0", type=int, default=20)
    ap.add_argument("--n-gamma", type=int, default=100)
    ap.add_argument("--n-eps", type=int, default=200)
    ap.add_argument("--alpha-gamma", type=float, default=0.001)
    ap.add_argument("--alpha-eps", type=float, default=0.001)
    ap.add_argument("--alpha-E", type=float, default=0.001)
    ap.add_argument("--sequential", default="looks", help="looks | mixture | off")
    ap.add_argument("--rotation-sigma", type=float, default=None)
    ap.add_argument("--rotation-range", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from semsmooth_core.models import load_model

    _, card = load_model(a.model)
    sigma_eps = a.sigma_eps or float(card.get("sigma_eps") or (card.get("augmentation") or {}).get(
        "gaussian_noise_sigma") or 0.25)
    indices = np.linspace(0, 999, a.images).astype(int).tolist()
    results = []
    for tname in a.transforms.split(","):
        cfgt = dict(CONFIGS[tname])
        if tname == "rotation":
            cfgt["sigma_gamma"] = a.rotation_sigma or cfgt["sigma_gamma"]
            cfgt["C"] = a.rotation_range or cfgt["C"]
        for interp in a.interpolations.split(","):
            dim = 2 if tname == "translation" else 1
            cfg = {"model": a.model, "transform": tname, "interpolation": interp,
                   "sigma_gamma": cfgt["sigma_gamma"], "sigma_eps": sigma_eps, "estimate_E": True, "q": a.q,
                   "E_samples": a.E_samples, "attacker_range": [[-cfgt["C"], cfgt["C"]]] * dim,
                   "n0": a.n0, "n_gamma": a.n_gamma, "n_eps": a.n_eps, "alpha_gamma": a.alpha_gamma,
                   "alpha_eps": a.alpha_eps, "alpha_E": a.alpha_E, "preprocess": a.preprocess,
                   "sequential": None if a.sequential == "off" else a.sequential, "seed": a.seed}
            rows = []
            t0 = time.perf_counter()
            try:
                s = pipeline.certify_inputs(cfg, indices, rows.append)
            except Exception as e:  # a dead end (E out of reach) is a result too
                results.append({"transform": tname, "interpolation": interp, "error": str(e).splitlines()[0]})
                print(f"{tname} {interp}: {e}", file=sys.stderr)
                continue
            at = cfgt["at"]
            rp = s["radius_percentiles"]
            clipped = {p: any(r["clipped"] and abs(r["radius"] - (rp[p] or -1)) < 1e-9 for r in rows) for p in rp}
            res = {"transform": tname, "interpolation": interp, "sigma_gamma": cfgt["sigma_gamma"],
                   "C": cfgt["C"], "unit": s.get("radius_unit"), "sigma_eps": sigma_eps,
                   "E": s["E_estimate"]["E"], "q_E_lower": s["E_estimate"]["q_E_lower"], "rho": s.get("rho"),
                   "alpha_gamma": a.alpha_gamma, "f_acc": s["clean_accuracy"], "g_acc": s["certified_accuracy"],
                   f"cert_acc_at_{at:g}": certified_accuracy(rows, at), "at": at,
                   "radius_percentiles": rp, "clipped": clipped, "seconds_per_image": s["seconds_per_input"],
                   "forward_passes_per_image": s["forward_passes_per_input"], "n_gamma": a.n_gamma,
                   "n_eps": a.n_eps, "images": len(rows), "preprocess": s["config"]["preprocess"],
                   "sequential": cfg["sequential"], "wall_seconds": time.perf_counter() - t0, "rows": rows}
            results.append(res)
            print(f"{tname} {interp}: E={res['E']:.3f} f={res['f_acc']:.2f} g={res['g_acc']:.2f} "
                  f"@{at:g}={res[f'cert_acc_at_{at:g}']:.2f} {rp} {res['seconds_per_image']:.1f}s/img", file=sys.stderr)
    name = Path(a.model).stem
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"certify_tables_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "OMP_NUM_THREADS=1 python scripts/certify_tables.py " + " ".join(sys.argv[1:])
    out.write_text(json.dumps({"model": a.model, "command": cmd, "indices": indices, "results": results},
                              indent=1, default=float))
    out.with_suffix(".md").write_text(markdown(results, cmd))
    print(markdown(results, cmd))


def markdown(results, cmd) -> str:
    def fmt(v, clipped):
        return "–" if v is None else f"{v:.2f}{'†' if clipped else ''}"

    lines = [f"`{cmd}`", "",
             "| transform | I | σ_γ | C | E (q̲_E) | α_γ | f acc. | g acc. | cert. acc. @r | 25th | 50th | 75th | T [s] | fwd/img | n_γ | n_ε | images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['transform']} | {r['interpolation'][:3]}. | | | | | | | dead end: {r['error']} | | | | | | | | |")
            continue
        p, c = r["radius_percentiles"], r["clipped"]
        at = r["at"]
        lines.append(
            f"| {r['transform']} ({r['unit']}) | {r['interpolation'][:3]}. | {r['sigma_gamma']:g} | ±{r['C']:g} | "
            f"{r['E']:.3f} ({r['q_E_lower']:.3f}) | {r['alpha_gamma']:g} | {r['f_acc']:.2f} | {r['g_acc']:.2f} | "
            f"{r[f'cert_acc_at_{at:g}']:.2f} @{at:g} | {fmt(p['25'], c['25'])} | {fmt(p['50'], c['50'])} | "
            f"{fmt(p['75'], c['75'])} | {r['seconds_per_image']:.1f} | {r['forward_passes_per_image']:.0f} | "
            f"{r['n_gamma']} | {r['n_eps']} | {r['images']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
