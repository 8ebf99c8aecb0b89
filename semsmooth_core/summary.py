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
