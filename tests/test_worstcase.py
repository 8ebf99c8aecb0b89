"""The sound worst-case bound on max_{γ∈C} ‖ε(β, γ, x)‖₂ (semsmooth_core.worstcase, Fischer §6).

Soundness is checked against an independent dense evaluation of the exact ε (errors.eps) on a
γ grid much finer than the cells; the same check is shown to FAIL for unsound variants (the
between-point term or the rounding widening dropped), so it has teeth.
"""

import itertools

import pytest
import torch

from semsmooth_core import errors as E
from semsmooth_core import worstcase as WC
from semsmooth_core.transforms.geometric import affine_resample
from semsmooth_core.validation import SemsmoothError

PRE = "vignette+gauss:5:1"
CASES = {  # transform: (sigma, range C, dense grid per dimension)
    "rotation": (30.0, 30.0, 2001),
    "translation": (3.0, 2.0, 81),
    "scaling": (0.2, 0.2, 2001),
}


@pytest.fixture(scope="module")
def digits():
    from semsmooth_core.data import embedded_mnist
    x, _ = embedded_mnist("heldout")
    return x[:20]


def _dense_gamma(s, n):
    axes = [torch.linspace(lo, hi, n) for lo, hi in s.C]
    return torch.cartesian_prod(*axes).view(-1, len(axes)) if len(axes) > 1 else axes[0][:, None]


def _dense_max(s, x, beta, gam):
    """Exact max over the dense γ grid of ‖ε(β, γ, x)‖₂ (max over parts), one β."""
    out = 0.0
    for i in range(0, len(gam), 2048):
        g = gam[i:i + 2048]
        e = E.eps(s, x[None].expand(len(g), -1, -1, -1), beta[None].expand(len(g), -1), g)
        out = max(out, float(E.part_norms(e.double(), s.norm).amax()))
    return out


@pytest.mark.parametrize("tr,ip", list(itertools.product(CASES, ("nearest", "bilinear", "bicubic"))))
def test_bound_covers_dense_grid(digits, tr, ip):
    sig, C, n = CASES[tr]
    s = E.ErrorSetup(tr, ip, sig, C, PRE)
    g = torch.Generator().manual_seed(hash((tr, ip)) % 1000)
    gam = _dense_gamma(s, n)
    for j in ((3, 11) if ip == "bicubic" else (list(CASES).index(tr) + 5,)):     # several inputs in all
        beta = torch.randn(2, s.t.dim, generator=g) * torch.tensor(s.sigma)
        r = WC.max_eps_upper(s, digits[j], beta, rel_tol=0.5, max_cells=64, device="cpu")
        assert r.bound.dtype == torch.float64 and r.bound.shape == (2,) and r.below is None
        for b in range(2):
            dense = _dense_max(s, digits[j], beta[b], gam)
            assert dense < r.bound[b], (tr, ip, j, b, dense, float(r.bound[b]))
            assert r.sampled[b] <= r.bound[b]


def test_tap_table_is_grid_sample(digits):
    """ψ_β as the tap table (step 4) reproduces grid_sample's bilinear/bicubic resampling."""
    img = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for tr, beta in [("rotation", [[13.7], [-41.2], [90.0]]), ("translation", [[0.3, -2.7], [5.5, 1.0], [0, 0]]),
                     ("scaling", [[0.17], [-0.31], [0.0]])]:
        t = E.ErrorSetup(tr).t
        b = torch.tensor(beta)
        for ip in ("bilinear", "bicubic"):
            idx, w = WC.tap_table(t, b, 28, 28, ip)
            lo, hi = WC.apply_taps_interval(img, img, idx, w)
            ref = affine_resample(img, t.matrix(b), ip)
            assert (lo - ref).abs().max() < 5e-6 and (hi - ref).abs().max() < 5e-6


@pytest.mark.parametrize("tr,ip", [("rotation", "bilinear"), ("rotation", "bicubic"),
                                   ("translation", "bilinear"), ("translation", "bicubic"),
                                   ("scaling", "bicubic")])
def test_stage1_box_and_linear_model_contain_every_gamma(digits, tr, ip):
    """Steps 1-2 on their own: every pixel of ψ_γ x for γ in the cell lies in [lo, hi] and in the
    linear model fc + slope·(γ − c) + [rlo, rhi]."""
    s = E.ErrorSetup(tr, ip)
    d = s.t.dim
    c = torch.tensor([[7.3] * d, [-0.4] * d], dtype=torch.float64)
    for h in (0.02, 0.3):
        half = torch.full_like(c, h)
        st = WC.param_range(s.t, digits[5:6], c, half, ip)
        g = torch.Generator().manual_seed(1)
        for k in range(2):
            gam = c[k] + (torch.rand(600, d, generator=g, dtype=torch.float64) * 2 - 1) * h
            gam[:2] = c[k] + torch.tensor([[-h] * d, [h] * d], dtype=torch.float64)     # the cell's ends
            v = s.t.apply(digits[5:6].expand(len(gam), -1, -1, -1), gam.float(), ip)
            assert (v >= st.lo[k] - 1e-7).all() and (v <= st.hi[k] + 1e-7).all()
            pred = st.fc[k] + torch.einsum("nd,d...->n...", (gam - c[k]).float(), st.slope[k])
            res = v - pred
            assert (res >= st.rlo[k] - 1e-7).all() and (res <= st.rhi[k] + 1e-7).all()


def test_threshold_mode_agrees(digits):
    s = E.ErrorSetup("rotation", "bilinear", 30, 30, PRE)
    beta = torch.tensor([[-21.0], [4.0], [37.0]])
    kw = dict(rel_tol=0.3, max_cells=96, device="cpu")
    free = WC.max_eps_upper(s, digits[3], beta, **kw)
    hi = WC.max_eps_upper(s, digits[3], beta, threshold=float(free.bound.max()) * 1.3, **kw)
    assert hi.below.all() and (hi.bound < float(free.bound.max()) * 1.3).all()
    assert (hi.cells <= free.cells).all()                 # the threshold stops earlier, never later
    lo = WC.max_eps_upper(s, digits[3], beta, threshold=float(free.sampled.min()) * 0.9, **kw)
    assert not lo.below.any()                              # an exact value ≥ threshold proves it
    for thr in (0.45, 0.8):
        r = WC.max_eps_upper(s, digits[3], beta, threshold=thr, **kw)
        assert torch.equal(r.below, r.bound < thr)
        # both are sound: a sampled value above the threshold rules "below" out, and vice versa
        assert not (r.below & (free.sampled >= thr)).any()
        assert not (free.bound < thr).logical_and(r.sampled >= thr).any()


def _violations(digits, monkeypatch, patch, C=30.0, betas=((-23.0,), (11.0,)), pre=PRE):
    """Largest dense/bound over a few β with ``patch`` applied (16 cells, no refinement)."""
    s = E.ErrorSetup("rotation", "bilinear", 30, C, pre)
    gam = _dense_gamma(s, 2001 if s.C[0][1] > s.C[0][0] else 1)
    beta = torch.tensor(betas)
    with monkeypatch.context() as m:
        patch(m)
        r = WC.max_eps_upper(s, digits[3], beta, rel_tol=0.5, max_cells=16, init_cells=16, device="cpu")
    return max(_dense_max(s, digits[3], beta[b], gam) / float(r.bound[b]) for b in range(len(beta)))


def test_unsound_variants_are_caught(digits, monkeypatch):
    """The dense check has teeth: dropping the between-point term (motion/path bounds set to 0)
    or the rounding to k/255 (and its float widening) makes it fail, while the full bound passes."""
    assert _violations(digits, monkeypatch, lambda m: None) < 1.0

    orig_path = WC._path

    def no_motion(t, center, half, H, W):
        p, J, ell, rho = orig_path(t, center, half, H, W)
        return p, J * 0, ell * 0, rho * 0

    assert _violations(digits, monkeypatch, lambda m: m.setattr(WC, "_path", no_motion)) > 1.0

    def no_rounding(m):
        m.setattr(WC, "_round_err", lambda lo, hi, q: (torch.zeros_like(lo), torch.zeros_like(lo)))
        m.setattr(WC, "VAL_SLACK", 0.0)
        m.setattr(WC, "LOC_SLACK", 0.0)
        m.setattr(WC, "CROSS_SLACK", 0.0)
        m.setattr(WC._Evaluator, "__init__", _no_quantize_init)

    # a one-point range: no motion at all, only the rounding separates the bound from ε
    kw = dict(C=[(7.3, 7.3)], betas=((-23.0,), (11.0,), (3.1,)), pre=None)
    assert _violations(digits, monkeypatch, lambda m: None, **kw) < 1.0
    assert _violations(digits, monkeypatch, no_rounding, **kw) > 1.0


_orig_init = WC._Evaluator.__init__


def _no_quantize_init(self, setup, x, beta32):
    _orig_init(self, setup, x, beta32)
    self.q = lambda v: v                 # the bound forgets the rounding to k/255 (unsound)


def test_worst_case_entry_point_and_errors(digits):
    s = E.ErrorSetup("rotation", "bicubic", 30, 30, PRE)
    wc = E.worst_case(s, digits[:5], 2, seed=2, rel_tol=0.5, max_cells=40, extra_samples=8)
    assert wc.n == 2 and (wc.bound >= wc.sampled_max).all() and (wc.ratio >= 1).all()
    assert (wc.cells_evaluated > 0).all() and wc.seconds_per_pair > 0
    x = digits[0]
    with pytest.raises(SemsmoothError):
        WC.max_eps_upper(E.ErrorSetup("rotation", upscale=2), x, torch.zeros(1, 1))
    with pytest.raises(SemsmoothError):
        WC.max_eps_upper(s, x, torch.zeros(1, 1), threshold=0.0)
    with pytest.raises(SemsmoothError):
        WC.max_eps_upper(s, digits[:2], torch.zeros(1, 1))
    with pytest.raises(SemsmoothError):
        WC.max_eps_upper(s, x, torch.zeros(1, 2))
