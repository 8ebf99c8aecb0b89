"""The Transform interface and registry.

A transform takes ``x`` ``[B,C,H,W]`` in [0,1] (audio ``[B,T]``) and per-sample parameters
``params`` ``[B,d]`` (a ``[d]`` or scalar parameter is broadcast), runs on x's device, and
returns the transformed batch. ``quantize=True`` models the realistic attacker (DESIGN.md
principle 3): after the transform values are clamped and rounded to the storage type
(uint8: k/255). Concrete transforms implement :meth:`Transform.apply` (the ideal, real-valued
transform with the chosen interpolation) and describe themselves with the class attributes.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from semsmooth_core.validation import SemsmoothError

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Storage rounding of images: clamp to [0,1] and round to the nearest k/255."""
    # in place on a fresh clamped copy: the same arithmetic as round(clamp(x) * 255) / 255
    return x.clamp(0.0, 1.0).mul_(255.0).round_().div_(255.0)


class Transform:
    """Base class. Subclasses set the metadata and implement ``apply``."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""                      # human name, e.g. "Rotation"
    param_names: ClassVar[tuple[str, ...]] = ()
    units: ClassVar[tuple[str, ...]] = ()           # e.g. ("degrees",)
    composable: ClassVar[bool] = True              # ψ_a ∘ ψ_b = ψ_{a+b} in the ideal case
    default_sigma: ClassVar[tuple[float, ...]] = ()
    default_range: ClassVar[tuple[tuple[float, float], ...]] = ()   # attacker range C per dim
    bounds: ClassVar[tuple[tuple[float, float], ...]] = ()          # valid parameter values
    interpolations: ClassVar[tuple[str, ...]] = INTERPOLATIONS
    modality: ClassVar[str] = "image"             # "image" [B,C,H,W] or "audio" [B,T]
    pixel_params: ClassVar[bool] = False          # parameters are lengths in pixels (scale with a resize)
    uses_interpolation: ClassVar[bool] = True     # False: the interpolation argument has no effect

    @property
    def dim(self) -> int:
        return len(self.param_names)

    @property
    def unit(self) -> str:
        """The radius unit of a certificate for this transform."""
        return self.units[0] if len(set(self.units)) == 1 else " / ".join(self.units)

    def apply(self, x: torch.Tensor, params: torch.Tensor, interpolation: str) -> torch.Tensor:
        raise NotImplementedError

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_uint8(x)

    def check_params(self, x: torch.Tensor, params) -> torch.Tensor:
        p = torch.as_tensor(params, dtype=torch.float32, device=x.device)
        if p.ndim == 0:
            p = p.expand(x.shape[0], 1)
        elif p.ndim == 1:
            if self.dim == 1 and p.shape[0] == x.shape[0]:
                p = p[:, None]
            else:
                p = p.expand(x.shape[0], -1)
        if p.shape != (x.shape[0], self.dim):
            raise SemsmoothError(f"{self.name} takes parameters of shape [B,{self.dim}], got {tuple(p.shape)}")
        if not torch.isfinite(p).all():
            raise SemsmoothError(f"{self.name} parameters contain NaN or infinite values")
        return p

    def __call__(self, x: torch.Tensor, params, interpolation: str = "bilinear",
                 quantize: bool = True) -> torch.Tensor:
        if interpolation not in self.interpolations:
            raise SemsmoothError(f"{self.name} supports interpolation {', '.join(self.interpolations)}, "
                                 f"not {interpolation!r}")
        p = self.check_params(x, params)
        y = self.apply(x, p, interpolation)
        return self.quantize(y) if quantize else y

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "params": list(self.param_names),
                "units": list(self.units), "dim": self.dim, "composable": self.composable,
                "default_sigma": list(self.default_sigma), "default_range": [list(r) for r in self.default_range],
                "bounds": [list(b) for b in self.bounds], "interpolations": list(self.interpolations),
                "modality": self.modality, "pixel_params": self.pixel_params,
                "uses_interpolation": self.uses_interpolation}


_REGISTRY: dict[str, Transform] = {}


def register(cls: type[Transform]) -> type[Transform]:
    """Class decorator: add an instance of ``cls`` to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def _ensure_loaded() -> None:
    # importing the implementation modules registers them
    import importlib
    import pkgutil

    import semsmooth_core.transforms as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"semsmooth_core.transforms.{info.name}")


def get(name: str) -> Transform:
    """The registered transform ``name``; a one-line SemsmoothError for an unknown name."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise SemsmoothError(f"unknown transformation {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)
