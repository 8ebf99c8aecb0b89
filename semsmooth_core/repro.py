"""Reproducibility: seeds and the environment a run records (principle 6 of DESIGN.md)."""

from __future__ import annotations

import platform
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded with ``seed`` for sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def environment() -> dict:
    """Library versions and device, stored with every run."""
    import scipy

    import semsmooth_core

    env = {"semsmooth_core": semsmooth_core.__version__, "python": platform.python_version(),
           "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
           "platform": platform.platform()}
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover
        pass
    env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return env
