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


def _plain(obj):
    """A deep copy made of dict/list/str/int/float/bool/None only (JSON round trip)."""
    return json.loads(json.dumps(obj, default=str))


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, arch_kwargs: dict | None = None,
                    card: dict | None = None) -> Path:
    """Write ``model``'s weights and card to ``path`` (and the card to ``path.with_suffix('.json')``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # plain JSON types only: a str subclass such as torch.__version__ (TorchVersion) would be
    # pickled as a class and make the file unloadable with weights_only=True
    card = _plain(card or {})
    arch_kwargs = _plain(arch_kwargs or {})
    payload = {"format": FORMAT, "arch": str(arch), "arch_kwargs": arch_kwargs,
               "state_dict": state, "card": card}
    torch.save(payload, path)
    card_out = dict(card)
    card_out.update({"arch": arch, "arch_kwargs": dict(arch_kwargs),
                     "file": path.name, "sha256": sha256_file(path)})
    path.with_suffix(".json").write_text(json.dumps(card_out, indent=2, sort_keys=True) + "\n")
    return path


def _first_line(e: BaseException) -> str:
    msg = str(e).strip()
    return (msg.splitlines()[0] if msg else type(e).__name__)[:160]


def _safe_load(path: Path):
    """``torch.load(weights_only=True)``: tensors, containers and primitives only; a file holding
    any other pickled object (a module, a custom class, an ``os.system`` payload) is refused
    before anything in it runs. Any other failure (a truncated or corrupt file, random bytes, a
    file that is not a torch file at all) is a one-line SemsmoothError too."""
    if not path.exists():
        raise SemsmoothError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise SemsmoothError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise SemsmoothError(f"{path.name} is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Unsupported operand" in msg or "invalid load key" in msg.lower():
            # the bytes are not a pickle at all: random data, a truncated or non-torch file
            raise SemsmoothError(f"{path.name} is not a torch checkpoint (corrupt, truncated or another "
                                 "file type)") from None
        if "Weights only load failed" in msg or "Unsupported" in msg or "global" in msg.lower():
            glob = ""
            for line in msg.splitlines():
                if "Unsupported global" in line:
                    glob = ": " + line.strip().split(":", 1)[-1].strip()[:100]
                    break
            raise SemsmoothError(f"{path.name} contains pickled Python objects{glob}; refused for safety "
                                 "(weights_only=True): save model.state_dict() or a TorchScript file "
                                 "instead") from None
        raise SemsmoothError(f"{path.name} is not a loadable weights-only checkpoint ({_first_line(e)})") from None
    except MemoryError:
        raise SemsmoothError(f"{path.name} is not a loadable checkpoint (out of memory while reading it)") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a corrupt or truncated file
        raise SemsmoothError(f"{path.name} is not a loadable weights-only checkpoint, corrupt or truncated? "
                             f"({type(e).__name__}: {_first_line(e)})") from None


def _examples(keys: list[str], k: int = 3) -> str:
    return ", ".join(keys[:k]) + (", ..." if len(keys) > k else "")


def load_state_into(model: nn.Module, state_dict: dict, what: str, arch: str | None = None) -> nn.Module:
    """``load_state_dict(strict=True)`` with a one-line error when the keys or shapes differ."""
    if not isinstance(state_dict, dict) or not state_dict or \
            not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise SemsmoothError(f"{what} does not contain a state_dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {list(state_dict[k].shape)} in the file vs {list(v.shape)}" for k, v in own.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    target = f"architecture {arch!r}" if arch else "the architecture"
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_examples(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches ({_examples(shapes, 2)})")
        raise SemsmoothError(f"{what} does not match {target}: {'; '.join(parts)}")
    try:
        model.load_state_dict(state_dict, strict=True)
    except Exception as e:  # noqa: BLE001 - RuntimeError for sizes/dtypes, others for odd tensors
        msg = str(e).replace("\n", " ").replace("\t", " ")
        raise SemsmoothError(f"{what} does not match {target}: {msg[:200]}") from None
    return model


def _build(arch: str, arch_kwargs: dict, what: str) -> nn.Module:
    if not isinstance(arch, str) or not isinstance(arch_kwargs, dict):
        raise SemsmoothError(f"{what}: malformed architecture entry")
    try:
        return build(arch, **arch_kwargs)
    except SemsmoothError as e:
        raise SemsmoothError(f"{what}: {e}") from None
    except TypeError as e:
        raise SemsmoothError(f"{what}: architecture {arch!r} does not take {sorted(arch_kwargs)} "
                             f"({str(e)[:100]})") from None
    except Exception as e:  # noqa: BLE001 - e.g. a negative width: RuntimeError/ValueError in a layer
        raise SemsmoothError(f"{what}: architecture {arch!r} cannot be built with {arch_kwargs} "
                             f"({type(e).__name__}: {_first_line(e)[:100]})") from None


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Load a semsmooth checkpoint (safe: ``weights_only=True``). Returns ``(model.eval(), card)``."""
    path = Path(path)
    obj = _safe_load(path)
    if isinstance(obj, dict) and str(obj.get("format", "")).startswith("semsmooth-gsmooth-surrogate"):
        raise SemsmoothError(f"{path.name} is a GSmooth surrogate, not a classifier")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SemsmoothError(f"{path.name} is not a semsmooth checkpoint (use --arch with a plain "
                             "state_dict, or a TorchScript file)")
    model = _build(obj.get("arch"), obj.get("arch_kwargs", {}), path.name)
    load_state_into(model, obj.get("state_dict"), path.name, obj.get("arch"))
    card = obj.get("card")
    card = dict(card) if isinstance(card, dict) else {}   # a malformed card is dropped, not fatal
    card.setdefault("arch", obj["arch"])
    card["sha256"] = sha256_file(path)
    return model.to(device).eval(), card


def load_state_dict_file(path: str | Path, arch: str, device="cpu", **arch_kwargs) -> tuple[nn.Module, dict]:
    """Bring your own: a torchvision (or our) architecture name plus a file holding its state_dict
    (or a semsmooth checkpoint dict)."""
    path = Path(path)
    obj = _safe_load(path)
    what = path.name
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("arch") != arch:
            what = f"{path.name} (a semsmooth checkpoint for {obj.get('arch')!r})"
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    model = _build(arch, arch_kwargs, path.name)
    load_state_into(model, obj, what, arch)
    return model.to(device).eval(), {"arch": arch, "file": path.name, "sha256": sha256_file(path)}


def load_torchscript(path: str | Path, device="cpu") -> tuple[nn.Module, dict]:
    """Bring your own: a TorchScript file (``torch.jit.save``)."""
    path = Path(path)
    if not path.is_file():
        raise SemsmoothError(f"{path} is not a file")
    try:
        model = torch.jit.load(str(path), map_location=device)
    except Exception as e:  # torch raises many types for a bad archive
        raise SemsmoothError(f"{path.name} is not a TorchScript file ({str(e).splitlines()[0][:120]})") from None
    return model.eval(), {"arch": "torchscript", "file": path.name, "sha256": sha256_file(path)}


def model_in_channels(model: nn.Module, card: dict | None = None) -> int | None:
    """How many image channels a model takes: the card's ``in_channels`` (or its
    ``arch_kwargs``), else the first 2-D convolution's (also inside TorchScript); None when
    unknown (e.g. an audio model)."""
    card = card if isinstance(card, dict) else {}
    for src in (card, card.get("arch_kwargs") if isinstance(card.get("arch_kwargs"), dict) else {}):
        v = src.get("in_channels")
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    for m in model.modules():
        kind = type(m).__name__ if not hasattr(m, "original_name") else m.original_name
        if kind == "Conv2d":
            w = getattr(m, "weight", None)
            groups = getattr(m, "groups", 1)
            if isinstance(w, torch.Tensor) and w.ndim == 4:
                return int(w.shape[1]) * int(groups if isinstance(groups, int) else 1)
    return None


def check_input_channels(model: nn.Module, card: dict | None, x: torch.Tensor, what: str = "the dataset") -> None:
    """One-line SemsmoothError before any work when images ``x`` ``[N,C,H,W]`` (or ``[C,H,W]``)
    have another number of channels than the model takes, naming the option that converts."""
    from semsmooth_core.validation import SemsmoothError

    if x.ndim not in (3, 4):
        return
    c = int(x.shape[-3])
    want = model_in_channels(model, card)
    if want is None or want == c:
        return
    fix = {1: " add --channels grey (config key channels = \"grey\"; in the app: sidebar 'Channels')",
           3: " add --channels rgb (config key channels = \"rgb\"; in the app: sidebar 'Channels')"}.get(want, "")
    raise SemsmoothError(f"the model takes {want}-channel images but {what} has {c}-channel images;{fix or ' convert the data'}")
