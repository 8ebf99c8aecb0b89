"""Synthesize a small Speech-Commands-style data set of ten spoken words with espeak-ng.

Words: yes, no, up, down, left, right, on, off, stop, go. A "speaker" is one espeak-ng voice
variant (``+Adam``, ``+female3``, ...) combined with English accents (en-us, en-gb, ...); every
clip draws a random accent, speed (words per minute) and pitch. Audio is resampled to 16 kHz
(soxr via librosa), trimmed of leading/trailing silence, placed at a random offset in a 1 s
window (cropped to 1 s if longer), scaled to a random peak level in [-20, -4] dBFS and stored as
int16. The held-out speakers (voice variants) are disjoint from the training speakers.

Outputs
- held-out part, shipped: ``assets/speech_words/heldout.npz`` (``x`` int16 [N,16000], ``y`` int8,
  ``speaker``, ``accent``, ``speed``, ``pitch``, ``words``) + ``assets/speech_words/manifest.json``.
- training part, rebuilt (gitignored): ``data/speech_words/train/<word>/<speaker>_nohash_<k>.wav``
  (the Speech Commands folder layout; int16 WAV, 16 kHz, mono) and ``data/speech_words/train.npz``.

    python scripts/synth_speech.py                      # both parts, seed 0 (~2-4 min, 1 core)
    python scripts/synth_speech.py --part heldout       # only the shipped part

espeak-ng (Debian package ``espeak-ng``, GPL-3.0-or-later) is a build-time tool only; audio it
generates is program output, not a derived work of the program.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SR = 16000
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
# held-out speakers: voice variants never used for training
HELDOUT_VARIANTS = ("Alicia", "Benjamin", "Edward", "Gene", "Linda", "Max", "Paul", "Steph",
                    "female3", "male4", "klatt3", "norbert")
# whispering voices carry too little energy for a 1 s keyword task; left out everywhere
EXCLUDED_VARIANTS = ("whisper", "female_whisper", "fast_test")


def espeak_variants(espeak: str) -> list[str]:
    out = subprocess.run([espeak, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[3] for line in out.splitlines()[1:] if len(line.split()) >= 4]
    return sorted(set(names) - set(EXCLUDED_VARIANTS))


def synth(espeak: str, word: str, accent: str, variant: str, speed: int, pitch: int) -> np.ndarray:
    """One word as float32 mono at 16 kHz (espeak-ng's own rate resampled with soxr)."""
    import librosa
    import soundfile as sf

    wav = subprocess.run([espeak, "-v", f"{accent}+{variant}", "-s", str(speed), "-p", str(pitch),
                          "--stdout", word], capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != SR:
        x = librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq")
    return x.astype(np.float32)


def trim_silence(x: np.ndarray, top_db: float = 40.0, frame: int = 512, hop: int = 128) -> np.ndarray:
    """Drop leading/trailing frames whose RMS is more than ``top_db`` below the loudest frame."""
    if len(x) < frame:
        return x
    idx = np.arange(0, len(x) - frame + 1, hop)
    rms = np.sqrt(np.mean(x[idx[:, None] + np.arange(frame)] ** 2, axis=1))
    keep = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-10) / rms.max()) > -top_db)
    if len(keep) == 0:
        return x[:0]
    return x[idx[keep[0]]: idx[keep[-1]] + frame]


def fit_one_second(x: np.ndarray, rng: np.random.Generator, peak_db: float) -> np.ndarray | None:
    """Trim silence, crop/pad to 1 s at a random offset, scale to ``peak_db`` dBFS, round to int16."""
    if np.abs(x).max() <= 0:
        return None
    xt = trim_silence(x)
    if len(xt) == 0:
        return None
    if len(xt) > SR:
        start = (len(xt) - SR) // 2
        xt = xt[start:start + SR]
    out = np.zeros(SR, dtype=np.float64)
    off = int(rng.integers(0, SR - len(xt) + 1))
    out[off:off + len(xt)] = xt
    out *= 10 ** (peak_db / 20) / np.abs(out).max()
    return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)


def make_part(espeak: str, variants: list[str], per_word: int, rng: np.random.Generator) -> dict:
    xs, ys, meta = [], [], {"speaker": [], "accent": [], "speed": [], "pitch": [], "peak_db": []}
    for wi, word in enumerate(WORDS):
        k = 0
        while k < per_word:
            variant = variants[(k + wi) % len(variants)] if per_word <= len(variants) * 4 else \
                str(rng.choice(variants))
            accent = str(rng.choice(ACCENTS))
            speed = int(rng.integers(110, 221))
            pitch = int(rng.integers(20, 81))
            peak_db = float(rng.uniform(-20.0, -4.0))
            clip = fit_one_second(synth(espeak, word, accent, variant, speed, pitch), rng, peak_db)
            if clip is None:
                continue
            xs.append(clip)
            ys.append(wi)
            for key, v in zip(("speaker", "accent", "speed", "pitch", "peak_db"),
                              (variant, accent, speed, pitch, round(peak_db, 2))):
                meta[key].append(v)
            k += 1
    return {"x": np.stack(xs), "y": np.asarray(ys, dtype=np.int8), **{k: np.asarray(v) for k, v in meta.items()}}


def write_speech_commands_layout(part: dict, root: Path) -> None:
    """``root/<word>/<speaker>_nohash_<k>.wav``: the folder layout of Speech Commands (Warden 2018)."""
    import soundfile as sf

    counters: dict[tuple[str, str], int] = {}
    for x, y, spk in zip(part["x"], part["y"], part["speaker"]):
        word = WORDS[int(y)]
        key = (word, str(spk))
        k = counters.get(key, 0)
        counters[key] = k + 1
        d = root / word
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{spk}_nohash_{k}.wav", x, SR, subtype="PCM_16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("both", "heldout", "train"), default="both")
    ap.add_argument("--heldout-per-word", type=int, default=20)
    ap.add_argument("--train-per-word", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--espeak", default="/usr/bin/espeak-ng")
    ap.add_argument("--assets", type=Path, default=ROOT / "assets" / "speech_words")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "speech_words")
    args = ap.parse_args()

    version = subprocess.run([args.espeak, "--version"], capture_output=True, text=True).stdout.strip()
    variants = espeak_variants(args.espeak)
    held = [v for v in HELDOUT_VARIANTS if v in variants]
    train = [v for v in variants if v not in HELDOUT_VARIANTS]
    assert not set(held) & set(train)
    common = {"words": list(WORDS), "sample_rate": SR, "dtype": "int16 (value/32768 = [-1,1) float)",
              "generator": version, "generator_licence": "espeak-ng: GPL-3.0-or-later (build-time tool; "
              "the generated audio is program output, not a derived work)", "accents": list(ACCENTS),
              "seed": args.seed, "peak_dbfs_range": [-20.0, -4.0],
              "speed_wpm_range": [110, 220], "pitch_range": [20, 80],
              "command": "python scripts/synth_speech.py"}
    if args.part in ("both", "heldout"):
        part = make_part(args.espeak, held, args.heldout_per_word, np.random.default_rng([args.seed, 1]))
        args.assets.mkdir(parents=True, exist_ok=True)
        out = args.assets / "heldout.npz"
        np.savez_compressed(out, words=np.asarray(WORDS), **part)
        manifest = {**common, "part": "heldout", "speakers": held, "n": int(len(part["y"])),
                    "per_word": args.heldout_per_word, "file": out.name,
                    "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
        (args.assets / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"held-out: {len(part['y'])} clips, {len(held)} speakers -> {out} ({out.stat().st_size // 1024} KiB)")
    if args.part in ("both", "train"):
        part = make_part(args.espeak, train, args.train_per_word, np.random.default_rng([args.seed, 2]))
        args.data.mkdir(parents=True, exist_ok=True)
        np.savez(args.data / "train.npz", words=np.asarray(WORDS), **part)
        write_speech_commands_layout(part, args.data / "train")
        (args.data / "manifest.json").write_text(json.dumps(
            {**common, "part": "train", "speakers": train, "n": int(len(part["y"])),
             "per_word": args.train_per_word}, indent=2) + "\n")
        print(f"train: {len(part['y'])} clips, {len(train)} speakers -> {args.data}")


if __name__ == "__main__":
    main()
