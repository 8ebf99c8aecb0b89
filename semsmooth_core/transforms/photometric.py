"""Photometric transformations ψ_θ of images: brightness and contrast (GSmooth Thm 1 / TSS class).

They change pixel values, not positions, so ``interpolation`` has no effect on them; with
``quantize=True`` the result is clamped and rounded to k/255 like every other transform, and that
clamping/rounding is what makes ψ_a ∘ ψ_b differ from ψ_{a+b} (the error ε of Fischer §5.2).

- ``brightness``: ``[B,1]`` offset b in pixel scale ([0,1] images): ψ_b(x) = x + b.
  Composes additively: ψ_a(ψ_b(x)) = x + a + b.
- ``contrast``: ``[B,1]`` log-factor c: ψ_c(x) = m(x) + e^c (x − m(x)), where m(x) is the mean of
  x over all its channels and pixels (per sample). ψ_c keeps the mean (m(ψ_c x) = m(x)), hence
  ψ_a(ψ_b(x)) = m + e^a e^b (x − m) = ψ_{a+b}(x) in the ideal case: composable in c.
"""

from __future__ import annotations

import torch

from semsmooth_core.transforms.base import Transform, register
from semsmooth_core.transforms.geometric import _check_image


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
