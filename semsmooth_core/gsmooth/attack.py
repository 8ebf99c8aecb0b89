"""Empirical attack on the GSmooth classifier (GSmooth Table 2 in spirit): search the REAL
transformation's severity inside a radius and check whether the smoothed prediction changes.

For one input: candidates ξ on a grid of [0, r] plus uniform random draws; each candidate is
scored by a cheap Monte-Carlo estimate of the smoothed probability of the true class (``n_probe``
GSmooth samples of ψ_ξ(x)); the ``k`` worst candidates are then re-classified with PREDICT
(``n_predict`` samples, level ``alpha``). The input survives if every one of them is predicted as
the true label. Used for "empirical accuracy under attack" beside certified accuracy; a certified
input that does not survive inside its certified radius is reported (it may happen with
probability <= alpha per certificate, or through the grid estimates of M and ε).

This is the fixed-candidate form used by ``scripts/gsmooth_tables.py`` (GSmooth Table 2). The
general attack — every registered transformation, base or smoothed target (GSmooth included),
a budget in forward passes, local refinement, the attack inside any certificate — is
:mod:`semsmooth_core.attacks`.
"""

from __future__ import annotations

import torch

from semsmooth_core.gsmooth.certify import gsmooth_batch_maker, predict_gsmooth
from semsmooth_core.smoothing import ABSTAIN, model_device
from semsmooth_core.validation import check_alpha, check_count, check_positive


@torch.no_grad()
def attack_gsmooth(model, sur, transform, x: torch.Tensor, y: int, radius: float, sigma1: float, sigma2: float,
                   grid: int = 9, n_random: int = 4, n_probe: int = 32, k_worst: int = 2, n_predict: int = 200,
                   alpha: float = 0.001, batch_size: int = 500, generator: torch.Generator | None = None) -> dict:
    """Worst-of-k search of ψ_ξ(x), ξ ∈ [0, radius]. Returns the candidates, the worst ξ, the
    PREDICT labels there and ``survived`` (all equal ``y``)."""
    radius = check_positive("radius", radius, allow_zero=True)
    grid, k_worst = check_count("grid", grid), check_count("k_worst", k_worst)
    alpha = check_alpha(alpha)
    dev = model_device(model)
    cand = torch.linspace(0.0, radius, grid) if radius > 0 else torch.zeros(1)
    if radius > 0 and n_random > 0:
        cand = torch.cat([cand, radius * torch.rand(n_random, generator=generator)])
    xa = transform(x.unsqueeze(0).expand(cand.numel(), *x.shape), cand[:, None])
    scores = []
    for i in range(cand.numel()):
        make = gsmooth_batch_maker(sur, xa[i], sigma1, sigma2, dev, generator)
        pred = model(make(n_probe)).argmax(1)
        scores.append(float((pred == y).float().mean()))
    scores_t = torch.tensor(scores)
    worst = torch.argsort(scores_t)[:k_worst]
    labels = []
    for i in worst.tolist():
        r = predict_gsmooth(model, sur, xa[i], sigma1, sigma2, n_predict, alpha, batch_size, generator)
        labels.append(int(r["label"]))
    survived = all(lab == y for lab in labels)
    return {"candidates": cand.tolist(), "probe_true_fraction": scores, "worst_xi": [float(cand[i]) for i in worst],
            "predict_labels": labels, "survived": survived,
            "changed": any(lab != y and lab != ABSTAIN for lab in labels),
            "abstained": any(lab == ABSTAIN for lab in labels)}
