"""Where tensors run: CUDA when present, CPU otherwise."""

from __future__ import annotations

import torch


def get_device(prefer: str | None = None) -> torch.device:
    """The device to run on. ``prefer`` may be "cpu", "cuda", "cuda:1" or None (auto)."""
    if prefer not in (None, "", "auto"):
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            from semsmooth_core.validation import SemsmoothError

            raise SemsmoothError("CUDA was asked for but no GPU is available")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device | None = None) -> str:
    """A human name: "CPU (2 threads)" or the GPU's name."""
    device = device or get_device()
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"
