"""Geometric transformations ψ_θ of images: rotation, translation, scaling (Fischer §5, §7.1, §7.2).

All three are affine maps of the pixel plane and share ONE resampling path
(:func:`affine_resample`): an affine sampling grid (built like torchvision's ``_affine_grid``,
equivalent to ``F.affine_grid(..., align_corners=False)``) + ``F.grid_sample`` with
``align_corners=False``, zero fill (``padding_mode="zeros"``), per-sample matrices ``[B,2,3]``.

Coordinate convention (identical to torchvision's tensor kernels ``rotate``/``affine``, checked in
``tests/test_transforms.py``): pixel ``(i, j)`` (column, row) has centred coordinates
``u = i - (W-1)/2``, ``v = j - (H-1)/2`` (x to the right, y DOWN). A pixel matrix ``A`` (2x3) maps an
OUTPUT pixel's centred coordinates to the INPUT location that is sampled. With
``align_corners=False`` the normalised coordinate is ``x_n = u / (W/2)``: the grid is ``A·(u,v,1)``
divided by ``(W/2, H/2)`` of the input.

Parameters and units:

- ``rotation``: ``[B,1]`` degrees, counter-clockwise as displayed (y down), about the image centre.
  ψ_α ∘ ψ_β = ψ_{α+β} in the ideal (continuous) case.
- ``translation``: ``[B,2]`` pixels ``(dx, dy)``: content moves right by dx and down by dy;
  sub-pixel values are allowed. Composes additively.
- ``scaling``: ``[B,1]`` log of the zoom factor, ``s = exp(θ)`` (θ > 0 enlarges the content about
  the centre). exp(a)·exp(b) = exp(a+b), so it composes additively in θ.

With ``quantize=True`` (default) the result is clamped and rounded to k/255 (the realistic attacker
of DESIGN.md principle 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semsmooth_core.transforms.base import Transform, register
from semsmooth_core.validation import SemsmoothError


def _check_image(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SemsmoothError(f"{name} takes images of shape [B,C,H,W], got {shape}")
    if not torch.is_floating_point(x):
        raise SemsmoothError(f"{name} takes float images in [0,1], got dtype {x.dtype}")


_BASE_CACHE: dict = {}


def _base_coords(oh: int, ow: int, device, cdtype) -> torch.Tensor:
    """``[3, oh*ow]`` rows (u, v, 1) of the centred output coordinates, as a complex tensor (cached)."""
    key = (oh, ow, str(device), cdtype)
    b = _BASE_CACHE.get(key)
    if b is None:
        u = torch.arange(ow, dtype=torch.float64) - (ow - 1) / 2.0
        v = torch.arange(oh, dtype=torch.float64) - (oh - 1) / 2.0
        b = torch.stack([u[None, :].expand(oh, ow).reshape(-1), v[:, None].expand(oh, ow).reshape(-1),
                         torch.ones(oh * ow, dtype=torch.float64)]).to(device=device, dtype=cdtype)
        if len(_BASE_CACHE) > 32:
            _BASE_CACHE.clear()
        _BASE_CACHE[key] = b
    return b


def _affine_grid(M: torch.Tensor, oh: int, ow: int, dtype) -> torch.Tensor:
    """Sampling grid ``[B,oh,ow,2]``: ``M`` ``[B,2,3]`` (already divided by the input half-size)
    applied to the centred output coordinates (u, v, 1), like torchvision's ``_affine_grid``.

    Packing the two output coordinates as the real and imaginary part of one complex number,
    ``g = (M[:,0,:] + i·M[:,1,:]) · (u, v, 1)ᵀ`` is ONE complex matrix product ``[B,3] @ [3,oh*ow]``
    whose result, viewed as real, is already in the interleaved ``[B,oh,ow,2]`` layout that
    grid_sample wants (several times faster on CPU than a batched matmul with 2 output columns).
    The base coordinates are real, so the product is exact per term (no cross terms).
    """
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    Md = M.to(dtype)
    coef = torch.complex(Md[:, 0, :], Md[:, 1, :])                                    # [B,3]
    g = coef @ _base_coords(oh, ow, M.device, cdtype)                                  # [B,oh*ow]
    return torch.view_as_real(g).view(M.shape[0], oh, ow, 2)


def affine_resample(x: torch.Tensor, A: torch.Tensor, interpolation: str = "bilinear",
                    out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Resample ``x`` ``[B,C,H,W]`` with per-sample pixel matrices ``A`` ``[B,2,3]``.

    ``A`` maps an output pixel's centred coordinates ``(u, v, 1)`` to the input location
    (centred pixel coordinates) that is read; out-of-image reads are 0 (zero fill). This is the
    one interpolation path of every geometric transform (nearest / bilinear / bicubic). The grid
    is built like torchvision's ``_affine_grid`` (the matrix is applied in pixel units, then
    normalised by the INPUT size, ``align_corners=False``), so the output may have another size
    ``out_hw`` (same centre) — used by the interval bounds of ``semsmooth_core.errors``.
    """
    B, C, H, W = x.shape
    oh, ow = out_hw if out_hw is not None else (H, W)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    A = A.to(device=x.device, dtype=torch.float64)
    # fold the normalisation by the input size into the matrix: rows / (W/2, H/2)
    M = A / torch.tensor([W / 2.0, H / 2.0], dtype=torch.float64, device=x.device).view(1, 2, 1)
    grid = _affine_grid(M, oh, ow, dtype)
    return F.grid_sample(x.to(dtype), grid, mode=interpolation, padding_mode="zeros", align_corners=False)


def _cos_sin_deg(deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angles in degrees (float64), exact for multiples of 90°."""
    d = deg.to(torch.float64)
    r = torch.deg2rad(d)
    c, s = torch.cos(r), torch.sin(r)
    c = torch.where(c.abs() < 1e-12, torch.zeros_like(c), c)
    s = torch.where(s.abs() < 1e-12, torch.zeros_like(s), s)
    return c, s


@register
class Rotation(Transform):
    """ψ_α: rotation by α degrees counter-clockwise about the image centre (Fischer §5.2, §7.1)."""

    name = "rotation"
    label = "Rotation"
    param_names = ("angle",)
    units = ("degrees",)
    composable = True
    default_sigma = (30.0,)
    default_range = ((-30.0, 30.0),)
    bounds = ((-360.0, 360.0),)

    @staticmethod
    def matrix(params: torch.Tensor) -> torch.Tensor:
        """Pixel matrix (output -> input): input = R(-α) · output in the y-down frame."""
        c, s = _cos_sin_deg(params[:, 0])
        A = torch.zeros(params.shape[0], 2, 3, dtype=torch.float64, device=params.device)
        # a counter-clockwise (as displayed, y down) rotation by α maps input p to R p with
        # R = [[c, s], [-s, c]]; we read the input at R⁻¹ · output = [[c, -s], [s, c]] · output
        A[:, 0, 0], A[:, 0, 1] = c, -s
        A[:, 1, 0], A[:, 1, 1] = s, c
        return A

    def apply(self, x, params, interpolation):
        _check_image(x, self.name)
        return affine_resample(x, self.matrix(params), interpolation)


@register
class Translation(Transform):
    """ψ_(dx,dy): shift the content by dx pixels right and dy pixels down (Fischer §7.2)."""

    name = "translation"
    label = "Translation"
    param_names = ("dx", "dy")
    units = ("pixels", "pixels")
    composable = True
    default_sigma = (3.0, 3.0)
    default_range = ((-4.0, 4.0), (-4.0, 4.0))
    bounds = ((-1000.0, 1000.0), (-1000.0, 1000.0))
    pixel_params = True

    @staticmethod
    def matrix(params: torch.Tensor) -> torch.Tensor:
        A = torch.zeros(params.shape[0], 2, 3, dtype=torch.float64, device=params.device)
        A[:, 0, 0] = 1.0
        A[:, 1, 1] = 1.0
        A[:, 0, 2] = -params[:, 0].to(torch.float64)
        A[:, 1, 2] = -params[:, 1].to(torch.float64)
        return A

    def apply(self, x, params, interpolation):
        _check_image(x, self.name)
        return affine_resample(x, self.matrix(params), interpolation)


@register
class Scaling(Transform):
    """ψ_θ: zoom about the image centre by the factor s = exp(θ) (θ = log-factor; θ > 0 enlarges)."""

    name = "scaling"
    label = "Scaling"
    param_names = ("log_scale",)
    units = ("log-factor",)
    composable = True
    default_sigma = (0.2,)
    default_range = ((-0.2, 0.2),)
    bounds = ((-3.0, 3.0),)

    @staticmethod
    def matrix(params: torch.Tensor) -> torch.Tensor:
        inv = torch.exp(-params[:, 0].to(torch.float64))
        A = torch.zeros(params.shape[0], 2, 3, dtype=torch.float64, device=params.device)
        A[:, 0, 0] = inv
        A[:, 1, 1] = inv
        return A

    def apply(self, x, params, interpolation):
        _check_image(x, self.name)
        return affine_resample(x, self.matrix(params), interpolation)


# --------------------------------------------------------------------------- motion bounds
# Used by the malicious-attacker bound of semsmooth_core.errors.worst_case: for parameters in a
# cell [c - h, c + h], how far (in pixels) can the input location read by an output pixel move
# away from the location read at the cell centre c?

def _centred_radius(oh: int, ow: int, device) -> torch.Tensor:
    u = torch.arange(ow, device=device, dtype=torch.float64) - (ow - 1) / 2.0
    v = torch.arange(oh, device=device, dtype=torch.float64) - (oh - 1) / 2.0
    return torch.sqrt(v[:, None] ** 2 + u[None, :] ** 2)                 # [oh, ow]


def _rotation_motion(center: torch.Tensor, half: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """|R(-γ)p − R(-γc)p| ≤ |p|·|γ − γc| (radians): the chord is shorter than the arc."""
    r = _centred_radius(oh, ow, center.device)
    return r[None, None] * torch.deg2rad(half[:, 0].to(torch.float64)).view(-1, 1, 1, 1)


def _translation_motion(center: torch.Tensor, half: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """|(p − γ) − (p − γc)| = |γ − γc| ≤ ‖h‖₂."""
    h = torch.linalg.vector_norm(half.to(torch.float64), dim=1)
    return h.view(-1, 1, 1, 1).expand(-1, 1, oh, ow)


def _scaling_motion(center: torch.Tensor, half: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """|e^{−θ}p − e^{−θc}p| ≤ |p|·e^{−θc}(e^{h} − 1) for |θ − θc| ≤ h."""
    r = _centred_radius(oh, ow, center.device)
    c = center[:, 0].to(torch.float64)
    h = half[:, 0].to(torch.float64)
    return r[None, None] * (torch.exp(-c) * torch.expm1(h)).view(-1, 1, 1, 1)


Rotation.motion_bound = staticmethod(_rotation_motion)
Translation.motion_bound = staticmethod(_translation_motion)
Scaling.motion_bound = staticmethod(_scaling_motion)
