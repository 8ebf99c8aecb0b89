"""Registry of shipped checkpoints (``assets/models/*.pt`` with a ``.json`` card each) and a
single entry point, :func:`load_model`, for names, checkpoint paths, state_dicts and TorchScript.

GSmooth surrogates (``surrogate_*.pt``, card ``"kind": "gsmooth_surrogate"``) also live in
``assets/models`` but are image-to-image networks, not classifiers: :func:`list_models` leaves
them out unless asked (``include_surrogates=True``), and :func:`load_model` refuses them with a
one-line message (load them with ``semsmooth_core.gsmooth.surrogate.load_surrogate``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from semsmooth_core.models.cards import model_file, read_json_card
from semsmooth_core.models.checkpoint import (FORMAT, load_checkpoint, load_state_dict_file,
                                              load_torchscript)
from semsmooth_core.paths import models_dir
from semsmooth_core.validation import SemsmoothError


SURROGATE_KIND = "gsmooth_surrogate"


_read_card = read_json_card   # the one card reader (models/cards.py)


def is_surrogate(name: str, card: dict | None = None) -> bool:
    """A GSmooth surrogate (by its card's ``kind``, or by the ``surrogate_`` file-name prefix)."""
    card = card or {}
    return card.get("kind") == SURROGATE_KIND or (not card.get("kind") and name.startswith("surrogate_"))


def list_models(include_surrogates: bool = False) -> dict[str, dict]:
    """Shipped models: name (file stem) -> card (from the JSON beside the checkpoint).

    Classifiers only (GSmooth surrogates are left out unless ``include_surrogates``): every name
    listed here loads with :func:`load_model`."""
    out = {}
    d = models_dir()
    for pt in sorted(d.glob("*.pt")):
        card = _read_card(pt.with_suffix(".json"))
        if not include_surrogates and is_surrogate(pt.stem, card):
            continue
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
    p = model_file(name_or_path)     # a path, or a shipped name; one-line error otherwise
    if not p.is_file():
        raise SemsmoothError(f"{p} is not a file (a checkpoint .pt or a TorchScript file)")
    if p.suffix == ".pt" and is_surrogate(p.stem, _read_card(p.with_suffix(".json"))):
        raise SemsmoothError(f"{p.stem} is a GSmooth surrogate, not a classifier (certify against "
                             f"{p.stem.removeprefix('surrogate_')} with a classifier such as "
                             f"gsmooth_{p.stem.removeprefix('surrogate_')}_cnn)")
    try:
        if arch:
            return load_state_dict_file(p, arch, device=device, **arch_kwargs)
        if _is_torchscript(p):
            return load_torchscript(p, device)
        model, card = load_checkpoint(p, device)
    except SemsmoothError:
        raise
    except Exception as e:  # noqa: BLE001 - the last net: any failure of a bad file is one line
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise SemsmoothError(f"{p.name} could not be loaded as a model ({type(e).__name__}"
                             f"{': ' + msg if msg else ''})") from None
    card.setdefault("name", p.stem)
    return model, card


__all__ = ["list_models", "model_card", "load_model", "is_surrogate", "FORMAT"]
