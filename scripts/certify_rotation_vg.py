"""Rotation certification of ``mnist_cnn_rot_vg_noise030`` (issue #4 "Done when" target) with
double smoothing (Fischer §6.2) through the shared runner ``pipeline.certify_inputs`` — the code
behind ``python -m semsmooth_core certify`` — writing the JSON after EVERY finished image, so a
run cut short keeps its rows.

E and q̲_E are fixed BEFORE certifying, from the error estimator on the TRAINING split with the
same transform, interpolation, σ_γ, attacker range and preprocessing (``estimate-error``, see
``--E-json``), never from the images being certified.

Images: the held-out split is sorted by class, so ``--indices 0:1000:10`` (100 images, 10 per
class) is certified in an interleaved order (0, 100, ..., 900, 10, 110, ...): every prefix of
10·k finished images holds k images of each class. Each image has its own generator seeded by
(seed, index), so the order does not change any row.

    OMP_NUM_THREADS=2 python scripts/certify_rotation_vg.py --E-json E.json --out benchmarks/results/certify_rotation_vg.json

Writes OUT (.json: config, E source, summary, table row, rows) and OUT with .md (the table row).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def interleave(indices: list[int], groups: int = 10) -> list[int]:
    """[0,10,...,990] -> [0,100,...,900,10,110,...]: class-balanced prefixes on a sorted split."""
    k = max(1, len(indices) // groups)
    return [indices[g * k + j] for j in range(k) for g in range(groups) if g * k + j < len(indices)] + \
        indices[groups * k:]


def table(res: dict) -> str:
    def f(v):
        return "–" if v is None else f"{v:.2f}"

    rp = res["summary"]["radius_percentiles"]
    s = res["summary"]
    c = res["config"]
    at = res["at"]
    lines = [f"`{res['command']}`", "", f"E from: `{res['E_command']}`", "",
             "| transform | I | P | σ_γ | C | σ_ε | E (q̲_E) | ρ | α_γ / α_ε / α_E | f acc. | g acc. | "
             f"cert. acc. @{at:g}° | 25th | 50th | 75th | T [s/img] | fwd/img | n0 | n_γ | n_ε | seq. | images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines.append(
        f"| {c['transform']} (deg) | {c['interpolation'][:3]}. | {c['preprocess']} | {c['sigma_gamma']:g} | "
        f"±{res['C']:g} | {c['sigma_eps']:g} | {c['E']:.3f} ({c['q_E_lower']:.3f}) | {f(s.get('rho'))} | "
        f"{c['alpha_gamma']:g} / {c['alpha_eps']:g} / {c['alpha_E']:g} | {f(s.get('clean_accuracy'))} | "
        f"{f(s['certified_accuracy'])} | {f(res['cert_acc_at'])} | {f(rp['25'])} | {f(rp['50'])} | {f(rp['75'])} | "
        f"{s['seconds_per_input']:.1f} | {s['forward_passes_per_input']:.0f} | {c['n0']} | {c['n_gamma']} | "
        f"{c['n_eps']} | {c['sequential'] or 'off'} | {s['n']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from semsmooth_core import pipeline
    from semsmooth_core.data.datasets import parse_indices
    from semsmooth_core.summary import certified_accuracy, summarize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist_cnn_rot_vg_noise030")
    ap.add_argument("--transform", default="rotation")
    ap.add_argument("--interpolation", default="bilinear")
    ap.add_argument("--sigma-gamma", type=float, default=30.0)
    ap.add_argument("--range", type=float, default=30.0, help="attacker range C = [-R, R] (radius clipped to R)")
    ap.add_argument("--sigma-eps", type=float, default=0.3)
    ap.add_argument("--E-json", required=True, help="estimate-error --json output (train split): E and q_E_lower")
    ap.add_argument("--n0", type=int, default=50)
    ap.add_argument("--n-gamma", type=int, default=100)
    ap.add_argument("--n-eps", type=int, default=200)
    ap.add_argument("--alpha-gamma", type=float, default=0.001)
    ap.add_argument("--alpha-eps", type=float, default=0.001)
    ap.add_argument("--alpha-E", type=float, default=0.001)
    ap.add_argument("--sequential", default="off", help="looks | mixture | off")
    ap.add_argument("--indices", default="0:1000:10")
    ap.add_argument("--at", type=float, default=20.0, help="report certified accuracy at this radius")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "certify_rotation_vg.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    est = json.loads(Path(a.E_json).read_text())
    setup = est["setup"]
    if est.get("split") != "train" or setup["transform"] != a.transform or \
            setup["interpolation"] != a.interpolation or float(setup["sigma"][0]) != a.sigma_gamma:
        raise SystemExit(f"{a.E_json}: E estimate does not match (need split train, {a.transform}, "
                         f"{a.interpolation}, sigma {a.sigma_gamma:g}); got {est.get('split')}, {setup}")
    sel = parse_indices(a.indices)
    indices = list(range(1000))[sel] if isinstance(sel, slice) else list(sel)
    order = interleave(indices)
    cfg = {"model": a.model, "transform": a.transform, "interpolation": a.interpolation,
           "sigma_gamma": a.sigma_gamma, "sigma_eps": a.sigma_eps, "E": float(est["E"]),
           "q_E_lower": float(est["q_E_lower"]), "attacker_range": [[-a.range, a.range]],
           "n0": a.n0, "n_gamma": a.n_gamma, "n_eps": a.n_eps, "alpha_gamma": a.alpha_gamma,
           "alpha_eps": a.alpha_eps, "alpha_E": a.alpha_E, "preprocess": setup["preprocess"],
           "sequential": None if a.sequential == "off" else a.sequential, "seed": a.seed}
    cmd = f"OMP_NUM_THREADS={a.threads} python scripts/certify_rotation_vg.py " + " ".join(sys.argv[1:])
    e_cmd = est.get("command") or (
        f"python -m semsmooth_core estimate-error --dataset mnist --split train --transform {a.transform} "
        f"--interpolation {a.interpolation} --sigma {a.sigma_gamma:g} --range {a.range:g} --samples {est['n']} "
        f"--preprocess {setup['preprocess']} --q {est.get('E_for_q', {}).get('q', '?')} --alpha-E {est['alpha_E']} "
        f"--seed {est['seed']} --json")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    resolved = dict(cfg)

    def write(final: dict | None = None) -> None:
        s = summarize(rows, radius_unit=rows[0]["radius_unit"] if rows else None)
        s["rho"] = rows[0]["rho"] if rows else None
        s["clipped_rate"] = (sum(r["clipped"] for r in rows) / len(rows)) if rows else None
        res = {"command": cmd, "E_command": e_cmd, "E_estimate": {k: est.get(k) for k in (
                   "E", "q_E", "q_E_lower", "n", "alpha_E", "quantiles", "split", "setup")},
               "config": (final or {}).get("config", resolved), "C": a.range, "at": a.at,
               "indices_planned": order, "done": len(rows), "finished": final is not None,
               "wall_seconds": time.perf_counter() - t0, "summary": s,
               "cert_acc_at": certified_accuracy(rows, a.at) if rows else None,
               "environment": (final or {}).get("environment"), "model_sha256": (final or {}).get("model_sha256"),
               "rows": rows}
        out.write_text(json.dumps(res, indent=1, default=float))
        if rows:
            out.with_suffix(".md").write_text(table(res))

    def on_row(row: dict) -> None:
        rows.append(row)
        write()
        print(f"[{len(rows)}/{len(order)}] idx {row['index']} y={row['label']} pred={row['prediction']} "
              f"r={row['radius']:.2f} p={row['p_lower']:.3f} {row['seconds']:.1f}s", file=sys.stderr, flush=True)

    resolved["preprocess"] = setup["preprocess"]
    resolved["sequential"] = cfg["sequential"]
    final = pipeline.certify_inputs(cfg, order, on_row)
    write(final)
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
