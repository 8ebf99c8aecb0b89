"""GSmooth tables on the embedded MNIST held-out split (planned for a 2-core CPU: minutes).

Table 1 form: certified accuracy at stated radii per transformation — resolvable (Gaussian blur
over the kernel variance with exponential / uniform / folded-Gaussian smoothing, TSS radii;
brightness, contrast and the 2-D brightness + contrast by parameter smoothing, Fischer Thm 4.2 /
App. B, on the ideal transform: the 2-D row states ‖(c, b)‖_∞ < a, the largest box inside the
certified Mahalanobis ellipse, as GSmooth's Table 1 does) and
non-resolvable (zoom / defocus / rotational / motion blur, pixelate: GSmooth surrogate + augmented noise;
two radii side by side: ``radius_real``, the SOUND radius on the real, k/255-rounded transformation
(exact latent distance on a grid plus a proven bound between grid points, gsmooth/sound.py), and
``radius_surrogate``, the corrected radius R_r of Thm 3, an ESTIMATE because M and ε are grid estimates).
Every row says whether its radius is sound (``sound``).
Table 2 form: empirical accuracy under a search of the REAL transformation inside the stated
radius (grid + random, worst of k, PREDICT) beside certified accuracy, and every certified input
that broke.

    OMP_NUM_THREADS=1 python -m benchmarks.gsmooth_tables            # ~5-13 min on the shared 2-core CPU
    python -m benchmarks.gsmooth_tables --images 12 --n 300 --attack-images 6   # ~2 min
    OMP_NUM_THREADS=1 python -m benchmarks.gsmooth_tables --sections photometric  # only those rows (~2 min),
                                                    # merged into the existing --out JSON / --md table
    OMP_NUM_THREADS=1 python scripts/gsmooth_tables.py --sections nonresolvable --transforms zoom_blur,defocus_blur
                                                    # only those GSmooth rows; the other rows are kept

Writes JSON (``--out``) and prints the two tables as Markdown.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

from semsmooth_core.data.embedded import embedded_mnist  # noqa: E402
from semsmooth_core.gsmooth.experiments import accuracy_at, attack_rows, certify_rows  # noqa: E402
from semsmooth_core.gsmooth.surrogate import load_surrogate  # noqa: E402
from semsmooth_core.models import load_model  # noqa: E402
from semsmooth_core.repro import environment, seed_everything  # noqa: E402
from semsmooth_core.smoothing import certify_transform  # noqa: E402
from semsmooth_core.transforms import get  # noqa: E402
from semsmooth_core.smoothing import box_halfwidth  # noqa: E402

# stated radii per transformation (transform units), chosen on the scale of what the method certifies
NONRES_RADII = {"zoom_blur": [0.0, 0.01, 0.02, 0.03], "defocus_blur": [0.0, 0.1, 0.15, 0.3],
                "rotational_blur": [0.0, 2.0, 5.0, 10.0], "pixelate": [0.0, 0.1, 0.2, 0.4],
                "motion_blur": [0.0, 1.0, 2.0, 4.0]}
ATTACK_RADIUS_INDEX = 2
RESOLVABLE = [("exp", 1.0), ("uniform", 4.0), ("folded_gaussian", 1.5)]
BLUR_RADII = [0.0, 1.0, 2.0, 4.0]
# parameter smoothing of the composable photometric transforms (σ per parameter, stated radii);
# brightness_contrast: radii are half-widths a of the box |c| <= a (log-factor), |b| <= a (pixel scale)
PHOTOMETRIC = [("brightness", [0.3], [0.0, 0.2, 0.4, 0.5]),
               ("contrast", [0.5], [0.0, 0.25, 0.5, 1.0]),
               ("brightness_contrast", [0.5, 0.3], [0.0, 0.2, 0.4, 0.5])]
SECTIONS = ("blur", "nonresolvable", "photometric")


def _sound(row: dict) -> str:
    """What a row's main radius is: sound, an estimate, or exact only for the ideal transform."""
    sec = _section(row)
    if sec == "nonresolvable":
        return "yes (radius_real)" if row.get("sound", False) else "no (estimate)"
    if sec == "blur":
        return "no (estimate: truncated kernel, k/255 rounding not bounded)"
    return "ideal ψ only (no clamping/rounding)"


def _section(row: dict) -> str:
    if row.get("section"):
        return row["section"]
    return "blur" if row["transformation"] == "gaussian_blur" else "nonresolvable"


def photometric_rows(model, model_name, xs, ys, n0, n, alpha, g):
    """Certificates of Fischer Thm 4.2 (App. B for the 2-D Σ) on the ideal transform (no clamping or
    rounding: exact for these additive ψ), accuracy at the stated radii."""
    rows_out = []
    for name, sigma, radii in PHOTOMETRIC:
        t = get(name)
        sig = sigma[0] if len(sigma) == 1 else sigma
        rows = []
        for i in range(xs.shape[0]):
            c = certify_transform(model, xs[i], name, sig, n0, n, alpha, generator=g, quantize=False)
            r = c.radius if t.dim == 1 else box_halfwidth(c.radius, sig, t.dim)
            rows.append({"prediction": c.label, "correct": c.label == int(ys[i]), "radius": r,
                         "radius_certificate": c.radius})
        row = {"transformation": name, "type": "resolvable", "section": "photometric",
               "method": f"Thm 4.2 N(0, {'diag' if t.dim > 1 else ''}({', '.join(f'{v:g}' for v in sigma)})²)",
               "unit": t.units[0] if t.dim == 1 else "‖(c, b)‖_∞ box: log-factor, pixel scale",
               "model": model_name, "certified_accuracy": accuracy_at(rows, radii),
               "median_radius": float(torch.tensor([r["radius"] for r in rows]).median())}
        if t.dim > 1:
            row["median_mahalanobis_radius"] = float(torch.tensor([r["radius_certificate"] for r in rows]).median())
        rows_out.append(row)
        print(f"{name}: {row['certified_accuracy']}", file=sys.stderr, flush=True)
    return rows_out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--attack-images", type=int, default=15)
    p.add_argument("--n0", type=int, default=20)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--sigma2", type=float, default=0.5)
    p.add_argument("--blur-model", default="mnist_cnn_noise025")
    p.add_argument("--transforms", default="zoom_blur,defocus_blur,rotational_blur,pixelate,motion_blur")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help="rows to compute: blur, nonresolvable, photometric (comma list); the other rows of "
                        "an existing --out are kept")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gsmooth_tables.json"))
    p.add_argument("--md", default=str(REPO / "benchmarks" / "results" / "gsmooth_tables.md"),
                   help="also write the Markdown tables here ('' to skip)")
    a = p.parse_args(argv)
    sections = [v for v in a.sections.split(",") if v]
    if not sections or any(v not in SECTIONS for v in sections):
        p.error(f"--sections takes a comma list of {', '.join(SECTIONS)}")
    torch.set_num_threads(a.threads)
    g = seed_everything(a.seed)
    x, y = embedded_mnist("heldout")
    xs, ys = x[: a.images], y[: a.images]
    out = {"settings": vars(a), "environment": environment(), "table1": [], "table2": []}
    t0 = time.perf_counter()

    blur = get("gaussian_blur")
    model, _ = load_model(a.blur_model)
    for dist, scale in (RESOLVABLE if "blur" in sections else []):
        rows = certify_rows(model, blur, xs, ys, a.n0, a.n, a.alpha, dist=dist, scale=scale, generator=g)
        out["table1"].append({"transformation": "gaussian_blur", "type": "resolvable", "method": f"{dist}({scale:g})",
                              "unit": blur.units[0], "model": a.blur_model, "sound": False,
                              "certified_accuracy": accuracy_at(rows, BLUR_RADII),
                              "median_radius": float(torch.tensor([r["radius"] for r in rows]).median())})
        print(f"gaussian_blur {dist}: {out['table1'][-1]['certified_accuracy']}", file=sys.stderr, flush=True)

    if "photometric" in sections:
        # own generator: the same numbers whether run alone (--sections photometric) or in the full run,
        # and the full run's other rows keep their random streams
        gp = torch.Generator().manual_seed(a.seed + 1000)
        out["table1"] += photometric_rows(model, a.blur_model, xs, ys, a.n0, a.n, a.alpha, gp)

    run_transforms = [v for v in a.transforms.split(",") if v] if "nonresolvable" in sections else []
    for name in run_transforms:
        t_row = time.perf_counter()
        t = get(name)
        sur, card = load_surrogate(name)
        clf, _ = load_model(f"gsmooth_{name}_cnn")
        s1 = t.default_sigma[0]
        rows = certify_rows(clf, t, xs, ys, a.n0, a.n, a.alpha, sur=sur, sigma1=s1, sigma2=a.sigma2, generator=g)
        radii = NONRES_RADII[name]
        out["table1"].append({
            "transformation": name, "type": "non-resolvable", "method": f"GSmooth(σ1={s1:g}, σ2={a.sigma2:g})",
            "unit": t.units[0], "model": f"gsmooth_{name}_cnn",
            "sound": all(bool(r.get("sound", False)) for r in rows),
            "certified_accuracy": accuracy_at(rows, radii),                      # radius = radius_real (sound)
            "certified_accuracy_surrogate": accuracy_at(rows, radii, key="radius_surrogate"),   # R_r, estimate
            "median_radius": float(torch.tensor([r["radius"] for r in rows]).median()),
            "median_radius_surrogate": float(torch.tensor([r.get("radius_surrogate", 0.0) for r in rows]).median()),
            "median_between_term": float(torch.tensor([r["radius_real_bound"]["between_term"] for r in rows
                                                       if "radius_real_bound" in r] or [float("nan")]).median()),
            "median_real_cells": float(torch.tensor([float(r["radius_real_bound"]["cells"]) for r in rows
                                                     if "radius_real_bound" in r] or [float("nan")]).median()),
            "median_seconds": float(torch.tensor([r["seconds"] for r in rows]).median()),
            # inputs where the estimate claims more than the proof: radius_surrogate > radius_real
            "surrogate_above_real": sum(1 for r in rows if r["prediction"] != -1 and
                                        r.get("radius_surrogate", 0.0) > r.get("radius_real", 0.0) + 1e-9),
            "median_M": float(torch.tensor([r["M"] for r in rows if "M" in r] or [float("nan")]).median()),
            "median_eps": float(torch.tensor([r["eps"] for r in rows if "eps" in r] or [float("nan")]).median()),
            "heldout_eps_card": card.get("approximation_error_heldout", {}).get("eps_mean")})
        print(f"{name}: {out['table1'][-1]['certified_accuracy']}", file=sys.stderr, flush=True)
        k = a.attack_images
        r_att = radii[ATTACK_RADIUS_INDEX]
        att = attack_rows(clf, sur, t, xs[:k], ys[:k], rows[:k], r_att, s1, a.sigma2, a.alpha, generator=g)
        att.pop("per_input")
        out["table2"].append({"transformation": name, "unit": t.units[0], **att})
        out["table1"][-1]["seconds"] = time.perf_counter() - t_row          # certificates + attack
        out["table1"][-1]["settings"] = {k: getattr(a, k) for k in ("images", "attack_images", "n0", "n", "alpha",
                                                                    "sigma2", "seed")}
        print(f"{name} attack: {att}", file=sys.stderr, flush=True)
    out["seconds"] = time.perf_counter() - t0
    out["seconds_per_section"] = {sec: out["seconds"] for sec in sections}

    old_path = Path(a.out)
    all_transforms = set(run_transforms) >= set(NONRES_RADII)
    if (set(sections) != set(SECTIONS) or not all_transforms) and old_path.exists():
        # keep the rows of the sections not run now (same order: blur, photometric, non-resolvable) and,
        # with a --transforms subset, the non-resolvable rows of the other transforms (the table can be
        # rebuilt in parts that each fit a few minutes)
        old = json.loads(old_path.read_text())
        keep = [r for r in old.get("table1", []) if _section(r) not in sections or
                (_section(r) == "nonresolvable" and r["transformation"] not in run_transforms)]
        new = out["table1"]
        order = {"blur": 0, "photometric": 1, "nonresolvable": 2}
        t_order = {n: i for i, n in enumerate(NONRES_RADII)}
        out["table1"] = sorted(keep + new, key=lambda r: (order[_section(r)], t_order.get(r["transformation"], 99)))
        out["table2"] = sorted([r for r in old.get("table2", []) if r["transformation"] not in run_transforms] +
                               out["table2"], key=lambda r: t_order.get(r["transformation"], 99))
        others = [sec for sec in SECTIONS if sec not in sections]
        per = {k: v for k, v in (old.get("seconds_per_section") or {"+".join(others): old.get("seconds")}).items()
               if k not in sections}
        per.update(out["seconds_per_section"])
        if "nonresolvable" in per:   # the sum of its rows' times when they were run in parts
            secs = [r.get("seconds") for r in out["table1"] if _section(r) == "nonresolvable"]
            if secs and all(v is not None for v in secs):
                per["nonresolvable"] = sum(secs)
        out["seconds_per_section"] = per
        out["settings_per_section"] = {**(old.get("settings_per_section") or
                                          {sec: old.get("settings") for sec in SECTIONS}),
                                       **{sec: vars(a) for sec in sections}}
        out["seconds"] = sum(v for v in per.values() if v)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    md = io.StringIO()
    with redirect_stdout(md):
        print_tables(out, a)
    sys.stdout.write(md.getvalue())
    if a.md:
        Path(a.md).write_text(md.getvalue())


def print_tables(out: dict, a) -> None:
    print(f"## GSmooth Table 1 form: certified accuracy (%) on the first {a.images} held-out MNIST digits "
          f"(n0={a.n0}, n={a.n}, α={a.alpha})\n")
    print("| transformation | type | smoothing | radii (unit) | certified accuracy (main radius) | sound? | "
          "surrogate radius_surrogate = R_r (estimate) |")
    print("|---|---|---|---|---|---|---|")
    for r in out["table1"]:
        radii = list(r["certified_accuracy"])
        acc = " / ".join(f"{100 * v:.0f}" for v in r["certified_accuracy"].values())
        sacc = " / ".join(f"{100 * v:.0f}" for v in r.get("certified_accuracy_surrogate", {}).values()) or "–"
        print(f"| {r['transformation']} | {r['type']} | {r['method']} | {' / '.join(f'{float(v):g}' for v in radii)} "
              f"({r['unit']}) | {acc} | {_sound(r)} | {sacc} |")
    nonres = [r for r in out["table1"] if _section(r) == "nonresolvable"]
    if nonres:
        print("\nNon-resolvable rows: the main radius is `radius_real`, proven for the real transformation as "
              "stored (clamped, rounded to k/255; bilinear resampling): every severity in [0, radius_real] keeps "
              "the GSmooth classifier's prediction. `radius_surrogate` is R_r of Thm 3 through the surrogate — an "
              "estimate (M and ε on grids).\n")
        print("| transformation | median radius_real (sound) | median radius_surrogate (estimate) | "
              "inputs with radius_surrogate > radius_real | median between-point term (latent) | "
              "median cells bounded | median s / input |")
        print("|---|---|---|---|---|---|---|")
        for r in nonres:
            def f(k):
                v = r.get(k)
                return "–" if v is None else f"{v:.4g}"
            print(f"| {r['transformation']} | {f('median_radius')} {r['unit']} | {f('median_radius_surrogate')} "
                  f"{r['unit']} | {r.get('surrogate_above_real', '–')} | {f('median_between_term')} | "
                  f"{f('median_real_cells')} | {f('median_seconds')} |")
    if any(_section(r) == "photometric" for r in out["table1"]):
        print("\nThm 4.2 rows (brightness, contrast, brightness_contrast): parameter smoothing of the ideal "
              "(unclamped, unrounded) transform — additive, so the radius is exact (no surrogate, no R_r); "
              "brightness_contrast states the box |c| <= a (log-factor), |b| <= a (pixel scale) inside the "
              "certified Mahalanobis ellipse (Fischer App. B), like GSmooth's ‖α‖_∞ radius.")
    print(f"\n## GSmooth Table 2 form: empirical attack on the first {a.attack_images} digits\n")
    print("Certified = radius_real (sound) at least the stated radius.\n")
    print("| transformation | radius | certified accuracy | empirical accuracy under attack | certified but broken |")
    print("|---|---|---|---|---|")
    for r in out["table2"]:
        print(f"| {r['transformation']} | {r['radius']:g} {r['unit']} | {100 * r['certified_accuracy']:.0f}% | "
              f"{100 * r['empirical_accuracy']:.0f}% | {len(r['violations'])} |")
    print(f"\n({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
