"""Sound, adaptive upper bound on max_{γ∈C} ‖ε(β, γ, x)‖₂ — the malicious attacker of Fischer §6.

q'_E = P_{β, x}(max_{γ∈C} ‖ε(β, γ, x)‖₂ < E) needs, per sampled (β, x), an upper bound on the
maximum over the whole attacker range C. ε is the realistic error of ``errors.eps`` (interpolation,
zero fill, rounding to k/255 after each transform, the classifier's preprocessing P):

    ε(β, γ, x) = P(Q ψ_β(Q ψ_γ x)) − P(Q ψ_{β+γ} x).

:func:`max_eps_upper` covers C by cells [c − h, c + h] and refines adaptively (branch and bound):
each cell gets a SOUND upper bound (interval analysis of every step, below) and the exact ε at its
centre (a lower estimate of the maximum); only cells whose upper bound can still matter are split.
The bound returned is the largest upper bound over the leaf cells, which cover C.

Per cell (geometric ψ with bilinear or bicubic interpolation; docs/theory.md "The malicious attacker"):

1. *Path of the read location.* Output pixel p reads ψ_γ's input at p(γ). Over the cell,
   |p(γ) − p(c)| ≤ ℓ_p and |p(γ) − p(c) − J_p (γ − c)| ≤ ρ_p with J_p = ∂p/∂γ at c
   (rotation: ℓ = |p|δ, ρ = |p|(δ²/2)√(1+δ²/9), δ = h in radians; translation: ℓ = ‖h‖₂, ρ = 0;
   scaling: ℓ = |p(c)|(eʰ − 1), ρ = |p(c)|(eʰ − 1 − h)).
2. *ψ_γ x over the cell* (unrounded), per pixel:
   bilinear — the interpolant is multilinear on each lattice square, so over the axis box
   p(c) ± ℓ (ℓ < ½: at most one lattice line per axis) its extremes are at the 9 points
   {box ends, lattice crossing}²: EXACT range of the box; ℓ ≥ ½: min/max of the reachable taps.
   bicubic — first-order Taylor model: f(p(γ)) ∈ f(p_c) ± (Σ_j |∇f(p_c)·J_j| h_j + |∇f(p_c)| ρ
   + ½ L ℓ²), L = (S₂S₀ + S₁²)·D a Lipschitz constant of ∇f (Keys is C¹ with piecewise bounded
   second derivatives; D = half the max−min range of the reachable taps, as Σ w' = Σ w'' = 0),
   intersected with the range bound mid ± S₀²D.
3. *Rounding* Q is monotone: [lo, hi] → [Q(lo), Q(hi)] (after widening by a float slack).
4. *ψ_β of the rounded interval*: a fixed linear map W_β (β is a point); the exact image of a box
   is [W⁺lo − W⁻hi, W⁺hi − W⁻lo] (bilinear: W⁻ = 0). W_β is rebuilt tap by tap from the same
   float32 grid ``grid_sample`` uses. Then Q again.
5. ε ∈ [two_lo − one_hi, two_hi − one_lo]; preprocessing and part norms as in
   ``errors._interval_preprocess`` (non-negative filters end-point wise, low-pass centre ± radius).

Other transforms (nearest interpolation, photometric, audio volume) use the cell bound of
``errors.eps_interval_bound`` inside the same refinement.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from semsmooth_core import errors as _E
from semsmooth_core.transforms.geometric import _affine_grid
from semsmooth_core.validation import SemsmoothError, check_count

#: float32 arithmetic of resampled values, gradients and tap sums (pixel scale; 1/255 ≈ 3.9e-3)
VAL_SLACK = 5e-5
#: float32 grid coordinates: the location actually read may differ from the float64 one (pixels)
LOC_SLACK = 1e-5
#: bilinear: a lattice line closer than this to the end of a read box is not treated as crossed
CROSS_TOL = 2e-5
CROSS_SLACK = 2 * 2 * 2 * CROSS_TOL      # 2 axes x gradient jump <= 2 (values in [0, 1]) x CROSS_TOL, x2 margin
KEYS_A = -0.75          # grid_sample's bicubic (Keys) parameter
SPLIT = 2               # children per cell along a 1-D parameter


# --------------------------------------------------------------------------- the Keys kernel
def _keys(d, a=KEYS_A):
    d = np.abs(d)
    return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                    np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))


def _keys_d1(d, a=KEYS_A):
    d = np.abs(d)
    return np.where(d <= 1, 3 * (a + 2) * d ** 2 - 2 * (a + 3) * d,
                    np.where(d < 2, 3 * a * d ** 2 - 10 * a * d + 8 * a, 0.0))


def _keys_d2(d, a=KEYS_A):
    d = np.abs(d)
    return np.where(d <= 1, 6 * (a + 2) * d - 2 * (a + 3), np.where(d < 2, 6 * a * d - 10 * a, 0.0))


def keys_sums(a: float = KEYS_A) -> tuple[float, float, float]:
    """S₀, S₁, S₂ = max_t Σ_k |w⁽ʲ⁾(t − k)| (j = 0, 1, 2) of the Keys kernel, on a fine grid of t,
    inflated by 1 % (the sums are piecewise polynomials with slopes ≪ 1 % per grid step)."""
    t = np.linspace(0.0, 1.0, 20001)
    taps = np.stack([t + 1, t, 1 - t, 2 - t])
    return tuple(float(np.abs(f(taps, a)).sum(0).max() * 1.01) for f in (_keys, _keys_d1, _keys_d2))


S0, S1, S2 = keys_sums()


# --------------------------------------------------------------------------- geometry
def _centred_locations(t, params: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Input locations (centred pixel coordinates, float64) ``[K,H,W,2]`` read by each output pixel."""
    return _affine_grid(t.matrix(params), H, W, torch.float64)


def _path(t, center: torch.Tensor, half: torch.Tensor, H: int, W: int):
    """Location p_c ``[K,H,W,2]``, path Jacobian J ``[K,d,H,W,2]`` (pixels per parameter unit),
    ℓ (motion bound) and ρ (deviation from the tangent) ``[K,H,W]`` over the cell (step 1)."""
    p = _centred_locations(t, center, H, W)
    K = center.shape[0]
    if t.name == "rotation":
        k = math.pi / 180.0
        J = (torch.stack([-p[..., 1], p[..., 0]], dim=-1) * k)[:, None]
        r = torch.linalg.vector_norm(p, dim=-1)             # |p_c| = |p| (rotation keeps lengths)
        dl = (half[:, 0] * k).view(K, 1, 1)
        ell = r * dl
        rho = r * dl * dl / 2 * torch.sqrt(1 + dl * dl / 9)
    elif t.name == "translation":
        J = torch.zeros(K, 2, H, W, 2, dtype=torch.float64, device=p.device)
        J[:, 0, ..., 0] = -1.0
        J[:, 1, ..., 1] = -1.0
        ell = torch.linalg.vector_norm(half, dim=1).view(K, 1, 1).expand(K, H, W)
        rho = torch.zeros_like(ell)
    elif t.name == "scaling":
        J = (-p)[:, None]
        r = torch.linalg.vector_norm(p, dim=-1)             # |p_c| = e^{−c}|q|
        h = half[:, 0].view(K, 1, 1)
        ell = r * torch.expm1(h)
        rho = r * (torch.expm1(h) - h)
    else:
        raise SemsmoothError(f"no path bound for {t.name}")
    # the float32 grid reads up to LOC_SLACK away from the float64 location
    return p, J, ell + LOC_SLACK, rho + LOC_SLACK


def _to_grid(u: torch.Tensor, v: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Centred pixel coordinates -> grid_sample's normalised coordinates (align_corners=False)."""
    return torch.stack([u / (W / 2.0), v / (H / 2.0)], dim=-1)


def _pool_read(x: torch.Tensor, p: torch.Tensor, m: int, H: int, W: int):
    """Per output pixel: min, max of x (zero-padded) over the (2m+1)² window around the pixel nearest
    to location p (centred coordinates) ``[K,H,W,2]`` -> two ``[K,C,H,W]``."""
    xp = F.pad(x, (m + 1,) * 4)
    mx = F.max_pool2d(xp, 2 * m + 1, stride=1, padding=m)
    mn = -F.max_pool2d(-xp, 2 * m + 1, stride=1, padding=m)
    Hp, Wp = xp.shape[-2:]
    g = _to_grid(p[..., 0], p[..., 1], Hp, Wp).to(x.dtype)
    K, C = p.shape[0], x.shape[1]
    both = torch.cat([mn, mx], 1).expand(K, 2 * C, Hp, Wp)
    r = F.grid_sample(both, g, mode="nearest", padding_mode="zeros", align_corners=False)
    return r[:, :C], r[:, C:]


def _value_and_grad(x, p, H, W, mode):
    """f(p_c) and ∇f(p_c) (per input pixel) of the ``mode`` interpolant of x (zero fill), per channel."""
    K, C = p.shape[0], x.shape[1]
    g = _to_grid(p[..., 0], p[..., 1], H, W).to(x.dtype)
    gk = (g.repeat_interleave(C, dim=0) if C > 1 else g).detach().requires_grad_(True)
    xx = x.reshape(C, 1, H, W).repeat(K, 1, 1, 1) if C > 1 else x.expand(K, 1, H, W)
    with torch.enable_grad():
        f = F.grid_sample(xx, gk, mode=mode, padding_mode="zeros", align_corners=False)
        (grad,) = torch.autograd.grad(f.sum(), gk)
    f = f.detach().reshape(K, C, H, W)
    grad = grad.reshape(K, C, H, W, 2)
    return f, grad[..., 0] * (2.0 / W), grad[..., 1] * (2.0 / H)


class Stage1:
    """ψ_γ x over a cell, per pixel (steps 1-2): the box range [lo, hi] and a linear model
    f(p(γ)) = fc + Σ_j slope_j (γ_j − c_j) + R, R ∈ [rlo, rhi], valid for every γ in the cell."""

    __slots__ = ("lo", "hi", "fc", "slope", "rlo", "rhi")

    def __init__(self, lo, hi, fc, slope, rlo, rhi):
        self.lo, self.hi, self.fc, self.slope, self.rlo, self.rhi = lo, hi, fc, slope, rlo, rhi


def _slopes(fu, fv, J):
    """slope_j = ∇f · J_j ``[K,d,C,H,W]``."""
    return fu[:, None] * J[:, :, None, ..., 0].to(fu.dtype) + fv[:, None] * J[:, :, None, ..., 1].to(fu.dtype)


def _bilinear_stage1(x, p, J, ell, rho, H, W, infl, half=None, translation=False):
    K = p.shape[0]
    C = x.shape[1]
    # float32 from here: a location off by ~1e-6 px moves a value by <= 1e-6 (slopes <= 1 per px
    # for images in [0, 1]); LOC_SLACK in ℓ and VAL_SLACK cover it
    pf = p.to(x.dtype)
    ix = pf[..., 0] + (W - 1) / 2.0                          # pixel-index coordinates
    iy = pf[..., 1] + (H - 1) / 2.0

    def cands(c, e):
        # a lattice line within CROSS_TOL of the box's end is ignored: the sliver beyond it moves
        # the value by <= (gradient jump <= 2) x CROSS_TOL per axis, inside CROSS_SLACK
        a, b = c - e, c + e
        f = torch.floor(b - CROSS_TOL)
        cross = f > a + CROSS_TOL
        return torch.stack([a, torch.where(cross, f, a), b]), cross
    if translation:                  # the location moves by exactly (−Δγ_x, −Δγ_y): per-axis box
        K_ = half.shape[0]
        eu = (half[:, 0].to(x.dtype) + LOC_SLACK).view(K_, 1, 1).expand_as(ell)
        ev = (half[:, 1].to(x.dtype) + LOC_SLACK).view(K_, 1, 1).expand_as(ell)
    else:
        eu = ev = ell
    us, cu = cands(ix, eu)
    vs, cv = cands(iy, ev)
    gx, gy = (2 * us + 1) / W - 1, (2 * vs + 1) / H - 1                       # [3,K,H,W]
    g = torch.stack([gx[:, None].expand(3, 3, K, H, W), gy[None].expand(3, 3, K, H, W)], dim=-1)
    vals = F.grid_sample(x.expand(9 * K, C, H, W), g.view(9 * K, H, W, 2), mode="bilinear",
                         padding_mode="zeros", align_corners=False).view(9, K, C, H, W)
    lo, hi = vals.amin(0), vals.amax(0)
    big = (eu >= 0.5) | (ev >= 0.5)
    if bool(big.any()):
        # taps floor(i − ℓ) … floor(i + ℓ) + 1 lie within floor(1.5 + ℓ) of the nearest pixel
        m = int(math.floor(1.5 + float(ell.max()) + 1e-9))
        plo, phi = _pool_read(x, p, m, H, W)
        bb = big[:, None]
        lo, hi = torch.where(bb, plo, lo), torch.where(bb, phi, hi)
    lo, hi = lo - VAL_SLACK - CROSS_SLACK, hi + VAL_SLACK + CROSS_SLACK
    # linear model: on one lattice square f = fc + f_u Δu + f_v Δv + f_uv Δu Δv exactly, with
    # Δ = J t + dev (|dev| ≤ ρ) and |f_uv| ≤ 2 (max − min of the 2x2 taps) ≤ 4 D
    fc, fu, fv = _value_and_grad(x, p, H, W, "bilinear")
    slope = _slopes(fu, fv, J)
    mn, mx = _pool_read(x, p, 1, H, W)                    # the 2x2 taps of p_c's square (and more)
    e2 = (eu * ev)[:, None]                                # |Δu Δv| <= ℓ_u ℓ_v
    R = torch.sqrt(fu * fu + fv * fv) * rho[:, None] + 2 * (mx - mn) * e2 \
        + slope.abs().sum(1) * infl + VAL_SLACK + CROSS_SLACK
    cross = (cu | cv | big)[:, None]                       # the box meets a lattice line: range only
    slope = torch.where(cross[:, None], torch.zeros_like(slope), slope)
    rlo = torch.where(cross, lo - fc, -R)
    rhi = torch.where(cross, hi - fc, R)
    return Stage1(lo, hi, fc, slope, rlo, rhi)


def _bicubic_stage1(x, p, J, ell, rho, half, H, W, infl):
    """First-order Taylor model in γ with a Lipschitz bound L on ∇f (Keys is C¹)."""
    K = p.shape[0]
    fc, fu, fv = _value_and_grad(x, p, H, W, "bicubic")
    slope = _slopes(fu, fv, J)
    # taps floor(i − ℓ) − 1 … floor(i + ℓ) + 2 lie within floor(2.5 + ℓ) of the nearest pixel
    m = int(math.floor(2.5 + float(ell.max()) + 1e-9))
    mn, mx = _pool_read(x, p, m, H, W)
    D = (mx - mn) / 2
    mid = (mx + mn) / 2
    L = (S2 * S0 + S1 * S1) * D
    R = torch.sqrt(fu * fu + fv * fv) * rho[:, None] + 0.5 * L * (ell * ell)[:, None] \
        + slope.abs().sum(1) * infl + VAL_SLACK
    T = (slope.abs() * half.to(x.dtype).view(K, -1, 1, 1, 1)).sum(1) + R
    lo = torch.maximum(fc - T, mid - S0 * S0 * D - VAL_SLACK)
    hi = torch.minimum(fc + T, mid + S0 * S0 * D + VAL_SLACK)
    return Stage1(lo, hi, fc, slope, -R, R)


def inflate(center: torch.Tensor, half: torch.Tensor):
    """The transform reads float32 parameters: the cell widened by their rounding, and the widening."""
    infl = half * 1e-6 + 1e-6 * (1 + center.abs())
    return half + infl, infl.amax(dim=1).view(-1, 1, 1, 1)


def param_range(t, x, center, half, interpolation) -> Stage1:
    """Steps 1-2 for ψ_γ x, γ ∈ [center − half, center + half] (unrounded) ``[K,C,H,W]``.
    ``x`` ``[1,C,H,W]``, ``center``/``half`` ``[K,d]`` float64. The linear model's slope term is
    in t = γ − center with |t_j| ≤ half_j (the float32 rounding of γ is inside R)."""
    H, W = x.shape[-2:]
    half, infl = inflate(center, half)
    p, J, ell, rho = _path(t, center, half, H, W)
    infl = infl.to(x.dtype)
    ell, rho = ell.to(x.dtype), rho.to(x.dtype)
    if interpolation == "bilinear":
        return _bilinear_stage1(x, p, J, ell, rho, H, W, infl, half, t.name == "translation")
    if interpolation == "bicubic":
        return _bicubic_stage1(x, p, J, ell, rho, half, H, W, infl)
    raise SemsmoothError(f"param_range: no rule for {interpolation}")


# --------------------------------------------------------------------------- ψ_β as a tap table
def tap_table(t, beta32: torch.Tensor, H: int, W: int, interpolation: str):
    """Taps of ψ_β as ``grid_sample`` computes them (float32 grid, align_corners=False, zero fill):
    index ``[B, H*W, T]`` (long) and weight ``[B, H*W, T]`` (0 for taps outside the image)."""
    A = t.matrix(beta32)
    M = A / torch.tensor([W / 2.0, H / 2.0], dtype=torch.float64, device=A.device).view(1, 2, 1)
    grid = _affine_grid(M, H, W, torch.float32)
    ix = ((grid[..., 0] + 1) * W - 1) / 2
    iy = ((grid[..., 1] + 1) * H - 1) / 2
    x0, y0 = torch.floor(ix), torch.floor(iy)
    tx, ty = (ix - x0).double(), (iy - y0).double()
    if interpolation == "bilinear":
        offs = (0, 1)
        wx = [1 - tx, tx]
        wy = [1 - ty, ty]
    elif interpolation == "bicubic":
        offs = (-1, 0, 1, 2)
        a = KEYS_A

        def c1(s):
            return ((a + 2) * s - (a + 3)) * s * s + 1

        def c2(s):
            return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
        wx = [c2(tx + 1), c1(tx), c1(1 - tx), c2(2 - tx)]
        wy = [c2(ty + 1), c1(ty), c1(1 - ty), c2(2 - ty)]
    else:
        raise SemsmoothError(f"tap_table: no rule for {interpolation}")
    x0, y0 = x0.long(), y0.long()
    idx, w = [], []
    for j, oy in enumerate(offs):
        yy = y0 + oy
        for i, ox in enumerate(offs):
            xx = x0 + ox
            ok = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
            idx.append(torch.where(ok, yy * W + xx, torch.zeros_like(xx)))
            w.append(torch.where(ok, wx[i] * wy[j], torch.zeros_like(tx)))
    B = beta32.shape[0]
    return (torch.stack(idx, -1).view(B, H * W, -1), torch.stack(w, -1).view(B, H * W, -1))


def apply_taps(v: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Σ_T w[k,p,T] · v[k,m,idx[k,p,T]]: the linear map of the tap table applied to ``v`` ``[K,M,HW]``."""
    K, M, HW = v.shape
    T = idx.shape[-1]
    g = torch.gather(v, 2, idx.reshape(K, 1, HW * T).expand(K, M, HW * T)).view(K, M, HW, T)
    return (g * w[:, None]).sum(-1)


def apply_taps_interval(lo, hi, idx, w):
    """Step 4: [W⁺lo − W⁻hi, W⁺hi − W⁻lo] = W c ∓ |W| r for per-cell tap tables ``[K,HW,T]``."""
    K, C, H, W = lo.shape
    c = apply_taps(((lo + hi) / 2).reshape(K, C, H * W), idx, w.to(lo.dtype))
    r = apply_taps(((hi - lo) / 2).reshape(K, C, H * W), idx, w.abs().to(lo.dtype))
    return (c - r).view(K, C, H, W), (c + r).view(K, C, H, W)


HALF_STEP = 0.5 / 255


def _round_err(lo, hi, quantize: bool):
    """[dlo, dhi] ∋ Q(v) − v for every v in [lo, hi]: ±1/510 inside [0, 1], plus the clamp outside."""
    if not quantize:
        z = torch.zeros_like(lo)
        return z, z
    s = 1e-6
    return -HALF_STEP - (hi - 1).clamp(min=0) - s, HALF_STEP + (-lo).clamp(min=0) + s


def _linear_norm_bound(pre, e0, g, rl, rh, half, norm):
    """sup over t ∈ [−half, half]^d of the part norms of P(e0 + Σ_j t_j g_j + r), r ∈ [rl, rh]
    per pixel, max over parts ``[K]``. Vignette/Gauss (non-negative weights) map the ends of r; from a
    low-pass on, r is carried as its ℓ2 radius (P contracts). Every part norm of the per-pixel
    bound max(|v + rl|, |v + rh|) is a convex function of t, so its max over the box is at a vertex."""
    from semsmooth_core.preprocess import _STEPS
    K, d = g.shape[:2]
    shp = e0.shape[1:]
    extra = torch.zeros(K, dtype=torch.float64, device=e0.device)
    ends = True
    for st in pre.steps:
        fn = _STEPS[st.name][0]
        if st.name == "lowpass" and ends:
            e0 = e0 + (rl + rh) / 2
            extra = torch.linalg.vector_norm(((rh - rl) / 2).double().flatten(1), dim=1)
            ends = False
        e0 = fn(e0, *st.params)
        g = fn(g.reshape(K * d, *shp), *st.params).view(K, d, *shp)
        if ends:
            rl, rh = fn(rl, *st.params), fn(rh, *st.params)
    signs = torch.tensor(list(__import__("itertools").product((-1.0, 1.0), repeat=d)),
                         dtype=e0.dtype, device=e0.device)                               # [V,d]
    t = signs[None] * half.to(e0.dtype)[:, None, :]                                      # [K,V,d]
    V = signs.shape[0]
    v = e0[:, None] + torch.einsum("kvd,kd...->kv...", t, g)                             # [K,V,...]
    if ends:
        m = torch.maximum((v + rl[:, None]).abs(), (v + rh[:, None]).abs())
    else:
        m = v.abs()
    n = _E.part_norms(m.reshape(K * V, *shp).double(), norm).view(K, V, -1)
    return (n.amax(dim=1) + extra[:, None]).amax(dim=1)


# --------------------------------------------------------------------------- one round of cells
class _Evaluator:
    """Cell bounds and exact centre values for one x and a batch of β (steps 1-5)."""

    def __init__(self, setup, x, beta32):
        self.s, self.x, self.beta32 = setup, x, beta32
        t, ip = setup.t, setup.interpolation
        self.fast = ip in ("bilinear", "bicubic") and t.name in ("rotation", "translation", "scaling")
        if self.fast:
            H, W = x.shape[-2:]
            self.idx, self.w = tap_table(t, beta32, H, W, ip)
            self._mats: dict[int, tuple] = {}
        self.q = t.quantize if setup.quantize else (lambda v: v)
        self.linear = True

    def upper(self, owner, center, half):
        s, x = self.s, self.x
        K = len(owner)
        b32 = self.beta32[owner]
        if not self.fast:
            xb = x.expand(K, *x.shape[1:])
            return _E.eps_interval_bound(s, xb, b32.double(), center, half).amax(dim=1).double()
        t, ip, q, Q = s.t, s.interpolation, self.q, s.quantize
        C, H, W = x.shape[1:]
        d = t.dim
        sl = VAL_SLACK
        A = param_range(t, x, center, half, ip)
        Bo = param_range(t, x, b32.double() + center, half, ip)
        # step 3: round ψ_γ x
        lo1, hi1 = q(A.lo - sl), q(A.hi + sl)
        # linear model of Q(ψ_γ x): exact constant where the rounded range is one value
        kA = lo1 == hi1
        dlo, dhi = _round_err(A.lo, A.hi, Q)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        A_c = torch.where(kA, lo1, A.fc)
        A_s = torch.where(kA[:, None], zero, A.slope)
        rAl = torch.where(kA, zero, A.rlo + dlo)
        rAh = torch.where(kA, zero, A.rhi + dhi)
        # step 4: ψ_β (one linear map per β) of the box and of the linear model
        mw = torch.cat([((lo1 + hi1) / 2)[:, None], A_c[:, None], A_s, ((rAl + rAh) / 2)[:, None]], 1)
        ma = torch.stack([(hi1 - lo1) / 2, (rAh - rAl) / 2], 1)
        ow, oa = self.apply_beta(owner, mw.reshape(K, -1, H * W), ma.reshape(K, -1, H * W))
        ow, oa = ow.view(K, -1, C, H, W), oa.view(K, -1, C, H, W)
        lo2u, hi2u = ow[:, 0] - oa[:, 0] - sl, ow[:, 0] + oa[:, 0] + sl
        lo2, hi2 = q(lo2u), q(hi2u)
        lob, hib = q(Bo.lo - sl), q(Bo.hi + sl)
        # step 5, box form
        ub = _E._interval_preprocess(s.preprocess, (lo2 - hib).double(), (hi2 - lob).double(), s.norm).amax(dim=1)
        if not self.linear:
            return ub
        # step 5, linear form: ε = e0 + Σ t_j g_j + r
        k2 = lo2 == hi2
        d2l, d2h = _round_err(lo2u, hi2u, Q)
        T_c = torch.where(k2, lo2, ow[:, 1])
        T_s = torch.where(k2[:, None], zero, ow[:, 2:2 + d])
        rTl = torch.where(k2, zero, ow[:, 2 + d] - oa[:, 1] - sl + d2l)
        rTh = torch.where(k2, zero, ow[:, 2 + d] + oa[:, 1] + sl + d2h)
        kb = lob == hib
        dbl, dbh = _round_err(Bo.lo, Bo.hi, Q)
        O_c = torch.where(kb, lob, Bo.fc)
        O_s = torch.where(kb[:, None], zero, Bo.slope)
        rOl = torch.where(kb, zero, Bo.rlo + dbl)
        rOh = torch.where(kb, zero, Bo.rhi + dbh)
        half_eff = inflate(center, half)[0]
        ul = _linear_norm_bound(s.preprocess, T_c - O_c, T_s - O_s, rTl - rOh - sl, rTh - rOl + sl,
                                half_eff, s.norm)
        return torch.minimum(ub, ul).double()

    def mats(self, b: int):
        """W_β and |W_β| of β number ``b`` as sparse CSR matrices ``[HW, HW]`` (float32)."""
        m = self._mats.get(b)
        if m is None:
            import warnings
            idx, w = self.idx[b], self.w[b]
            HW, T = idx.shape
            rows = torch.arange(HW, device=idx.device).repeat_interleave(T)
            ij = torch.stack([rows, idx.reshape(-1)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = tuple(torch.sparse_coo_tensor(ij, v.reshape(-1).float(), (HW, HW)).coalesce().to_sparse_csr()
                          for v in (w, w.abs()))
            self._mats[b] = m
        return m

    def apply_beta(self, owner, mw, ma):
        """W_β·mw and |W_β|·ma for each cell's β (maps ``[K,M,HW]``), grouped by β."""
        order = torch.argsort(owner, stable=True)
        counts = torch.bincount(owner, minlength=len(self.beta32)).tolist()
        K, Mw, HW = mw.shape
        Ma = ma.shape[1]
        ow, oa = torch.empty_like(mw), torch.empty_like(ma)
        pos = 0
        for b, n in enumerate(counts):
            if n == 0:
                continue
            sel = order[pos:pos + n]
            pos += n
            Wb, Ab = self.mats(b)
            ow[sel] = (Wb @ mw[sel].reshape(n * Mw, HW).T).T.reshape(n, Mw, HW)
            oa[sel] = (Ab @ ma[sel].reshape(n * Ma, HW).T).T.reshape(n, Ma, HW)
        return ow, oa

    def exact(self, owner, gamma32):
        s, x = self.s, self.x
        xb = x.expand(len(owner), *x.shape[1:])
        e = _E.eps(s, xb, self.beta32[owner], gamma32)
        return _E.part_norms(e.double(), s.norm).amax(dim=1)


# --------------------------------------------------------------------------- refinement
@dataclass
class BoundResult:
    """Per β: a SOUND upper bound on max_{γ∈C} ‖ε(β, γ, x)‖₂ (max over parts of setup.norm)."""

    bound: torch.Tensor            # [B] float64 sound upper bound
    sampled: torch.Tensor          # [B] largest exact ε norm found (a lower estimate of the max)
    below: torch.Tensor | None     # [B] bool: bound < threshold (None without a threshold)
    cells: torch.Tensor            # [B] γ cells evaluated per β
    seconds: float


def _scatter_max(v: torch.Tensor, owner: torch.Tensor, B: int, fill: float) -> torch.Tensor:
    out = torch.full((B,), fill, dtype=v.dtype, device=v.device)
    return out.scatter_reduce(0, owner, v, reduce="amax", include_self=True)


def _initial_cells(C, n: int, device):
    axes, halves = [], []
    for lo, hi in C:
        w = (hi - lo) / n
        axes.append(torch.tensor([lo + (i + 0.5) * w for i in range(n)], dtype=torch.float64))
        halves.append(w / 2)
    mesh = torch.meshgrid(*axes, indexing="ij")
    centers = torch.stack([m.reshape(-1) for m in mesh], dim=1).to(device)
    return centers, torch.tensor(halves, dtype=torch.float64, device=device).expand_as(centers).clone()


def _split(center, half, d):
    """Children of each cell: 4 pieces along the one dimension (d = 1), 2 x 2 (d = 2), 2 per dim else."""
    s = SPLIT if d == 1 else 2
    offs = [(2 * j + 1 - s) / s for j in range(s)]
    grids = torch.meshgrid(*[torch.tensor(offs, dtype=torch.float64, device=center.device)] * d, indexing="ij")
    o = torch.stack([g.reshape(-1) for g in grids], dim=1)                        # [k,d]
    k = o.shape[0]
    nc = (center[:, None, :] + o[None] * half[:, None, :]).reshape(-1, d)
    nh = (half / s)[:, None, :].expand(-1, k, -1).reshape(-1, d)
    return nc, nh, k


def auto_init_cells(setup, hw) -> int:
    """Starting cells per dimension: the read location moves at most ~0.15 px within a cell at the
    image corner (rotation, scaling), clamped to 4…64 (1-D) or 4…16 per dimension (2-D); 8 / 4
    for transforms without a motion bound. Finer starting cells save the refinement rounds that
    every cell would go through anyway (measured: rotation ±30°, bilinear 136 → 86 cells per β)."""
    t = setup.t
    lo_hi = (4, 64) if t.dim == 1 else (4, 16)
    if not hasattr(t, "motion_bound"):
        return 8 if t.dim == 1 else 4
    width = torch.tensor([[c[1] - c[0] for c in setup.C]], dtype=torch.float64)
    center = torch.tensor([[(c[0] + c[1]) / 2 for c in setup.C]], dtype=torch.float64)
    if t.name == "scaling":   # the largest motion is at the smallest factor
        center = torch.tensor([[setup.C[0][0]]], dtype=torch.float64)
    per_unit = float(t.motion_bound(center, width / 2, *hw).max())
    n = int(math.ceil(per_unit / 0.15)) if per_unit > 0 else 1
    return max(lo_hi[0], min(lo_hi[1], n))


def max_eps_upper(setup, x: torch.Tensor, beta: torch.Tensor, threshold: float | None = None,
                  rel_tol: float = 0.05, max_cells: int = 4096, device=None, init_cells: int | None = None,
                  chunk: int = 512) -> BoundResult:
    """Sound upper bound on max_{γ∈C} ‖ε(β_b, γ, x)‖₂ for each row β_b of ``beta`` ``[B,d]`` and ONE
    input ``x`` (``[C,H,W]``/``[1,C,H,W]``; audio ``[T]``/``[1,T]``) — Fischer §6, malicious attacker.

    Branch and bound over γ-cells (module docstring): every round evaluates, in one batch for all β,
    the cell upper bounds and the exact ε at the cell centres, then splits the cells whose upper bound
    exceeds max(threshold, (1 + rel_tol)·best exact value of their β), highest bound first, until
    at most ``max_cells`` cells per β were evaluated. With a ``threshold`` a β stops as soon as its
    bound is < threshold or an exact value ≥ threshold shows that it cannot get there; without, when
    bound ≤ (1 + rel_tol)·sampled. ``init_cells``: starting cells per dimension (default
    :func:`auto_init_cells`). ``device``: default CUDA when present, else CPU.
    """
    t0 = time.perf_counter()
    t = setup.t
    if setup.upscale != 1:
        raise SemsmoothError("the worst-case bound does not support the attacker resize (upscale)")
    if threshold is not None and not (threshold > 0 and math.isfinite(threshold)):
        raise SemsmoothError(f"threshold must be a finite number > 0, got {threshold!r}")
    if not (rel_tol >= 0 and math.isfinite(rel_tol)):
        raise SemsmoothError(f"rel_tol must be >= 0, got {rel_tol!r}")
    max_cells = check_count("max_cells", max_cells)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    x = torch.as_tensor(x)
    want = 4 if t.modality == "image" else 2
    if x.ndim == want - 1:
        x = x[None]
    if x.ndim != want or x.shape[0] != 1:
        raise SemsmoothError(f"max_eps_upper takes ONE input ({'[C,H,W]' if want == 4 else '[T]'}), "
                             f"got shape {tuple(x.shape)}")
    x = x.to(device=device, dtype=torch.float32)
    d = t.dim
    beta = torch.as_tensor(beta, dtype=torch.float32, device=device)
    if beta.ndim == 1:
        beta = beta[:, None] if d == 1 else beta[None]
    if beta.ndim != 2 or beta.shape[1] != d:
        raise SemsmoothError(f"beta must have shape [B,{d}] for {t.name}, got {tuple(beta.shape)}")
    B = beta.shape[0]
    ev = _Evaluator(setup, x, beta)
    n0 = check_count("init_cells", init_cells) if init_cells is not None else auto_init_cells(setup, x.shape[-2:])
    c0, h0 = _initial_cells(setup.C, n0, device)
    K0 = c0.shape[0]
    owner = torch.arange(B, device=device).repeat_interleave(K0)
    center = c0.repeat(B, 1)
    half = h0.repeat(B, 1)
    ub = torch.empty(0, dtype=torch.float64, device=device)
    best = torch.zeros(B, dtype=torch.float64, device=device)
    used = torch.zeros(B, dtype=torch.long, device=device)
    new = slice(0, len(owner))
    with torch.no_grad():
        while True:
            o_new, c_new, h_new = owner[new], center[new], half[new]
            ubs, exs = [], []
            for s in range(0, len(o_new), chunk):
                o, c, h = o_new[s:s + chunk], c_new[s:s + chunk], h_new[s:s + chunk]
                ubs.append(ev.upper(o, c, h))
                exs.append(ev.exact(o, c.float()))
            ub_new, ex_new = torch.cat(ubs), torch.cat(exs)
            ub = torch.cat([ub[: new.start], ub_new]) if new.start else ub_new
            best = torch.maximum(best, _scatter_max(ex_new, o_new, B, 0.0))
            used += torch.bincount(o_new, minlength=B)
            bound = _scatter_max(ub, owner, B, 0.0)
            target = best * (1 + rel_tol)
            if threshold is not None:
                done = (bound < threshold) | (best >= threshold)
                target = torch.clamp(target, min=threshold)
                cand = (ub >= target[owner]) & ~done[owner]
            else:
                done = bound <= target
                cand = (ub > target[owner]) & ~done[owner]
            _, _, k = _split(center[:1], half[:1], d)
            allowed = ((max_cells - used) // k).clamp(min=0)
            if not bool(cand.any()):
                break
            # highest upper bound first, per β, at most `allowed` splits
            order = torch.argsort(ub.masked_fill(~cand, -math.inf), descending=True, stable=True)
            order = order[torch.argsort(owner[order], stable=True)]
            own = owner[order]
            counts = torch.bincount(own, minlength=B)
            starts = torch.cumsum(counts, 0) - counts
            rank = torch.arange(len(order), device=device) - starts[own]
            pick = order[(rank < allowed[own]) & cand[order]]
            if len(pick) == 0:
                break
            keep = torch.ones(len(owner), dtype=torch.bool, device=device)
            keep[pick] = False
            nc, nh, k = _split(center[pick], half[pick], d)
            no = owner[pick].repeat_interleave(k)
            owner = torch.cat([owner[keep], no])
            center = torch.cat([center[keep], nc])
            half = torch.cat([half[keep], nh])
            ub = ub[keep]
            new = slice(int(keep.sum()), len(owner))
    bound = _scatter_max(ub, owner, B, 0.0)
    below = (bound < threshold) if threshold is not None else None
    return BoundResult(bound.cpu(), best.cpu(), below.cpu() if below is not None else None, used.cpu(),
                       time.perf_counter() - t0)
