"""Parameter smoothing (Fischer Thm 4.2, App. B): statistical soundness on a base classifier whose
smoothed probability is known in closed form, radii vs the closed form, transforms from the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sst

from semsmooth_core import smoothing, stats
from semsmooth_core.validation import SemsmoothError


class Threshold(torch.nn.Module):
    """f(z) = [z_0 > t]: class 1 above the threshold (logits ±(z_0 − t))."""

    def __init__(self, t=0.0):
        super().__init__()
        self.t = torch.nn.Parameter(torch.tensor(float(t)), requires_grad=False)

    def forward(self, z):
        v = z.reshape(z.shape[0], -1)[:, 0] - self.t
        return torch.stack([-v, v], 1)


def shift(xb, params):
    """ψ_β(x) = x + β on a scalar input: composes exactly (ψ_a∘ψ_b = ψ_{a+b})."""
    return xb + params[:, :1].reshape(-1, *([1] * (xb.ndim - 1)))


def test_threshold_soundness_and_power():
    # g(x) = 1 iff P_β(x + β > 0) > 1/2; p_A = Φ(x/σ); true radius R* = x (shifts below −x flip it).
    sigma, x0, alpha, trials = 1.0, 0.8, 0.1, 300
    g = torch.Generator().manual_seed(7)
    model = Threshold(0.0)
    x = torch.tensor([x0])
    bad, radii = 0, []
    for _ in range(trials):
        c = smoothing.certify_transform(model, x, shift, sigma, 10, 200, alpha, generator=g, dim=1)
        if c.label != stats.ABSTAIN and (c.label != 1 or c.radius > x0):
            bad += 1
        radii.append(c.radius)
    # false certificates: at most alpha plus binomial slack (one-sided 99.9 % quantile)
    assert bad <= sst.binom.ppf(0.999, trials, alpha)
    # and the test has power: the median radius is close to the truth
    assert 0.6 * x0 < float(np.median(radii)) <= x0 + 1e-9


def test_radius_matches_closed_form_and_anisotropic():
    model = Threshold(0.0)
    g = torch.Generator().manual_seed(0)
    c = smoothing.certify_transform(model, torch.tensor([2.0]), shift, 1.0, 20, 500, 0.01, generator=g, dim=1)
    assert c.radius == pytest.approx(stats.radius(1.0, stats.cp_lower(c.counts[1], 500, 0.01)))
    assert c.n_forward == 520 and c.radius_unit == "parameter units"
    # App. B: Σ = diag(σ₁², σ₂²) -> Mahalanobis radius Φ⁻¹(p̲_A), axis radii σ_i Φ⁻¹(p̲_A)
    def shift2(xb, p):
        return xb + p[:, :1].reshape(-1, 1) + 0 * p[:, 1:].reshape(-1, 1)
    c2 = smoothing.certify_transform(model, torch.tensor([2.0]), shift2, [1.0, 5.0], 20, 500, 0.01,
                                     generator=torch.Generator().manual_seed(0), dim=2)
    r1 = stats.radius(1.0, c2.p_lower)
    assert c2.radius == pytest.approx(r1)
    assert c2.extra["axis_radii"] == pytest.approx([r1, 5 * r1])
    assert "Mahalanobis" in c2.radius_unit


def test_registry_transform_units_clip_and_predict():
    torch.manual_seed(0)
    x = torch.zeros(1, 16, 16)
    x[:, 4:12, 4:12] = 1.0

    class Bright(torch.nn.Module):  # class 1 when the mean is above 0.1 — rotation barely matters
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

        def forward(self, z):
            v = z.flatten(1).mean(1) - 0.1
            return torch.stack([-v, v], 1)

    g = torch.Generator().manual_seed(1)
    c = smoothing.certify_transform(Bright(), x, "rotation", 10.0, 10, 100, 0.01, generator=g,
                                    attacker_range=[(-5, 5)], clip=True)
    assert c.label == 1 and c.radius_unit == "degrees"
    assert c.radius == 5.0 and c.extra["clipped"]
    t = smoothing.certify_transform(Bright(), x, "translation", 1.0, 10, 100, 0.01, generator=g)
    assert t.label == 1 and t.radius_unit == "pixels"
    p = smoothing.predict_transform(Bright(), x, "rotation", 10.0, 100, 0.01, generator=g)
    assert p["label"] == 1 and p["n_forward"] == 100


def test_bad_inputs():
    m = Threshold()
    x = torch.tensor([1.0])
    with pytest.raises(SemsmoothError, match="sigma"):
        smoothing.certify_transform(m, x, shift, 0.0, 10, 100, 0.01, dim=1)
    with pytest.raises(SemsmoothError, match="n0"):
        smoothing.certify_transform(m, x, shift, 1.0, 200, 100, 0.01, dim=1)
    with pytest.raises(SemsmoothError, match="alpha"):
        smoothing.certify_transform(m, x, shift, 1.0, 10, 100, 1.5, dim=1)
    with pytest.raises(SemsmoothError, match="unknown transformation"):
        smoothing.certify_transform(m, torch.zeros(1, 8, 8), "twirl", 1.0, 10, 100, 0.01)
    with pytest.raises(SemsmoothError, match="interpolation"):
        smoothing.certify_transform(m, torch.zeros(1, 8, 8), "rotation", 1.0, 10, 100, 0.01,
                                    interpolation="lanczos")
    with pytest.raises(SemsmoothError, match="2 sigmas"):
        smoothing.certify_transform(m, torch.zeros(1, 8, 8), "translation", [1.0, 2.0, 3.0], 10, 100, 0.01)
