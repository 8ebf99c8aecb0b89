"""Dataset registry: a name -> loader returning ``(x [N,C,H,W] float in [0,1], y [N] int64)``.

``mnist`` is the embedded default (held-out split unless ``split="train"``). Real datasets on
disk (torchvision MNIST / CIFAR-10 under a root, an ImageFolder tree, Speech Commands) register
here as well; nothing downloads at run time.
"""

from __future__ import annotations

from typing import Callable

import torch

from semsmooth_core.data.embedded import embedded_mnist
from semsmooth_core.validation import SemsmoothError

Loader = Callable[..., tuple[torch.Tensor, torch.Tensor]]
_REGISTRY: dict[str, tuple[Loader, str]] = {}


def register(name: str, description: str):
    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = (fn, description)
        return fn
    return deco


@register("mnist", "embedded real MNIST digits, 28x28 grey (held-out split: 1,000 images)")
def _mnist(split: str = "heldout", root: str | None = None):
    return embedded_mnist(split)


def dataset_names() -> dict[str, str]:
    return {k: v[1] for k, v in _REGISTRY.items()}


def load_dataset(name: str, split: str = "heldout", root: str | None = None,
                 indices: slice | list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a registered dataset; ``indices`` (a slice or list) selects inputs."""
    if name not in _REGISTRY:
        raise SemsmoothError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}")
    x, y = _REGISTRY[name][0](split=split, root=root)
    if indices is not None:
        if isinstance(indices, slice):
            x, y = x[indices], y[indices]
        else:
            idx = torch.as_tensor(list(indices), dtype=torch.long)
            if len(idx) and (idx.min() < 0 or idx.max() >= len(x)):
                raise SemsmoothError(f"indices out of range 0..{len(x) - 1}")
            x, y = x[idx], y[idx]
    return x, y


def parse_indices(spec: str | None) -> slice | list[int] | None:
    """``"0:100"`` -> slice(0, 100); ``"3,7,9"`` -> [3, 7, 9]; None/"" -> None (all)."""
    if not spec:
        return None
    try:
        if ":" in spec:
            parts = [int(p) if p else None for p in spec.split(":")]
            return slice(*parts)
        return [int(p) for p in spec.split(",")]
    except ValueError:
        raise SemsmoothError(f"bad --indices {spec!r}: use START:STOP or a comma list") from None
