"""Attacks beside certificates on the held-out set: clean accuracy, empirical robust accuracy (base
classifier and smoothed classifier, attacked with the real transformation inside C) and certified
accuracy at C, plus the standing soundness check (every certified input attacked inside its
certified radius; breaks are listed). Library calls: ``semsmooth_core.attacks.attack_inputs`` and
``semsmooth_core.attacks.soundness_check`` (which certifies with ``pipeline.certify_inputs``).

Sections (each a separate run that fits a few minutes on one CPU core; results merge into
``benchmarks/results/attack_table.json`` and ``.md``):

    OMP_NUM_THREADS=1 python benchmarks/attack_table.py --section rotation --n 20
    OMP_NUM_THREADS=1 python benchmarks/attack_table.py --section rotation_double --n 10
    OMP_NUM_THREADS=1 python benchmarks/attack_table.py --section translation --n 10
    OMP_NUM_THREADS=1 python benchmarks/attack_table.py --section gsmooth --n 12
    OMP_NUM_THREADS=1 python benchmarks/attack_table.py --section audio --n 12

Inputs are evenly spaced over the held-out split (MNIST: 1,000 digits; speech-words: 200 clips).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semsmooth_core.attacks import attack_inputs, soundness_check  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "attack_table.json"
E_ROT = ROOT / "benchmarks" / "results" / "certify_tables.E.rotation_bicubic_vignette-gauss-5-1.json"
E_TRANS = ROOT / "benchmarks" / "results" / "certify_tables.E.translation_bicubic_gauss-5-1.json"
E_AUDIO = ROOT / "benchmarks" / "results" / "audio_speech_cnn.json"
GSMOOTH = {"zoom_blur": 0.02, "defocus_blur": 0.15, "rotational_blur": 5.0, "pixelate": 0.2, "motion_blur": 2.0}


def spaced(n: int, size: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, size - 1, n).round()})


def _E(path: Path) -> tuple[float, float, str]:
    d = json.loads(path.read_text())
    if "E_estimate" in d:
        d = d["E_estimate"]
    return float(d["E"]), float(d["q_E_lower"]), str(path.relative_to(ROOT))


def entry(name: str, model: str, transform: str, C: float, indices: list[int], *, dataset: str = "mnist",
          interpolation: str = "bilinear", base_budget: int = 400, smoothed: dict, certify: dict,
          attack_keys: dict, note: str = "") -> dict:
    """One table row: base attack, smoothed attack, certification + the attack inside each radius."""
    common = {"dataset": dataset, "model": model, "transform": transform, "interpolation": interpolation,
              "attacker_range": C, "seed": 0}
    t0 = time.perf_counter()
    base = attack_inputs({**common, "smoothing": "none", "budget": base_budget}, indices)
    sm = attack_inputs({**common, **smoothed}, indices)
    chk = soundness_check({**common, **certify, **attack_keys}, indices)
    d = len(base["params"])
    cover = C * math.sqrt(d) if certify.get("smoothing") != "gsmooth" else C
    rows = chk["rows"]
    cert_at_C = float(np.mean([r["correct"] and r["radius"] >= cover * (1 - 1e-9) for r in rows]))
    r_grid = [float(v) for v in np.linspace(0, C, 7)]

    def emp(att, r):
        return float(np.mean([r_["prediction"] == r_["label"] and not (r_["broken"] and (
            r_.get("break_linf") is None or r_["break_linf"] <= r + 1e-12)) for r_ in att["rows"]]))

    curve = {"r": r_grid,
             "certified": [float(np.mean([r_["correct"] and r_["radius"] >= r * (math.sqrt(d) if cover != C else 1)
                                          * (1 - 1e-9) and (r > 0 or r_["radius"] > 0) for r_ in rows]))
                           for r in r_grid],
             "empirical_base": [emp(base, r) for r in r_grid],
             "empirical_smoothed": [emp(sm, r) for r in r_grid]}
    out = {"name": name, "model": model, "transform": transform, "unit": base["unit"], "C": C, "n": len(indices),
           "indices": indices, "interpolation": interpolation,
           "base": {k: base[k] for k in ("clean_accuracy", "empirical_robust_accuracy", "forward_passes_per_input",
                                         "seconds_per_input")},
           "smoothed": {k: sm[k] for k in ("clean_accuracy", "empirical_robust_accuracy", "forward_passes_per_input",
                                           "seconds_per_input", "target")},
           "certified": {"smoothing": certify.get("smoothing"), "accuracy_at_C": cert_at_C,
                         "clean_accuracy": chk["certify_summary"]["clean_accuracy"],
                         "smoothed_accuracy": float(np.mean([r["correct"] for r in rows])),
                         "seconds_per_input": chk["certify_summary"]["seconds_per_input"],
                         "radius_unit": chk["certify_summary"]["radius_unit"],
                         "config": {k: v for k, v in chk.get("config", {}).items()} if chk.get("config") else None},
           "soundness": {k: chk[k] for k in ("certified", "broken", "break_rate", "allowed_rate",
                                             "break_rate_lower_bound", "ok", "breaks",
                                             "attack_forward_passes_per_input")},
           "settings": {"smoothed_attack": smoothed, "certify": certify, "attack_keys": attack_keys,
                        "base_budget": base_budget},
           "curve": curve, "note": note, "seconds": time.perf_counter() - t0,
           "rows": {"base": base["rows"], "smoothed": sm["rows"], "certified": rows}}
    print(f"{name}: clean {base['clean_accuracy']:.2f}, empirical base {base['empirical_robust_accuracy']:.2f}, "
          f"smoothed {sm['empirical_robust_accuracy']:.2f}, certified at C {cert_at_C:.2f}, "
          f"breaks {chk['broken']}/{chk['certified']} ({out['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return out


def section(name: str, n: int) -> list[dict]:
    mn = spaced(n, 1000)
    if name == "rotation":
        # parameter smoothing (Thm 4.2): the certificate holds for the ideal rotation; the attack uses
        # the real (bilinear, rounded) one — a break here would show what the ideal claim leaves out
        sm = {"smoothing": "transform", "sigma_gamma": 30.0, "n_predict": 200, "alpha": 0.001, "n_probe": 32,
              "budget": 24 * 32 + 2 * 200}
        cert = {"smoothing": "transform", "sigma_gamma": 30.0, "n0": 50, "n_gamma": 200, "alpha_gamma": 0.001}
        keys = {"attack_n_probe": 32, "attack_budget": 24 * 32 + 2 * 200}
        return [entry(f"rotation ±30° ({m})", m, "rotation", 30.0, mn, smoothed=sm, certify=cert, attack_keys=keys)
                for m in ("mnist_cnn_noise025", "mnist_cnn_rot_noise025")]
    if name == "rotation_double":
        E, q, f = _E(E_ROT)
        sm = {"smoothing": "double", "sigma_gamma": 30.0, "sigma_eps": 0.3, "n_predict": 50, "n_eps": 20,
              "alpha": 0.001, "n_probe": 16, "budget": 16 * 16 + 2 * 50 * 20}
        cert = {"smoothing": "double", "sigma_gamma": 30.0, "sigma_eps": 0.3, "E": E, "q_E_lower": q, "n0": 50,
                "n_gamma": 100, "n_eps": 200, "sequential": "looks", "alpha_gamma": 0.001, "alpha_eps": 0.001,
                "alpha_E": 0.001}
        keys = {"attack_n_predict": 50, "attack_n_eps": 20, "attack_n_probe": 16,
                "attack_budget": 16 * 16 + 2 * 50 * 20}
        return [entry("rotation ±30° (double, bicubic)", "mnist_cnn_rot_vg_noise030", "rotation", 30.0, mn,
                      interpolation="bicubic", smoothed=sm, certify=cert, attack_keys=keys, note=f"E from {f}")]
    if name == "translation":
        E, q, f = _E(E_TRANS)
        sm = {"smoothing": "double", "sigma_gamma": [4.0, 4.0], "sigma_eps": 0.3, "n_predict": 50, "n_eps": 20,
              "alpha": 0.001, "n_probe": 16, "budget": 16 * 16 + 2 * 50 * 20}
        cert = {"smoothing": "double", "sigma_gamma": [4.0, 4.0], "sigma_eps": 0.3, "E": E, "q_E_lower": q,
                "n0": 50, "n_gamma": 100, "n_eps": 200, "sequential": "looks", "alpha_gamma": 0.001,
                "alpha_eps": 0.001, "alpha_E": 0.001}
        keys = {"attack_n_predict": 50, "attack_n_eps": 20, "attack_n_probe": 16,
                "attack_budget": 16 * 16 + 2 * 50 * 20}
        return [entry("translation ±4 px (double, bicubic)", "mnist_cnn_trans_g_noise030", "translation", 4.0, mn,
                      interpolation="bicubic", smoothed=sm, certify=cert, attack_keys=keys, note=f"E from {f}")]
    if name == "gsmooth":
        out = []
        for t, C in GSMOOTH.items():
            sm = {"smoothing": "gsmooth", "n_predict": 200, "alpha": 0.001, "n_probe": 32,
                  "budget": 16 * 32 + 2 * 200}
            cert = {"smoothing": "gsmooth", "n0": 20, "n_gamma": 500, "alpha_gamma": 0.001}
            keys = {"attack_n_probe": 32, "attack_budget": 24 * 32 + 2 * 500}
            out.append(entry(f"{t} ≤ {C:g}", f"gsmooth_{t}_cnn", t, C, mn, base_budget=200, smoothed=sm,
                             certify=cert, attack_keys=keys))
        return out
    if name == "audio":
        E, q, f = _E(E_AUDIO)
        clips = spaced(n, 200)
        sm = {"smoothing": "double", "sigma_gamma": 3.0, "sigma_eps": 0.01, "n_predict": 40, "n_eps": 20,
              "alpha": 0.001, "n_probe": 16, "budget": 16 * 16 + 2 * 40 * 20, "batch_size": 500}
        cert = {"smoothing": "double", "sigma_gamma": 3.0, "sigma_eps": 0.01, "E": E, "q_E_lower": q, "n0": 10,
                "n_gamma": 100, "n_eps": 20, "alpha_gamma": 0.001, "alpha_eps": 0.001, "alpha_E": 0.001,
                "batch_size": 500}
        keys = {"attack_n_predict": 40, "attack_n_eps": 20, "attack_n_probe": 16,
                "attack_budget": 16 * 16 + 2 * 40 * 20}
        return [entry("volume ±3 dB (double)", "speech_cnn", "volume", 3.0, clips, dataset="speech-words",
                      base_budget=200, smoothed=sm, certify=cert, attack_keys=keys, note=f"E from {f}")]
    raise SystemExit(f"unknown section {name!r}")


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def markdown(data: dict) -> str:
    lines = ["| setting | C | model | inputs | clean (base) | empirical robust (base) | smoothed: clean / empirical "
             "robust | certified at C | certified inputs broken inside their radius | s / input (attack, base) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in data["entries"]:
        b, s, c, k = e["base"], e["smoothed"], e["certified"], e["soundness"]
        lo = 0 if e["transform"] in GSMOOTH else -e["C"]
        lines.append(f"| {e['name']} | [{lo:g}, {e['C']:g}] {e['unit']} | `{e['model']}` | {e['n']} | {_pct(b['clean_accuracy'])} | "
                     f"{_pct(b['empirical_robust_accuracy'])} | {_pct(s['clean_accuracy'])} / "
                     f"{_pct(s['empirical_robust_accuracy'])} ({s['target']['kind']}) | {_pct(c['accuracy_at_C'])} "
                     f"({c['smoothing']}) | {k['broken']} / {k['certified']} | {b['seconds_per_input']:.2f} |")
    lines.append("")
    seen: dict[str, list[str]] = {}
    for e in data["entries"]:
        seen.setdefault(e["command"] + (f" — {e['note']}" if e.get("note") else ""), []).append(e["name"])
    lines += [f"- {', '.join(names)}: `{cmd.split(' — ')[0]}`" + (f" — {cmd.split(' — ', 1)[1]}" if " — " in cmd else "")
              for cmd, names in seen.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", default=None, choices=["rotation", "rotation_double", "translation", "gsmooth",
                                                         "audio"])
    ap.add_argument("--n", type=int, default=10, help="held-out inputs, evenly spaced")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the JSON, run nothing")
    a = ap.parse_args()
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.exists() else {"entries": []}
    if a.markdown_only:
        out.with_suffix(".md").write_text(markdown(data))
        print(markdown(data))
        return
    if a.section is None:
        ap.error("--section is required (or --markdown-only)")
    cmd = f"OMP_NUM_THREADS=1 python benchmarks/attack_table.py --section {a.section} --n {a.n}"
    new = section(a.section, a.n)
    for e in new:
        e["command"] = cmd
        e["section"] = a.section
    names = {e["name"] for e in new}
    data["entries"] = [e for e in data["entries"] if e["name"] not in names] + new
    order = ["rotation", "rotation_double", "translation", "gsmooth", "audio"]
    data["entries"].sort(key=lambda e: order.index(e.get("section", "audio")))
    from semsmooth_core.repro import environment

    data["environment"] = environment()
    data["machine"] = "2-core CPU shared with other work (no GPU), OMP_NUM_THREADS=1"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
