"""Audio clips: conventions, fitting to one second, and checked decoding of user audio (int16
storage lives with the volume transform, ``transforms/volume.py``; MFCC features with the audio
models, ``models/audio_models.py``; E of volume changes in ``errors.py``).

Conventions (used by the volume transform, the speech models, the data loaders and the app):

- A clip is a mono waveform of ``CLIP_SAMPLES`` = 16,000 samples at ``SAMPLE_RATE`` = 16 kHz
  (1 s), a float tensor in [-1, 1) that represents int16 storage: ``x = k / 32768`` with
  ``k`` in [-32768, 32767]. A batch is ``[B,T]``.
- Every quantity that smoothing touches lives in this waveform space: the volume transform
  ψ_β, the interpolation/rounding error ε and its bound E (l2 norm of a waveform difference),
  and the inner Gaussian noise (σ_ε in the same [-1,1] units). The MFCC front end is part of
  the model (``models.audio_models.MFCC``, a torch port of ``librosa.feature.mfcc``), so that noise is added
  BEFORE the features — the reference code measured E on the waveform but added the noise to
  the spectrogram (REFERENCE_NOTES.md), which this layout rules out.

The core never imports streamlit; pages call :func:`decode_audio` and show its notices.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch

from semsmooth_core.transforms.volume import (INT16_MAX, INT16_SCALE, from_int16, quantize_int16,  # noqa: F401
                                              rounding_error_l2, to_int16)
from semsmooth_core.validation import SemsmoothError

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
MAX_UPLOAD_SECONDS = 30.0                    # longer uploads are refused
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def fit_clip(x: np.ndarray, length: int = CLIP_SAMPLES) -> tuple[np.ndarray, str | None]:
    """Pad (zeros at the end) or crop a mono waveform to ``length`` samples. A longer input keeps
    its loudest window of ``length`` samples (energy, 10 ms steps). Returns (clip, notice)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == length:
        return x, None
    if len(x) < length:
        return np.pad(x, (0, length - len(x))), f"padded from {len(x) / SAMPLE_RATE:.2f} s to 1 s with silence"
    e = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, len(x) - length + 1, 160)
    best = int(starts[np.argmax(e[starts + length] - e[starts])])
    return x[best:best + length], (f"cropped from {len(x) / SAMPLE_RATE:.2f} s to the loudest 1 s "
                                   f"window ({best / SAMPLE_RATE:.2f}-{(best + length) / SAMPLE_RATE:.2f} s)")


@dataclass
class DecodedAudio:
    """A decoded, checked upload: ``clip`` float32 [16000] in [-1,1) on the int16 grid;
    ``notices`` lists what was changed (mixdown, resampling, padding/cropping)."""

    clip: np.ndarray
    original_sample_rate: int
    original_channels: int
    original_seconds: float
    notices: list[str] = field(default_factory=list)


def decode_audio(data: bytes, name: str | None = None, max_seconds: float = MAX_UPLOAD_SECONDS) -> DecodedAudio:
    """Decode an uploaded WAV/FLAC/OGG file (via soundfile) into one 1 s, 16 kHz, int16-grid clip.

    Refused with a one-line :class:`SemsmoothError`: empty files, files that are not audio,
    audio with no samples, files longer than ``max_seconds`` (or larger than 20 MiB), NaN/inf
    samples. Changed with a notice: stereo/multichannel -> mean mixdown; other sample rates ->
    resampled to 16 kHz (soxr); shorter/longer than 1 s -> padded / loudest 1 s kept; float
    samples beyond full scale (|x| > 1) -> clipped to ±1 (the notice gives the peak in dBFS).
    """
    import soundfile as sf

    label = name or "the file"
    if data is None or len(data) == 0:
        raise SemsmoothError(f"{label} is empty (0 bytes)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise SemsmoothError(f"{label} is {len(data) / 2**20:.1f} MiB; the limit is "
                             f"{MAX_UPLOAD_BYTES // 2**20} MiB (at most {max_seconds:g} s of audio)")
    try:
        info = sf.info(io.BytesIO(data))
    except Exception:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise SemsmoothError(f"{label} is not a readable audio file (use WAV, FLAC or OGG)") from None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if info.frames == 0:
        raise SemsmoothError(f"{label} contains no audio samples")
    if seconds > max_seconds:
        raise SemsmoothError(f"{label} is {seconds:.1f} s long; the limit is {max_seconds:g} s "
                             "(cut out the part with the word, 1 s is used)")
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:
        raise SemsmoothError(f"{label} could not be decoded as audio") from None
    if x.size == 0:
        raise SemsmoothError(f"{label} contains no audio samples")
    if not np.isfinite(x).all():
        raise SemsmoothError(f"{label} contains NaN or infinite samples")
    notices = []
    channels = x.shape[1]
    if channels > 1:
        notices.append(f"{channels} channels mixed down to mono (mean)")
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        notices.append(f"resampled from {sr} Hz to {SAMPLE_RATE} Hz")
    clip, n = fit_clip(x)
    if n:
        notices.append(n)
    peak = float(np.abs(clip).max()) if clip.size else 0.0
    if peak > 1.0:  # a float file louder than full scale: int16 storage clips it
        frac = float(np.mean(np.abs(clip) > 1.0))
        notices.append(f"{frac:.1%} of the samples exceeded full scale (peak {peak:.2f} = "
                       f"{20 * np.log10(peak):+.1f} dBFS) and were clipped to ±1; lower the file's volume by "
                       f"{20 * np.log10(peak):.1f} dB to keep its waveform")
    clip = quantize_int16(torch.from_numpy(clip)).numpy()
    if np.abs(clip).max() == 0:
        notices.append("the clip is silent")
    return DecodedAudio(clip=clip, original_sample_rate=int(sr), original_channels=int(channels),
                        original_seconds=float(seconds), notices=notices)


def encode_wav(clip, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A float [-1,1) waveform as int16 WAV bytes (for downloads and ``st.audio``)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, to_int16(clip), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# names that moved (issue 14: int16 storage lives with the volume transform, volume E with the
# error code, MFCC with the audio models); the old import paths keep working
_MOVED = {"MFCCConfig": "semsmooth_core.models.audio_models", "MFCC": "semsmooth_core.models.audio_models",
          "mfcc_numpy": "semsmooth_core.models.audio_models",
          "volume_error_setup": "semsmooth_core.errors", "volume_error_norms": "semsmooth_core.errors",
          "estimate_volume_E": "semsmooth_core.errors"}


def __getattr__(name):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
