"""Photometric transformations ψ_θ of images: brightness and contrast (GSmooth Thm 1 / TSS class).

They change pixel values, not positions, so ``interpolation`` has no effect on them; with
``quantize=True`` the result is clamped and rounded to k/255 like every other transform, and that
clamping/rounding is what makes ψ_a ∘ ψ_b differ from ψ_{a+b} (the error ε of Fischer §5.2).

- ``brightness``: ``[B,1]`` offset b in pixel scale ([0,1] images): ψ_b(x) = x + b.
  Composes additively: ψ_a(ψ_b(x)) = x + a + b.
- ``contrast``: ``[B,1]`` log-factor c: ψ_c(x) = m(x) + e^c (x − m(x)), where m(x) is the mean of
  x over all its channels and pixels (per sample). ψ_c keeps the mean (m(ψ_c x) = m(x)), hence
  ψ_a(ψ_b(x)) = m + e^a e^b (x − m) = ψ_{a+b}(x) in the ideal case: composable in c.
- ``brightness_contrast``: ``[B,2]`` (log-contrast c in log-factor, offset b in pixel scale):
  ψ_{c,b}(x) = m(x) + e^c (x − m(x)) + b with the same m as ``contrast``. Since m(ψ_{c,b}x) = m(x) + b,
  ψ_{c1,b1}(ψ_{c2,b2}(x)) = m + e^{c1+c2}(x − m) + b1 + b2 = ψ_{c1+c2, b1+b2}(x): additive (and
  commutative) in both parameters, so Fischer Thm 4.2 with the anisotropic Σ = diag(σ_c², σ_b²) of
  App. B certifies the Mahalanobis ellipse sqrt((c/σ_c)² + (b/σ_b)²) < Φ⁻¹(p̲_A) exactly (GSmooth Thm 1
  with M = I). It is brightness at c = 0 and contrast at b = 0. TSS's x ↦ e^k (x + b) is a different
  (image-dependent) parametrisation of the same maps; see docs/theory.md, "Brightness + contrast (2-D)".
"""

from __future__ import annotations

import math

import torch

from semsmooth_core.transforms.base import Transform, register
from semsmooth_core.transforms.geometric import _check_image
from semsmooth_core.validation import SemsmoothError


@register
class Brightness(Transform):
    """ψ_b(x) = x + b (b in pixel scale)."""

    name = "brightness"
    label = "Brightness"
    param_names = ("offset",)
    units = ("pixel scale",)
    composable = True
    default_sigma = (0.2,)
    default_range = ((-0.2, 0.2),)
    bounds = ((-1.0, 1.0),)
    uses_interpolation = False

    def apply(self, x, params, interpolation):
        _check_image(x, self.name)
        return x + params[:, 0].to(x.dtype).view(-1, 1, 1, 1)


@register
class Contrast(Transform):
    """ψ_c(x) = m(x) + e^c (x − m(x)), m(x) = per-sample mean (c = log-factor)."""

    name = "contrast"
    label = "Contrast"
    param_names = ("log_contrast",)
    units = ("log-factor",)
    composable = True
    default_sigma = (0.2,)
    default_range = ((-0.2, 0.2),)
    bounds = ((-3.0, 3.0),)
    uses_interpolation = False

    def apply(self, x, params, interpolation):
        _check_image(x, self.name)
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        k = torch.exp(params[:, 0].to(x.dtype)).view(-1, 1, 1, 1)
        return m + k * (x - m)


@register
class BrightnessContrast(Transform):
    """ψ_{c,b}(x) = m(x) + e^c (x − m(x)) + b: log-contrast c (log-factor) about the per-sample mean
    m(x) (all channels and pixels, as ``contrast``), then offset b (pixel scale). Additive:
    ψ_{c1,b1}∘ψ_{c2,b2} = ψ_{c1+c2,b1+b2} before clamping/rounding (Fischer Thm 4.2 / App. B)."""

    name = "brightness_contrast"
    label = "Brightness + contrast"
    param_names = ("log_contrast", "offset")
    units = ("log-factor", "pixel scale")
    composable = True
    default_sigma = (0.2, 0.2)
    default_range = ((-0.2, 0.2), (-0.2, 0.2))
    bounds = ((-3.0, 3.0), (-1.0, 1.0))
    uses_interpolation = False

    def apply(self, x, params, interpolation):
        _check_image(x, self.name)
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        p = params.to(x.dtype)
        k = torch.exp(p[:, 0]).view(-1, 1, 1, 1)
        return m + k * (x - m) + p[:, 1].view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- interval forms
# Used by the malicious-attacker bound (semsmooth_core.errors.worst_case). Exact (not relaxed):
# both transforms are monotone in their parameter per pixel.

def _brightness_param_interval(x, center, half):
    """{x + γ : |γ − c| ≤ h} per pixel = [x + c − h, x + c + h]."""
    c = center[:, 0].to(x.dtype).view(-1, 1, 1, 1)
    h = half[:, 0].to(x.dtype).view(-1, 1, 1, 1)
    return x + c - h, x + c + h


def _brightness_input_interval(lo, hi, params):
    """ψ_b is increasing in x: [lo + b, hi + b]."""
    b = params[:, 0].to(lo.dtype).view(-1, 1, 1, 1)
    return lo + b, hi + b


def _contrast_param_interval(x, center, half):
    """m + e^c (x − m) is monotone in c per pixel: the extremes sit at c ± h."""
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    c = center[:, 0].to(x.dtype).view(-1, 1, 1, 1)
    h = half[:, 0].to(x.dtype).view(-1, 1, 1, 1)
    a, b = m + torch.exp(c - h) * (x - m), m + torch.exp(c + h) * (x - m)
    return torch.minimum(a, b), torch.maximum(a, b)


def _contrast_input_interval(lo, hi, params):
    """ψ_c(v) = e^c v + (1 − e^c) m(v), m(v) ∈ [m(lo), m(hi)]; the sign of 1 − e^c picks the ends."""
    k = torch.exp(params[:, 0].to(lo.dtype)).view(-1, 1, 1, 1)
    mlo, mhi = lo.mean(dim=(1, 2, 3), keepdim=True), hi.mean(dim=(1, 2, 3), keepdim=True)
    w = 1.0 - k
    low = k * lo + torch.where(w >= 0, w * mlo, w * mhi)
    high = k * hi + torch.where(w >= 0, w * mhi, w * mlo)
    return low, high


def _bc_param_interval(x, center, half):
    """{m + e^γc (x − m) + γb : |γ − center| ≤ half per dimension} per pixel: monotone in γc (sign of
    x − m) and increasing in γb, so the extremes sit at the corners (exact)."""
    lo, hi = _contrast_param_interval(x, center[:, :1], half[:, :1])
    cb = center[:, 1].to(x.dtype).view(-1, 1, 1, 1)
    hb = half[:, 1].to(x.dtype).view(-1, 1, 1, 1)
    return lo + cb - hb, hi + cb + hb


def _bc_input_interval(lo, hi, params):
    """ψ_{c,b}(v) = e^c v + (1 − e^c) m(v) + b: the contrast interval shifted by b."""
    low, high = _contrast_input_interval(lo, hi, params[:, :1])
    b = params[:, 1].to(lo.dtype).view(-1, 1, 1, 1)
    return low + b, high + b


Brightness.param_interval = staticmethod(_brightness_param_interval)
Brightness.input_interval = staticmethod(_brightness_input_interval)
Contrast.param_interval = staticmethod(_contrast_param_interval)
Contrast.input_interval = staticmethod(_contrast_input_interval)
BrightnessContrast.param_interval = staticmethod(_bc_param_interval)
BrightnessContrast.input_interval = staticmethod(_bc_input_interval)
