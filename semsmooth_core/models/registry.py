"""Registry of shipped checkpoints (``assets/models/*.pt`` with a ``.json`` card each) and a
single entry point, :func:`load_model`, for names, checkpoint paths, state_dicts and TorchScript."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch

from semsmooth_core.models.checkpoint import (FORMAT, load_checkpoint, load_state_dict_file,
                                              load_torchscript)
from semsmooth_core.paths import models_dir
from semsmooth_core.validation import SemsmoothError


def list_models() -> dict[str, dict]:
    """Shipped models: name (file stem) -> card (from the JSON beside the checkpoint)."""
    out = {}
    d = models_dir()
    for pt in sorted(d.glob("*.pt")):
        card_path = pt.with_suffix(".json")
        card = json.loads(card_path.read_text()) if card_path.exists() else {}
        out[pt.stem] = card
    return out


def model_card(name: str) -> dict:
    models = list_models()
    if name not in models:
        raise SemsmoothError(f"unknown model {name!r}; shipped: {', '.join(models) or 'none'}")
    return models[name]


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_model(name_or_path: str, device: torch.device | str = "cpu", arch: str | None = None,
               **arch_kwargs):
    """Load a model and its card.

    - a shipped name (``list_models()``) or a semsmooth checkpoint path;
    - ``arch`` given: a torchvision/our architecture name plus a state_dict file;
    - a TorchScript file.
    Returns ``(model.eval() on device, card)``. Every failure is a one-line SemsmoothError.
    """
    p = Path(name_or_path)
    if not p.exists():
        cand = models_dir() / f"{name_or_path}.pt"
        if cand.exists():
            p = cand
        else:
            shipped = ", ".join(list_models()) or "none"
            raise SemsmoothError(f"no model {name_or_path!r}: not a file and not a shipped model ({shipped})")
    if not p.is_file():
        raise SemsmoothError(f"{p} is not a file (a checkpoint .pt or a TorchScript file)")
    if arch:
        return load_state_dict_file(p, arch, device=device, **arch_kwargs)
    if _is_torchscript(p):
        return load_torchscript(p, device)
    model, card = load_checkpoint(p, device)
    card.setdefault("name", p.stem)
    return model, card


__all__ = ["list_models", "model_card", "load_model", "FORMAT"]
