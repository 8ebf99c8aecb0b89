"""Certificates and failures in plain words, for a classroom (issue 15). No streamlit here.

- :func:`guarantee_fields` ``(cert, class_name=None) -> dict``: what one certificate (noise,
  parameter, double, k, GSmooth, audio) states — class, radius with its unit, whether it sits at the
  largest radius n allows, p̲_A, ρ, α, the attacker, E's scope, proof vs estimate, what is and is
  not covered — read from the certificate's own fields (with fallbacks for older certificates).
- :func:`picture` ``(cert) -> dict``: the attacker range C beside the certified interval/ball/box in
  the transformation's units, the sampled β with their verdicts, the n-limited ceiling, and a few
  parameters across C each marked certified or not covered (for the strip of transformed inputs).
- :func:`diagnose_settings` (before a run) and :func:`diagnose_result` (after): dead end, ρ too
  large, abstention, radius at the n-ceiling, wrong majority class, σ far from the model's training
  noise — each a :class:`Failure` with a plain sentence and, where a setting fixes it, that setting
  (pipeline config keys, e.g. ``{"n_eps": 320}``) computed by ``stats``/``planner``.
- :func:`E_fingerprint` / :func:`E_changes`: the settings an E estimate depends on, and which of
  them changed since (a stale E must not certify).
- :func:`forward_passes`, :func:`seconds_per_forward`, :func:`human_duration`: the time guard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from semsmooth_core import planner, stats
from semsmooth_core.validation import SemsmoothError

LONG_RUN_SECONDS = 180.0
"""Runs estimated above this (3 minutes, as Smoothing basics' ``CONFIRM_ABOVE_S``) ask before they start."""


# =========================================================================== certificate fields
def _kind(cert) -> str:
    e = cert.extra
    if e.get("method") == "gsmooth":
        return "gsmooth"
    if e.get("method") == "resolvable":
        return "resolvable"
    sm = e.get("smoothing", "noise")
    if sm == "double" and e.get("transform") == "volume":
        return "audio"
    if sm == "ksmooth" or e.get("partitions") is not None and sm != "double":
        return "k"
    return {"transform": "parameter"}.get(sm, sm)


KIND_WORDS = {"noise": "Gaussian noise smoothing (Cohen et al.; Fischer Thm 3.1)",
              "parameter": "parameter smoothing (Fischer Thm 4.2)",
              "double": "double smoothing (Fischer §6.2, Lemma 4.3)",
              "k": "k-smoothing (Fischer §6.3)",
              "audio": "double smoothing of a volume change (Fischer §5.1, §6.2)",
              "gsmooth": "GSmooth with a surrogate (Hao et al.)",
              "resolvable": "GSmooth, resolvable transformation (Hao et al. Thm 1)"}


def attacker_of(cert) -> str:
    """``"random"`` or ``"worst-case"``: the certificate's own field, else read from its older
    ``extra["attacker"]`` text. Noise and parameter smoothing certify every point of the ball."""
    a = getattr(cert, "attacker", None) or cert.extra.get("attacker_kind")
    if a in ("random", "worst-case"):
        return a
    k = _kind(cert)
    if k in ("noise", "parameter", "gsmooth", "resolvable"):
        return "worst-case"
    s = str(cert.extra.get("attacker", "random")).lower()
    return "worst-case" if s.startswith("worst") else "random"


def E_scope_of(cert) -> str | None:
    """``"input"``, ``"dataset"`` or None (no E in this certificate). Without the field, a double /
    k certificate counts as ``"dataset"`` (the weaker claim: E estimated on other inputs)."""
    s = getattr(cert, "E_scope", None) or cert.extra.get("E_scope")
    if s in ("input", "dataset"):
        return s
    return "dataset" if _kind(cert) in ("double", "k", "audio") else None


def sound_of(cert) -> bool:
    """True when the certificate says every number in its radius is a proven or confidence bound.
    GSmooth's M is maximised on a grid: without a field saying otherwise it is an estimate."""
    s = getattr(cert, "sound", None)
    if s is None:
        s = cert.extra.get("sound")
    if s is None:
        return _kind(cert) not in ("gsmooth",)
    return bool(s)


def ceiling(cert) -> float | None:
    """The largest radius this certificate's sample size could ever give (all estimation samples
    for the top class: p̲_A = α^(1/n)), in the radius's unit; None when unknown."""
    e, k = cert.extra, _kind(cert)
    try:
        if k == "noise":
            return stats.max_radius(float(e["sigma"]), int(e["n"]), cert.alpha)
        if k == "parameter":
            sig = e.get("sigma")
            s = float(sig) if isinstance(sig, (int, float)) else 1.0
            return stats.max_radius(s, int(e["n"]), cert.alpha)
        if k in ("double", "audio", "k"):
            sig = e.get("sigma_gamma")
            s = float(sig) if isinstance(sig, (int, float)) else 1.0
            return stats.max_radius(s, int(e["n_gamma"]), float(e.get("alpha_gamma", cert.alpha)), rho=cert.rho)
        if k == "gsmooth" and e.get("radius_real") is not None:
            return None  # the sound radius comes from latent distances of the real transform, not from M
        if k == "gsmooth" and e.get("M"):
            from semsmooth_core.gsmooth import radii

            r = radii.gsmooth_radius(stats.cp_lower(int(e["n"]), int(e["n"]), cert.alpha), float(e["M"]))
            return min(r, float(e["xi_max"])) if e.get("xi_max") is not None else r
    except (KeyError, TypeError, ValueError, SemsmoothError):
        return None
    return None


def _C_text(cert) -> str | None:
    e = cert.extra
    rng = e.get("attacker_range")
    if _kind(cert) == "gsmooth" and e.get("xi_max") is not None:
        rng = [[0.0, float(e["xi_max"])]]
    if not rng:
        return None
    if isinstance(rng, (int, float)):
        rng = [[-abs(rng), abs(rng)]]
    unit = e.get("axis_unit") or cert.radius_unit
    return " × ".join(f"[{float(lo):g}, {float(hi):g}]" for lo, hi in rng) + f" {unit}"


def guarantee_fields(cert, class_name: str | None = None) -> dict:
    """Everything a guarantee card shows, as data. Keys: ``kind``, ``method``, ``status``
    ("certified" | "abstained"), ``class``, ``radius``, ``unit``, ``clipped``, ``ceiling``,
    ``at_ceiling``, ``p_lower``, ``rho``, ``alpha``, ``attacker`` ("random" | "worst-case"),
    ``attacker_words``, ``E_scope``, ``E``, ``q_E_lower``, ``E_words``, ``sound``, ``sound_words``,
    ``covered`` and ``not_covered`` (lists of sentences), ``C`` (the attacker range in words)."""
    e, k = cert.extra, _kind(cert)
    name = class_name if class_name is not None else str(cert.label)
    att, scope, sound = attacker_of(cert), E_scope_of(cert), sound_of(cert)
    unit = cert.radius_unit
    top = ceiling(cert)
    clipped = bool(e.get("clipped"))
    if k == "gsmooth" and not clipped and e.get("xi_max") is not None and not cert.abstained:
        clipped = cert.radius >= float(e["xi_max"]) * (1 - 1e-9)
    at_top = bool(top is not None and not cert.abstained and not clipped and math.isfinite(top)
                  and cert.radius >= top * (1 - 1e-6))
    C = _C_text(cert)
    E = getattr(cert, "E", None) if getattr(cert, "E", None) is not None else e.get("E")
    qE = getattr(cert, "q_E_lower", None) if getattr(cert, "q_E_lower", None) is not None else e.get("q_E_lower")
    out = {"kind": k, "method": KIND_WORDS.get(k, k), "status": "abstained" if cert.abstained else "certified",
           "class": "abstain" if cert.abstained else name, "radius": float(cert.radius), "unit": unit,
           "clipped": clipped, "ceiling": top, "at_ceiling": at_top, "p_lower": float(cert.p_lower),
           "rho": float(cert.rho), "alpha": float(cert.alpha), "attacker": att, "E_scope": scope, "E": E,
           "q_E_lower": qE, "sound": sound, "C": C}
    what = e.get("transform", "the transformation")
    r = f"{cert.radius:.4g} {unit}"
    if att == "random":
        out["attacker_words"] = (f"a random attacker: the parameter is drawn at random from C = {C or 'the range'}; "
                                 "one who picks the parameter on purpose is not covered")
    elif k == "noise":
        out["attacker_words"] = "any attacker: every perturbation inside the l2 ball, chosen on purpose or not"
    else:
        out["attacker_words"] = "a worst-case attacker: any parameter inside the certified radius, chosen on purpose"
    out["E_words"] = {None: "no interpolation error enters this certificate",
                      "input": f"E = {E:.4g} was estimated on this input when certifying" if E is not None else
                               "E was estimated on this input when certifying",
                      "dataset": (f"E = {E:.4g} (q̲_E = {qE:.4f}) is an average over other inputs (the training "
                                  "split), not measured on this input: the guarantee for this input holds on "
                                  "average over such inputs" if E is not None and qE is not None else
                                  "E is an average over other inputs, not measured on this input")}[scope]
    why = e.get("sound_reason") or {
        "parameter": "the radius assumes ideal composition; interpolation and 8-bit rounding of real images "
                     "are not bounded (double smoothing bounds them)",
        "gsmooth": "GSmooth's M and the surrogate's error are maximised on a grid of severities, not bounded"}.get(
        k, "a number in the radius is estimated, not bounded")
    out["sound_words"] = ("a proof: every number in the radius is a proven bound or a confidence bound "
                          f"inside α = {cert.alpha:.4g}" if sound else f"an estimate, not a proof: {why}")
    cov, not_cov = [], []
    if cert.abstained:
        not_cov.append("nothing: the smoothed classifier abstains on this input")
    elif k == "noise":
        cov.append(f"every input within l2 distance {cert.radius:.4g} (pixel scale [0, 1]) of this one gets class {name}")
        not_cov += ["inputs farther than the radius", "semantic changes (rotation, translation, ...) as such"]
    elif k in ("parameter", "resolvable"):
        cov.append(f"every {what} of this input by a parameter of norm below {r}, for the ideal transformation")
        not_cov.append("interpolation and 8-bit rounding of real images (use double smoothing)")
    elif k in ("double", "audio", "k"):
        real = "volume change stored as 16-bit integers" if k == "audio" else \
            f"{what} as real images get it (interpolated ({e.get('interpolation')}), rounded to 8 bits)"
        if att == "random":
            cov.append(f"a {real} whose parameter is drawn at random from C and has norm below {r}: class {name}")
            not_cov.append("a parameter chosen on purpose to hit the rare cases where the interpolation "
                           f"error exceeds E (E held for a share q̲_E = {qE:.4f} of random parameters)"
                           if qE is not None else "a parameter chosen on purpose (worst case)")
        else:
            cov.append(f"every {real} with parameter norm below {r}: class {name}")
        if clipped:
            cov.append(f"the certified ball covers the whole attacker range C = {C}: the radius is clipped to it")
        not_cov.append("parameters outside C (E was only measured inside C)")
        if scope == "dataset":
            not_cov.append("a proof for this very input: E was estimated on other inputs")
    elif k == "gsmooth":
        if sound:
            cov.append(f"the real {what} (rounded to 8 bits) at every severity from 0 to {r}: class {name} — "
                       "proven from the real transformed images, not from the surrogate's estimated M")
        else:
            cov.append(f"the real {what} at every severity from 0 to {r}: class {name}, as far as the surrogate's "
                       "estimated M and error ε are right (R(1 − Aε), Thm 3)")
        if e.get("radius_surrogate") is not None and abs(float(e["radius_surrogate"]) - cert.radius) > 1e-12:
            not_cov.append(f"the surrogate's radius {float(e['radius_surrogate']):.4g} {unit}: an estimate, "
                           "not part of this guarantee")
        not_cov.append(f"severities beyond {r}" + (f" or outside the measured range {C}" if C else ""))
    if at_top:
        not_cov.append(f"radii beyond {top:.4g} {unit}: that is the most these n samples can ever certify")
    out["covered"], out["not_covered"] = cov, not_cov
    return out


# =========================================================================== picture
def _in_region(p, radius: float, axes: list[float] | None, one_sided: bool) -> bool:
    if one_sided:
        return 0.0 <= p[0] < radius
    if axes:
        return sum((v / a) ** 2 for v, a in zip(p, axes) if a > 0) < 1.0
    return math.sqrt(sum(v * v for v in p)) < radius


def picture(cert, n_strip: int = 7) -> dict:
    """Data for the attacker-vs-certificate picture: ``dim`` (1 or 2), ``unit``, ``C`` (list of
    (low, high) per axis), ``radius`` (0 when abstaining), ``axes`` (per-axis semi-axes for a 2-D
    ellipse, else None), ``box`` (half-width of the largest axis-aligned box inside the certified
    ball/ellipse, 2-D), ``one_sided`` (GSmooth severities: certified [0, R]), ``ceiling``,
    ``betas`` and ``verdicts`` (sampled smoothing parameters, double smoothing), ``strip``: a list
    of (parameter, certified?) across C (1-D: plus the points just inside and outside the radius)."""
    e, k = cert.extra, _kind(cert)
    one_sided = k in ("gsmooth", "resolvable")
    rng = e.get("attacker_range")
    if one_sided:
        rng = [[0.0, float(e.get("xi_max") or max(cert.radius, 1e-9))]]
    if isinstance(rng, (int, float)):
        rng = [[-abs(float(rng)), abs(float(rng))]]
    axes = e.get("axis_radii")
    if rng is None:
        r0 = max(cert.radius, ceiling(cert) or 0.0, 1e-9)
        dim = len(axes) if axes else 1
        rng = [[-r0, r0]] * dim
    rng = [[float(lo), float(hi)] for lo, hi in rng]
    dim = len(rng)
    radius = 0.0 if cert.abstained else float(cert.radius)
    if axes and not cert.abstained:
        axes = [float(a) for a in axes]  # per-axis radii of the certified ellipse (App. B), in units
    elif axes:
        axes = [0.0 for _ in axes]
    box = None
    if dim == 2:
        a = axes or [radius, radius]
        box = (a[0] * a[1] / math.sqrt(a[0] ** 2 + a[1] ** 2)) if min(a) > 0 else 0.0
    strip = []
    for i in range(n_strip):
        f = i / (n_strip - 1) if n_strip > 1 else 0.5
        p = [lo + f * (hi - lo) for lo, hi in rng]
        if dim == 2:  # along the diagonal of C, from one corner to the other
            p = [rng[0][0] + f * (rng[0][1] - rng[0][0]), rng[1][0] + f * (rng[1][1] - rng[1][0])]
        strip.append(p)
    if dim == 1 and radius > 0:  # just inside and just outside the certified edge, where it is inside C
        strip += [[v] for v in (0.95 * radius, 1.05 * radius) if rng[0][0] <= v <= rng[0][1]]
        strip.sort()
    strip = [(p, (not cert.abstained) and _in_region(p, radius, axes, one_sided)) for p in strip]
    return {"dim": dim, "unit": e.get("axis_unit") or cert.radius_unit, "C": rng, "radius": radius,
            "axes": axes, "box": box, "one_sided": one_sided, "ceiling": ceiling(cert),
            "betas": e.get("betas") or [], "verdicts": e.get("inner_verdict") or [], "strip": strip,
            "mahalanobis": bool(axes)}


# =========================================================================== failures
@dataclass
class Failure:
    """A failure mode in words. ``fix``: pipeline config keys and values that would help (None
    when no single setting does); ``fix_label``: the button's text."""

    kind: str
    sentence: str
    fix: dict | None = None
    fix_label: str | None = None
    extra: dict = field(default_factory=dict)


def _safe(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except SemsmoothError:
        return None


def _C_max(config) -> float | None:
    rng = config.get("attacker_range")
    if rng is None:
        return None
    if isinstance(rng, (int, float)):
        return abs(float(rng))
    return math.sqrt(sum(max(abs(float(lo)), abs(float(hi))) ** 2 for lo, hi in rng))


def _sig(v) -> float:
    return float(v[0]) if isinstance(v, (list, tuple)) else float(v)


def sigma_mismatch(sigma: float, model_sigma: float | None, factor: float = 1.5) -> Failure | None:
    """σ far (beyond ``factor`` either way) from the noise the model was trained with."""
    if not model_sigma or not sigma or (1 / factor) <= sigma / model_sigma <= factor:
        return None
    return Failure("sigma_mismatch",
                   f"σ_ε = {sigma:g} is far from the noise the model was trained with ({model_sigma:g}): "
                   "its votes under this noise are likely poor, so radii shrink or it abstains.",
                   {"sigma_eps": float(model_sigma)}, f"use σ_ε = {model_sigma:g}")


def diagnose_settings(config: dict, model_sigma: float | None = None) -> list[Failure]:
    """Before a run (double smoothing especially): dead end of the inner smoothing, ρ too large
    for any outer count, σ_ε far from the model's training noise. ``config``: pipeline keys."""
    out = []
    sm = config.get("smoothing", "double")
    if sm in ("double", "noise"):
        f = sigma_mismatch(float(config.get("sigma_eps") or 0), model_sigma)
        if f:
            out.append(f)
    if sm != "double":
        return out
    E, se = float(config["E"]), float(config["sigma_eps"])
    n_eps, a_e = int(config["n_eps"]), float(config["alpha_eps"])
    theta = stats.prob_lower_needed(E, se)
    best = stats.cp_lower(n_eps, n_eps, a_e)
    if theta >= best:
        need = _safe(stats.min_samples_for_radius, E, se, a_e, n_max=10**8)
        s = (f"Dead end: E = {E:.4g} is out of reach of the inner smoothing. To cover it, at least "
             f"{100 * theta:.2f} % of the noisy copies must vote for the class, but n_ε = {n_eps} copies "
             f"can show at most {100 * best:.2f} % at α_ε = {a_e:g}, even if every copy votes right. ")
        s += (f"It needs n_ε ≥ {need:,} (or a smaller E: another interpolation or preprocessing)." if need else
              "No n_ε can: E is too large for σ_ε; use a larger σ_ε or a smaller E (bicubic, preprocessing).")
        out.append(Failure("dead_end", s, {"n_eps": int(need)} if need else None,
                           f"use n_ε = {need:,}" if need else None, {"needed": need, "theta": theta, "best": best}))
    rho = float(config["alpha_eps"]) + (1 - float(config["q_E_lower"])) + float(config["alpha_E"])
    n_g, a_g = int(config["n_gamma"]), float(config["alpha_gamma"])
    if stats.cp_lower(n_g, n_g, a_g) - rho <= 0.5:
        need = _safe(stats.min_samples_for_radius, 0.0, 1.0, a_g, rho=rho, n_max=10**7)
        s = (f"Dead end: ρ = {rho:.4f} (the share paid for the E bound and the inner tests) is so large "
             f"that even if all n_γ = {n_g} sampled parameters passed, p̲_A − ρ would not exceed 1/2. ")
        s += (f"It needs n_γ ≥ {need:,}, or a better q̲_E." if need else "Raise q̲_E (ρ must stay below 1/2).")
        out.append(Failure("rho_too_large", s, {"n_gamma": int(need)} if need else None,
                           f"use n_γ = {need:,}" if need else None))
    return out


_N_WORD = {"n_eps": "n (n_ε)", "n_gamma": "n_γ"}


def diagnose_result(cert, true_label: int | None = None, model_sigma: float | None = None,
                    n_max: int = 10**7) -> list[Failure]:
    """After a run: abstention (with the samples the same vote share would need), radius at the
    n-ceiling (with the n that reaches the attacker range), wrong majority class, σ far from the
    model's training noise. ``n_gamma``/``n_eps`` fixes use pipeline keys (noise: n = n_eps;
    parameter, double, GSmooth: n = n_gamma)."""
    e, k = cert.extra, _kind(cert)
    out = []
    n_key = "n_eps" if k == "noise" else "n_gamma"
    n_now = int(e.get("n_gamma") or e.get("n") or 0)
    alpha = float(e.get("alpha_gamma", cert.alpha))
    if k in ("noise", "double", "audio"):
        f = sigma_mismatch(float(e.get("sigma_eps", e.get("sigma", 0)) or 0), model_sigma)
        if f:
            out.append(f)
    if cert.abstained:
        counts = list(cert.counts or [])
        tot = sum(counts)
        share = (max(counts) / tot) if tot else 0.0
        if k in ("double", "audio", "k") and counts:
            share = counts[0] / tot if tot else 0.0
        need = planner.min_n_for_share(share, alpha, cert.rho, n_max=n_max) if tot else None
        if k in ("double", "audio", "k"):
            s = (f"Abstained: only {counts[0] if counts else 0} of the {tot} sampled parameters passed the inner "
                 f"test, so p̲_A − ρ = {cert.p_lower - cert.rho:.3f} does not exceed 1/2. ")
        else:
            s = (f"Abstained: the top class got {100 * share:.1f} % of the {tot} votes, so its lower bound "
                 f"p̲_A − ρ = {cert.p_lower - cert.rho:.3f} does not exceed 1/2. ")
        if need and need > n_now:
            s += f"The same share of votes would clear 1/2 with n ≥ {need:,} samples."
            out.append(Failure("abstain", s, {n_key: int(need)}, f"use {_N_WORD[n_key]} = {need:,}"))
        else:
            s += ("The votes are split: the model does not keep one class under this smoothing — a smaller σ, "
                  "a model trained with these transformations, or another input.")
            out.append(Failure("abstain", s))
        return out
    if true_label is not None and int(cert.label) != int(true_label):
        out.append(Failure("wrong_class",
                           f"The certified class {cert.label} is not the true label {true_label}: the smoothed "
                           "classifier is robustly wrong here. The certificate still holds — it guarantees the "
                           "prediction stays the same, not that it is right."))
    g = guarantee_fields(cert)
    if g["at_ceiling"]:
        target = _C_max({"attacker_range": e.get("attacker_range")}) if k not in ("noise", "gsmooth") else None
        if k == "gsmooth" and e.get("xi_max") is not None:
            target = None  # the surrogate radius ceiling; M is in the way, more n helps only a little
        sig = _sig(e.get("sigma_gamma", e.get("sigma", 1.0))) if not e.get("axis_radii") else 1.0
        need = None
        if target and sig:
            tgt = target if not e.get("axis_radii") else None
            need = _safe(stats.min_samples_for_radius, tgt, sig, alpha, rho=cert.rho, n_max=n_max) if tgt else None
        if need is None and k == "noise":
            need = 10 * n_now if n_now else None
        s = (f"The radius {cert.radius:.4g} {cert.radius_unit} is the largest that n = {n_now:,} samples can "
             f"certify at α = {alpha:g} (every sample voted for the class): the model may be more robust than this.")
        if need and need > n_now:
            more = (f" n ≥ {need:,} would reach the whole attacker range C." if target else
                    f" n = {need:,} would allow up to {stats.max_radius(_sig(e.get('sigma', 1.0)), need, alpha):.4g}.")
            out.append(Failure("n_ceiling", s + more, {n_key: int(need)}, f"use {_N_WORD[n_key]} = {need:,}"))
        else:
            out.append(Failure("n_ceiling", s))
    return out


# =========================================================================== E staleness
E_SETTINGS = {"dataset": "dataset", "transform": "transformation", "interpolation": "interpolation",
              "sigma_gamma": "σ_γ", "attacker_range": "attacker range C", "preprocess": "preprocessing"}
"""The settings an E estimate depends on (the error estimator's setup plus the data)."""


def _norm(v):
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, float):
        return round(v, 9)
    return v


def E_fingerprint(config: dict) -> dict:
    """The E-relevant settings of a config, normalised for comparison."""
    return {k: _norm(config.get(k)) for k in E_SETTINGS}


def E_changes(bound: dict, current: dict) -> list[str]:
    """Which E-relevant settings differ, in words ("transformation rotation → translation")."""
    out = []
    for k, word in E_SETTINGS.items():
        a, b = bound.get(k), current.get(k)
        if a != b:
            out.append(f"{word} {_show(a)} → {_show(b)}")
    return out


def _show(v) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(_show(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v) if v not in (None, "") else "none"


CONFIG_WORDS = {**E_SETTINGS, "smoothing": "smoothing", "sigma_eps": "σ_ε", "E": "E", "q_E_lower": "q̲_E",
                "n0": "n0", "n_gamma": "n_γ", "n_eps": "n_ε", "alpha_gamma": "α_γ", "alpha_eps": "α_ε",
                "alpha_E": "α_E", "sequential": "sequential tests", "seed": "seed", "model": "model"}


def config_changes(old: dict, new: dict, ignore=("batch_size",)) -> list[str]:
    """The settings whose values differ, as their symbols (for "this result was made with other
    settings")."""
    keys = sorted(set(old) | set(new))
    return [CONFIG_WORDS.get(k, k) for k in keys if k not in ignore and _norm(old.get(k)) != _norm(new.get(k))]


# =========================================================================== time guard
def forward_passes(config: dict) -> int:
    """The most model forward passes a certification with these settings can take (sequential
    tests may stop earlier): noise n0 + n_ε; parameter and GSmooth n0 + n_γ; double n0 + n_γ·n_ε."""
    sm = config.get("smoothing", "double")
    n0 = int(config.get("n0", 0))
    if sm == "noise":
        return n0 + int(config["n_eps"])
    if sm in ("transform", "gsmooth"):
        return n0 + int(config["n_gamma"])
    n_eps = config["n_eps"]
    inner = math.prod(int(v) for v in n_eps) if isinstance(n_eps, (list, tuple)) else int(n_eps)
    return n0 + int(config["n_gamma"]) * inner


def seconds_per_forward(model, x, batch_size: int = 256, repeats: int = 2) -> float:
    """Measured seconds per single-input forward pass on this device (one place for it:
    :func:`semsmooth_core.timing.measure_seconds_per_forward`)."""
    from semsmooth_core.timing import measure_seconds_per_forward

    return measure_seconds_per_forward(model, x, batch_size, repeats=repeats)


def human_duration(seconds: float) -> str:
    """The duration as the app shows it everywhere (:func:`semsmooth_core.timing.format_duration`)."""
    from semsmooth_core.timing import format_duration

    return format_duration(seconds)
