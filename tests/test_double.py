"""Double smoothing (Fischer §6.2, Lemma 4.3) and k-smoothing (§6.3): statistical soundness on a
toy with a closed-form answer, fixed vs sequential decisions, reproducibility, dead ends, and a
real run on the embedded MNIST with the shipped model (skipped when no model is shipped)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sst

from semsmooth_core import planner, smoothing, stats
from semsmooth_core.validation import SemsmoothError


class Threshold(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, z):
        v = z.reshape(z.shape[0], -1)[:, 0]
        return torch.stack([-v, v], 1)


def shift(xb, p):
    return xb + p[:, :1].reshape(-1, *([1] * (xb.ndim - 1)))


@pytest.mark.parametrize("sequential", [None, "looks"])
def test_double_soundness_closed_form(sequential):
    # f(z) = [z > 0]; ψ_β(x) = x + β; inner noise on z. "f(ψ_β x) = 1 and f robust on B_E" holds iff
    # x + β >= E, so the smoothed classifier of Lemma 4.3 has p_A = Φ((x − E)/σ_γ) and true radius
    # x − E. Over many certifications, radii above x − E must stay within α_γ + slack. (The inner
    # finite-sample margin makes this toy conservative; the sharp checks of the inner test's error
    # are in tests/test_sequential.py.)
    x0, E, sg, se, trials = 1.0, 0.1, 1.0, 0.5, 150
    a_g, a_e = 0.1, 0.1
    g = torch.Generator().manual_seed(11)
    bad = 0
    x = torch.tensor([x0])
    for _ in range(trials):
        c = smoothing.certify_double(Threshold(), x, shift, sg, se, E, 1.0, 10, 60, 60, a_g, a_e, 1e-6,
                                     generator=g, dim=1, sequential=sequential, clip=False)
        if c.label != stats.ABSTAIN and (c.label != 1 or c.radius > x0 - E):
            bad += 1
    assert bad <= sst.binom.ppf(0.999, trials, a_g)
    assert c.rho == pytest.approx(a_e + 1e-6)


def test_fixed_and_sequential_agree_and_save():
    torch.manual_seed(0)
    x = torch.tensor([3.0])
    kw = dict(generator=None, dim=1, clip=False)
    fixed = smoothing.certify_double(Threshold(), x, shift, 1.0, 0.25, 0.3, 0.97, 20, 100, 200,
                                     0.001, 0.001, 0.001, **kw)
    seq = smoothing.certify_double(Threshold(), x, shift, 1.0, 0.25, 0.3, 0.97, 20, 100, 200,
                                   0.001, 0.001, 0.001, sequential="looks", **kw)
    assert fixed.label == seq.label == 1
    assert seq.n_forward * 2 <= fixed.n_forward == 20 + 100 * 200
    assert abs(seq.radius - fixed.radius) <= 0.05 * fixed.radius


def test_reproducible_and_reported_fields():
    x = torch.zeros(1, 12, 12)
    x[:, 3:9, 3:9] = 1

    from tests.test_input_E import _mean_model as Mean  # the same toy model (mean brightness)

    runs = [smoothing.certify_double(Mean(), x, "rotation", 30, 0.25, 0.3, 0.97, 10, 40, 120, 0.01, 0.001,
                                     0.001, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    a, b = runs
    assert (a.label, a.radius, a.counts, a.n_forward) == (b.label, b.radius, b.counts, b.n_forward)
    assert a.label == 1 and a.radius_unit == "degrees"
    assert a.rho == pytest.approx(0.001 + 0.03 + 0.001)
    assert a.alpha == pytest.approx(0.01 + 0.001)        # total failure: α_γ + α_E
    assert a.extra["clipped"] and a.radius == 30.0        # default attacker range C = [-30, 30]
    assert "random" in a.extra["attacker"]
    assert len(a.extra["inner_verdict"]) == 40
    p = smoothing.predict_double(Mean(), x, "rotation", 30, 0.25, 30, 50, 0.01, 0.01,
                                 generator=torch.Generator().manual_seed(5))
    assert p["label"] == 1 and p["n_forward"] == 1500
    bon = smoothing.certify_double(Mean(), x, "rotation", 30, 0.25, 0.3, 0.97, 10, 40, 120, 0.01, 0.001,
                                   0.001, generator=torch.Generator().manual_seed(5), inner_mode="bonferroni")
    assert bon.rho == pytest.approx(0.03 + 0.001) and bon.alpha == pytest.approx(0.01 + 0.001 + 0.001)
    ks = smoothing.certify_ksmooth(Mean(), x, "rotation", 30, 0.25, 0.3, 0.97, 10, 20, 80, 0.01, 0.001,
                                   0.001, partitions="none", generator=torch.Generator().manual_seed(5))
    assert ks.label == 1 and ks.n_forward == 10 + 20 * 80
    ks2 = smoothing.certify_ksmooth(Mean(), x, "rotation", 30, [0.25, 0.25], [0.2, 0.2], [0.98, 0.98], 10,
                                    10, [60, 60], 0.01, [0.001, 0.001], 0.001, partitions="halves",
                                    generator=torch.Generator().manual_seed(5))
    assert ks2.n_forward == 10 + 10 * 60 * 60 and ks2.rho == pytest.approx(0.001 + 0.04 + 0.001)


def test_dead_ends_are_refused():
    x = torch.tensor([1.0])
    msg = planner.dead_end(0.6, 0.25, 200, 0.001)
    assert msg and "out of reach" in msg
    assert planner.dead_end(0.3, 0.25, 200, 0.001) is None
    with pytest.raises(SemsmoothError, match="can never be certified"):
        smoothing.certify_double(Threshold(), x, shift, 1.0, 0.25, 0.6, 0.97, 10, 50, 200, 0.001, 0.001,
                                 0.001, dim=1)
    with pytest.raises(SemsmoothError, match="q_E_lower"):
        smoothing.certify_double(Threshold(), x, shift, 1.0, 0.25, 0.3, 1.5, 10, 50, 200, 0.001, 0.001,
                                 0.001, dim=1)
    with pytest.raises(SemsmoothError, match="partition 2"):
        smoothing.certify_ksmooth(Threshold(), torch.zeros(1, 4, 4), "rotation", 1.0, 0.25, 0.3, 0.97, 5, 10,
                                  [100, 20], 0.01, 0.001, 0.001)
    # the planner's max radius matches the closed form σ_γ Φ⁻¹(α_γ^(1/n_γ) − ρ)
    rho = 0.001 + 0.03 + 0.001
    assert planner.max_radius_double(30, 100, 0.001, 0.001, 0.97, 0.001) == pytest.approx(
        30 * sst.norm.ppf(0.001 ** (1 / 100) - rho))


def _shipped_mnist_model():
    from semsmooth_core.models import list_models

    models = list_models()
    for name in ("mnist_cnn_rot_noise025", "mnist_cnn_noise025"):
        if name in models:
            return name
    cands = [n for n, c in models.items() if n.startswith("mnist")]
    return cands[0] if cands else None


def test_mnist_small_rotations_certified():
    name = _shipped_mnist_model()
    if name is None:
        pytest.skip("no shipped MNIST model yet")
    from semsmooth_core.runs import pipeline

    rows = []
    cfg = {"model": name, "transform": "rotation", "sigma_gamma": 5.0, "sigma_eps": 0.25, "E": 0.15,
           "q_E_lower": 0.97, "n0": 10, "n_gamma": 20, "n_eps": 50, "alpha_gamma": 0.01,
           "alpha_eps": 0.01, "alpha_E": 0.01, "attacker_range": [[-5, 5]], "batch_size": 500,
           "sequential": "looks"}
    out = pipeline.certify_inputs(cfg, [0, 1, 2], rows.append)
    assert out["n"] == 3 and len(rows) == 3
    good = [r for r in rows if r["base_correct"]]
    assert good, "the shipped model misclassifies all of the first held-out digits"
    assert sum(r["correct"] and r["radius"] > 0 for r in good) >= len(good) - 1


def test_planner_budget_search_flags_dead_ends():
    plans = planner.plan_double(20000, 30, 0.25, [(0.3, 0.97), (0.8, 0.999)], attacker_max=30)
    assert plans[0].dead_end is None and plans[0].forward_passes <= 20000
    assert plans[0].expected_radius >= max(p.expected_radius for p in plans if p.dead_end is None) - 1e-12
    assert all(p.dead_end for p in plans if p.E == 0.8)          # Φ(0.8/0.25) ≈ 0.9993: out of reach
    pre = planner.summary_before_run(30, 0.25, 0.8, 0.999, 100, 200, 0.001, 0.001, 0.001, 30)
    assert pre["dead_end"] and pre["max_radius"] > 0
