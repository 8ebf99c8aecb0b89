"""runs.summary.n_ceiling against the closed form σ Φ⁻¹(α^(1/n)) (Fischer App. C.2) computed here
with scipy, and None where the parameters alone do not fix it."""

from __future__ import annotations

import pytest
from scipy.stats import norm

from semsmooth_core.runs.summary import n_ceiling


def _closed(sigma, n, alpha, rho=0.0):
    return sigma * norm.ppf(alpha ** (1.0 / n) - rho)


def test_noise_run():
    p = {"smoothing": "noise", "sigma_eps": 0.25, "n_eps": 1000, "alpha_gamma": 0.001}
    assert n_ceiling(p) == pytest.approx(_closed(0.25, 1000, 0.001), rel=1e-9)
    assert n_ceiling(p) == pytest.approx(0.616, abs=1e-3)  # the Smoothing basics default


def test_transform_and_double_runs():
    t = {"smoothing": "transform", "transform": "rotation", "sigma_gamma": 10.0, "n_gamma": 200, "alpha_gamma": 0.01}
    assert n_ceiling(t) == pytest.approx(_closed(10.0, 200, 0.01), rel=1e-9)
    d = {"smoothing": "double", "transform": "rotation", "sigma_gamma": 10.0, "n_gamma": 200, "alpha_gamma": 0.01,
         "alpha_eps": 0.001, "q_E_lower": 0.99, "alpha_E": 0.001}
    rho = 0.001 + 0.01 + 0.001
    assert n_ceiling(d) == pytest.approx(_closed(10.0, 200, 0.01, rho), rel=1e-9)
    assert n_ceiling(d | {"attacker_range": [[-3, 3]]}) == pytest.approx(3.0)  # clipped to C


def test_undefined_cases():
    assert n_ceiling({"smoothing": "double", "transform": "rotation", "q_E_lower": None}) is None  # E from the run
    assert n_ceiling({"smoothing": "transform", "transform": "translation"}) is None  # two parameters
    assert n_ceiling({"smoothing": "gsmooth", "transform": "zoom_blur"}) is None
    assert n_ceiling({}) is None  # defaults: double smoothing without q_E
