"""Fischer Tables 2/3-style certification tables on the embedded MNIST held-out set: double
smoothing (Fischer §6.2) of rotation and translation, bilinear and bicubic, through the shared
runner ``pipeline.certify_inputs`` (the code behind ``python -m semsmooth_core certify``).

One table, several rows. Each invocation certifies one model for every (transform,
interpolation) pair asked for and stores the rows in ``--out`` (JSON) next to the rows of earlier
invocations (a row with the same model weights (sha256), transform, interpolation, settings and
device is replaced; a GPU run of the same settings adds a row; ``--fresh`` starts a new table); ``--out`` with ``.md`` holds the rendered table, every row pointing to the
exact command that made it. Both files are rewritten after EVERY finished image, so a run cut
short keeps its rows (marked "k/N" in the images column); running the same command again
continues such a row (its finished images are kept, not certified again; ``--restart`` drops them).

Whose E (``--E-scope``) and which attacker (``--attacker``): by default (``--E-scope input``) E and
q̲_E are estimated for EACH certified image at certify time (the pipeline's per-input E, sized by
the planner; ``--E-input-samples`` overrides n_E), so the certificate holds for that image;
``--attacker worst-case`` then bounds the error over ALL of C for each sampled β (the sound
branch-and-bound bound, rounding modelled) instead of drawing one γ from C. Rows of different
attacker / E scope are different rows (columns "attacker" and "E scope").

With ``--E-scope dataset`` (the older rows, "E: dataset"), E and q̲_E are fixed BEFORE certifying,
from the error estimator on the TRAINING split with the
same transform, interpolation, σ_γ, attacker range C and preprocessing (never from the images
being certified): from an ``--E-json`` file (``python -m semsmooth_core estimate-error ... --split
train --json``) or, when none matches, estimated here by that same command (``--E-samples``,
``--q``, ``--E-seed``) and saved as ``<out>.E.<transform>_<interp>_<preprocess>.json`` (its
``command`` key rebuilds it; later runs reuse it). An E out of reach of the inner smoothing at
these n's (planner dead end) becomes a "dead end" row instead of a run.

Images: the held-out split is sorted by class, so ``--indices 0:1000:10`` (100 images, 10 per
class) is certified in an interleaved order (0, 100, ..., 900, 10, 110, ...): every prefix of
10·k finished images holds k images of each class. Each image has its own generator seeded by
(seed, index), so the order does not change any row.

Columns (as the paper's Tables 2/3, plus what the certificate depends on): model, transform
(unit), interpolation I, preprocessing P, σ_γ, C, σ_ε, E (q̲_E), ρ (Lemma 4.3), α_γ / α_ε / α_E,
f acc. (base model, clean), g acc. (smoothed: correct, not abstained), certified accuracy at
radius ``--at``, radius percentiles 25/50/75 over certified-correct images († = at the attacker
range C, i.e. clipped), seconds and forward passes per image, n0, n_γ, n_ε, sequential inner
tests, images.

    # rotation (σ_γ 30°, C ±30°, at 20°), 100 images, E from a file:
    OMP_NUM_THREADS=1 python -m benchmarks.certify_tables --model mnist_cnn_rot_vg_noise030 \\
        --transforms rotation --interpolations bilinear --indices 0:1000:10 \\
        --E-json benchmarks/results/certify_rotation_vg.E.json --out benchmarks/results/certify_tables.json
    # translation (σ_γ 4 px, C ±4 px per axis, at 2 px), 50 images, E estimated on the train split:
    OMP_NUM_THREADS=1 python -m benchmarks.certify_tables --model mnist_cnn_trans_g_noise030 \\
        --transforms translation --interpolations bicubic --indices 0:1000:20 --out benchmarks/results/certify_tables.json
    # re-render the .md only; add a row from an older run file (config + rows + command):
    python -m benchmarks.certify_tables --render --out benchmarks/results/certify_tables.json \\
        --import benchmarks/results/certify_rotation_vg.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

# the paper's MNIST settings (Fischer Tables 2-4): σ_γ, attacker range C = [-C, C] per dimension,
# and the radius at which certified accuracy is reported
CONFIGS = {"rotation": {"sigma_gamma": 30.0, "C": 30.0, "at": 20.0},
           "translation": {"sigma_gamma": 4.0, "C": 4.0, "at": 2.0}}
DIMS = {"rotation": 1, "translation": 2}
UNITS = {"rotation": "deg", "translation": "px"}


def interleave(indices: list[int], groups: int = 10) -> list[int]:
    """[0,10,...,990] -> [0,100,...,900,10,110,...]: class-balanced prefixes on a sorted split."""
    k = max(1, len(indices) // groups)
    return [indices[g * k + j] for j in range(k) for g in range(groups) if g * k + j < len(indices)] + \
        indices[groups * k:]


def order_of(spec: str, n_data: int = 1000, sequential_order: bool = False) -> list[int]:
    from semsmooth_core.data.datasets import parse_indices

    sel = parse_indices(spec)
    idx = list(range(n_data))[sel] if isinstance(sel, slice) else [int(i) for i in sel]
    return idx if sequential_order else interleave(idx)


# ---------------------------------------------------------------------------------------------
# E: from a file or from ``estimate-error`` on the training split


def e_args(transform: str, interp: str, sigma: float, C: float, preprocess: str, samples: int, q: float,
           alpha_E: float, seed: int) -> list[str]:
    return ["--dataset", "mnist", "--split", "train", "--transform", transform, "--interpolation", interp,
            "--sigma", f"{sigma:g}", "--range", f"{C:g}", "--samples", str(samples), "--preprocess", preprocess,
            "--q", f"{q:g}", "--alpha-E", f"{alpha_E:g}", "--seed", str(seed)]


def e_matches(est: dict, transform: str, interp: str, sigma: float, C: float, preprocess: str) -> bool:
    s = est.get("setup") or {}
    d = DIMS[transform]
    return (est.get("split") == "train" and s.get("transform") == transform and s.get("interpolation") == interp
            and [float(v) for v in s.get("sigma", [])] == [float(sigma)] * d
            and [[float(a), float(b)] for a, b in (s.get("C") or [])] == [[-float(C), float(C)]] * d
            and s.get("preprocess") == preprocess and s.get("quantize", True) and s.get("norm", "whole") == "whole"
            and float(s.get("upscale", 1.0)) == 1.0)


def resolve_E(a, transform: str, interp: str, sigma: float, C: float, preprocess: str, out: Path) -> dict:
    """The E estimate for one row: the first matching --E-json file, else the cached or a fresh
    ``estimate-error`` run on the train split saved next to ``out``."""
    for f in a.E_json or []:
        est = json.loads(Path(f).read_text())
        if e_matches(est, transform, interp, sigma, C, preprocess):
            return {"file": str(f), **est}
    safe = re.sub(r"[^A-Za-z0-9.]+", "-", preprocess)
    cache = out.parent / f"{out.stem}.E.{transform}_{interp}_{safe}.json"
    args = e_args(transform, interp, sigma, C, preprocess, a.E_samples, a.q, a.alpha_E, a.E_seed)
    cmd = "python -m semsmooth_core estimate-error " + shlex.join(args) + " --json"
    if cache.exists():
        est = json.loads(cache.read_text())
        if est.get("command") == cmd and e_matches(est, transform, interp, sigma, C, preprocess):
            return {"file": str(cache.relative_to(ROOT) if cache.is_relative_to(ROOT) else cache), **est}
    from semsmooth_core.commands import estimate_error

    est = estimate_error.estimate(dataset="mnist", split="train", transform=transform, interpolation=interp,
                                  sigma=[float(sigma)], range_=[float(C)], samples=int(a.E_samples),
                                  preprocess=preprocess, q=float(a.q), alpha_E=float(a.alpha_E), seed=int(a.E_seed))
    est["command"] = cmd
    cache.write_text(json.dumps(est, indent=1, default=float))
    print(f"E estimate {transform} {interp} {preprocess}: E={est['E']:.4f} q_E_lower={est['q_E_lower']:.4f} "
          f"-> {cache}", file=sys.stderr, flush=True)
    return {"file": str(cache.relative_to(ROOT) if cache.is_relative_to(ROOT) else cache), **est}


# ---------------------------------------------------------------------------------------------
# table records


def record(cfg: dict, rows: list[dict], *, command: str, E_est: dict | None, at: float, C: float,
           planned: list[int], finished: bool, extra: dict | None = None) -> dict:
    from semsmooth_core.runs.summary import certified_accuracy, summarize

    s = summarize(rows, radius_unit=rows[0]["radius_unit"] if rows else None)
    rp = s.get("radius_percentiles") or {"25": None, "50": None, "75": None}
    rec = {"model": cfg["model"], "transform": cfg["transform"], "interpolation": cfg["interpolation"],
           "preprocess": cfg.get("preprocess"), "sigma_gamma": cfg["sigma_gamma"], "C": C,
           "sigma_eps": cfg["sigma_eps"], "E": cfg.get("E"), "q_E_lower": cfg.get("q_E_lower"),
           "rho": rows[0]["rho"] if rows else None, "alpha_gamma": cfg["alpha_gamma"],
           "alpha_eps": cfg["alpha_eps"], "alpha_E": cfg["alpha_E"], "n0": cfg["n0"], "n_gamma": cfg["n_gamma"],
           "n_eps": cfg["n_eps"], "sequential": cfg.get("sequential"), "unit": s.get("radius_unit"),
           "f_acc": s.get("clean_accuracy"), "g_acc": s.get("certified_accuracy"), "at": at,
           "cert_acc_at": certified_accuracy(rows, at) if rows else None, "radius_percentiles": rp,
           "clipped_rate": (sum(bool(r.get("clipped")) for r in rows) / len(rows)) if rows else None,
           "abstain_rate": s.get("abstain_rate"), "seconds_per_image": s.get("seconds_per_input"),
           "forward_passes_per_image": s.get("forward_passes_per_input"), "images": len(rows),
           "images_planned": len(planned), "finished": finished, "command": command,
           "E_source": None if E_est is None else {
               "file": E_est.get("file"), "command": E_est.get("command"),
               **{k: E_est.get(k) for k in ("E", "q_E", "q_E_lower", "n", "alpha_E", "seed", "split", "quantiles")}},
           "indices_planned": planned, "config": cfg, "rows": rows}
    rec.update(scope_fields(cfg, rows))
    rec.update(extra or {})
    rec["clipped"] = clip_marks(rec)
    return rec


def scope_fields(cfg: dict, rows: list[dict]) -> dict:
    """Which attacker the rows certify against and whose E they use (records from before these
    keys: the random attacker with one E for the data set), and for a per-input E its spread over
    the rows: median/min/max E, the smallest q̲_E, the planner's cap on E (the largest E the inner
    test passes with 1 % wrong votes) and the share of inputs whose E hit that cap."""
    attacker = cfg.get("attacker") or "random"
    scope = cfg.get("E_scope") or ("dataset" if cfg.get("E") is not None else "input")
    out = {"attacker": attacker, "E_scope": scope}
    if cfg.get("E_input_samples") is not None:
        out["E_input_samples"] = int(cfg["E_input_samples"])
    if scope != "input":
        return out
    from semsmooth_core.runs.pipeline import input_E_plan

    try:
        cap = float(input_E_plan({**pipeline_defaults(), **cfg}).E_cap)
    except Exception:  # noqa: BLE001 - the cap is a label; a config the plan refuses has no rows anyway
        cap = None
    Es = [float(r["E"]) for r in rows if r.get("E") is not None]
    qs = [float(r["q_E_lower"]) for r in rows if r.get("q_E_lower") is not None]
    out.update({"E_cap": cap, "E_per_input": None if not Es else {
        "E_median": float(np.median(Es)), "E_min": min(Es), "E_max": max(Es),
        "q_E_lower_min": min(qs) if qs else None, "q_E_lower_median": float(np.median(qs)) if qs else None,
        "capped_share": None if cap is None else sum(e >= cap * (1 - 1e-6) for e in Es) / len(Es),
        "skipped_share": sum(int(r.get("n_forward") or 0) == 0 for r in rows) / len(rows),
        "sound_share": sum(bool(r.get("sound")) for r in rows) / len(rows)}})
    return out


def pipeline_defaults() -> dict:
    from semsmooth_core.runs.pipeline import DEFAULTS

    return dict(DEFAULTS)


KEY = ("model", "model_sha256", "transform", "interpolation", "preprocess", "sigma_gamma", "C", "sigma_eps", "n0",
       "n_gamma", "n_eps", "sequential", "alpha_gamma", "alpha_eps", "alpha_E", "attacker", "E_scope", "E_input_samples")


def device_of(rec: dict) -> str:
    """Where a row ran: "cpu" or the GPU's name (rows from before this field: their environment)."""
    return str(rec.get("device") or (rec.get("environment") or {}).get("device") or "cpu")


def key(rec: dict) -> tuple:
    """Rows of the same model weights, settings and device replace each other; anything else adds a
    row (a GPU run of the same settings sits beside the CPU run)."""
    dflt = {"attacker": "random", "E_scope": "dataset"}  # records from before these keys
    return tuple(str(rec.get(k, dflt.get(k))) for k in KEY) + (device_of(rec),)


def import_old(path: str) -> dict:
    """A record from an older single-row run file (config, rows, command, E_command, at, C)."""
    d = json.loads(Path(path).read_text())
    cfg = d["config"]
    E_est = dict(d.get("E_estimate") or {})
    E_est.update({"file": d.get("E_file"), "command": d.get("E_command")})
    return record(cfg, d["rows"], command=d["command"], E_est=E_est, at=float(d.get("at", 20.0)),
                  C=float(d.get("C", cfg["attacker_range"][0][1])), planned=d.get("indices_planned", []),
                  finished=bool(d.get("finished", True)),
                  extra={"imported_from": path, "wall_seconds": d.get("wall_seconds"),
                         "model_sha256": d.get("model_sha256"), "environment": d.get("environment")})


def seconds(rec: dict) -> str:
    """The T column: seconds per image (3 significant digits) and the device, e.g. "17.1 (CPU)"."""
    t = rec.get("seconds_per_image")
    if t is None:
        return "–"
    dev = device_of(rec)
    dev = "CPU" if dev == "cpu" else dev.replace("NVIDIA ", "").split()[0]
    return f"{t:#.3g} ({dev})"


def device_name() -> str:
    """This run's device as the environment records it: "cpu" or the GPU's name."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def clip_marks(rec: dict) -> dict:
    """† per percentile: the value is the radius of a certified-correct row that was clipped to the
    attacker range (rotation: C; translation: the ℓ2 norm of the box corner, C·√2)."""
    ok = [x for x in rec.get("rows") or [] if x["correct"] and int(x["prediction"]) != -1]
    return {k: v is not None and any(x.get("clipped") and abs(float(x["radius"]) - v) < 1e-9 for x in ok)
            for k, v in rec["radius_percentiles"].items()}


def markdown(records: list[dict]) -> str:
    def f(v, clip=False):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}{'†' if clip else ''}"

    cmds: list[str] = []
    lines = ["Double smoothing (Fischer §6.2; table in the form of the paper's Tables 2/3) on the embedded MNIST "
             "held-out set, `benchmarks/certify_tables.py`; model (sha256 prefix of the weights) as in "
             "assets/README.md.", "",
             "| model | transform | I | P | σ_γ | C | σ_ε | attacker | E scope | E (q̲_E) | ρ | α_γ / α_ε / α_E | "
             "f acc. | g acc. | cert. acc. @r | 25th | 50th | 75th | T [s/img] | fwd/img | n0 | n_γ | n_ε | seq. | "
             "images | cmd |",
             "|" + "---|" * 26]
    for r in records:
        if r["command"] not in cmds:
            cmds.append(r["command"])
        ref = f"[{cmds.index(r['command']) + 1}]"
        u = UNITS.get(r["transform"], "")
        sha = f" ({r['model_sha256'][:7]})" if r.get("model_sha256") else ""
        head = f"| {Path(str(r['model'])).stem}{sha} | {r['transform']} ({u}) | {r['interpolation'][:3]}. | {r.get('preprocess')} | "
        att, scope, E_txt = scope_cells(r)
        if "error" in r:
            lines.append(head + f"{r['sigma_gamma']:g} | ±{r['C']:g} | {r['sigma_eps']:g} | {att} | {scope} | "
                         f"{E_txt} | dead end: {r['error']} |" + " |" * 14 + f" {ref} |")
            continue
        p = r["radius_percentiles"]
        c = clip_marks(r)
        imgs = f"{r['images']}" if r["finished"] else f"{r['images']}/{r['images_planned']}"
        lines.append(
            head + f"{r['sigma_gamma']:g} | ±{r['C']:g} | {r['sigma_eps']:g} | {att} | {scope} | {E_txt} | "
            f"{rho_cell(r)} | {r['alpha_gamma']:g} / {r['alpha_eps']:g} / {r['alpha_E']:g} | {f(r['f_acc'])} | "
            f"{f(r['g_acc'])} | {f(r['cert_acc_at'])} @{r['at']:g} | {f(p['25'], c['25'])} | {f(p['50'], c['50'])} | "
            f"{f(p['75'], c['75'])} | {seconds(r)} | "
            f"{r['forward_passes_per_image']:.0f} | {r['n0']} | {r['n_gamma']} | {r['n_eps']} | "
            f"{r['sequential'] or 'off'} | {imgs} | {ref} |")
    lines += ["", "attacker: random = the parameter is drawn from C (Fischer's distributional attacker; the "
              "certificate holds with probability q̲_E over that draw), worst-case = any parameter in C (E bounds "
              "the largest interpolation error over all of C for each sampled β, by the sound branch-and-bound "
              "bound with rounding to k/255 modelled). E scope: dataset average = one E estimated on the training split "
              "(the certificate holds on average over inputs like the training set), input = E and q̲_E "
              "estimated for each certified image at certify time (E column: median [min–max] over the images, "
              "smallest q̲_E; cap = the largest E the inner test passes with 1 % wrong votes, and the share of "
              "images whose E hit it).", "", "Radius percentiles over certified-correct images (rotation: degrees; translation: ℓ2 norm of "
              "the 2-D shift in pixels, σ_γ per axis, C = [-C, C]² px); † = clipped to the attacker range (as "
              "the paper does; rotation C, translation the box corner C·√2). cert. acc. @r: correct and "
              "radius ≥ r. T: seconds per image and where the row ran: CPU = the project's shared 2-core "
              "machine (threads in the command; other jobs ran at the same time), a GPU by its name (the "
              "same command, `--threads 16`, on a lent machine; the GPU draws other random numbers than "
              "the CPU, so its row is a second sample of the same experiment). images k/N: run still "
              "going or stopped after k of N.", ""]
    for i, cmd in enumerate(cmds, 1):
        note = (" (scripts/certify_rotation_vg.py has since been merged into benchmarks/certify_tables.py: same "
                "runner, options and E file)") if "certify_rotation_vg.py" in cmd else ""
        gpu = [r for r in records if r["command"] == cmd and device_of(r) != "cpu"]
        if gpu:
            env = gpu[0].get("environment") or {}
            note += (f" (on a lent {device_of(gpu[0])}, Python {env.get('python')}, torch {env.get('torch')}; "
                     "the row was added to this file from that machine's output)")
        lines.append(f"- [{i}] `{cmd}`{note}")
        es = [r["E_source"] for r in records if r["command"] == cmd and r.get("E_source")]
        for e in es:
            if e.get("command"):
                lines.append(f"  - E{' (' + e['file'] + ')' if e.get('file') else ''}: `{e['command']}`")
    return "\n".join(lines)


def rho_cell(r: dict) -> str:
    """ρ (Lemma 4.3): one value for a dataset E; with a per-input E each image has its own ρ
    (its q̲_E), shown as min–max over the images."""
    rs = [float(x["rho"]) for x in r.get("rows") or [] if x.get("rho") is not None]
    if not rs:
        return "–" if r.get("rho") is None else f"{r['rho']:.2f}"
    lo, hi = min(rs), max(rs)
    return f"{lo:.2f}" if hi - lo < 0.005 else f"{lo:.2f}–{hi:.2f}"


def scope_cells(r: dict) -> tuple[str, str, str]:
    """The attacker, E scope and E (q̲_E) cells of one record."""
    att = r.get("attacker") or "random"
    scope = r.get("E_scope") or "dataset"
    if scope == "dataset":
        return att, "dataset average", f"{r['E']:.3f} ({r['q_E_lower']:.3f})"
    e = r.get("E_per_input")
    cap = r.get("E_cap")
    if not e:
        return att, "input", "–" if cap is None else f"cap {cap:.3f}"
    txt = f"{e['E_median']:.3f} [{e['E_min']:.3f}–{e['E_max']:.3f}] (≥{e['q_E_lower_min']:.3f})"
    if cap is not None:
        txt += f"; cap {cap:.3f}, {100 * e['capped_share']:.0f} % at cap"
    return att, "input", txt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist_cnn_rot_vg_noise030", help="shipped name or checkpoint path")
    ap.add_argument("--transforms", default="rotation", help="comma list: rotation, translation")
    ap.add_argument("--interpolations", default="bilinear", help="comma list: bilinear, bicubic, nearest")
    ap.add_argument("--indices", default="0:1000:10", help="held-out indices START:STOP:STEP or a comma list")
    ap.add_argument("--sequential-order", action="store_true", help="certify in index order (no interleaving)")
    ap.add_argument("--sigma-gamma", type=float, default=None, help="default: 30 deg rotation, 4 px translation")
    ap.add_argument("--range", type=float, default=None, help="attacker range C=[-R,R] per dimension "
                    "(radius clipped to R); default 30 deg / 4 px")
    ap.add_argument("--at", type=float, default=None, help="certified accuracy at this radius (default 20 deg / 2 px)")
    ap.add_argument("--sigma-eps", type=float, default=None, help="default: the model card's sigma_eps")
    ap.add_argument("--preprocess", default="auto", help="default: the model card's preprocessing")
    ap.add_argument("--attacker", default="random", choices=("random", "worst-case"),
                    help="random: the parameter drawn from C; worst-case: any parameter in C (needs --E-scope input)")
    ap.add_argument("--E-scope", default="input", choices=("input", "dataset"),
                    help="input (default): E and q̲_E estimated per certified image at certify time; dataset: one "
                         "E from the training split (--E-json or estimated here)")
    ap.add_argument("--E-input-samples", type=int, default=None,
                    help="per-input E: estimation samples n_E per image (default: the planner's)")
    ap.add_argument("--E-json", action="append", default=None,
                    help="estimate-error --json output on the train split (repeatable; matched per row)")
    ap.add_argument("--q", type=float, default=0.95, help="E estimated here: q̲_E target (default 0.95)")
    ap.add_argument("--E-samples", type=int, default=20000)
    ap.add_argument("--E-seed", type=int, default=0)
    ap.add_argument("--n0", type=int, default=50)
    ap.add_argument("--n-gamma", type=int, default=100)
    ap.add_argument("--n-eps", type=int, default=200)
    ap.add_argument("--alpha-gamma", type=float, default=0.001)
    ap.add_argument("--alpha-eps", type=float, default=0.001)
    ap.add_argument("--alpha-E", type=float, default=0.001)
    ap.add_argument("--sequential", default="looks", help="sequential inner tests: looks | mixture | off")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "certify_tables.json"))
    ap.add_argument("--restart", action="store_true",
                    help="certify all images again instead of continuing an unfinished row of the same settings")
    ap.add_argument("--fresh", action="store_true", help="start a new table instead of adding rows to --out")
    ap.add_argument("--import", dest="imports", action="append", default=[],
                    help="add a row from an older single-row run file (config, rows, command)")
    ap.add_argument("--merge", action="append", default=[],
                    help="add the records of another table file (a run written to its own --out so that two "
                         "runs can go at once); their commands are shown with this --out")
    ap.add_argument("--render", action="store_true", help="only (re)write the table from --out (and --import)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from semsmooth_core.runs import pipeline
    from semsmooth_core.models import load_model
    from semsmooth_core.runs import model_sha256
    from semsmooth_core.validation import SemsmoothError

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = {"records": []}
    if out.exists() and not a.fresh:
        table = json.loads(out.read_text())
    records: list[dict] = table["records"]

    def put(rec: dict) -> None:
        for i, r in enumerate(records):
            if key(r) == key(rec):
                records[i] = rec
                break
        else:
            records.append(rec)

    def write() -> None:
        out.write_text(json.dumps({"records": records}, indent=1, default=float))
        out.with_suffix(".md").write_text(markdown(records))

    for path in a.imports:
        put(import_old(path))
    for path in a.merge:
        for rec in json.loads(Path(path).read_text())["records"]:
            if f"--out {path}" in rec["command"]:  # a row that run made (not one it had copied)
                rec["command"] = re.sub(r"--out \S+", "--out " + shlex.quote(a.out), rec["command"])
                rec["command"] = rec["command"].replace("python scripts/certify_tables.py",
                                                        "python -m benchmarks.certify_tables")  # since moved
            put(rec)
    if a.render:
        write()
        print(out.with_suffix(".md").read_text())
        return

    _, card = load_model(a.model)
    card = card or {}
    # σ_ε and the preprocessing as the one config resolves them (flag > model card > default)
    from semsmooth_core.runs.config import resolve

    base, _ = resolve({"model": a.model, "sigma_eps": a.sigma_eps, "preprocess": a.preprocess,
                       "estimate_E": True}, card)
    sigma_eps, preprocess = float(base.sigma_eps), base.preprocess
    order = order_of(a.indices, sequential_order=a.sequential_order)
    cmd = f"OMP_NUM_THREADS={a.threads} python -m benchmarks.certify_tables " + shlex.join(sys.argv[1:])
    for tname in a.transforms.split(","):
        dflt = CONFIGS[tname]
        sg = a.sigma_gamma or dflt["sigma_gamma"]
        C = a.range or dflt["C"]
        at = a.at if a.at is not None else dflt["at"]
        for interp in a.interpolations.split(","):
            est = resolve_E(a, tname, interp, sg, C, preprocess, out) if a.E_scope == "dataset" else None
            cfg = {"model": a.model, "transform": tname, "interpolation": interp, "sigma_gamma": sg,
                   "sigma_eps": sigma_eps, "attacker": a.attacker, "E_scope": a.E_scope,
                   "E_input_samples": a.E_input_samples,
                   "E": None if est is None else float(est["E"]),
                   "q_E_lower": None if est is None else float(est["q_E_lower"]),
                   "attacker_range": [[-C, C]] * DIMS[tname], "n0": a.n0, "n_gamma": a.n_gamma,
                   "n_eps": a.n_eps, "alpha_gamma": a.alpha_gamma, "alpha_eps": a.alpha_eps,
                   "alpha_E": a.alpha_E, "preprocess": preprocess,
                   "sequential": None if a.sequential == "off" else a.sequential, "seed": a.seed}
            extra = {"threads": a.threads, "model_card_accuracy": card.get("heldout_clean_accuracy"),
                     "model_sha256": model_sha256(a.model), "device": device_name()}
            try:
                cfg = resolve(cfg, card)[0].to_dict()
            except SemsmoothError as e:  # a dead end (E out of reach) is a result too
                put(record(cfg, [], command=cmd, E_est=est, at=at, C=C, planned=order, finished=True,
                           extra={**extra, "error": str(e).splitlines()[0]}))
                write()
                print(f"{tname} {interp}: dead end: {e}", file=sys.stderr, flush=True)
                continue
            rows: list[dict] = []
            t0 = time.perf_counter()
            probe = record(cfg, [], command=cmd, E_est=est, at=at, C=C, planned=order, finished=False, extra=extra)
            old = next((r for r in records if key(r) == key(probe)), None)
            if old is not None and not a.restart and old.get("indices_planned") == order:
                rows = list(old.get("rows") or [])  # same seed per (seed, index): the same rows again
                t0 -= float(old.get("wall_seconds") or 0.0)
                print(f"{tname} {interp}: continuing, {len(rows)}/{len(order)} images already done",
                      file=sys.stderr, flush=True)
            done = {int(r["index"]) for r in rows}
            todo = [i for i in order if i not in done]
            if not todo:
                print(f"{tname} {interp}: all {len(order)} images done (--restart to certify again)", file=sys.stderr)
                continue

            def on_row(row: dict) -> None:
                rows.append(row)
                put(record(cfg, rows, command=cmd, E_est=est, at=at, C=C, planned=order, finished=False,
                           extra={**extra, "wall_seconds": time.perf_counter() - t0}))
                write()
                print(f"{tname} {interp} [{len(rows)}/{len(order)}] idx {row['index']} y={row['label']} "
                      f"pred={row['prediction']} r={row['radius']:.2f} p={row['p_lower']:.3f} "
                      f"{row['seconds']:.1f}s", file=sys.stderr, flush=True)

            final = pipeline.certify_inputs(cfg, todo, on_row)
            put(record(final["config"], rows, command=cmd, E_est=est, at=at, C=C, planned=order,
                       finished=not final.get("stopped"),
                       extra={**extra, "wall_seconds": time.perf_counter() - t0,
                              "environment": final.get("environment")}))
            write()
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
