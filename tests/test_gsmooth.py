"""GSmooth: radii vs independent Neyman-Pearson computations, M vs Jacobian norms, reduction to
Thm 1 / Eq. 7, shipped surrogates vs the real transforms, certificates and errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from semsmooth_core import stats
from semsmooth_core.data.embedded import embedded_mnist
from semsmooth_core.gsmooth import radii
from semsmooth_core.gsmooth.certify import (certify_gsmooth, certify_resolvable, estimate_M, jacobian_norm,
                                            sigma_inv_quadratic)
from semsmooth_core.gsmooth.surrogate import (Surrogate, approximation_error, load_surrogate, save_surrogate,
                                              train_surrogate)
from semsmooth_core.paths import models_dir
from semsmooth_core.transforms import get
from semsmooth_core.validation import SemsmoothError

torch.set_num_threads(1)
NONRES = ("zoom_blur", "defocus_blur", "rotational_blur", "pixelate", "motion_blur")


# --------------------------------------------------------------------------- resolvable radii
def _np_worst_q(dist: str, scale: float, p_a: float, shift: float) -> float:
    """Independent numeric Neyman-Pearson: on a fine grid of θ >= 0, the set of p-mass p_a with the
    smallest likelihood ratio q/p (q = the density shifted by ``shift``); returns its q-mass."""
    hi = {"exp": 40 * scale, "uniform": scale * 1.0001, "folded_gaussian": 12 * scale}[dist]
    t = np.linspace(0, hi + shift, 400001)
    dt = t[1] - t[0]

    def dens(u):
        if dist == "exp":
            return np.where(u >= 0, np.exp(-np.clip(u, 0, None) / scale) / scale, 0.0)
        if dist == "uniform":
            return np.where((u >= 0) & (u <= scale), 1.0 / scale, 0.0)
        return np.where(u >= 0, 2 * st.norm.pdf(u, scale=scale), 0.0)

    p, q = dens(t) * dt, dens(t - shift) * dt
    ratio = np.where(p > 0, q / np.maximum(p, 1e-300), np.inf)
    order = np.argsort(ratio, kind="stable")
    cp = np.cumsum(p[order])
    k = np.searchsorted(cp, p_a)
    return float(q[order][: k + 1].sum())


@pytest.mark.parametrize("dist,scale", [("exp", 1.5), ("uniform", 4.0), ("folded_gaussian", 2.0)])
@pytest.mark.parametrize("p_a", [0.7, 0.9, 0.99])
def test_resolvable_radius_is_the_neyman_pearson_boundary(dist, scale, p_a):
    R = radii.resolvable_radius(dist, p_a, scale)
    assert R > 0
    assert _np_worst_q(dist, scale, p_a, R) == pytest.approx(0.5, abs=3e-3)
    assert _np_worst_q(dist, scale, p_a, 0.9 * R) > 0.5


def test_resolvable_closed_forms_and_half_check():
    assert radii.exp_radius(0.9, 2.0) == pytest.approx(-2.0 * math.log(0.2))
    assert radii.uniform_radius(0.9, 3.0) == pytest.approx(1.2)
    assert radii.folded_gaussian_radius(0.9, 1.0) == pytest.approx(st.norm.ppf(0.95) - st.norm.ppf(0.75))
    for f in (radii.exp_radius, radii.uniform_radius, radii.folded_gaussian_radius):
        assert f(0.5, 1.0) == 0.0 and f(0.01, 1.0) == 0.0      # TSS forgot this: -ln(2-0.02) > 0
    with pytest.raises(SemsmoothError):
        radii.exp_radius(1.2, 1.0)
    with pytest.raises(SemsmoothError):
        radii.uniform_radius(0.9, -1.0)
    with pytest.raises(SemsmoothError):
        radii.resolvable_radius("cauchy", 0.9, 1.0)


def test_corrected_radius_is_thm3_form():
    R = radii.gsmooth_radius(0.99, 4.0)
    assert R == pytest.approx(st.norm.ppf(0.99) / 4.0)
    Rr, A = radii.corrected_radius(0.99, 4.0, 0.5, 0.3)
    assert A == pytest.approx(1 / (0.5 * st.norm.ppf(0.99)))
    assert Rr == pytest.approx(R * (1 - A * 0.3))
    assert radii.corrected_radius(0.99, 4.0, 0.5, 100.0)[0] == 0.0
    assert radii.corrected_radius(0.4, 4.0, 0.5, 0.0)[0] == 0.0


# --------------------------------------------------------------------------- latent covariance, M
def test_woodbury_matches_dense_inverse(gen):
    d, m = 30, 2
    A1 = torch.randn(d, m, generator=gen, dtype=torch.float64)
    v = torch.randn(5, d, generator=gen, dtype=torch.float64)
    S = 0.3 ** 2 * A1 @ A1.T + 0.2 ** 2 * torch.eye(d, dtype=torch.float64)
    dense = (v @ torch.linalg.inv(S) * v).sum(1)
    assert torch.allclose(sigma_inv_quadratic(v, A1, 0.3, 0.2), dense, rtol=1e-9)


class _IdentityH(torch.nn.Module):
    """H(z) = image channel of z, no clamp: τ(ξ, x) = x + a ξ + b — an additive (resolvable) map."""

    def forward(self, z):
        return z[:, :1]


class _AdditiveSurrogate(Surrogate):
    """A1 lives in the image channel (a fixed pattern a) and H = image channel: τ(ξ, x) = x + a ξ/2."""

    def __init__(self):
        super().__init__(height=8, width=8, theta_scale=2.0)
        self.a = torch.nn.Parameter(torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
        self.H = _IdentityH()

    def A1_full(self):
        out = torch.zeros(1, *self.latent_shape, dtype=self.a.dtype)
        out[:, :1] = self.a
        return out


def _additive_surrogate():
    return _AdditiveSurrogate().double().eval()


def test_M_reduces_to_thm1_for_an_additive_transform():
    sur = _additive_surrogate()
    x = torch.rand(1, 8, 8, dtype=torch.float64)
    a = sur.A1_matrix().detach()[:, 0]
    na = float(a.norm())
    for s1, s2 in [(0.5, 0.2), (1.0, 1e-4)]:
        Mi = estimate_M(sur, x, s1, s2, xi_max=1.0, grid=5)
        closed = na / math.sqrt(s2 ** 2 + s1 ** 2 * na ** 2)   # ||Σ^{-1/2} a||, constant in ξ
        assert Mi["M"] == pytest.approx(closed, rel=1e-6)
    # σ₂ -> 0: R = Φ⁻¹(p̲_A)/M -> σ₁ Φ⁻¹(p̲_A), GSmooth Eq. 7 (Thm 1 with M(θ,ξ) = I)
    Mi = estimate_M(sur, x, 1.0, 1e-3, xi_max=1.0, grid=3)
    assert radii.gsmooth_radius(0.95, Mi["M"]) == pytest.approx(stats.radius(1.0, 0.95), rel=1e-5)


def test_power_iteration_matches_the_full_jacobian():
    torch.manual_seed(1)
    sur = Surrogate(m=2, height=8, width=8, unet_width=4, theta_scale=1.0).double().eval()
    x = torch.rand(1, 8, 8, dtype=torch.float64)
    xi = torch.tensor([[0.3, 0.1]], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda p: sur(p, x[None]).flatten(), xi)[:, 0, :]   # [n, m]
    A1 = sur.A1_matrix().detach()
    Jd = torch.zeros(A1.shape[0], 2, dtype=torch.float64)
    Jd[:J.shape[0]] = J
    S = 0.4 ** 2 * A1 @ A1.T + 0.3 ** 2 * torch.eye(A1.shape[0], dtype=torch.float64)
    exact = torch.linalg.matrix_norm(torch.linalg.cholesky(torch.linalg.inv(S)).T @ Jd, ord=2)
    est = jacobian_norm(sur, x, xi, 0.4, 0.3, iters=50)
    assert float(est[0]) == pytest.approx(float(exact), rel=1e-4)


def _shipped(name):
    p = models_dir() / f"surrogate_{name}.pt"
    if not p.exists():
        pytest.fail(f"shipped surrogate {p.name} missing (python -m semsmooth_core train-surrogate --transform {name})")
    return load_surrogate(name)


@pytest.mark.parametrize("name", ["zoom_blur", "pixelate"])
def test_M_estimate_never_below_the_jacobian_norm(name, gen):
    sur, _ = _shipped(name)
    x, _ = embedded_mnist("heldout")
    xi_max = float(sur.config["theta_scale"])
    Mi = estimate_M(sur, x[3], 0.2, 0.5, xi_max, grid=17)
    xs = torch.rand(24, 1, generator=gen) * xi_max
    norms = jacobian_norm(sur, x[3], xs, 0.2, 0.5)
    assert float(norms.max()) <= Mi["M"] * (1 + 1e-3) + 0.05 * Mi["M"]   # grid estimate, 5% slack
    assert Mi["M"] >= float(norms.max()) * 0.95


# --------------------------------------------------------------------------- surrogates
@pytest.mark.parametrize("name", NONRES)
def test_shipped_surrogate_reproduces_the_real_transform(name):
    """Fresh held-out images (not the ones on the card): the error stays within the card's figures."""
    sur, card = _shipped(name)
    rep = card["approximation_error_heldout"]
    x, _ = embedded_mnist("heldout")
    fresh = x[-40:]
    e = approximation_error(sur, get(name), fresh, float(sur.config["theta_scale"]), grid=5)
    assert e["l1_mean"] <= 1.5 * rep["l1_mean"]
    assert float((e["eps_per_image"] > rep["eps_max"] * 1.2).float().mean()) == 0.0
    assert e["eps_mean"] <= 1.5 * rep["eps_mean"]
    # and it is far better than doing nothing (the identity)
    t = get(name)
    th = torch.full((40, 1), float(sur.config["theta_scale"]))
    with torch.no_grad():
        ident = (t(fresh, th) - fresh).flatten(1).norm(dim=1).mean()
        surr = (sur(th, fresh) - t(fresh, th)).flatten(1).norm(dim=1).mean()
    assert float(surr) < 0.5 * float(ident)


def test_train_save_load_roundtrip(tmp_path):
    x, _ = embedded_mnist("train")
    sur, rec = train_surrogate("defocus_blur", x[:64], 2.0, steps=2, batch_size=8)
    p = save_surrogate(tmp_path / "s.pt", sur, {"training": rec})
    sur2, card = load_surrogate(str(p))
    th = torch.tensor([[1.0]])
    assert torch.allclose(sur(th, x[:1]), sur2(th, x[:1]))
    assert json.loads(p.with_suffix(".json").read_text())["kind"] == "gsmooth_surrogate"
    with pytest.raises(SemsmoothError):
        train_surrogate("pixelate", x[:8], 100.0, steps=1)
    with pytest.raises(SemsmoothError):
        load_surrogate("no_such_transform")


# --------------------------------------------------------------------------- certificates
def _tiny_model():
    from semsmooth_core.models.architectures import build

    torch.manual_seed(0)
    return build("small_cnn", width=4).eval()


def test_certify_gsmooth_fields_and_errors(gen):
    sur, _ = _shipped("zoom_blur")
    t = get("zoom_blur")
    x, _ = embedded_mnist("heldout")
    model = _tiny_model()
    c = certify_gsmooth(model, sur, t, x[0], 0.2, 0.5, 10, 100, 0.01, generator=gen, m_grid=9, eps_grid=5)
    assert c.radius_unit == "factor" and c.n_forward == 110
    if c.label != -1:
        e = c.extra
        assert 0 <= c.radius <= e["xi_max"]
        assert e["radius_corrected_uniform"] <= e["radius_cor1"] + 1e-12
        assert e["radius_corrected_path"] <= e["radius_cor1"] + 1e-12 or e["radius_corrected_path"] <= e["xi_max"]
        assert e["radius_surrogate"] == max(e["radius_corrected_uniform"], e["radius_corrected_path"])
        assert c.radius == e["radius_real"] and e["sound"] is True and e["radius_surrogate_sound"] is False
    with pytest.raises(SemsmoothError):
        certify_gsmooth(model, sur, t, x[0], 0.2, 0.0, 10, 100, 0.01)
    with pytest.raises(SemsmoothError):
        certify_gsmooth(model, sur, t, x[0], 0.2, 0.5, 10, 100, 0.01, xi_max=5.0)
    with pytest.raises(SemsmoothError):
        certify_gsmooth(model, sur, t, x[:2], 0.2, 0.5, 10, 100, 0.01)


class _BlurThreshold(torch.nn.Module):
    """Class 1 iff the centre pixel of the blurred image is below a threshold: for a bright centre
    it is monotone in the kernel variance, so its smoothed probability is a known CDF."""

    def forward(self, x):
        c = x[:, 0, x.shape[2] // 2, x.shape[3] // 2]
        return torch.stack([c, 0.5 * torch.ones_like(c)], 1) * 10


def test_certify_resolvable_runs_and_checks_range(gen):
    t = get("gaussian_blur")
    x = torch.zeros(1, 15, 15)
    x[0, 7, 7] = 1.0
    c = certify_resolvable(_BlurThreshold(), t, x, "exp", 0.05, 20, 400, 0.001, generator=gen)
    # variance ~ Exp(mean 0.05) barely blurs: centre stays > 0.5 => class 0 with p ~ 1
    assert c.label == 0 and c.radius > 0
    assert c.radius == pytest.approx(radii.exp_radius(c.p_lower, 0.05))
    with pytest.raises(SemsmoothError):
        certify_resolvable(_BlurThreshold(), t, x, "exp", 5.0, 20, 400, 0.001)
    with pytest.raises(SemsmoothError):
        certify_resolvable(_BlurThreshold(), t, x, "lognormal", 0.1, 20, 400, 0.001)


# --------------------------------------------------------------------------- page
def test_gsmooth_page_certify_and_bad_sigma():
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    st.cache_data.clear()
    from pathlib import Path

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/8_GSmooth.py")
    at.run()
    assert not at.exception, at.exception
    assert any(m.label.startswith("M (per unit") for m in at.metric)
    at.number_input(key="gs_n0").set_value(10)
    at.number_input(key="gs_n").set_value(60)
    at.button(key="gs_certify").click()
    at.run()
    assert not at.exception, at.exception
    assert any(m.label == "prediction" for m in at.metric)
    cert = at.session_state["gs_cert"][2]
    if not cert.abstained:        # both radii, labelled, and the plain statement with its sound flag
        labels = [m.label for m in at.metric]
        assert any(lab.startswith("radius_real") and lab.endswith("sound") for lab in labels)
        assert any(lab.startswith("radius_surrogate") and lab.endswith("estimate") for lab in labels)
        assert any(i.value.startswith("Sound · attacker: worst-case") and "EVERY severity" in i.value
                   for i in at.info)
    at.number_input(key="gs_sigma2").set_value(0.0)
    at.run()
    assert not at.exception and at.error, "σ₂ = 0 must give one st.error line"


def test_attack_searches_inside_the_radius(gen):
    from semsmooth_core.gsmooth.attack import attack_gsmooth
    from semsmooth_core.models import load_model

    sur, _ = _shipped("zoom_blur")
    model, _ = load_model("gsmooth_zoom_blur_cnn")
    x, y = embedded_mnist("heldout")
    a = attack_gsmooth(model, sur, get("zoom_blur"), x[0], int(y[0]), 0.02, 0.2, 0.5, grid=3, n_random=2,
                       n_probe=8, k_worst=2, n_predict=40, alpha=0.01, generator=gen)
    assert len(a["candidates"]) == 5 and all(0.0 <= c <= 0.02 for c in a["candidates"])
    assert len(a["predict_labels"]) == 2 and set(a["worst_xi"]) <= set(a["candidates"])
    assert a["survived"] == all(lab == int(y[0]) for lab in a["predict_labels"])
    with pytest.raises(SemsmoothError):
        attack_gsmooth(model, sur, get("zoom_blur"), x[0], int(y[0]), -1.0, 0.2, 0.5)


def test_M_does_not_depend_on_the_clamp_convention_at_its_bounds(monkeypatch):
    """τ(0, x) = x puts a digit's pixels on the bounds of H's output clamp, where the derivative is
    a convention (PyTorch 2.11 passes it, 2.14 zeroes it). M is taken along the attack path (from
    the right at ξ = 0), so both conventions give the same M; at ξ = 0 itself they differ."""
    import semsmooth_core.gsmooth.surrogate as S

    sur, _ = _shipped("zoom_blur")
    x = embedded_mnist("heldout")[0][0]
    xi_max = float(sur.config["theta_scale"])
    got = {}
    for name, inside in {"passed": lambda t: (t >= 0) & (t <= 1), "zeroed": lambda t: (t > 0) & (t < 1)}.items():
        monkeypatch.setattr(S, "clamp01", lambda t, inside=inside: torch.where(inside(t), t, t.clamp(0, 1).detach()))
        at0 = float(jacobian_norm(sur, x, torch.zeros(1, 1), 0.2, 0.5)[0])
        got[name] = (at0, estimate_M(sur, x, 0.2, 0.5, xi_max, grid=17))
    assert got["passed"][0] > 1.2 * got["zeroed"][0]            # the kink: the conventions differ at 0
    assert got["passed"][1]["M"] == pytest.approx(got["zeroed"][1]["M"], rel=1e-4)
    assert 0 < got["zeroed"][1]["xi"][0] <= 1e-5 * xi_max         # the curve starts just right of 0
