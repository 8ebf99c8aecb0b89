"""GSmooth experiments on a set of inputs: rows of certificates, certified accuracy at stated radii
(GSmooth Table 1 form), the empirical attack beside it (Table 2 form) and the σ₁ × σ₂ grid
(Table 3 form). Used by ``benchmarks/gsmooth_tables.py`` and the GSmooth page."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from semsmooth_core.gsmooth.attack import attack_gsmooth
from semsmooth_core.gsmooth.certify import certify_gsmooth, certify_resolvable
from semsmooth_core.runs.summary import certified_accuracy

Progress = Callable[[int, int], None]


def certify_rows(model, transform, xs: torch.Tensor, ys: torch.Tensor, n0: int, n: int, alpha: float,
                 sur=None, sigma1: float | None = None, sigma2: float | None = None, dist: str | None = None,
                 scale: float | None = None, generator: torch.Generator | None = None,
                 progress: Progress | None = None, batch_size: int = 500, **kw) -> list[dict]:
    """One certificate per input: GSmooth when ``sur`` is given, else resolvable (``dist``, ``scale``).
    Rows carry index, label, prediction, radius, correct, p_lower, seconds and the extras."""
    rows = []
    for i in range(xs.shape[0]):
        if sur is not None:
            c = certify_gsmooth(model, sur, transform, xs[i], sigma1, sigma2, n0, n, alpha,
                                batch_size=batch_size, generator=generator, **kw)
        else:
            c = certify_resolvable(model, transform, xs[i], dist, scale, n0, n, alpha, batch_size=batch_size,
                                   generator=generator)
        e = {k: v for k, v in c.extra.items() if not isinstance(v, list)}
        rows.append({"index": i, "label": int(ys[i]), "prediction": c.label, "radius": c.radius,
                     "correct": c.label == int(ys[i]), "p_lower": c.p_lower, "seconds": c.seconds,
                     "n_forward": c.n_forward, **e})
        if progress is not None:
            progress(i + 1, xs.shape[0])
    return rows


def accuracy_at(rows: Sequence[dict], radii: Sequence[float], key: str = "radius") -> dict:
    """Certified accuracy at each radius (all rows count; abstentions fail), for ``key`` (the
    corrected radius ``radius`` or e.g. ``radius_surrogate``)."""
    out = {}
    for r in radii:
        rr = [{**row, "radius": row.get(key, 0.0) if row["prediction"] != -1 else 0.0} for row in rows]
        out[float(r)] = certified_accuracy(rr, float(r))
    return out


def attack_rows(model, sur, transform, xs: torch.Tensor, ys: torch.Tensor, rows: Sequence[dict], radius: float,
                sigma1: float, sigma2: float, alpha: float, generator: torch.Generator | None = None,
                progress: Progress | None = None, **kw) -> dict:
    """Empirical attack at a stated ``radius`` on every input: search ψ_ξ, ξ ∈ [0, radius].

    Returns empirical accuracy (inputs whose PREDICT stays correct on the k worst candidates),
    certified accuracy at ``radius``, and every certified input that broke (``violations``)."""
    survived, violations, results = 0, [], []
    for i in range(xs.shape[0]):
        a = attack_gsmooth(model, sur, transform, xs[i], int(ys[i]), radius, sigma1, sigma2, alpha=alpha,
                           generator=generator, **kw)
        certified = rows[i]["correct"] and rows[i]["prediction"] != -1 and rows[i]["radius"] >= radius
        survived += int(a["survived"])
        if certified and not a["survived"]:
            violations.append({"index": i, "worst_xi": a["worst_xi"], "labels": a["predict_labels"],
                               "radius": rows[i]["radius"]})
        results.append({"index": i, "survived": a["survived"], "worst_xi": a["worst_xi"],
                        "labels": a["predict_labels"], "certified": bool(certified)})
        if progress is not None:
            progress(i + 1, xs.shape[0])
    return {"radius": radius, "empirical_accuracy": survived / xs.shape[0],
            "certified_accuracy": certified_accuracy(list(rows), radius), "violations": violations,
            "n": int(xs.shape[0]), "per_input": results}


def sigma_grid(model, sur, transform, xs: torch.Tensor, ys: torch.Tensor, sigma1s: Sequence[float],
               sigma2s: Sequence[float], radius: float, n0: int, n: int, alpha: float,
               generator: torch.Generator | None = None, progress: Progress | None = None) -> list[dict]:
    """Certified accuracy at ``radius`` for every (σ₁, σ₂) (GSmooth Table 3 form)."""
    out, done, total = [], 0, len(sigma1s) * len(sigma2s) * xs.shape[0]
    for s1 in sigma1s:
        for s2 in sigma2s:
            def prog(k, _t, base=done):
                if progress is not None:
                    progress(base + k, total)
            rows = certify_rows(model, transform, xs, ys, n0, n, alpha, sur=sur, sigma1=s1, sigma2=s2,
                                generator=generator, progress=prog, m_grid=9, eps_grid=9)
            done += xs.shape[0]
            out.append({"sigma1": s1, "sigma2": s2, "certified_accuracy": certified_accuracy(rows, radius),
                        "accuracy": certified_accuracy(rows, 0.0)})
    return out
