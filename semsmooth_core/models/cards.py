"""Model cards: the one place that finds a model's card and reads what certification takes from it.

A card is the JSON beside a checkpoint (``assets/models/NAME.json`` for a shipped model, ``X.json``
beside a checkpoint ``X.pt``) or the ``card`` dict inside a semsmooth checkpoint. Cards were
written by different commands over time, so a value can sit in more than one place:

- σ_ε (the training noise, the default σ_ε of a certification): ``sigma_eps``, else
  ``augmentation.gaussian_noise_sigma`` / ``augmentation.noise_sigma``;
- preprocessing: ``preprocess``, else ``augmentation.preprocess`` (``"none"`` when absent);
- GSmooth σ₁, σ₂: ``training.sigma1`` / ``training.sigma2`` of a ``gsmooth_base_classifier`` card
  whose ``transform`` is the certified one;
- class names: ``classes``.

This module imports no torch at module level (the config layer and the pages read cards without
loading a model).
"""

from __future__ import annotations

import json
from pathlib import Path

from semsmooth_core.paths import models_dir
from semsmooth_core.validation import SemsmoothError

GSMOOTH_CLASSIFIER_KIND = "gsmooth_base_classifier"


def read_json_card(card_path: Path) -> dict:
    """The JSON card at ``card_path``; an absent, unreadable or malformed card counts as empty."""
    if not card_path.exists():
        return {}
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return card if isinstance(card, dict) else {}


def model_file(name_or_path: str) -> Path:
    """The file of a model given by a shipped name (``assets/models/NAME.pt``) or a path; one-line
    SemsmoothError when it is neither."""
    p = Path(str(name_or_path)).expanduser()
    if p.exists():
        return p
    cand = models_dir() / f"{name_or_path}.pt"
    if cand.exists():
        return cand
    shipped = ", ".join(sorted(q.stem for q in models_dir().glob("*.pt") if not q.stem.startswith("surrogate_")))
    raise SemsmoothError(f"no model {name_or_path!r}: not a file and not a shipped model ({shipped or 'none'})")


def card_of(name_or_path: str | None) -> dict:
    """The card of a model without loading its weights: the JSON beside the file, else the card
    inside a semsmooth checkpoint, else {} (TorchScript, a plain state_dict). None -> {}."""
    if not name_or_path:
        return {}
    p = model_file(name_or_path)
    card = read_json_card(p.with_suffix(".json")) if p.suffix == ".pt" else {}
    if card or not p.is_file():
        return card
    try:
        from semsmooth_core.models.checkpoint import FORMAT, _safe_load

        obj = _safe_load(p)
        if isinstance(obj, dict) and obj.get("format") == FORMAT and isinstance(obj.get("card"), dict):
            return dict(obj["card"])
    except Exception:  # noqa: BLE001 - not a semsmooth checkpoint: loading it later says why
        pass
    return {}


def _augmentation(card: dict) -> dict:
    aug = (card or {}).get("augmentation")
    return aug if isinstance(aug, dict) else {}   # a dict in our cards; a string or absent in others


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def sigma_eps(card: dict | None) -> float | None:
    """The noise σ the model was trained with (the default σ_ε), or None when the card has none."""
    card = card or {}
    for v in (card.get("sigma_eps"), _augmentation(card).get("gaussian_noise_sigma"),
              _augmentation(card).get("noise_sigma")):
        if _number(v) is not None and v > 0:
            return float(v)
    return None


def preprocess(card: dict | None) -> str | None:
    """The preprocessing spec the model was trained through (None when the card does not say)."""
    card = card or {}
    return card.get("preprocess") or _augmentation(card).get("preprocess") or None


def class_names(card: dict | None) -> list[str] | None:
    names = (card or {}).get("classes")
    return [str(c) for c in names] if isinstance(names, (list, tuple)) and names else None


def gsmooth_sigmas(card: dict | None, transform: str) -> dict:
    """``{"sigma1": ..., "sigma2": ...}`` (those present) a GSmooth base classifier was trained
    with, when its card is for ``transform``; {} otherwise."""
    card = card or {}
    if card.get("kind") != GSMOOTH_CLASSIFIER_KIND or card.get("transform") not in (None, transform):
        return {}
    tr = card.get("training") if isinstance(card.get("training"), dict) else {}
    return {k: float(tr[k]) for k in ("sigma1", "sigma2") if _number(tr.get(k)) is not None}
