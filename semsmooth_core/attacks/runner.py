"""Attacks on dataset inputs: one input (:func:`attack_input`), a list of dataset indices
(:func:`attack_inputs`, the ``attack`` command), the attack inside a certificate's radius
(:func:`attack_certified`, ``certify --attack``) and the standing soundness check
(:func:`soundness_check`).

Every attacked input is ``ψ^I_γ(x)``: the registered transformation with the run's interpolation,
clamped and rounded as the attacker stores it (k/255 for images, int16 for audio). Each input's
attack uses its own generator seeded by (seed, index) only, so a run is deterministic.

``broken`` (attack command): the target's answer at some γ in C is not the true label (an
abstention of a smoothed classifier counts as not correct, as in certified accuracy); an input
already wrong without attack counts as broken and is not searched. Empirical robust accuracy =
the fraction of inputs not broken. For a certificate (``attack_certified``), ``broken`` means the
smoothed classifier's PREDICT returned a class other than the certified one (abstaining is no
contradiction) at a γ inside the certified radius.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from semsmooth_core.attacks.search import Region, search
from semsmooth_core.attacks.targets import KINDS, SmoothedTarget, Target
from semsmooth_core.smoothing import ABSTAIN
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count

DIFFERENTIABLE = ("rotation", "translation", "scaling", "brightness", "contrast", "brightness_contrast", "volume")
"""Transformations whose ideal form is differentiable in γ almost everywhere (the refinement
then follows the gradient; the blur family and pixelate are searched gradient-free)."""

ATTACK_DEFAULTS: dict = {
    "dataset": "mnist", "split": "heldout", "root": None, "model": None, "transform": "rotation",
    "interpolation": "bilinear", "attacker_range": None, "smoothing": "none", "sigma_gamma": None,
    "sigma_eps": 0.25, "sigma2": None, "dist": "exp", "surrogate": None, "n_predict": 1000, "n_eps": 20,
    "alpha": 0.001, "n_probe": 32, "k_worst": 2, "budget": 2000, "refine": "auto", "batch_size": 1000,
    "seed": 0, "device": None, "preprocess": "auto",
}


# --------------------------------------------------------------------------- ranges
def attack_range(t, rng=None) -> list[tuple[float, float]]:
    """The attacker range C per dimension: ``None`` (the transform's default), a number v
    (``[-v, v]`` per dimension, ``[0, v]`` for a severity whose smallest value is 0), one pair
    (1-D), or one entry per dimension (a number or a pair). Checked against the transform's bounds."""
    if rng is None:
        out = [tuple(map(float, r)) for r in t.default_range]
    else:
        items = list(rng) if isinstance(rng, (list, tuple)) else [rng]
        if t.dim == 1 and len(items) == 2 and all(isinstance(v, (int, float)) for v in items):
            items = [tuple(items)]
        if len(items) == 1 and t.dim > 1:
            items = items * t.dim
        if len(items) != t.dim:
            raise SemsmoothError(f"{t.name} has {t.dim} parameter(s); the range needs {t.dim} entries, got {len(items)}")
        out = []
        for v, (blo, _) in zip(items, t.bounds):
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise SemsmoothError(f"a range entry is a number or a pair low:high, got {v!r}")
                lo, hi = float(v[0]), float(v[1])
            else:
                h = float(v)
                if not (math.isfinite(h) and h >= 0):
                    raise SemsmoothError(f"range half-width must be a finite number >= 0, got {v!r}")
                lo, hi = (0.0, h) if blo >= 0 else (-h, h)
            out.append((lo, hi))
    for (lo, hi), (blo, bhi), u in zip(out, t.bounds, t.units):
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise SemsmoothError(f"range [{lo:g}, {hi:g}] of {t.name} is empty or not finite")
        if lo < blo or hi > bhi:
            raise SemsmoothError(f"range [{lo:g}, {hi:g}] {u} is outside {t.name}'s valid values [{blo:g}, {bhi:g}]")
    return out


def parse_range(spec: str | None):
    """CLI ``--range``: ``30`` (±30), ``0:0.3``, ``-4:4,-2:2`` (per dimension), ``4,2``."""
    if spec is None or str(spec).strip() == "":
        return None
    out = []
    try:
        for part in str(spec).split(","):
            if ":" in part:
                a, b = part.split(":")
                out.append((float(a), float(b)))
            else:
                out.append(float(part))
    except ValueError:
        raise SemsmoothError(f"--range takes a half-width (30), low:high (0:0.3) or one per dimension "
                             f"(-4:4,-2:2), got {spec!r}") from None
    return out[0] if len(out) == 1 else out


# --------------------------------------------------------------------------- one input
def _apply_fn(t, x: torch.Tensor, interpolation: str, device):
    xd = x.to(device)

    def apply(params: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        p = params.to(device=device, dtype=torch.float32)
        return t(xd.unsqueeze(0).expand(p.shape[0], *xd.shape), p, interpolation=interpolation, quantize=quantize)

    return apply


def attack_input(target: Target, t, x: torch.Tensor, y: int, region: Region, budget: int, *,
                 generator: torch.Generator | None = None, interpolation: str = "bilinear", k_worst: int = 2,
                 refine: str = "auto", certified: bool = False, stop_when_broken: bool = True) -> dict:
    """Attack one input ``x`` (label or certified class ``y``) with at most ``budget`` forward passes
    (search plus the final predictions at the worst points). Returns the worst parameter, the
    prediction there, the margin (the target's score: logit margin, or the smoothed classifier's
    EoT probability margin), ``broken`` and the forward passes spent. ``stop_when_broken``: the base
    classifier's search ends after the phase in which its margin went below 0 (else the whole
    budget looks for the lowest margin, e.g. "find the worst angle")."""
    budget = check_count("budget", budget)     # n_forward + n_backward <= budget
    k_worst = check_count("k_worst", k_worst)
    t0 = time.perf_counter()
    apply = _apply_fn(t, x, interpolation, target.device)
    final_cost = (target.predict_cost if target.smoothed else 1) * k_worst
    search_budget = budget - final_cost
    if search_budget < target.cost:
        raise SemsmoothError(f"budget {budget} is too small: the {k_worst} final prediction(s) cost {final_cost} "
                             f"and one candidate {target.cost} forward passes")
    target.prepare(generator)

    @torch.no_grad()
    def score(params):
        return target.score(apply(params), y)

    def _grad(params):
        with torch.enable_grad():
            p = params.to(torch.float32).clone().requires_grad_(True)
            ideal = apply(p, quantize=False)
            xs = ideal + (t.quantize(ideal.detach()) - ideal).detach()   # straight-through rounding
            s = target.score(xs.to(torch.float32), y)
            (g,) = torch.autograd.grad(s.sum(), p)
        return s.detach(), torch.nan_to_num(g.detach())

    use_grad = refine == "gradient" or (refine == "auto" and t.name in DIFFERENTIABLE)
    grad = _grad if use_grad else None
    res = search(score, region, search_budget, cost=target.cost, generator=generator, k=4, grad=grad,
                 max_rounds=0 if refine == "none" else 12, stop_below=(0.0 if stop_when_broken and not target.smoothed and not certified else None))
    worst, wscores = res.worst(k_worst, None if res.spacing is None else res.spacing)
    n_fwd = res.n_forward
    preds = []
    for p in worst:
        xa = apply(p[None])[0]
        r = target.predict(xa, generator)
        n_fwd += int(r["n_forward"])
        preds.append(r)
    labels = [int(r["label"]) for r in preds]
    if certified:
        bad = [i for i, lab in enumerate(labels) if lab != y and lab != ABSTAIN]
    else:
        bad = [i for i, lab in enumerate(labels) if lab != y]
    pick = bad[0] if bad else 0
    # the smallest ‖γ‖_∞ at which a break was seen: base classifier, any scored point with margin < 0;
    # smoothed, the PREDICT-checked points (for curves of accuracy under attacks in [−r, r]^d)
    norms = []
    if not target.smoothed and not certified:
        hit = res.scores < 0
        norms += res.params[hit].abs().amax(dim=1).tolist() if bool(hit.any()) else []
    norms += [float(worst[i].abs().max()) for i in bad]
    out = {"broken": bool(bad), "n_candidates": int(torch.isfinite(res.scores).sum()),
           "n_forward": int(n_fwd), "n_backward": int(res.n_backward),
           "break_linf": min(norms) if norms else None, "seconds": time.perf_counter() - t0}
    if worst.shape[0]:
        out.update({"worst_param": [float(v) for v in worst[pick]], "worst_prediction": labels[pick],
                    "margin": float(wscores[pick]), "worst_of_k": [[float(v) for v in w] for w in worst],
                    "worst_of_k_predictions": labels})
        if target.smoothed:
            out["worst_vote_margin"] = float(preds[pick]["margin"])
            out["worst_counts"] = preds[pick]["counts"]
    else:
        out.update({"worst_param": None, "worst_prediction": None, "margin": None})
    return out


# --------------------------------------------------------------------------- configuration
def _with_defaults(config: dict) -> dict:
    c = dict(ATTACK_DEFAULTS)
    c.update({k: v for k, v in dict(config).items() if v is not None or k not in c})
    return c


def validate_attack_config(config: dict) -> dict:
    """Check an attack configuration (one-line SemsmoothError); fill defaults and the range C."""
    from semsmooth_core import transforms
    from semsmooth_core.data.datasets import dataset_names

    c = _with_defaults(config)
    if c["smoothing"] in (None, "", "base"):
        c["smoothing"] = "none"
    if c["smoothing"] not in KINDS:
        raise SemsmoothError(f"unknown smoothing {c['smoothing']!r} for an attack; use {', '.join(KINDS)}")
    if c["dataset"] not in dataset_names():
        raise SemsmoothError(f"unknown dataset {c['dataset']!r}; known: {', '.join(dataset_names())}")
    if not c.get("model"):
        raise SemsmoothError("no model given (a shipped name or a checkpoint path)")
    t = transforms.get(c["transform"])
    if c["interpolation"] not in t.interpolations:
        raise SemsmoothError(f"{t.name} supports interpolation {', '.join(t.interpolations)}, not {c['interpolation']!r}")
    from semsmooth_core.gsmooth import certify as gcert

    if c["smoothing"] == "gsmooth" and not gcert.handles(t.name):
        raise SemsmoothError(f"gsmooth smooths the blur family and pixelate, not {t.name}; use transform or double")
    if c["smoothing"] in ("transform", "double") and not t.composable:
        raise SemsmoothError(f"{t.name} does not compose, so {c['smoothing']} smoothing does not apply; use gsmooth")
    c["attacker_range"] = attack_range(t, c["attacker_range"])
    for k in ("n_predict", "n_eps", "n_probe", "k_worst", "budget", "batch_size"):
        check_count(k, c[k])
    check_count("seed", c["seed"], minimum=0)
    check_alpha(c["alpha"])
    if c["refine"] not in ("auto", "gradient", "random", "none"):
        raise SemsmoothError(f"refine must be auto, gradient, random or none, got {c['refine']!r}")
    if c["refine"] == "gradient" and t.name not in DIFFERENTIABLE:
        raise SemsmoothError(f"{t.name} is searched gradient-free (not differentiable in its parameter); "
                             "use --refine auto or random")
    return c


def make_target(c: dict, model, card, preprocess) -> Target:
    """The attacked classifier of a validated attack config (``smoothing`` none | noise | transform |
    double | gsmooth; GSmooth's σ₁/σ₂/surrogate default to the classifier card's, as in certify)."""
    from semsmooth_core import transforms

    t = transforms.get(c["transform"])
    bs = int(c["batch_size"])
    if c["smoothing"] == "none":
        return Target(model, preprocess, bs)
    sg = c["sigma_gamma"] if c["sigma_gamma"] is not None else list(t.default_sigma)
    kw = dict(transform=t, interpolation=c["interpolation"], sigma_gamma=sg, sigma_eps=c["sigma_eps"],
              n_predict=int(c["n_predict"]), n_eps=int(c["n_eps"]), alpha=float(c["alpha"]),
              n_probe=int(c["n_probe"]), batch_size=bs)
    if c["smoothing"] == "gsmooth":
        from semsmooth_core.gsmooth import certify as gcert
        from semsmooth_core.runs.pipeline import gsmooth_defaults

        filled = gsmooth_defaults({**c, "sigma_gamma": c["sigma_gamma"]}, card)
        s1 = filled.get("sigma_gamma", c["sigma_gamma"])
        s1 = float(s1[0] if isinstance(s1, (list, tuple)) else s1)
        if t.name in gcert.RESOLVABLE:
            return SmoothedTarget(model, preprocess, "gsmooth", dist=c["dist"], scale=s1, **kw)
        from semsmooth_core.gsmooth.surrogate import load_surrogate

        sur, _ = load_surrogate(c["surrogate"] or t.name, next(model.parameters()).device)
        s2 = float(c["sigma2"]) if c["sigma2"] is not None else float(filled.get("sigma2", 0.5))
        return SmoothedTarget(model, preprocess, "gsmooth", surrogate=sur, sigma1=s1, sigma2=s2, **kw)
    return SmoothedTarget(model, preprocess, c["smoothing"], **kw)


# --------------------------------------------------------------------------- a dataset
def attack_inputs(config: dict, indices: list[int], on_row: Callable[[dict], None] | None = None,
                  progress=None) -> dict:
    """Attack ``indices`` of the configured dataset. Returns the summary (n, clean_accuracy,
    empirical_robust_accuracy, forward_passes_per_input, seconds_per_input, target, range) and
    ``rows`` (index, label, prediction, broken, worst_param, worst_prediction, margin, n_forward,
    seconds)."""
    from semsmooth_core import transforms
    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.runs.pipeline import _check_modality, input_generator, load_setup

    c = validate_attack_config(config)
    t = transforms.get(c["transform"])
    model, card, pp, device, pp_spec = load_setup(c)
    c["preprocess"] = pp_spec
    target = make_target(c, model, card, pp)
    x_all, y_all = load_dataset(c["dataset"], split=c["split"], root=c["root"], indices=[int(i) for i in indices])
    _check_modality({"smoothing": "attack", "transform": t.name, "dataset": c["dataset"]}, x_all)
    region = Region.box(c["attacker_range"])
    rows = []
    t_run = time.perf_counter()
    for i, (idx, x, y) in enumerate(zip(indices, x_all, y_all)):
        t0 = time.perf_counter()
        gen = input_generator(c["seed"], int(idx))
        clean = target.predict(x, gen)
        row = {"index": int(idx), "label": int(y), "prediction": int(clean["label"])}
        if clean["label"] != int(y):
            row.update({"broken": True, "worst_param": None, "worst_prediction": int(clean["label"]),
                        "margin": None, "note": "wrong without attack (not searched)",
                        "n_forward": int(clean["n_forward"])})
        else:
            a = attack_input(target, t, x, int(y), region, int(c["budget"]), generator=gen,
                             interpolation=c["interpolation"], k_worst=int(c["k_worst"]), refine=c["refine"])
            a["n_forward"] += int(clean["n_forward"])
            a.pop("seconds", None)
            row.update(a)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if on_row is not None:
            on_row(row)
        if progress is not None:
            progress(i + 1, len(indices))
    out = summarize_attack(rows)
    out.update({"transform": t.name, "unit": t.unit, "params": list(t.param_names),
                "attacker_range": [list(r) for r in c["attacker_range"]], "target": target.describe(),
                "budget": int(c["budget"]), "config": c, "wall_seconds": time.perf_counter() - t_run,
                "rows": rows})
    return out


def summarize_attack(rows: list[dict]) -> dict:
    n = len(rows)
    if not n:
        return {"n": 0, "clean_accuracy": None, "empirical_robust_accuracy": None,
                "forward_passes_per_input": None, "seconds_per_input": None}
    return {"n": n,
            "clean_accuracy": float(np.mean([r["prediction"] == r["label"] for r in rows])),
            "empirical_robust_accuracy": float(np.mean([not r["broken"] for r in rows])),
            "forward_passes_per_input": float(np.mean([r["n_forward"] for r in rows])),
            "seconds_per_input": float(np.median([r["seconds"] for r in rows]))}


# --------------------------------------------------------------------------- inside a certificate
def _cert_region(c: dict, t, cert, x, preprocess) -> Region:
    from semsmooth_core import smoothing

    e = cert.extra
    sm = e.get("smoothing", e.get("method", "noise"))
    rng = attack_range(t, c.get("attacker_range")) if sm not in ("gsmooth", "resolvable") else None
    if sm in ("gsmooth", "resolvable"):
        xi = e.get("xi_max")
        hi = float(cert.radius) if xi is None else min(float(cert.radius), float(xi))
        return Region.box([(0.0, hi)], radius=hi)
    if sm == "noise":
        xin = preprocess(x.unsqueeze(0))[0] if preprocess is not None else x
        r = float(cert.radius)

        def feasible(params):
            with torch.no_grad():
                xs = t(x.unsqueeze(0).expand(params.shape[0], *x.shape), params.to(torch.float32),
                       interpolation=c.get("interpolation", "bilinear"))
                xs = preprocess(xs) if preprocess is not None else xs
                return ((xs - xin.unsqueeze(0)).flatten(1).norm(dim=1) < r).cpu()

        # focus the search: along each axis, the largest |γ_i| of a fine scan that is feasible (no model
        # calls; feasibility is still checked for every candidate), widened by half, within C
        box = []
        for i, (lo, hi) in enumerate(rng):
            scan = torch.linspace(lo, hi, 129, dtype=torch.float64)
            p = torch.zeros(scan.numel(), t.dim, dtype=torch.float64)
            p[:, i] = scan
            ok = feasible(p)
            reach = float(scan[ok].abs().max()) if bool(ok.any()) else 0.0
            step = (hi - lo) / 128
            box.append((max(lo, -1.5 * reach - step), min(hi, 1.5 * reach + step)))
        return Region.box(box, feasible=feasible)
    sg = c["sigma_gamma"] if c.get("sigma_gamma") is not None else list(t.default_sigma)
    cov, iso = smoothing.parse_sigma(sg, t.dim)
    return Region.box(rng, radius=float(cert.radius), cov=None if iso else cov)


def attack_certified(config: dict, x: torch.Tensor, label: int, cert, model, preprocess,
                     generator: torch.Generator | None = None) -> dict:
    """``certify --attack``: search the real transformation inside the certified region of ``cert``
    (its radius ∩ the attacker range C; for noise smoothing the γ in C with ‖P(ψ_γ(x)) − P(x)‖₂ < R)
    and ask the same smoothed classifier (PREDICT, n = the certificate's n or ``attack_n_predict``;
    double: n_ε = ``attack_n_eps`` or the certificate's; α = alpha_gamma) at the worst points. Config
    keys ``attack_budget``, ``attack_n_probe``, ``attack_k_worst``, ``attack_refine`` tune the search. Returns row fields ``attack_broken`` (None when there is nothing to attack: an
    abstention, k-smoothing), ``attack_param``, ``attack_prediction``, ``attack_n_forward``.
    ``label`` (the true label) is not used: the attack is on the certified class."""
    from semsmooth_core import transforms

    sm = config.get("smoothing", "double")
    if cert.label == ABSTAIN:
        return {"attack_broken": None, "attack_param": None, "attack_prediction": None, "attack_n_forward": 0}
    if sm == "ksmooth":
        return {"attack_broken": None, "attack_param": None, "attack_prediction": None, "attack_n_forward": 0,
                "attack_note": "no attack target for k-smoothing"}
    t = transforms.get(config.get("transform") or "rotation")
    e = cert.extra
    kind = {"gsmooth": "gsmooth", "resolvable": "gsmooth"}.get(e.get("method"), sm)
    n = int(config.get("attack_n_predict") or (config["n_eps"] if kind == "noise" else config["n_gamma"]))
    ac = {**config, "smoothing": kind, "n_predict": n, "alpha": float(config.get("alpha_gamma", 0.001)),
          "n_eps": int(config.get("attack_n_eps") or config.get("n_eps", 20)) if kind == "double" else 20,
          "attacker_range": config.get("attacker_range")}
    if kind == "gsmooth":
        ac["attacker_range"] = None
        ac["sigma_gamma"] = e.get("sigma1", e.get("scale"))
        ac["sigma2"] = e.get("sigma2")
        ac["dist"] = e.get("dist", "exp")
    for k in ("n_probe", "k_worst", "budget", "refine"):
        ac[k] = config.get(f"attack_{k}", ATTACK_DEFAULTS[k])
    target = make_target({**ATTACK_DEFAULTS, **{k: v for k, v in ac.items() if v is not None}}, model, None, preprocess)
    region = _cert_region(config, t, cert, x, preprocess)
    k = int(ac["k_worst"])
    # default: 2,000 candidates on the base classifier; 24 probed candidates + the k PREDICTs when smoothed
    budget = config.get("attack_budget") or (24 * target.cost + k * target.predict_cost if target.smoothed
                                             else int(ATTACK_DEFAULTS["budget"]))
    a = attack_input(target, t, x, int(cert.label), region, int(budget), generator=generator,
                     interpolation=config.get("interpolation", "bilinear"), k_worst=k, refine=ac["refine"],
                     certified=True)
    return {"attack_broken": a["broken"], "attack_param": a.get("worst_param"),
            "attack_prediction": a.get("worst_prediction"), "attack_n_forward": a["n_forward"]}


def certified_attack_summary(rows: list[dict]) -> dict:
    """``certify --attack``: how many certified inputs were attacked and broken (with each break)."""
    att = [r for r in rows if r.get("attack_broken") is not None]
    br = [r for r in att if r["attack_broken"]]
    return {"attacked": len(att), "broken": len(br),
            "breaks": [{"index": r["index"], "param": r.get("attack_param"), "prediction": r.get("attack_prediction"),
                        "certified_class": r["prediction"], "radius": r["radius"]} for r in br],
            "forward_passes_per_input": float(np.mean([r["attack_n_forward"] for r in att])) if att else 0.0}


# --------------------------------------------------------------------------- the standing check
def soundness_check(config: dict, indices: list[int], progress=None) -> dict:
    """Certify ``indices`` with ``config`` and attack every certified input inside its radius
    (``attack_certified``). A certificate is wrong with probability <= its α; each of the k final
    PREDICTs answers a wrong class with probability <= α_PREDICT; a ``random``-attacker double
    certificate covers the worst case only where ‖ε‖ <= E (probability >= q̲_E per γ). So
    breaks/certified above ``allowed`` = α + k·α_PREDICT (+ 1 − q̲_E for a random-attacker
    certificate) beyond one-sided binomial slack (Clopper-Pearson at 0.001) are a bug. Returns
    counts, the rate, the allowance and every break with its input, parameter and certificate."""
    from semsmooth_core import stats
    from semsmooth_core.runs.pipeline import certify_inputs

    cfg = {**config, "attack": True}
    rows: list[dict] = []
    summary = certify_inputs(cfg, indices, rows.append, progress=progress)
    cert_rows = [r for r in rows if r["prediction"] != ABSTAIN and r.get("attack_broken") is not None]
    breaks = [r for r in cert_rows if r["attack_broken"]]
    c = summary.get("config", cfg)
    a_cert = float(summary.get("guarantee", {}).get("failure_probability", c.get("alpha_gamma", 0.001)))
    k = int(c.get("attack_k_worst") or ATTACK_DEFAULTS["k_worst"])
    allowed = a_cert + k * float(c.get("alpha_gamma", 0.001))
    random_attacker = str(summary.get("guarantee", {}).get("attacker", "")).startswith("random")
    if random_attacker and c.get("q_E_lower") is not None:
        q = c["q_E_lower"]
        allowed += sum(1 - float(v) for v in q) if isinstance(q, (list, tuple)) else 1 - float(q)
    n = len(cert_rows)
    lower = stats.cp_lower(len(breaks), n, 0.001) if n else 0.0
    return {"smoothing": c.get("smoothing"), "transform": c.get("transform"), "model": c.get("model"), "config": c,
            "n": len(rows), "certified": n, "broken": len(breaks),
            "break_rate": (len(breaks) / n) if n else 0.0, "allowed_rate": allowed,
            "break_rate_lower_bound": lower, "ok": bool(lower <= allowed),
            "breaks": [{"index": r["index"], "param": r.get("attack_param"), "prediction": r.get("attack_prediction"),
                        "certified_class": r["prediction"], "radius": r["radius"], "radius_unit": r["radius_unit"],
                        "p_lower": r["p_lower"], "rho": r["rho"]} for r in breaks],
            "attack_forward_passes_per_input": float(np.mean([r["attack_n_forward"] for r in cert_rows])) if n else 0.0,
            "certify_summary": {k_: summary.get(k_) for k_ in ("clean_accuracy", "certified_accuracy",
                                                                "seconds_per_input", "radius_unit")},
            "rows": rows}
