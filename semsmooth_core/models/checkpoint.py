"""Checkpoint files: a plain dict of tensors and primitives, loaded with ``weights_only=True``.

Format (``.pt``): ``{"format": "semsmooth-checkpoint/1", "arch": str, "arch_kwargs": dict,
"state_dict": dict, "card": dict}``. A JSON copy of the card sits beside it (``.json``) so that
people and the registry can read it without torch.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch
from torch import nn

from semsmooth_core.models.architectures import build
from semsmooth_core.validation import SemsmoothError

FORMAT = "semsmooth-checkpoint/1"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, arch_kwargs: dict | None = None,
                    card: dict | None = None) -> Path:
    """Write ``model``'s weights and card to ``path`` (and the card to ``path.with_suffix('.json')``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "arch": arch, "arch_kwargs": dict(arch_kwargs or {}),
               "state_dict": state, "card": dict(card or {})}
    torch.save(payload, path)
    card_out = dict(card or {})
    card_out.update({"arch": arch, "arch_kwargs": dict(arch_kwargs or {}),
                     "file": path.name, "sha256": sha256_file(path)})
    path.with_suffix(".json").write_text(json.dumps(card_out, indent=2, sort_keys=True) + "\n")
    return path


def _safe_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SemsmoothError(f"checkpoint not found: {path}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SemsmoothError(f"{path.name} is not a loadable weights-only checkpoint ({first[:160]})") from None


def load_state_into(model: nn.Module, state_dict: dict, what: str) -> nn.Module:
    """``load_state_dict(strict=True)`` with a one-line error when the keys or shapes differ."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise SemsmoothError(f"{what} does not contain a state_dict of tensors")
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        msg = str(e).replace("\n", " ").replace("\t", " ")
        raise SemsmoothError(f"{what} does not match the architecture: {msg[:200]}") from None
    return model


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Load a semsmooth checkpoint (safe: ``weights_only=True``). Returns ``(model.eval(), card)``."""
    path = Path(path)
    obj = _safe_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SemsmoothError(f"{path.name} is not a semsmooth checkpoint (use --arch with a plain "
                             "state_dict, or a TorchScript file)")
    model = build(obj["arch"], **obj.get("arch_kwargs", {}))
    load_state_into(model, obj["state_dict"], path.name)
    card = dict(obj.get("card", {}))
    card.setdefault("arch", obj["arch"])
    card["sha256"] = sha256_file(path)
    return model.to(device).eval(), card


def load_state_dict_file(path: str | Path, arch: str, device="cpu", **arch_kwargs) -> tuple[nn.Module, dict]:
    """Bring your own: a torchvision (or our) architecture name plus a file holding its state_dict
    (or a semsmooth checkpoint dict)."""
    path = Path(path)
    obj = _safe_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    model = build(arch, **arch_kwargs)
    load_state_into(model, obj, path.name)
    return model.to(device).eval(), {"arch": arch, "file": path.name, "sha256": sha256_file(path)}


def load_torchscript(path: str | Path, device="cpu") -> tuple[nn.Module, dict]:
    """Bring your own: a TorchScript file (``torch.jit.save``)."""
    path = Path(path)
    try:
        model = torch.jit.load(str(path), map_location=device)
    except Exception as e:  # torch raises many types for a bad archive
        raise SemsmoothError(f"{path.name} is not a TorchScript file ({str(e).splitlines()[0][:120]})") from None
    return model.eval(), {"arch": "torchscript", "file": path.name, "sha256": sha256_file(path)}
