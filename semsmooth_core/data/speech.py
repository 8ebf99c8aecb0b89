"""Spoken command words: the embedded espeak-ng clips and a loader for the Speech Commands layout.

Every loader returns ``(x [N,T] float32 in [-1,1) on the int16 grid (k/32768), y [N] int64)``
with T = 16,000 (1 s at 16 kHz) and labels indexing :data:`WORDS`.

- ``speech-words`` (registered in :mod:`semsmooth_core.data.datasets`):
  ``split="heldout"`` (default): the shipped clips ``assets/speech_words/heldout.npz``
  (200 clips, 20 per word, 12 espeak-ng voices never used for training; made by
  ``scripts/synth_speech.py``); ``split="train"``: the training part rebuilt by that script under
  ``data/speech_words/`` (gitignored); ``root=FOLDER``: a Speech Commands tree (below).
- Speech Commands layout (Warden 2018): ``ROOT/<word>/<speaker>_nohash_<k>.wav`` (16 kHz mono
  int16, up to 1 s), optional ``ROOT/validation_list.txt`` and ``ROOT/testing_list.txt`` listing
  ``<word>/<file>.wav`` per line. Split ``train`` = files in neither list, ``validation`` /
  ``test`` = the listed ones; without lists every file is in every split. Only the ten words
  of :data:`WORDS` are read (other folders such as ``_background_noise_`` are skipped); shorter
  clips are zero-padded at the end to 1 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from semsmooth_core.audio import CLIP_SAMPLES, SAMPLE_RATE, from_int16
from semsmooth_core.data.datasets import register, select_indices
from semsmooth_core.paths import REPO_ROOT, assets_dir
from semsmooth_core.validation import SemsmoothError

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def speech_assets_dir() -> Path:
    return assets_dir() / "speech_words"


def train_data_dir() -> Path:
    return REPO_ROOT / "data" / "speech_words"


def embedded_speech(split: str = "heldout") -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The shipped held-out clips (``split="heldout"``) or the rebuilt training clips
    (``split="train"``). Returns ``(x [N,16000] float32, y [N] int64, meta)`` where ``meta`` holds
    per-clip ``speaker``, ``accent``, ``speed``, ``pitch``, ``peak_db`` arrays."""
    if split == "heldout":
        path = speech_assets_dir() / "heldout.npz"
        if not path.is_file():
            raise SemsmoothError(f"shipped speech clips missing: {path} (run scripts/synth_speech.py --part heldout)")
    elif split == "train":
        path = train_data_dir() / "train.npz"
        if not path.is_file():
            raise SemsmoothError(f"training clips not built: {path} is missing "
                                 "(run python scripts/synth_speech.py --part train)")
    else:
        raise SemsmoothError(f"speech-words has splits heldout and train (or --root for a Speech "
                             f"Commands folder), not {split!r}")
    with np.load(path, allow_pickle=False) as d:
        x = from_int16(d["x"])
        y = torch.as_tensor(d["y"].astype(np.int64))
        meta = {k: d[k] for k in ("speaker", "accent", "speed", "pitch", "peak_db") if k in d.files}
    return x, y, meta


def heldout_manifest() -> dict:
    p = speech_assets_dir() / "manifest.json"
    return json.loads(p.read_text()) if p.is_file() else {}


# --------------------------------------------------------------------------- Speech Commands folders
def speech_commands_files(root: str | Path, split: str = "test", words=WORDS) -> list[tuple[Path, int]]:
    """``(path, label)`` pairs of a Speech Commands tree, sorted by (word order, file name)."""
    r = Path(root).expanduser()
    if not r.is_dir():
        raise SemsmoothError(f"speech root {str(r)!r} is not a folder")

    def read_list(name):
        p = r / name
        return {line.strip() for line in p.read_text().splitlines() if line.strip()} if p.is_file() else None

    val, test = read_list("validation_list.txt"), read_list("testing_list.txt")
    if split not in ("train", "validation", "test", "heldout", "val"):
        raise SemsmoothError(f"Speech Commands splits are train, validation and test, not {split!r}")
    split = {"heldout": "test", "val": "validation"}.get(split, split)
    out = []
    for label, w in enumerate(words):
        d = r / w
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.wav")):
            rel = f"{w}/{f.name}"
            if split == "test" and test is not None and rel not in test:
                continue
            if split == "validation" and val is not None and rel not in val:
                continue
            if split == "train" and ((test and rel in test) or (val and rel in val)):
                continue
            out.append((f, label))
    if not out:
        raise SemsmoothError(f"no clips of the words {', '.join(words)} under {r} for split {split!r} "
                             "(expected ROOT/<word>/*.wav)")
    return out


def read_clip(path: Path) -> np.ndarray:
    """One Speech Commands file as int16 [16000] (zero-padded at the end; longer files cropped)."""
    import soundfile as sf

    try:
        k, sr = sf.read(str(path), dtype="int16", always_2d=True)
    except Exception:
        raise SemsmoothError(f"{path.name} is not a readable WAV file") from None
    if sr != SAMPLE_RATE:
        raise SemsmoothError(f"{path.name} has {sr} Hz; Speech Commands clips are {SAMPLE_RATE} Hz")
    k = k.mean(axis=1).round().astype(np.int16) if k.shape[1] > 1 else k[:, 0]
    out = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    out[:min(len(k), CLIP_SAMPLES)] = k[:CLIP_SAMPLES]
    return out


def load_speech_commands(root, split: str = "test", indices=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The selected clips of a Speech Commands tree (decodes only those files)."""
    files = speech_commands_files(root, split)
    idx = select_indices(indices, len(files))
    if len(idx) == 0:
        return torch.zeros(0, CLIP_SAMPLES), torch.zeros(0, dtype=torch.long)
    ks = np.stack([read_clip(files[int(i)][0]) for i in idx])   # decoding files is per file
    return from_int16(ks), torch.as_tensor([files[int(i)][1] for i in idx], dtype=torch.long)


@register("speech-words", "spoken words yes/no/up/down/left/right/on/off/stop/go, 1 s at 16 kHz "
          "(embedded held-out: 200 espeak-ng clips; --root: a Speech Commands folder)", list(WORDS))
def _speech_words(split: str = "heldout", root: str | None = None, indices=None):
    if root:
        return load_speech_commands(root, split, indices)
    x, y, _ = embedded_speech(split)
    idx = torch.from_numpy(select_indices(indices, len(x)))
    return x[idx], y[idx]
