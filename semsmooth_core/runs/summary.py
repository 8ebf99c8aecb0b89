"""Summaries of certification rows (one row per input): the single place where certified
accuracy, abstain rate and radius percentiles are computed (CLI certify, report, Results page).

A row is a mapping with at least ``label``, ``prediction`` (-1 = abstain), ``radius``,
``correct`` (prediction == label), and optionally ``seconds``, ``n_forward``,
``base_correct`` (the base classifier f on the clean input).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np


def certified_accuracy(rows: Sequence[Mapping], r: float) -> float:
    """Fraction of ALL rows with a correct prediction and ``radius >= r`` (abstentions and wrong
    predictions count as failures) — the definition used by Cohen et al.'s logs and Fischer
    Tables 2-3."""
    if not rows:
        return float("nan")
    ok = sum(1 for row in rows if bool(row["correct"]) and int(row["prediction"]) != -1
             and float(row["radius"]) >= r)
    return ok / len(rows)


def summarize(rows: Sequence[Mapping], radii: Iterable[float] | None = None,
              radius_unit: str | None = None) -> dict:
    """Summary of a run: n, clean_accuracy (base classifier, when rows carry ``base_correct``),
    certified_accuracy (at radius 0, i.e. correct and not abstained — or a mapping radius ->
    accuracy when ``radii`` is given), abstain_rate, radius_percentiles {25,50,75} over
    certified-correct rows, seconds_per_input, forward_passes_per_input."""
    n = len(rows)
    out: dict = {"n": n}
    if n == 0:
        return out | {"certified_accuracy": float("nan"), "abstain_rate": float("nan")}
    if all("base_correct" in r for r in rows):
        out["clean_accuracy"] = float(np.mean([bool(r["base_correct"]) for r in rows]))
    else:
        out["clean_accuracy"] = None
    out["smoothed_accuracy"] = float(np.mean([bool(r["correct"]) and int(r["prediction"]) != -1 for r in rows]))
    if radii is None:
        out["certified_accuracy"] = certified_accuracy(rows, 0.0)
    else:
        out["certified_accuracy"] = {str(r): certified_accuracy(rows, float(r)) for r in radii}
    out["abstain_rate"] = float(np.mean([int(r["prediction"]) == -1 for r in rows]))
    cert = np.array([float(r["radius"]) for r in rows if bool(r["correct"]) and int(r["prediction"]) != -1])
    out["radius_percentiles"] = ({str(p): float(np.percentile(cert, p)) for p in (25, 50, 75)}
                                 if cert.size else {"25": None, "50": None, "75": None})
    if radius_unit is not None:
        out["radius_unit"] = radius_unit
    secs = [float(r["seconds"]) for r in rows if r.get("seconds") is not None]
    out["seconds_per_input"] = float(np.mean(secs)) if secs else None
    fwd = [int(r["n_forward"]) for r in rows if r.get("n_forward") is not None]
    out["forward_passes_per_input"] = float(np.mean(fwd)) if fwd else None
    return out


def accuracy_curve(rows: Sequence[Mapping], radii: Sequence[float]) -> np.ndarray:
    """Certified accuracy (same definition as :func:`certified_accuracy`) at every radius of
    ``radii`` at once: ``curve[j] = #{rows correct, not abstained, radius >= radii[j]} / n``."""
    r = np.asarray([float(x) for x in radii], dtype=float)
    if not rows:
        return np.full(r.shape, np.nan)
    cert = np.sort(np.array([float(x["radius"]) for x in rows
                             if bool(x["correct"]) and int(x["prediction"]) != -1], dtype=float))
    # number of certified-correct radii >= r  =  len - (number < r)
    return (cert.size - np.searchsorted(cert, r, side="left")) / len(rows)


def radius_grid(rows: Sequence[Mapping], points: int = 200) -> np.ndarray:
    """Radii from 0 to a little past the largest radius in ``rows``, for plotting
    :func:`accuracy_curve` as a step curve."""
    rmax = max((float(x["radius"]) for x in rows), default=0.0)
    return np.linspace(0.0, max(rmax * 1.05, 1e-6), int(points))


def table_row(rows: Sequence[Mapping], params: Mapping | None = None) -> dict:
    """One line in the form of Fischer et al.'s Table 2: f acc. (base classifier on clean
    inputs), g acc. (smoothed classifier: correct and not abstained), the 25/50/75th percentile
    of the certified radius over certified-correct inputs, seconds per input, the sample counts
    and the α's the certificates hold with (from the run's parameters, when known)."""
    s = summarize(rows)
    p = dict(params or {})
    out = {"n": s["n"], "f acc.": s.get("clean_accuracy"), "g acc.": s.get("smoothed_accuracy"),
           "r 25%": s["radius_percentiles"]["25"] if s["n"] else None,
           "r 50%": s["radius_percentiles"]["50"] if s["n"] else None,
           "r 75%": s["radius_percentiles"]["75"] if s["n"] else None,
           "seconds/input": s.get("seconds_per_input")}
    for k in ("n0", "n_gamma", "n_eps", "alpha_gamma", "alpha_eps", "alpha_E"):
        if k in p:
            out[k] = p[k]
    return out


def n_ceiling(params: Mapping) -> float | None:
    """The largest radius a run's settings can certify for any input (all n votes for the top
    class: p̲_A = α^(1/n), Fischer App. C.2), in the run's radius unit, from its parameters (a
    ``runs.pipeline`` config): noise ``σ_ε Φ⁻¹(α_γ^(1/n_ε))`` (:func:`stats.max_radius`),
    transform ``σ_γ Φ⁻¹(α_γ^(1/n_γ))`` (not clipped), double smoothing :func:`planner.max_radius_double` (with
    ρ, clipped to the attacker range). None where it is not defined by the parameters alone: other
    smoothings, several transformation parameters, an E estimated by the run itself, imported logs."""
    from semsmooth_core import planner, stats, transforms
    from semsmooth_core.runs.pipeline import with_defaults

    p = with_defaults(params or {})
    kind = p.get("smoothing")
    try:
        if kind == "noise":
            return float(stats.max_radius(float(p["sigma_eps"]), int(p["n_eps"]), float(p["alpha_gamma"])))
        if kind not in ("transform", "double") or not p.get("transform"):
            return None
        t = transforms.get(p["transform"])
        sg = p["sigma_gamma"] if p["sigma_gamma"] is not None else list(t.default_sigma)
        sgs = [float(v) for v in (sg if isinstance(sg, (list, tuple)) else [sg])]
        if len(t.param_names) != 1 or len(set(sgs)) != 1:
            return None
        cmax = None
        if p.get("attacker_range"):
            ar = p["attacker_range"]
            cmax = float(max(abs(float(b)) for r in (ar if isinstance(ar[0], (list, tuple)) else [ar]) for b in r)) \
                if isinstance(ar, (list, tuple)) else abs(float(ar))
        if kind == "transform":
            return float(stats.max_radius(sgs[0], int(p["n_gamma"]), float(p["alpha_gamma"])))
        if p.get("q_E_lower") is None:
            return None
        return float(planner.max_radius_double(sgs[0], int(p["n_gamma"]), float(p["alpha_gamma"]),
                                               float(p["alpha_eps"]), float(p["q_E_lower"]), float(p["alpha_E"]),
                                               cmax))
    except (KeyError, TypeError, ValueError):
        return None
