"""A sound GSmooth radius on the REAL transformation (issue 13; GSmooth Eq. 9-12 with Cohen et al.'s
theorem in the semantic layer; derivation in docs/theory.md, section "GSmooth: the sound radius on the
real transformation").

Statement implemented. The GSmooth classifier (Eq. 10-12) is Gaussian smoothing in the semantic layer,

    G(x') = argmax_c P[ f(H(b1 + F2(x') + η)) = c ],   η = A1 θ + θ' ~ N(0, Σ),
    Σ = σ₁² A1 A1ᵀ + σ₂² I_d,   F2(x') = [x'; 0],

so (Cohen et al., with p̄_B = 1 − p̲_A) G(x') = G(x) = c whenever

    d(x') = ‖Σ^{-1/2} [x' − x; 0]‖₂ < Φ⁻¹(p̲_A).

The attacker stores the transformed image: x' = q(ψ_ξ(x)), q = clamp to [0,1] and round to k/255
(``transforms.base.quantize_uint8``), ψ the REAL transformation (bilinear for the resampling blurs).
The certificate "G(q(ψ_ξ(x))) = c for EVERY ξ in [0, R]" needs sup_{ξ ∈ [0,R]} d(ξ) < Φ⁻¹(p̲_A).
No surrogate quality enters (the surrogate only shapes f∘H, hence p̲_A).

The supremum is bounded cell by cell. [0, ξ_max] is cut into cells [a, b] with float32-representable
ends (the transforms read ξ as float32; rounding is monotone, so a float32 cast of any ξ in [a, b] stays
in [a, b]). For each cell a per-pixel interval [l_p, u_p] ∋ ψ_ξ(x)_p for all ξ in [a, b] is PROVEN
(:func:`enclose`, per transform below), widened by ``SLACK`` for float32 arithmetic, and pushed through
the monotone q: q(ψ_ξ(x))_p ∈ [q(l_p), q(u_p)]. Then, since Σ ⪰ σ₂² I (so Σ⁻¹ ⪯ σ₂⁻² I),

    sup_{ξ ∈ [a,b]} d(ξ) <= D[a,b] = (1/σ₂) · sqrt( Σ_p max(|q(l_p) − x_p|, |q(u_p) − x_p|)² ),

with equality of the metric part when A1 vanishes on the image channels (the shipped surrogates:
then d(ξ) = ‖q(ψ_ξ(x)) − x‖/σ₂ exactly). radius_real = the right end of the last cell of an unbroken
run of cells from 0 with D < Φ⁻¹(p̲_A); a cell with D >= Φ⁻¹(p̲_A) is split (4 parts, ``rounds``
times) near the crossing. Exact d at the grid points (the real transform, rounded) is reported beside
the bound ("largest d found", the between-point term D − max(d(a), d(b))).

Per-cell enclosures (proofs in docs/theory.md):
- ``defocus_blur``: unnormalised taps e_k(r) = clamp(r + ½ − |k|, 0, 1) are nondecreasing in r, so with
  x = x⁺ − x⁻ and N±(r) = Σ_k e_k(r) x±: y(r) = (N⁺ − N⁻)/Z ∈ [N⁺(a)/Z(b) − N⁻(b)/Z(a),
  N⁺(b)/Z(a) − N⁻(a)/Z(b)], Z(r) = Σ_k e_k(r).
- ``gaussian_blur``: the same with e_k(v) = exp(−|k|²/(2v)) on the truncation square |i|,|j| <= n,
  n = max(1, ⌈3√v⌉) (nondecreasing in v for a fixed n); the hull over every n that occurs in [a, b].
- ``pixelate``: on [m, m+1] (m integer) ψ_s = (1−w) P_{m+1} + w P_{m+2}, w = s − m, is affine in s;
  cells never straddle an integer, so the hull of the two ends is exact.
- ``zoom_blur``, ``rotational_blur``, ``motion_blur``: ψ_ξ(x) = mean_k I(c_k(ξ)) with I the bilinear
  interpolant of x (zero outside the image) and c_k(ξ) the source point of sample k. Over the cell
  c_k stays in a box B_k (hull of the two ends: zoom (1/s monotone) and motion (linear); rotation: the
  hull of the chord widened by the sagitta r(1 − cos(Δφ/2))). I is bilinear on each lattice square, so
  its range on B_k (narrower than 1 px: else the cell is split) is spanned by the values at the
  corners of B_k's pieces: its 4 corners, the crossings of its edges with the lattice lines inside
  it, and the lattice point inside it. y ∈ [mean_k min_{B_k} I, mean_k max_{B_k} I].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from semsmooth_core.transforms.base import quantize_uint8
from semsmooth_core.validation import SemsmoothError

# float32 arithmetic of the real transform vs the float64 enclosures: added to every pixel interval
# before rounding (float32 sums of <= 625 non-negative taps of a [0,1] image err < 4e-5)
SLACK = 1e-4
SURROGATE_REASON = ("M and ε are grid estimates (M and the surrogate error are maximised over a grid of ξ; "
                    "the maximum between grid points is not bounded)")
RESOLVABLE_REASON = ("the smoothing distribution shift of TSS / GSmooth Thm 1 needs ψ_θ∘ψ_ξ = ψ_{θ+ξ}; the "
                     "sampled, truncated Gaussian kernel and the k/255 rounding of the stored image break it, "
                     "and the base classifier sees no additive noise that could absorb the gap")
# transforms whose enclosure is proven here (others: no sound radius, sound False)
PROVEN = ("zoom_blur", "defocus_blur", "rotational_blur", "pixelate", "motion_blur", "gaussian_blur")


# --------------------------------------------------------------------------- float32 grid
def _f32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).astype(np.float32).astype(np.float64)


def breakpoints(name: str, xi_max: float) -> list[float]:
    """Severities where the transform's formula changes (cells end there): integers for pixelate,
    (n/3)² for the Gaussian truncation ⌈3√v⌉."""
    if name == "pixelate":
        return [float(k) for k in range(1, int(math.floor(xi_max)) + 1)]
    if name == "gaussian_blur":
        return [float((k / 3.0) ** 2) for k in range(1, int(3 * math.sqrt(xi_max)) + 2) if (k / 3.0) ** 2 < xi_max]
    return []


# --------------------------------------------------------------------------- enclosures
def _conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """x ``[C,H,W]`` (float64) convolved with each kernel ``[G,k,k]`` (zero padding): ``[G,C,H,W]``."""
    import torch.nn.functional as F

    C, H, W = x.shape
    G, k, _ = kernels.shape
    y = F.conv2d(x.unsqueeze(1), kernels.unsqueeze(1), padding=k // 2)     # [C,G,H,W]
    return y.permute(1, 0, 2, 3).contiguous()


def _monotone_kernel_enclosure(x: torch.Tensor, Ea: torch.Tensor, Eb: torch.Tensor):
    """Bounds of (Σ_k e_k x)/(Σ_k e_k) for taps e between ``Ea`` and ``Eb`` (elementwise, non-negative,
    each tap nondecreasing in ξ), for signed x: see the module docstring."""
    xp, xm = x.clamp_min(0), (-x).clamp_min(0)
    Za = Ea.sum(dim=(1, 2)).view(-1, 1, 1, 1)
    Zb = Eb.sum(dim=(1, 2)).view(-1, 1, 1, 1)
    Npa, Npb, Nma, Nmb = _conv(xp, Ea), _conv(xp, Eb), _conv(xm, Ea), _conv(xm, Eb)
    lo = Npa / Zb - Nmb / Za
    hi = Npb / Za - Nma / Zb
    return lo, hi


def _disk_taps(r: torch.Tensor, half: int) -> torch.Tensor:
    i = torch.arange(-half, half + 1, dtype=torch.float64)
    d = torch.sqrt(i.view(-1, 1) ** 2 + i.view(1, -1) ** 2)
    return (r.view(-1, 1, 1) + 0.5 - d).clamp(0.0, 1.0)


def _gauss_taps(v: torch.Tensor, half: int, own: int) -> torch.Tensor:
    i = torch.arange(-half, half + 1, dtype=torch.float64)
    d2 = i.view(-1, 1) ** 2 + i.view(1, -1) ** 2
    inside = ((i.abs().view(-1, 1) <= own) & (i.abs().view(1, -1) <= own)).to(torch.float64)
    vv = v.view(-1, 1, 1)
    e = torch.where(vv > 0, torch.exp(-d2 / (2.0 * vv.clamp_min(1e-300))), (d2 == 0).to(torch.float64))
    return e * inside


def _own(v: float) -> int:
    return max(1, int(math.ceil(3.0 * math.sqrt(v))))


def _bilinear(x: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """The bilinear interpolant of x ``[C,H,W]`` (zero outside, lattice at integer pixel indices, as
    ``grid_sample(align_corners=False, padding_mode='zeros')``) at ``ix, iy`` ``[...]``: ``[..., C]``.
    x is padded by 2 zero pixels; indices beyond are clamped into that zero border."""
    import torch.nn.functional as F

    C, H, W = x.shape
    Wp = W + 4
    flat = F.pad(x, (2, 2, 2, 2)).reshape(C, -1)
    ix, iy = torch.broadcast_tensors(ix, iy)
    fx0, fy0 = torch.floor(ix), torch.floor(iy)
    fx, fy = ix - fx0, iy - fy0
    x0 = (fx0 + 2).clamp(0, W + 2).long()
    y0 = (fy0 + 2).clamp(0, H + 2).long()
    i00 = (y0 * Wp + x0).reshape(-1)
    v00, v01 = flat[:, i00], flat[:, i00 + 1]
    v10, v11 = flat[:, i00 + Wp], flat[:, i00 + Wp + 1]
    fx, fy = fx.reshape(1, -1), fy.reshape(1, -1)
    out = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy
    return out.reshape(C, *ix.shape).movedim(0, -1)


def _box_range(x: torch.Tensor, bx0, bx1, by0, by1):
    """min and max of the bilinear interpolant over boxes [bx0,bx1]×[by0,by1] (each narrower than 1 px):
    the corners of the pieces the lattice cuts the box into. Returns ``[..., C]`` twice."""
    X = torch.floor(bx1)
    Xc = torch.where(X >= bx0, X, bx0)
    if bool((by0 == by1).all()):          # a horizontal segment (motion blur): 3 points suffice
        pts = [(bx0, by0), (bx1, by0), (Xc, by0)]
    else:
        Y = torch.floor(by1)
        Yc = torch.where(Y >= by0, Y, by0)
        pts = [(bx0, by0), (bx0, by1), (bx1, by0), (bx1, by1), (Xc, by0), (Xc, by1), (bx0, Yc), (bx1, Yc), (Xc, Yc)]
    vals = torch.stack([_bilinear(x, px, py) for px, py in pts], 0)
    return vals.amin(0), vals.amax(0)


def _affine_boxes(name: str, K: int, k: int, a: torch.Tensor, b: torch.Tensor, H: int, W: int):
    """Boxes ``[G,H,W]`` (pixel-index coordinates) that hold the source point of sample k of output
    pixel (i, j) for every severity in [a, b] (``a, b`` ``[G]``); the matrices of ``transforms/blur.py``
    applied to centred output coordinates u = j − (W−1)/2, v = i − (H−1)/2."""
    f = k / K
    u = (torch.arange(W, dtype=torch.float64) - (W - 1) / 2).view(1, 1, W)
    v = (torch.arange(H, dtype=torch.float64) - (H - 1) / 2).view(1, H, 1)
    a, b = a.view(-1, 1, 1), b.view(-1, 1, 1)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    if name == "zoom_blur":
        ia, ib = 1.0 / (1.0 + a * f), 1.0 / (1.0 + b * f)          # 1/s, decreasing in z
        xs = torch.stack(torch.broadcast_tensors(u * ia, u * ib))
        ys = torch.stack(torch.broadcast_tensors(v * ia, v * ib))
        return xs.amin(0) + cx, xs.amax(0) + cx, ys.amin(0) + cy, ys.amax(0) + cy
    if name == "motion_blur":
        sa, sb = a * (f - 0.5), b * (f - 0.5)
        xs = torch.stack(torch.broadcast_tensors(u - sa + 0 * v, u - sb + 0 * v))
        y = (v + 0 * u + 0 * a).expand(xs.shape[1:])
        return xs.amin(0) + cx, xs.amax(0) + cx, y + cy, y + cy
    if name == "rotational_blur":
        pa, pb = torch.deg2rad(a * (f - 0.5)), torch.deg2rad(b * (f - 0.5))
        ends = []
        for p in (pa, pb):
            c, s = torch.cos(p), torch.sin(p)
            ends.append((c * u - s * v, s * u + c * v))
        r = torch.sqrt(u ** 2 + v ** 2)
        sag = r * (1.0 - torch.cos((pb - pa).abs() / 2.0))
        xs = torch.stack(torch.broadcast_tensors(ends[0][0], ends[1][0]))
        ys = torch.stack(torch.broadcast_tensors(ends[0][1], ends[1][1]))
        return xs.amin(0) - sag + cx, xs.amax(0) + sag + cx, ys.amin(0) - sag + cy, ys.amax(0) + sag + cy
    raise SemsmoothError(f"no affine enclosure for {name}")


def enclose(transform, x: torch.Tensor, a, b):
    """Proven per-pixel bounds ``(lo, hi)`` ``[G,C,H,W]`` (float64) of the UNROUNDED ψ_ξ(x) over every
    ξ in the cells [a_g, b_g] (``a, b`` ``[G]``), or None where a cell is too wide for the enclosure
    (a resampling box >= 1 px, a pixelate cell across an integer): the caller splits it. See the
    module docstring for each transform's argument. Pixel intervals are NOT yet widened by SLACK."""
    name = transform.name
    x = x.to(torch.float64).cpu()
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    G = a.shape[0]
    C, H, W = x.shape
    ok = torch.ones(G, dtype=torch.bool)
    if name == "defocus_blur":
        half = max(1, int(math.ceil(float(b.max()) + 0.5)))
        lo, hi = _monotone_kernel_enclosure(x, _disk_taps(a, half), _disk_taps(b, half))
    elif name == "gaussian_blur":
        lo = torch.full((G, C, H, W), math.inf, dtype=torch.float64)
        hi = torch.full((G, C, H, W), -math.inf, dtype=torch.float64)
        owns = sorted({n for g in range(G) for n in range(_own(float(a[g])), _own(float(b[g])) + 1)})
        half = max(owns)
        for n in owns:
            sel = torch.tensor([_own(float(a[g])) <= n <= _own(float(b[g])) for g in range(G)])
            l_n, h_n = _monotone_kernel_enclosure(x, _gauss_taps(a[sel], half, n), _gauss_taps(b[sel], half, n))
            lo[sel] = torch.minimum(lo[sel], l_n)
            hi[sel] = torch.maximum(hi[sel], h_n)
    elif name == "pixelate":
        ok = ~(torch.floor(a) + 1.0 < b)           # no integer strictly inside (a, b)
        xb = x.float().unsqueeze(0).expand(G, C, H, W)
        ya = transform(xb, a.float()[:, None], quantize=False).double()
        yb = transform(xb, b.float()[:, None], quantize=False).double()
        lo, hi = torch.minimum(ya, yb), torch.maximum(ya, yb)
    elif name in ("zoom_blur", "rotational_blur", "motion_blur"):
        K = transform.K
        boxes = [torch.stack(bx) for bx in zip(*(_affine_boxes(name, K, k, a, b, H, W) for k in range(K + 1)))]
        bx0, bx1, by0, by1 = boxes                                             # [K+1,G,H,W]
        ok &= ((bx1 - bx0).amax(dim=(0, 2, 3)) < 1.0) & ((by1 - by0).amax(dim=(0, 2, 3)) < 1.0)
        mn, mx = _box_range(x, bx0, bx1, by0, by1)                             # [K+1,G,H,W,C]
        lo = mn.mean(0).permute(0, 3, 1, 2)
        hi = mx.mean(0).permute(0, 3, 1, 2)
    else:
        raise SemsmoothError(f"no proven enclosure of {name}; the sound GSmooth radius covers {', '.join(PROVEN)}")
    return lo, hi, ok


# --------------------------------------------------------------------------- distances
def latent_distance(delta: torch.Tensor, sigma2: float, A1: torch.Tensor | None = None,
                    sigma1: float | None = None) -> torch.Tensor:
    """d = ‖Σ^{-1/2}[δ; 0]‖ for rows δ ``[G, n]`` (exact; Woodbury when A1 is given)."""
    delta = delta.flatten(1).to(torch.float64)
    if A1 is None:
        return delta.norm(dim=1) / sigma2
    from semsmooth_core.gsmooth.certify import sigma_inv_quadratic

    A1 = A1.to(torch.float64).cpu()
    v = torch.zeros(delta.shape[0], A1.shape[0], dtype=torch.float64)
    v[:, :delta.shape[1]] = delta
    return sigma_inv_quadratic(v, A1, sigma1, sigma2).clamp_min(0).sqrt()


def real_distance(transform, x: torch.Tensor, xi, sigma2: float, A1=None, sigma1=None) -> torch.Tensor:
    """Exact d(ξ) of the real transformation, rounded to k/255 as stored, at the severities ``xi``."""
    xi = torch.as_tensor(xi, dtype=torch.float32).reshape(-1, 1)
    xf = x.float().cpu()
    out = []
    for s in range(0, xi.shape[0], 256):
        xs = xi[s:s + 256]
        y = transform(xf.unsqueeze(0).expand(xs.shape[0], *xf.shape), xs)
        out.append(latent_distance((y.double() - xf.double()).flatten(1), sigma2, A1, sigma1))
    return torch.cat(out)


def cell_bound(transform, x: torch.Tensor, a, b, sigma2: float):
    """D[a,b] >= sup over ξ in each cell of d(ξ) (module docstring); inf where the cell must be split."""
    lo, hi, ok = enclose(transform, x, a, b)
    xd = x.to(torch.float64).cpu()
    lq = quantize_uint8((lo - SLACK).float()).double()
    hq = quantize_uint8((hi + SLACK).float()).double()
    dev = torch.maximum((lq - xd).abs(), (hq - xd).abs())
    D = dev.flatten(1).norm(dim=1) / sigma2
    return torch.where(ok, D, torch.full_like(D, math.inf))


# --------------------------------------------------------------------------- the radius
def radius_real(transform, x: torch.Tensor, p_lower: float, sigma2: float, xi_max: float, A1=None,
                sigma1: float | None = None, grid: int = 32, split: int = 4, rounds: int = 6,
                between: bool = True) -> dict:
    """The sound radius on the real transformation (module docstring): the largest R such that
    sup_{ξ ∈ [0, R]} d(ξ) < Φ⁻¹(p̲_A) is PROVEN, d(ξ) = ‖Σ^{-1/2}[q(ψ_ξ(x)) − x; 0]‖.

    Returns ``radius_real`` (transform units, <= ``xi_max``), ``sound`` (True: every cell is bounded),
    ``threshold`` Φ⁻¹(p̲_A), ``grid`` (initial cells), ``cells`` (cells bounded), ``points`` (grid points
    with exact d), ``d_max_grid`` (largest exact d at a grid point in [0, R]), ``bound_max`` (largest D of
    a certified cell), ``between_term`` (max over certified cells of D − max(d(a), d(b))), ``d_next``
    (exact d at the end of the cell that failed, if any) and ``exact_metric``.

    ``between=False`` is the UNSOUND grid-only variant (kept for the tests that show why the
    between-point term is needed): R = the last initial grid point before the first with d >= Φ⁻¹(p̲_A).
    """
    from semsmooth_core.gsmooth.radii import gsmooth_latent_radius

    name = transform.name
    if name not in PROVEN:
        raise SemsmoothError(f"no proven enclosure of {name}; the sound GSmooth radius covers {', '.join(PROVEN)}")
    v32 = np.float32(xi_max)
    if float(v32) > float(xi_max):          # round DOWN: the radius never exceeds the range asked for
        v32 = np.nextafter(v32, np.float32(0.0))
    xi_max = float(v32)
    thr = gsmooth_latent_radius(p_lower)
    n_img = int(x.numel())
    exact_metric = A1 is None or float(A1[:n_img].abs().max()) == 0.0
    A1m = None if exact_metric else A1
    info = {"threshold": thr, "grid": grid, "split": split, "rounds": rounds, "exact_metric": exact_metric,
            "sound": bool(between), "xi_max": xi_max}
    if thr <= 0.0:
        return {**info, "radius_real": 0.0, "cells": 0, "points": 0, "d_max_grid": 0.0, "bound_max": 0.0,
                "between_term": 0.0, "d_next": None}
    pts = np.unique(_f32(np.concatenate([np.linspace(0.0, xi_max, grid + 1), breakpoints(name, xi_max)])))
    dcache: dict[float, float] = {}

    def d_at(xs):
        need = [v for v in xs if v not in dcache]
        if need:
            for v, dv in zip(need, real_distance(transform, x, need, sigma2, A1m, sigma1).tolist()):
                dcache[v] = dv
        return [dcache[v] for v in xs]

    if not between:
        ds = d_at(list(pts))
        R = 0.0
        for v, dv in zip(pts, ds):
            if dv >= thr:
                break
            R = float(v)
        return {**info, "radius_real": R, "cells": 0, "points": len(pts), "d_max_grid": max(ds[: list(pts).index(R) + 1]),
                "bound_max": None, "between_term": None, "d_next": None}

    # exact d on the initial grid: cells past the first grid point with d >= Φ⁻¹(p̲_A) cannot be certified
    ds = d_at([float(v) for v in pts])
    stop = next((i for i, dv in enumerate(ds) if dv >= thr), len(pts) - 1)
    pending = [(float(pts[i]), float(pts[i + 1]), 0) for i in range(min(stop, len(pts) - 1))]
    R, n_cells, bmax, between_term, d_next = 0.0, 0, 0.0, 0.0, None
    done, size = False, 64
    while pending and not done:
        batch, pending = pending[:size], pending[size:]
        D = cell_bound(transform, x, [c[0] for c in batch], [c[1] for c in batch], sigma2).tolist()
        n_cells += len(batch)
        for i, ((a, b, depth), Dc) in enumerate(zip(batch, D)):
            if Dc < thr:
                da, db = d_at([a, b])
                R, bmax = b, max(bmax, Dc)
                between_term = max(between_term, Dc - max(da, db))
                continue
            db = d_at([b])[0]
            # too wide for the enclosure (inf) or crossing: split (a float32 grid) unless out of rounds
            sub = np.unique(_f32(np.linspace(a, b, split + 1)))
            wide = not math.isfinite(Dc)
            if (depth < rounds or (wide and depth < rounds + 12)) and len(sub) > 2:
                pending = [(float(sub[j]), float(sub[j + 1]), depth + 1) for j in range(len(sub) - 1)] + \
                          [c[:3] for c in batch[i + 1:]] + pending
                size = split              # near the crossing: one cell's parts per batch, no wasted bounds
            else:
                d_next = db
                done = True
            break
    ds_in = [dv for v, dv in dcache.items() if v <= R]
    return {**info, "radius_real": float(R), "cells": n_cells, "points": len(dcache),
            "d_max_grid": max(ds_in) if ds_in else 0.0, "bound_max": bmax, "between_term": between_term,
            "d_next": d_next}


def statement(transform_name: str, unit: str, label: int, radius: float, alpha: float, sound: bool) -> str:
    """The plain sentence of a GSmooth certificate on the real transformation."""
    if label == -1:
        return "The GSmooth classifier abstains on this input: nothing is certified."
    what = ("proven: exact latent distance on a grid plus an interval bound between grid points"
            if sound else "an estimate, not a proof")
    return (f"With probability at least {1 - alpha:g} over the sampling, the GSmooth classifier predicts class "
            f"{label} on the stored (clamped, k/255-rounded) image {transform_name}(x, ξ) for EVERY severity ξ in "
            f"[0, {radius:.4g}] {unit} (worst case over ξ; {what}).")


def statement_resolvable(transform_name: str, unit: str, label: int, radius: float, alpha: float) -> str:
    """The plain sentence of a resolvable (TSS) Gaussian-blur certificate: an estimate for the stored image."""
    if label == -1:
        return "The smoothed classifier abstains on this input: nothing is certified."
    return (f"Estimate, not a proof: with probability at least {1 - alpha:g} over the sampling, the smoothed "
            f"classifier predicts class {label} on the IDEAL (continuous, untruncated, unrounded) {transform_name} "
            f"of x for every variance ξ in [0, {radius:.4g}] {unit}; for the real sampled kernel and the k/255-"
            f"rounded stored image the gap is not bounded.")
