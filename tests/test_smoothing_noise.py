"""Gaussian (Cohen) CERTIFY/PREDICT: statistical soundness on a half-space classifier whose
smoothed probability is known exactly, plus contracts and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from semsmooth_core import stats
from semsmooth_core.smoothing import ABSTAIN, certify_noise, predict_noise
from semsmooth_core.validation import SemsmoothError


class HalfSpace(torch.nn.Module):
    """f(x) = 1 if <w, x> > b else 0, with ||w|| = 1. Under N(0, σ²I) noise
    P(f(x + δ) = 1) = Φ((<w,x> - b)/σ), and the smoothed classifier g is constant on the ball of
    radius |<w,x> - b| around x (its exact robustness radius)."""

    def __init__(self, d: int, b: float, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, generator=g)
        self.register_buffer("w", w / w.norm())
        self.b = b

    def forward(self, x):
        s = x.flatten(1) @ self.w - self.b
        return torch.stack([-s, s], dim=1)  # logits: class 1 iff s > 0

    def point_at_distance(self, dist: float, shape) -> torch.Tensor:
        """An input whose signed distance to the hyperplane is ``dist``."""
        return (self.w * (self.b + dist)).reshape(shape)


def _true_radius(model: HalfSpace, x: torch.Tensor) -> float:
    return abs(float(x.flatten() @ model.w) - model.b)


def test_certify_noise_is_sound_on_halfspace():
    """Over many independent certifications, the rate of certificates whose radius exceeds the
    true robustness radius (or whose label is wrong) must stay within alpha + binomial slack."""
    torch.manual_seed(0)
    model = HalfSpace(d=16, b=0.1)
    sigma, alpha, trials = 0.5, 0.1, 600
    # p_A = 0.9: certificates are near the truth, so an unsound bound would show up
    dist = sigma * norm.ppf(0.9)
    x = model.point_at_distance(dist, (1, 4, 4))
    true_r = _true_radius(model, x)
    assert true_r == pytest.approx(dist, rel=1e-5)
    gen = torch.Generator().manual_seed(42)
    failures = 0
    for _ in range(trials):
        c = certify_noise(model, x, sigma, n0=10, n=100, alpha=alpha, batch_size=110, generator=gen)
        if c.label != ABSTAIN and (c.label != 1 or c.radius > true_r):
            failures += 1
    # the failure count is Bin(trials, <= alpha): reject soundness only beyond its 99.9% quantile
    assert failures <= binom.ppf(0.999, trials, alpha), f"{failures}/{trials} certificates unsound"


def test_soundness_check_has_power():
    """The same check catches an unsound bound: the point estimate n_A/n in place of the
    Clopper-Pearson lower bound fails about half the time."""
    torch.manual_seed(0)
    model = HalfSpace(d=16, b=0.1)
    sigma, alpha, trials, n = 0.5, 0.1, 300, 100
    x = model.point_at_distance(sigma * norm.ppf(0.9), (1, 4, 4))
    true_r = _true_radius(model, x)
    gen = torch.Generator().manual_seed(7)
    failures = 0
    for _ in range(trials):
        c = certify_noise(model, x, sigma, n0=10, n=n, alpha=alpha, generator=gen)
        p_hat = c.counts[1] / n
        naive_r = stats.radius(sigma, min(p_hat, 1 - 1e-9))
        failures += naive_r > true_r
    assert failures > binom.ppf(0.999, trials, alpha)


def test_certificate_fields_and_abstain():
    model = HalfSpace(d=4, b=0.0)
    gen = torch.Generator().manual_seed(1)
    # far from the boundary: certified with a radius close to sigma * Phi^-1(alpha^(1/n))
    x = model.point_at_distance(3.0, (1, 2, 2))
    c = certify_noise(model, x, 0.25, 20, 200, 0.001, generator=gen)
    assert c.label == 1 and c.n_forward == 220 and c.seconds >= 0
    assert c.p_lower == pytest.approx(0.001 ** (1 / 200))
    assert c.radius == pytest.approx(0.25 * norm.ppf(c.p_lower))
    assert c.alpha == 0.001 and sum(c.counts) == 200
    # on the boundary: p_A = 1/2, must abstain (with overwhelming probability)
    x0 = model.point_at_distance(0.0, (1, 2, 2))
    c0 = certify_noise(model, x0, 0.25, 20, 200, 0.001, generator=gen)
    assert c0.label == ABSTAIN and c0.radius == 0.0
    d = c.to_dict()
    assert set(["label", "radius", "p_lower", "alpha", "n_forward", "seconds"]) <= set(d)


def test_selection_and_estimation_use_separate_samples():
    """n0 selection samples are not counted in the estimate."""
    calls = []

    class Counter(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return torch.zeros(x.shape[0], 3).index_fill_(1, torch.tensor([2]), 1.0)

    c = certify_noise(Counter(), torch.zeros(1, 2, 2), 0.1, n0=7, n=30, alpha=0.01, batch_size=8)
    assert sum(calls) == 37 and sum(c.counts) == 30 and c.label == 2


def test_reproducible_with_generator():
    model = HalfSpace(d=4, b=0.0)
    x = model.point_at_distance(0.2, (1, 2, 2))
    a = certify_noise(model, x, 0.5, 10, 300, 0.01, generator=torch.Generator().manual_seed(3))
    b = certify_noise(model, x, 0.5, 10, 300, 0.01, generator=torch.Generator().manual_seed(3))
    assert a.counts == b.counts and a.radius == b.radius


def test_predict_noise_abstains_rarely_wrong():
    model = HalfSpace(d=4, b=0.0)
    gen = torch.Generator().manual_seed(5)
    x = model.point_at_distance(0.5, (1, 2, 2))
    out = predict_noise(model, x, 0.25, 200, 0.001, generator=gen)
    assert out["label"] == 1 and out["p_value"] < 0.001
    x0 = model.point_at_distance(0.0, (1, 2, 2))
    wrong = 0
    for _ in range(50):
        o = predict_noise(model, x0, 0.25, 50, 0.05, generator=gen)
        wrong += o["label"] not in (ABSTAIN,)
    # at p_A = 1/2 any non-abstention is a type-I error of the two-sided test (rate <= alpha)
    assert wrong <= binom.ppf(0.999, 50, 0.05)


@pytest.mark.parametrize("kw,match", [
    (dict(sigma=float("nan")), "sigma"),
    (dict(sigma=-0.1), "sigma"),
    (dict(n0=200, n=100), "n0"),
    (dict(alpha=1.0), "alpha"),
    (dict(alpha=0.0), "alpha"),
    (dict(n=0), "n"),
])
def test_bad_input_is_one_line_error(kw, match):
    args = dict(sigma=0.25, n0=10, n=100, alpha=0.001)
    args.update(kw)
    with pytest.raises(SemsmoothError, match=match) as ei:
        certify_noise(HalfSpace(4, 0.0), torch.zeros(1, 2, 2), **args)
    assert "\n" not in str(ei.value)


def test_nan_input_refused():
    with pytest.raises(SemsmoothError, match="NaN"):
        certify_noise(HalfSpace(4, 0.0), torch.full((1, 2, 2), math.nan), 0.25, 10, 100, 0.01)
