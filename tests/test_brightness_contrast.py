"""The 2-D brightness + contrast transformation ψ_{c,b}(x) = m + e^c (x − m) + b: exact additive
composition (vs NumPy), reduction to brightness / contrast, interval forms, the 2-D certified region
(Fischer App. B) vs an independent computation and vs the 1-D radii of TSS and GSmooth Thm 1 / Eq. 7
on the axes, statistical soundness of certify_transform, and the CLI."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from scipy import stats as sst

from semsmooth_core import smoothing, stats
from semsmooth_core.transforms import get
from semsmooth_core.smoothing import box_halfwidth
from semsmooth_core.validation import SemsmoothError

torch.set_num_threads(1)


def _np_bc(x: np.ndarray, c: float, b: float) -> np.ndarray:
    """Independent reference in float64: m + e^c (x − m) + b, m = mean over C, H, W."""
    m = x.mean()
    return m + math.exp(c) * (x - m) + b


def _images(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, 9, 7, generator=g)


# --------------------------------------------------------------------------- the transform
def test_matches_numpy_and_composes_additively():
    t = get("brightness_contrast")
    x = _images()
    p1 = torch.tensor([[0.3, -0.1], [-0.7, 0.25], [1.1, 0.0]])
    p2 = torch.tensor([[-0.2, 0.05], [0.4, -0.3], [-0.5, 0.6]])
    y1 = t(x, p1, quantize=False)
    for i in range(3):
        ref = _np_bc(x[i].double().numpy(), float(p1[i, 0]), float(p1[i, 1]))
        np.testing.assert_allclose(y1[i].numpy(), ref, atol=2e-6)
    # ψ_{p1}(ψ_{p2}(x)) = ψ_{p1+p2}(x) in the ideal case, checked on the NumPy reference too
    comp = t(t(x, p2, quantize=False), p1, quantize=False)
    np.testing.assert_allclose(comp.numpy(), t(x, p1 + p2, quantize=False).numpy(), atol=1e-5)
    for i in range(3):
        a = _np_bc(_np_bc(x[i].double().numpy(), float(p2[i, 0]), float(p2[i, 1])), float(p1[i, 0]), float(p1[i, 1]))
        b = _np_bc(x[i].double().numpy(), float(p1[i, 0] + p2[i, 0]), float(p1[i, 1] + p2[i, 1]))
        np.testing.assert_allclose(a, b, atol=1e-12)
    # and it is commutative
    np.testing.assert_allclose(t(t(x, p1, quantize=False), p2, quantize=False).numpy(), comp.numpy(), atol=1e-5)
    # clamping/rounding breaks the composition (that gap is what double smoothing's E bounds)
    q = t(t(x, p2), p1)
    assert float((q - t(x, p1 + p2)).abs().max()) > 1e-3
    assert torch.all((t(x, p1) * 255 - (t(x, p1) * 255).round()).abs() < 1e-4)


def test_reduces_to_brightness_and_contrast():
    t, br, co = get("brightness_contrast"), get("brightness"), get("contrast")
    x = _images(4, 1)
    c = torch.tensor([0.5, -0.3, 1.0, 0.0])
    b = torch.tensor([0.1, -0.2, 0.0, 0.35])
    z = torch.zeros(4)
    for quantize in (False, True):
        tol = 2e-6 if not quantize else 1 / 255 + 1e-6
        bb = t(x, torch.stack([z, b], 1), quantize=quantize)
        assert float((bb - br(x, b, quantize=quantize)).abs().max()) <= tol
        cc = t(x, torch.stack([c, z], 1), quantize=quantize)
        assert float((cc - co(x, c, quantize=quantize)).abs().max()) <= tol
    # unquantized: equal to float precision everywhere
    torch.testing.assert_close(t(x, torch.stack([z, b], 1), quantize=False), br(x, b, quantize=False))
    torch.testing.assert_close(t(x, torch.stack([c, z], 1), quantize=False), co(x, c, quantize=False))
    d = t.describe()
    assert d["dim"] == 2 and d["units"] == ["log-factor", "pixel scale"] and d["composable"]
    with pytest.raises(SemsmoothError, match=r"\[B,2\]"):
        t(x, torch.zeros(4, 3))


def test_interval_forms_contain_the_transform():
    t = get("brightness_contrast")
    g = torch.Generator().manual_seed(3)
    x = _images(2, 2)
    center = torch.tensor([[0.1, -0.05], [-0.2, 0.1]])
    half = torch.tensor([[0.15, 0.1], [0.05, 0.2]])
    lo, hi = t.param_interval(x, center, half)
    for _ in range(20):
        gam = center + half * (2 * torch.rand(2, 2, generator=g) - 1)
        y = t(x, gam, quantize=False)
        assert torch.all(y >= lo - 1e-6) and torch.all(y <= hi + 1e-6)
    # the end points are reached (exact): the corner γ = center ± half gives lo or hi per pixel
    corners = [center + half * torch.tensor(s) for s in ((1., 1.), (1., -1.), (-1., 1.), (-1., -1.))]
    ys = torch.stack([t(x, cc, quantize=False) for cc in corners])
    torch.testing.assert_close(ys.min(0).values, lo)
    torch.testing.assert_close(ys.max(0).values, hi)
    # input interval: ψ_β(v) for v in [lo, hi] stays inside it
    beta = torch.tensor([[0.3, 0.1], [-0.4, -0.2]])
    ilo, ihi = t.input_interval(lo, hi, beta)
    for _ in range(20):
        v = lo + (hi - lo) * torch.rand(lo.shape, generator=g)
        y = t(v, beta, quantize=False)
        assert torch.all(y >= ilo - 1e-5) and torch.all(y <= ihi + 1e-5)


# --------------------------------------------------------------------------- the certified region
def _tss_q(k: float, p_a: float) -> float:
    """TSS (Li et al.) step (i): lower bound on P(A) after the b-noise std changes σ_b -> σ_b e^{−k}
    (Neyman-Pearson on one Gaussian coordinate, docs/theory.md)."""
    if k >= 0:
        return 2.0 - 2.0 * sst.norm.cdf(math.exp(k) * sst.norm.ppf(1.0 - p_a / 2.0))
    return 2.0 * sst.norm.cdf(math.exp(k) * sst.norm.ppf(0.5 + p_a / 2.0)) - 1.0


def _tss_certified(k: float, b: float, p_a: float, s_k: float, s_b: float) -> bool:
    """TSS's 2-D condition for x ↦ e^k (x + b): (k/σ_k)² + (e^k b/σ_b)² < Φ⁻¹(q(k))²."""
    q = _tss_q(k, p_a)
    return q > 0.5 and (k / s_k) ** 2 + (math.exp(k) * b / s_b) ** 2 < sst.norm.ppf(q) ** 2


def _certify_const(p_hit: float, sigma, n=400, alpha=0.01, seed=0):
    """A certificate from certify_transform whose votes we control: the model says class 1 with
    probability ~p_hit through a threshold on the sampled offset b."""
    sb = sigma[1]
    thr = -sb * sst.norm.ppf(p_hit)

    class F(torch.nn.Module):
        def forward(self, z):
            v = z.flatten(1).mean(1) - thr - 0.5       # mean = 0.5 + b
            return torch.stack([-v, v], 1)

    x = torch.full((1, 4, 4), 0.5)
    return smoothing.certify_transform(F(), x, "brightness_contrast", sigma, 20, n, alpha,
                                       generator=torch.Generator().manual_seed(seed), quantize=False)


def test_mahalanobis_region_matches_app_b_and_axis_radii():
    s_c, s_b = 0.5, 0.2
    cert = _certify_const(0.9, [s_c, s_b])
    p = cert.p_lower
    assert cert.label == 1 and 0.8 < p < 0.95
    # App. B (independent): sqrt(γᵀΣ⁻¹γ) < ½(Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)), p̄_B = 1 − p̲_A
    r_b = 0.5 * (sst.norm.ppf(p) - sst.norm.ppf(1 - p))
    assert cert.radius == pytest.approx(r_b, rel=1e-9)
    assert "Mahalanobis" in cert.radius_unit
    # on the axes: the 1-D radius of GSmooth Eq. 7, R = σ/2 (Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)), per axis
    assert cert.extra["axis_radii"] == pytest.approx([s_c * r_b, s_b * r_b], rel=1e-9)
    # the region is tight and sound against every linear worst case (Neyman-Pearson half-planes):
    # at γ, the worst classifier with P(A) = p̲_A at 0 keeps Φ(Φ⁻¹(p̲_A) − wᵀγ/‖w‖_Σ) for direction w
    S = np.diag([s_c ** 2, s_b ** 2])
    ang = np.linspace(0, 2 * np.pi, 721)
    W = np.stack([np.cos(ang), np.sin(ang)], 1)
    sw = np.sqrt(np.einsum("ij,jk,ik->i", W, S, W))
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.normal(size=2)
        d /= np.sqrt(d @ np.linalg.inv(S) @ d)            # unit Mahalanobis length
        for scale, inside in ((0.98, True), (1.02, False)):
            gam = d * cert.radius * scale
            worst = sst.norm.cdf(sst.norm.ppf(p) - (W @ gam) / sw).min()
            assert (worst > 0.5) == inside
    # the certified ℓ∞ box |c|, |b| <= a: its corner lies on the ellipse
    a = box_halfwidth(cert.radius, [s_c, s_b])
    assert (a / s_c) ** 2 + (a / s_b) ** 2 == pytest.approx(cert.radius ** 2)
    assert box_halfwidth(0.0, [s_c, s_b]) == 0.0


def test_agrees_with_tss_on_the_axes():
    s_c, s_b = 0.3, 0.3
    cert = _certify_const(0.95, [s_c, s_b], n=600)
    p, R = cert.p_lower, cert.radius          # equal σ: isotropic, R in (log-factor, pixel scale)
    assert R == pytest.approx(s_b * sst.norm.ppf(p))
    # slice c = k = 0 (pure brightness): TSS certifies exactly |b| < σ_b Φ⁻¹(p̲_A) — ours too
    rb = s_b * sst.norm.ppf(p)
    assert _tss_certified(0.0, 0.999 * rb, p, s_c, s_b) and not _tss_certified(0.0, 1.001 * rb, p, s_c, s_b)
    # slice b = 0 (pure contrast): TSS pays for the rescaled b-noise, so its k-interval is strictly
    # inside ours (|c| < σ_c Φ⁻¹(p̲_A)); with σ_b -> 0 both are GSmooth Eq. 7 with M = 1
    ks = np.linspace(-R, R, 401)
    tss_ok = np.array([_tss_certified(k, 0.0, p, s_c, s_b) for k in ks])
    assert tss_ok[len(ks) // 2] and not tss_ok[0] and not tss_ok[-1]
    assert ks[tss_ok].max() < R and ks[tss_ok].min() > -R
    # TSS's whole 2-D region sits inside ours in TSS's coordinates at mean m = 0 (where the maps agree:
    # e^k (x + b) = ψ_{k, e^k b}(x) for m(x) = 0)
    for k in np.linspace(-R, R, 41):
        for b in np.linspace(-R, R, 41):
            if _tss_certified(k, b, p, s_c, s_b):
                assert k ** 2 + (math.exp(k) * b) ** 2 < R ** 2


# --------------------------------------------------------------------------- statistical soundness
class LinearInParams(torch.nn.Module):
    """Reads (c, b) back from ψ_{c,b}(x0) (std ratio and mean shift) and predicts class 1 iff
    w_c c + w_b b > t. With β ~ N(0, Σ) the smoothed P(class 1) at γ is Φ((wᵀγ − t)/‖w‖_Σ)."""

    def __init__(self, m0, s0, w, t):
        super().__init__()
        self.register_buffer("ref", torch.tensor([m0, s0, w[0], w[1], t], dtype=torch.float64))

    def forward(self, z):
        z = z.flatten(1).double()
        m0, s0, wc, wb, t = self.ref
        c = torch.log(z.std(1, correction=0) / s0)
        b = z.mean(1) - m0
        v = (wc * c + wb * b - t).float()
        return torch.stack([-v, v], 1)


def test_certify_transform_is_sound_in_2d():
    g = torch.Generator().manual_seed(11)
    x0 = torch.rand(1, 6, 6, generator=g)
    m0, s0 = float(x0.double().mean()), float(x0.double().std(correction=0))
    s_c, s_b = 0.3, 0.1
    w, t = (1.0, 2.0), -0.25
    model = LinearInParams(m0, s0, w, t)
    sw = math.sqrt(w[0] ** 2 * s_c ** 2 + w[1] ** 2 * s_b ** 2)
    r_true = -t / sw                       # the exact Mahalanobis robustness radius of g at x0
    assert 0.6 < r_true < 1.0
    alpha, trials = 0.1, 150
    bad, radii = 0, []
    for _ in range(trials):
        c = smoothing.certify_transform(model, x0, "brightness_contrast", [s_c, s_b], 10, 200, alpha,
                                        generator=g, quantize=False)
        if c.label != stats.ABSTAIN and (c.label != 1 or c.radius > r_true):
            bad += 1
        radii.append(c.radius)
    assert bad <= sst.binom.ppf(0.999, trials, alpha), f"{bad}/{trials} false certificates"
    assert 0.5 * r_true < float(np.median(radii)) <= r_true        # and it has power


def test_soundness_check_has_power():
    """The same check flags a radius inflated by 30 %: the test above can fail."""
    g = torch.Generator().manual_seed(12)
    x0 = torch.rand(1, 6, 6, generator=g)
    m0, s0 = float(x0.double().mean()), float(x0.double().std(correction=0))
    model = LinearInParams(m0, s0, (1.0, 2.0), -0.25)
    r_true = 0.25 / math.sqrt(0.3 ** 2 + 4 * 0.1 ** 2)
    bad = 0
    for _ in range(40):
        c = smoothing.certify_transform(model, x0, "brightness_contrast", [0.3, 0.1], 10, 200, 0.1,
                                        generator=g, quantize=False)
        bad += int(c.label != stats.ABSTAIN and 1.3 * c.radius > r_true)
    assert bad > sst.binom.ppf(0.999, 40, 0.1)


# --------------------------------------------------------------------------- CLI
def _cli(*args):
    from semsmooth_core import cli

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = cli.main(list(args))
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    return rc, lines


def test_cli_estimate_error_and_certify():
    rc, lines = _cli("estimate-error", "--transform", "brightness_contrast", "--indices", "0:20",
                     "--samples", "200", "--worst-case", "--worst-samples", "6", "--json", "--quiet")
    assert rc == 0 and len(lines) == 1
    d = json.loads(lines[0])
    assert d["setup"]["units"] == ["log-factor", "pixel scale"] and d["setup"]["sigma"] == [0.2, 0.2]
    assert d["quantiles"]["max"] > 0            # clamping + rounding: ψ does not compose on real images
    wc = d["worst_case"]
    assert wc["quantiles_bound"]["max"] >= wc["quantiles_sampled_max"]["max"] - 1e-6
    rc, lines = _cli("certify", "--smoothing", "transform", "--transform", "brightness_contrast",
                     "--model", "mnist_cnn_noise025", "--indices", "0:3", "--n0", "20", "--n-gamma", "100",
                     "--json", "--quiet")
    assert rc == 0 and len(lines) == 1
    s = json.loads(lines[0])
    assert s["n"] == 3 and len(s["rows"]) == 3 and s["forward_passes_per_input"] == 120
    assert s["radius_unit"] == "log-factor / pixel scale"
    rc, lines = _cli("certify", "--smoothing", "transform", "--transform", "brightness_contrast",
                     "--model", "mnist_cnn_noise025", "--indices", "0:1", "--n0", "20", "--n-gamma", "100",
                     "--sigma-gamma", "0.5,0.2", "--json", "--quiet")
    assert rc == 0
    row = json.loads(lines[0])["rows"][0]
    assert "Mahalanobis" in row["radius_unit"]


# --------------------------------------------------------------------------- page
def test_gsmooth_page_certifies_brightness_contrast():
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    from pathlib import Path

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/8_GSmooth.py")
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="gs_bc_n").set_value(100)
    at.button(key="gs_bc_go").click()
    at.run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "box ‖(c, b)‖_∞ <" in labels and "ellipse semi-axes (c, b)" in labels
    at.number_input(key="gs_bc_sb").set_value(0.0)
    at.button(key="gs_bc_go").click()
    at.run()
    assert not at.exception and at.error, "σ_b = 0 must give one st.error line"
