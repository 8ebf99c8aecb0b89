"""Volume change of audio (Fischer §5.1, §7.3): ψ_β(x) = 10^(β/20) · x, β in dB.

Input: waveforms ``[B,T]`` float in [-1,1) representing int16 samples k/32768 (see
:mod:`semsmooth_core.audio`); parameters ``[B,1]`` in dB. In the ideal (real-valued) case the
transform composes, ψ_β ∘ ψ_γ = ψ_{β+γ} (Fischer §5.1). The realistic attacker stores the
result as int16: ``quantize`` clamps to [-32768, 32767]/32768 and rounds to the nearest
k/32768, so ψ^I_β ∘ ψ^I_γ differs from ψ^I_{β+γ} by the rounding error ε(β,γ,x) (Fischer §5.2),
a waveform of the same shape whose l2 norm the error estimation bounds by E. Interpolation has
no meaning here (``uses_interpolation = False``; the argument is accepted and ignored).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from semsmooth_core.transforms.base import Transform, register
from semsmooth_core.validation import SemsmoothError

# --------------------------------------------------------------------------- int16 storage
# A clip is stored as int16: x = k / 32768 with k in [-32768, 32767] (semsmooth_core.audio).
INT16_SCALE = 32768.0
INT16_MAX = 32767.0 / INT16_SCALE            # largest storable value in [-1,1) scale


def quantize_int16(x: torch.Tensor) -> torch.Tensor:
    """Storage rounding of audio (Fischer §5.2, "rounding errors can be handled analogously"):
    clamp to the int16 range [-32768, 32767]/32768 and round to the nearest k/32768."""
    return torch.round(x.clamp(-1.0, INT16_MAX) * INT16_SCALE) / INT16_SCALE


def to_int16(x) -> np.ndarray:
    """A float waveform in [-1,1) scale -> int16 samples (clamped and rounded)."""
    a = torch.as_tensor(x, dtype=torch.float64)
    return (quantize_int16(a) * INT16_SCALE).round().numpy().astype(np.int16)


def from_int16(k) -> torch.Tensor:
    """int16 samples -> float32 waveform k/32768 in [-1, 1)."""
    return torch.as_tensor(np.asarray(k, dtype=np.int16).astype(np.float32) / INT16_SCALE)


def rounding_error_l2(num_samples: int) -> float:
    """Expected l2 norm of rounding a generic waveform to int16: each sample's error is uniform
    on [-1/2, 1/2] LSB (variance 1/12 LSB²), so ‖e‖₂ ≈ sqrt(T/12)/32768."""
    return math.sqrt(num_samples / 12.0) / INT16_SCALE



def db_to_gain(db: torch.Tensor) -> torch.Tensor:
    """Amplitude gain of a volume change of ``db`` decibels: 10^(db/20) (Fischer §5.1)."""
    return torch.pow(10.0, db / 20.0)


@register
class Volume(Transform):
    """ψ_β(x) = 10^(β/20) · x (β in dB), then clamp and round to int16 (Fischer §5.1, §7.3)."""

    name = "volume"
    label = "Volume (audio)"
    param_names = ("gain_db",)
    units = ("dB",)
    composable = True
    default_sigma = (3.0,)
    default_range = ((-3.0, 3.0),)
    bounds = ((-60.0, 60.0),)
    modality = "audio"
    uses_interpolation = False

    def apply(self, x: torch.Tensor, params: torch.Tensor, interpolation: str) -> torch.Tensor:
        """The ideal transform 10^(β/20)·x, computed in float64 (returned in float64)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise SemsmoothError(f"volume takes waveforms of shape [B,T], got {shape}")
        if not torch.is_floating_point(x):
            raise SemsmoothError(f"volume takes float waveforms in [-1,1), got dtype {x.dtype}")
        return x.to(torch.float64) * db_to_gain(params[:, :1].to(torch.float64))

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """int16 storage: clamp to [-32768, 32767]/32768 and round to the nearest k/32768."""
        return quantize_int16(x)

    def __call__(self, x: torch.Tensor, params, interpolation: str = "bilinear",
                 quantize: bool = True) -> torch.Tensor:
        """As :meth:`Transform.__call__`, with scaling and rounding in float64 (so the int16
        result is exact) and the output in x's dtype (values k/32768 are exact in float32)."""
        return super().__call__(x, params, interpolation, quantize).to(x.dtype)
