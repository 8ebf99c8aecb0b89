"""The sound GSmooth radius on the REAL transformation (gsmooth/sound.py, issue 13):

(a) coverage: on a dense severity grid (2,001 points) of the real, k/255-rounded transformation the
    latent distance never reaches Φ⁻¹(p̲_A) inside [0, radius_real], for several inputs and every
    transformation with a proven enclosure;
(b) the grid-only variant (no between-point term) over-claims on a constructed input, and the dense
    check of (a) catches it;
(c) the enclosures hold the real transform inside each cell, and the certificates carry the labels
    (real radius sound, surrogate radius an estimate, resolvable path not sound).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as st

from semsmooth_core.data.embedded import embedded_mnist
from semsmooth_core.gsmooth import sound
from semsmooth_core.gsmooth.certify import certify_gsmooth, certify_resolvable, sigma_inv_quadratic
from semsmooth_core.gsmooth.surrogate import load_surrogate
from semsmooth_core.transforms import get
from semsmooth_core.validation import SemsmoothError

torch.set_num_threads(1)
# (transform, search range ξ_max in its unit) — the ranges of the shipped surrogates or the default C
CASES = [("zoom_blur", 0.45), ("defocus_blur", 3.0), ("rotational_blur", 30.0), ("pixelate", 3.0),
         ("motion_blur", 6.0), ("gaussian_blur", 4.0)]


@pytest.fixture(scope="module")
def digits():
    x, _ = embedded_mnist("heldout")
    return x[:3]


def _dense_d(t, x, hi, sigma2, n=2001):
    xs = np.linspace(0.0, hi, n)
    return xs, sound.real_distance(t, x, xs, sigma2).numpy()


@pytest.mark.parametrize("name,xi_max", CASES)
def test_dense_grid_never_reaches_the_threshold_inside_radius_real(name, xi_max, digits):
    t = get(name)
    for i, p in enumerate((0.9, 0.99, 0.999)):
        x = digits[i]
        r = sound.radius_real(t, x, p, 0.5, xi_max)
        R, thr = r["radius_real"], r["threshold"]
        assert thr == pytest.approx(st.norm.ppf(p)) and r["sound"] and r["exact_metric"]
        assert 0.0 < R <= xi_max
        xs, d = _dense_d(t, x, R, 0.5)
        assert d.max() < thr, f"{name} digit {i}: d = {d.max():.4f} >= {thr:.4f} inside [0, {R:g}]"
        assert r["d_max_grid"] <= r["bound_max"] + 1e-12 and d.max() <= r["bound_max"] + 1e-9
        # not vacuous: the first dense crossing lies right after R (refinement near the crossing)
        xs2, d2 = _dense_d(t, x, min(xi_max, 2 * R), 0.5, n=401)
        if (d2 >= thr).any():
            cross = xs2[np.argmax(d2 >= thr)]
            assert R <= cross and R >= 0.9 * cross - 2 * R / 400


def _stripes():
    x = torch.zeros(1, 16, 64)
    x[:, :, ::2] = 1.0           # period-2 columns: motion blur's window average oscillates (sinc-like)
    return x


def test_grid_only_variant_overclaims_and_the_dense_check_catches_it():
    """d(l) of horizontal motion blur on period-2 stripes peaks near l ≈ 2.7 px, between the grid
    points 0, 2, 4. With Φ⁻¹(p̲_A) just above d(2) and d(4) the grid alone claims [0, 4]; the dense
    grid finds d >= Φ⁻¹(p̲_A) inside; the sound radius stops before the crossing."""
    t = get("motion_blur")
    x = _stripes()
    s2 = 10.0
    d_grid = sound.real_distance(t, x, [0.0, 2.0, 4.0], s2).numpy()
    thr = 1.02 * d_grid.max()
    p = float(st.norm.cdf(thr))
    bad = sound.radius_real(t, x, p, s2, 4.0, grid=2, between=False)
    good = sound.radius_real(t, x, p, s2, 4.0, grid=2)
    assert bad["radius_real"] == 4.0 and not bad["sound"]
    xs, d = _dense_d(t, x, bad["radius_real"], s2)
    assert d.max() >= thr                                   # (a)'s check fails on the unsound variant
    xs, d = _dense_d(t, x, good["radius_real"], s2)
    assert d.max() < thr and good["radius_real"] < 2.7      # and passes on the sound one
    assert good["between_term"] > 0


@pytest.mark.parametrize("name,xi_max", CASES)
def test_enclosure_holds_the_real_transform_inside_each_cell(name, xi_max, digits):
    t = get(name)
    x = digits[0]
    G = 8
    e = sound._f32(np.linspace(0.0, xi_max / 4, G + 1))
    a, b = torch.tensor(e[:-1]), torch.tensor(e[1:])
    lo, hi, ok = sound.enclose(t, x, a, b)
    xs = torch.rand(G, 16, generator=torch.Generator().manual_seed(1)) * (b - a)[:, None] + a[:, None]
    for g in range(G):
        if not ok[g]:
            continue
        y = t(x[None].expand(16, *x.shape), xs[g].float()[:, None], quantize=False).double()
        assert (y >= lo[g] - sound.SLACK).all() and (y <= hi[g] + sound.SLACK).all()
    # a degenerate cell [ξ, ξ] reproduces the transform: the coordinate conventions match
    xi = torch.tensor([0.3 * xi_max / 4] * 2, dtype=torch.float64)
    xi = torch.tensor(sound._f32(xi.numpy()))
    lo, hi, ok = sound.enclose(t, x, xi, xi)
    y = t(x[None], xi[:1].float()[:, None], quantize=False).double()
    assert ok.all() and torch.allclose(lo[0], y[0], atol=2e-5) and torch.allclose(hi[0], y[0], atol=2e-5)


def test_latent_distance_with_A1_is_the_woodbury_form():
    torch.manual_seed(0)
    n, d = 6, 10
    A1 = torch.zeros(d, 1, dtype=torch.float64)
    A1[3:, 0] = torch.randn(d - 3, dtype=torch.float64)
    A1[:n, 0] += torch.randn(n, dtype=torch.float64)            # reaches the image channels too
    delta = torch.randn(3, n, dtype=torch.float64)
    S = 0.7 ** 2 * A1 @ A1.T + 0.4 ** 2 * torch.eye(d, dtype=torch.float64)
    v = torch.zeros(3, d, dtype=torch.float64)
    v[:, :n] = delta
    want = torch.sqrt((v @ torch.linalg.inv(S) * v).sum(1))
    got = sound.latent_distance(delta, 0.4, A1, 0.7)
    assert torch.allclose(got, want, atol=1e-10)
    assert (got <= delta.norm(dim=1) / 0.4 + 1e-12).all()       # Σ ⪰ σ₂² I: the bound used per cell
    assert torch.allclose(sigma_inv_quadratic(v, A1, 0.7, 0.4).sqrt(), want, atol=1e-10)


def test_certificate_labels(gen):
    from semsmooth_core.models import load_model

    x, y = embedded_mnist("heldout")
    sur, _ = load_surrogate("pixelate")
    model, _ = load_model("gsmooth_pixelate_cnn")
    c = certify_gsmooth(model, sur, get("pixelate"), x[0], 1.0, 0.5, 10, 200, 0.01, generator=gen,
                        m_grid=5, eps_grid=5)
    e = c.extra
    assert c.label == int(y[0])
    assert e["attacker"] == "worst-case" and e["sound"] is True and e["radius_surrogate_sound"] is False
    assert "grid estimates" in e["radius_surrogate_reason"]
    assert c.radius == e["radius_real"] > 0 and e["radius_real_bound"]["exact_metric"]
    assert "EVERY severity" in e["statement"] and "proven" in e["statement"]
    # a transformation without a proven enclosure: the surrogate radius, labelled an estimate
    c2 = certify_gsmooth(model, sur, get("rotation"), x[0], 1.0, 0.5, 10, 200, 0.01, generator=gen,
                         m_grid=5, eps_grid=5)
    assert c2.extra["sound"] is False and "radius_real" not in c2.extra and "sound_reason" in c2.extra
    assert c2.radius == c2.extra["radius_surrogate"] and "estimate" in c2.extra["statement"]
    with pytest.raises(SemsmoothError):
        sound.radius_real(get("rotation"), x[0], 0.9, 0.5, 1.0)


def test_resolvable_path_is_labelled_not_sound(gen):
    t = get("gaussian_blur")
    xx = torch.zeros(1, 15, 15)
    xx[0, 7, 7] = 1.0

    class Centre(torch.nn.Module):
        def forward(self, z):
            c = z[:, 0, 7, 7]
            return torch.stack([c, 0.5 * torch.ones_like(c)], 1) * 10

    c = certify_resolvable(Centre(), t, xx, "exp", 0.05, 20, 200, 0.001, generator=gen)
    assert c.extra["sound"] is False and c.extra["attacker"] == "worst-case"
    assert "truncated" in c.extra["sound_reason"] and c.extra["statement"].startswith("Estimate")


def test_radius_never_exceeds_the_range_and_zero_below_half():
    x = torch.zeros(1, 8, 8)                          # a blank image: no blur moves it, d = 0 everywhere
    r = sound.radius_real(get("zoom_blur"), x, 0.99, 0.5, 0.45)
    assert r["radius_real"] <= 0.45 and r["radius_real"] == pytest.approx(0.45, rel=1e-6)
    assert sound.radius_real(get("zoom_blur"), x, 0.5, 0.5, 0.45)["radius_real"] == 0.0


def test_box_range_is_the_exact_range_of_the_bilinear_interpolant():
    """min/max of I over boxes narrower than 1 px (with lattice lines inside) vs a dense 41×41 sampling
    of each box: never outside (sound), and attained (the candidates lie in the box)."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 6, 7, generator=g, dtype=torch.float64)
    n = 200
    x0 = torch.rand(n, generator=g, dtype=torch.float64) * 9 - 2          # also outside the image
    y0 = torch.rand(n, generator=g, dtype=torch.float64) * 8 - 2
    w = torch.rand(n, generator=g, dtype=torch.float64) * 0.99
    h = torch.rand(n, generator=g, dtype=torch.float64) * 0.99
    h[::4] = 0.0                                                          # horizontal segments too
    mn, mx = sound._box_range(x, x0, x0 + w, y0, y0 + h)
    t = torch.linspace(0, 1, 41, dtype=torch.float64)
    px = x0[:, None, None] + w[:, None, None] * t[None, :, None]
    py = y0[:, None, None] + h[:, None, None] * t[None, None, :]
    dense = sound._bilinear(x, px, py)[..., 0].flatten(1)                 # [n, 41*41]
    assert (dense.min(1).values >= mn[:, 0] - 1e-12).all() and (dense.max(1).values <= mx[:, 0] + 1e-12).all()
    assert ((mx[:, 0] - mn[:, 0]) <= (dense.max(1).values - dense.min(1).values) + 0.1).all()  # not loose
    # the interpolant itself is grid_sample's (align_corners=False, zero padding)
    import torch.nn.functional as F
    px, py = torch.broadcast_tensors(px, py)
    gx = (2 * px.flatten() + 1) / 7 - 1
    gy = (2 * py.flatten() + 1) / 6 - 1
    ref = F.grid_sample(x[None], torch.stack([gx, gy], -1).view(1, 1, -1, 2), mode="bilinear",
                        padding_mode="zeros", align_corners=False).flatten()
    assert torch.allclose(ref, dense.flatten(), atol=1e-12)


@pytest.mark.parametrize("name,xi_max", [("zoom_blur", 0.45), ("rotational_blur", 30.0), ("motion_blur", 6.0)])
def test_affine_boxes_hold_every_source_point_of_the_cell(name, xi_max):
    """The box of sample k holds the source point for 201 severities across the cell (the rotation's
    arc included: its sagitta)."""
    t = get(name)
    K, H, W = t.K, 9, 11
    # a wide cell: the rotation's arcs then pass a coordinate extremum (where the chord's hull is too small)
    a, b = torch.tensor([0.0], dtype=torch.float64), torch.tensor([xi_max], dtype=torch.float64)
    u = (torch.arange(W, dtype=torch.float64) - (W - 1) / 2).view(1, W)
    v = (torch.arange(H, dtype=torch.float64) - (H - 1) / 2).view(H, 1)
    for k in range(K + 1):
        f = k / K
        bx0, bx1, by0, by1 = (z[0] for z in sound._affine_boxes(name, K, k, a, b, H, W))
        for xi in torch.linspace(float(a), float(b), 201, dtype=torch.float64):
            if name == "zoom_blur":
                sx, sy = u / (1 + xi * f) + 0 * v, v / (1 + xi * f) + 0 * u
            elif name == "motion_blur":
                sx, sy = u - xi * (f - 0.5) + 0 * v, v + 0 * u
            else:
                p = torch.deg2rad(xi * (f - 0.5))
                sx, sy = torch.cos(p) * u - torch.sin(p) * v, torch.sin(p) * u + torch.cos(p) * v
            sx, sy = sx + (W - 1) / 2, sy + (H - 1) / 2
            assert (sx >= bx0 - 1e-12).all() and (sx <= bx1 + 1e-12).all()
            assert (sy >= by0 - 1e-12).all() and (sy <= by1 + 1e-12).all()
