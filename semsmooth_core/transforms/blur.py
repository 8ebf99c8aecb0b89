"""Blur-type corruptions with a continuous severity parameter (GSmooth §5; Hendrycks & Dietterich).

Every transform here maps ``x`` ``[B,C,H,W]`` in [0,1] and per-sample severities ``[B,1]`` to a
batch of the same shape; severity 0 is the identity. Out-of-image reads are 0 (zero fill, the same
convention as the geometric transforms). Definitions (also in ``docs/theory.md``, section GSmooth):

- ``gaussian_blur`` (v, px², kernel VARIANCE, v in [0, 16]): convolution with the sampled,
  normalised Gaussian ``w(i,j) ∝ exp(-(i²+j²)/(2v))`` truncated at ``|i|,|j| <= ceil(3√v)``.
  In the continuous limit G_a * G_b = G_{a+b}: additive in v, hence resolvable (GSmooth Thm 1,
  TSS); the discrete kernel is additive only up to the truncation/sampling error.
- ``defocus_blur`` (r, px, disk radius, r in [0, 8]): convolution with the anti-aliased disk
  ``w(i,j) ∝ clamp(r + 1/2 - sqrt(i²+j²), 0, 1)`` (r = 0 keeps only the centre tap).
- ``zoom_blur`` (z, zoom-factor increase, z in [0, 1]): ``mean_{k=0..K} S_{1+z k/K}(x)``, K = 10,
  S_s = zoom about the image centre by the factor s (the scaling transform's resampling path).
- ``rotational_blur`` (a, degrees, total blur angle, a in [0, 90]):
  ``mean_{k=0..K} R_{a (k/K - 1/2)}(x)``, K = 16, R_φ = rotation by φ degrees about the centre.
- ``motion_blur`` (l, px, blur length, l in [0, 12]): ``mean_{k=0..K} T_{(l (k/K - 1/2), 0)}(x)``,
  K = 16, T = horizontal translation with sub-pixel interpolation.
- ``pixelate`` (s, px, block size b = 1 + s, s in [0, 7]): ``P_b = (1-w) P_⌊b⌋ + w P_⌊b⌋+1``,
  w = b - ⌊b⌋, where P_k replaces every k×k block (anchored at the top-left corner; border blocks
  are cut by the image edge) by its mean. P_1 = identity; continuous in s.

None of them composes additively (except Gaussian blur in its ideal form), so all set
``composable = False``: they are certified with GSmooth (``semsmooth_core.gsmooth``), not with the
Gaussian parameter smoothing of Fischer Thm 4.2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from semsmooth_core.transforms.base import Transform, register
from semsmooth_core.transforms.geometric import affine_resample
from semsmooth_core.validation import SemsmoothError


def _check(t: Transform, x: torch.Tensor, params: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SemsmoothError(f"{t.name} takes images of shape [B,C,H,W], got {shape}")
    if not torch.is_floating_point(x):
        raise SemsmoothError(f"{t.name} takes float images in [0,1], got dtype {x.dtype}")
    lo, hi = t.bounds[0]
    if bool((params < lo).any()) or bool((params > hi).any()):
        raise SemsmoothError(f"{t.name} severity must lie in [{lo:g}, {hi:g}] {t.units[0]}, "
                             f"got values in [{float(params.min()):g}, {float(params.max()):g}]")


def per_sample_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve sample b of ``x`` ``[B,C,H,W]`` with ``kernels[b]`` ``[k,k]`` (odd k), zero padding,
    all channels alike; one grouped convolution for the whole batch."""
    B, C, H, W = x.shape
    k = kernels.shape[-1]
    w = kernels.to(x.dtype).repeat_interleave(C, dim=0).unsqueeze(1)  # [B*C,1,k,k]
    y = F.conv2d(x.reshape(1, B * C, H, W), w, padding=k // 2, groups=B * C)
    return y.reshape(B, C, H, W)


def _offsets(half: int, device, dtype=torch.float64):
    r = torch.arange(-half, half + 1, device=device, dtype=dtype)
    return r.view(-1, 1), r.view(1, -1)


def gaussian_kernels(variance: torch.Tensor) -> torch.Tensor:
    """Normalised sampled Gaussian kernels ``[B,k,k]`` of the given variances (px²); 0 -> delta."""
    v = variance.to(torch.float64).reshape(-1)
    half = max(1, int(math.ceil(3.0 * math.sqrt(float(v.max())))) if v.numel() else 1)
    i, j = _offsets(half, v.device)
    d2 = (i ** 2 + j ** 2).unsqueeze(0)                      # [1,k,k]
    vv = v.clamp_min(1e-12).view(-1, 1, 1)
    own = torch.ceil(3.0 * torch.sqrt(v)).clamp_min(1).view(-1, 1, 1)     # each sample's own truncation
    inside = ((i.abs() <= own) & (j.abs() <= own)).to(torch.float64)
    w = torch.exp(-d2 / (2.0 * vv)) * inside
    w = w / w.sum(dim=(1, 2), keepdim=True)
    return w


def disk_kernels(radius: torch.Tensor) -> torch.Tensor:
    """Normalised anti-aliased disk kernels ``[B,k,k]``: ``clamp(r + 1/2 - |(i,j)|, 0, 1)``."""
    r = radius.to(torch.float64).reshape(-1)
    half = max(1, int(math.ceil(float(r.max()) + 0.5)) if r.numel() else 1)
    i, j = _offsets(half, r.device)
    d = torch.sqrt(i ** 2 + j ** 2).unsqueeze(0)
    w = (r.view(-1, 1, 1) + 0.5 - d).clamp(0.0, 1.0)
    return w / w.sum(dim=(1, 2), keepdim=True)


def _average_affine(x: torch.Tensor, mats: torch.Tensor, interpolation: str) -> torch.Tensor:
    """``mean_k resample(x, mats[:, k])`` for pixel matrices ``mats`` ``[B,K1,2,3]``, one batched call."""
    B, C, H, W = x.shape
    K1 = mats.shape[1]
    xr = x.unsqueeze(1).expand(B, K1, C, H, W).reshape(B * K1, C, H, W)
    y = affine_resample(xr, mats.reshape(B * K1, 2, 3), interpolation)
    return y.reshape(B, K1, C, H, W).mean(dim=1).to(x.dtype)


class _Blur(Transform):
    composable = False
    uses_interpolation = False

    def apply(self, x, params, interpolation):
        _check(self, x, params)
        return self._apply(x, params, interpolation)


@register
class GaussianBlur(_Blur):
    """Gaussian blur with kernel variance v (px²): additive in v (resolvable, GSmooth Thm 1 / TSS)."""

    name = "gaussian_blur"
    label = "Gaussian blur"
    param_names = ("variance",)
    units = ("px^2",)
    default_sigma = (2.0,)
    default_range = ((0.0, 4.0),)
    bounds = ((0.0, 16.0),)

    def _apply(self, x, params, interpolation):
        return per_sample_conv(x, gaussian_kernels(params[:, 0]))


@register
class DefocusBlur(_Blur):
    """Defocus blur: anti-aliased disk of radius r px (Hendrycks & Dietterich's defocus, no extra
    Gaussian)."""

    name = "defocus_blur"
    label = "Defocus blur"
    param_names = ("radius",)
    units = ("px",)
    pixel_params = True
    default_sigma = (1.0,)
    default_range = ((0.0, 2.0),)
    bounds = ((0.0, 8.0),)

    def _apply(self, x, params, interpolation):
        return per_sample_conv(x, disk_kernels(params[:, 0]))


def _steps(K: int, device) -> torch.Tensor:
    return torch.arange(K + 1, device=device, dtype=torch.float64) / K


@register
class ZoomBlur(_Blur):
    """Zoom blur: mean of K+1 = 11 zooms by the factors 1 + z k/K, k = 0..K (z = zoom increase)."""

    name = "zoom_blur"
    label = "Zoom blur"
    param_names = ("zoom",)
    units = ("factor",)
    uses_interpolation = True
    K = 10
    default_sigma = (0.2,)
    default_range = ((0.0, 0.3),)
    bounds = ((0.0, 1.0),)

    def _apply(self, x, params, interpolation):
        B = x.shape[0]
        s = 1.0 + params[:, :1].to(torch.float64) * _steps(self.K, x.device).view(1, -1)   # [B,K1]
        A = torch.zeros(B, self.K + 1, 2, 3, dtype=torch.float64, device=x.device)
        A[..., 0, 0] = 1.0 / s
        A[..., 1, 1] = 1.0 / s
        return _average_affine(x, A, interpolation)


@register
class RotationalBlur(_Blur):
    """Rotational blur: mean of K+1 = 17 rotations by a (k/K - 1/2) degrees, k = 0..K."""

    name = "rotational_blur"
    label = "Rotational blur"
    param_names = ("angle",)
    units = ("degrees",)
    uses_interpolation = True
    K = 16
    default_sigma = (10.0,)
    default_range = ((0.0, 20.0),)
    bounds = ((0.0, 90.0),)

    def _apply(self, x, params, interpolation):
        B = x.shape[0]
        ang = torch.deg2rad(params[:, :1].to(torch.float64) * (_steps(self.K, x.device).view(1, -1) - 0.5))
        c, s = torch.cos(ang), torch.sin(ang)
        A = torch.zeros(B, self.K + 1, 2, 3, dtype=torch.float64, device=x.device)
        A[..., 0, 0], A[..., 0, 1] = c, -s
        A[..., 1, 0], A[..., 1, 1] = s, c
        return _average_affine(x, A, interpolation)


@register
class MotionBlur(_Blur):
    """Horizontal motion blur: mean of K+1 = 17 shifts by l (k/K - 1/2) px, k = 0..K."""

    name = "motion_blur"
    label = "Motion blur"
    param_names = ("length",)
    units = ("px",)
    pixel_params = True
    uses_interpolation = True
    K = 16
    default_sigma = (2.0,)
    default_range = ((0.0, 4.0),)
    bounds = ((0.0, 12.0),)

    def _apply(self, x, params, interpolation):
        B = x.shape[0]
        shift = params[:, :1].to(torch.float64) * (_steps(self.K, x.device).view(1, -1) - 0.5)
        A = torch.zeros(B, self.K + 1, 2, 3, dtype=torch.float64, device=x.device)
        A[..., 0, 0] = 1.0
        A[..., 1, 1] = 1.0
        A[..., 0, 2] = -shift
        return _average_affine(x, A, interpolation)


def block_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """P_k: every k×k block (from the top-left corner, cut at the border) replaced by its mean."""
    if k <= 1:
        return x
    B, C, H, W = x.shape
    ph, pw = (-H) % k, (-W) % k
    xp = F.pad(x, (0, pw, 0, ph))
    ones = F.pad(torch.ones(1, 1, H, W, dtype=x.dtype, device=x.device), (0, pw, 0, ph))
    s = F.avg_pool2d(xp, k, stride=k) * (k * k)
    n = F.avg_pool2d(ones, k, stride=k) * (k * k)
    m = s / n
    up = m.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
    return up[:, :, :H, :W]


@register
class Pixelate(_Blur):
    """Pixelate with continuous block size b = 1 + s px: (1-w) P_⌊b⌋ + w P_⌊b⌋+1, w = b - ⌊b⌋."""

    name = "pixelate"
    label = "Pixelate"
    param_names = ("block",)
    units = ("px",)
    pixel_params = True
    default_sigma = (1.0,)
    default_range = ((0.0, 2.0),)
    bounds = ((0.0, 7.0),)

    def _apply(self, x, params, interpolation):
        b = 1.0 + params[:, 0].to(torch.float64)
        lo = torch.floor(b)
        w = (b - lo).to(x.dtype).view(-1, 1, 1, 1)
        lo_i = lo.long()
        y = torch.zeros_like(x)
        # loop over the (at most 9) distinct integer block sizes, not over samples
        for k in torch.unique(torch.cat([lo_i, lo_i + 1])).tolist():
            wk = (lo_i == k).to(x.dtype).view(-1, 1, 1, 1) * (1 - w) + (lo_i + 1 == k).to(x.dtype).view(-1, 1, 1, 1) * w
            sel = wk.view(-1) > 0
            if bool(sel.any()):
                y[sel] = y[sel] + wk[sel] * block_mean(x[sel], int(k))
        return y
