"""Audio: int16 storage, waveform <-> MFCC features, and checked decoding of user audio.

Conventions (used by the volume transform, the speech models, the data loaders and the app):

- A clip is a mono waveform of ``CLIP_SAMPLES`` = 16,000 samples at ``SAMPLE_RATE`` = 16 kHz
  (1 s), a float tensor in [-1, 1) that represents int16 storage: ``x = k / 32768`` with
  ``k`` in [-32768, 32767]. A batch is ``[B,T]``.
- Every quantity that smoothing touches lives in this waveform space: the volume transform
  ψ_β, the interpolation/rounding error ε and its bound E (l2 norm of a waveform difference),
  and the inner Gaussian noise (σ_ε in the same [-1,1] units). The MFCC front end is part of
  the model (:class:`MFCC`, a torch port of ``librosa.feature.mfcc``), so that noise is added
  BEFORE the features — the reference code measured E on the waveform but added the noise to
  the spectrogram (REFERENCE_NOTES.md), which this layout rules out.

The core never imports streamlit; pages call :func:`decode_audio` and show its notices.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from semsmooth_core.validation import SemsmoothError

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
INT16_SCALE = 32768.0
INT16_MAX = 32767.0 / INT16_SCALE            # largest storable value in [-1,1) scale
MAX_UPLOAD_SECONDS = 30.0                    # longer uploads are refused
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


# --------------------------------------------------------------------------- int16 storage
def quantize_int16(x: torch.Tensor) -> torch.Tensor:
    """Storage rounding of audio (Fischer §5.2, "rounding errors can be handled analogously"):
    clamp to the int16 range [-32768, 32767]/32768 and round to the nearest k/32768."""
    return torch.round(x.clamp(-1.0, INT16_MAX) * INT16_SCALE) / INT16_SCALE


def to_int16(x) -> np.ndarray:
    """A float waveform in [-1,1) scale -> int16 samples (clamped and rounded)."""
    a = torch.as_tensor(x, dtype=torch.float64)
    return (quantize_int16(a) * INT16_SCALE).round().numpy().astype(np.int16)


def from_int16(k) -> torch.Tensor:
    """int16 samples -> float32 waveform k/32768 in [-1, 1)."""
    return torch.as_tensor(np.asarray(k, dtype=np.int16).astype(np.float32) / INT16_SCALE)


def rounding_error_l2(num_samples: int) -> float:
    """Expected l2 norm of rounding a generic waveform to int16: each sample's error is uniform
    on [-1/2, 1/2] LSB (variance 1/12 LSB²), so ‖e‖₂ ≈ sqrt(T/12)/32768."""
    return math.sqrt(num_samples / 12.0) / INT16_SCALE


# --------------------------------------------------------------------------- MFCC
@dataclass(frozen=True)
class MFCCConfig:
    """Parameters of the MFCC front end (the same names as ``librosa.feature.mfcc``)."""

    sr: int = SAMPLE_RATE
    n_mfcc: int = 40
    n_fft: int = 480          # 30 ms window
    hop_length: int = 160     # 10 ms hop
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    top_db: float = 80.0
    amin: float = 1e-10

    def librosa_kwargs(self) -> dict:
        """Keyword arguments of ``librosa.feature.mfcc`` (which applies ``power_to_db`` with its
        default ``top_db=80``, ``amin=1e-10``, ``ref=1``)."""
        return dict(sr=self.sr, n_mfcc=self.n_mfcc, n_fft=self.n_fft, hop_length=self.hop_length,
                    n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax,
                    center=True, pad_mode="constant", window="hann", power=2.0, htk=False,
                    norm="ortho", dct_type=2)

    def num_frames(self, num_samples: int = CLIP_SAMPLES) -> int:
        return 1 + num_samples // self.hop_length


def mfcc_numpy(y: np.ndarray, cfg: MFCCConfig = MFCCConfig()) -> np.ndarray:
    """The reference: ``librosa.feature.mfcc`` with ``cfg`` (numpy, one clip) -> [n_mfcc, frames]."""
    import librosa

    return librosa.feature.mfcc(y=np.asarray(y, dtype=np.float32), **cfg.librosa_kwargs())


def _dct2_ortho_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """DCT-II with ``norm="ortho"`` as a matrix [n_out, n_in] (scipy.fft.dct type 2, the one
    librosa.feature.mfcc applies along the mel axis)."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m


class MFCC(nn.Module):
    """``librosa.feature.mfcc`` in torch, batched and device-agnostic: waveform ``[B,T]`` ->
    MFCC ``[B, n_mfcc, frames]``.

    Steps (Davis & Mermelstein 1980 as librosa implements them): STFT with a periodic Hann
    window, ``center=True`` zero padding; power spectrum |X|²; mel filterbank
    ``librosa.filters.mel`` (Slaney); ``power_to_db`` = 10 log10(max(S, amin)) clipped at
    ``max - top_db`` per clip; DCT-II (ortho) along the mel axis. Tested against librosa in
    tests/test_audio.py.
    """

    def __init__(self, cfg: MFCCConfig = MFCCConfig()):
        super().__init__()
        import librosa

        self.cfg = cfg
        mel = librosa.filters.mel(sr=cfg.sr, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                  fmax=cfg.fmax, htk=False, norm="slaney")
        self.register_buffer("mel_fb", torch.tensor(mel, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        self.register_buffer("dct", _dct2_ortho_matrix(cfg.n_mels, cfg.n_mfcc).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 1:
            x = x[None]
        c = self.cfg
        spec = torch.stft(x.float(), n_fft=c.n_fft, hop_length=c.hop_length, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2                       # [B, F, frames]
        mel = torch.matmul(self.mel_fb, power)                        # [B, n_mels, frames]
        db = 10.0 * torch.log10(mel.clamp_min(c.amin))
        if c.top_db is not None:
            peak = db.amax(dim=(-2, -1), keepdim=True)
            db = torch.maximum(db, peak - c.top_db)
        return torch.matmul(self.dct, db)                             # [B, n_mfcc, frames]


# --------------------------------------------------------------------------- clips
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


# --------------------------------------------------------------------------- E for volume changes
def volume_error_setup(sigma_db: float = 3.0, C: tuple[float, float] = (-3.0, 3.0), norm: str = "whole"):
    """The :class:`semsmooth_core.errors.ErrorSetup` of volume changes: β ~ N(0, σ²) dB,
    γ ~ U(C) dB, int16 rounding, no preprocessing (Fischer §5.2, §7.3)."""
    from semsmooth_core import errors

    return errors.ErrorSetup("volume", sigma=float(sigma_db), C=[(float(C[0]), float(C[1]))], norm=norm)


def volume_error_norms(data: torch.Tensor, n: int, sigma_db: float = 3.0, C: tuple[float, float] = (-3.0, 3.0),
                       seed: int = 0, batch_size: int = 500, progress=None) -> dict:
    """``errors.sample_errors`` for volume changes, as plain arrays: the l2 norms of
    ε(β,γ,x) = Q(10^{β/20} Q(10^{γ/20} x)) − Q(10^{(β+γ)/20} x) in the waveform space for ``n``
    draws x ~ U(data) (``[N,T]``), β ~ N(0, σ²) dB, γ ~ U(C) dB. Returns
    ``{"norms": [n], "linf": [n], "beta", "gamma", "index", "setup", "seconds"}``."""
    from semsmooth_core import errors

    setup = volume_error_setup(sigma_db, C)
    s = errors.sample_errors(setup, data, n, seed=seed, batch_size=batch_size, progress=progress)
    return {"norms": s.norms[:, 0], "linf": s.linf, "beta": s.beta[:, 0], "gamma": s.gamma[:, 0],
            "index": s.index, "setup": setup.describe(), "seconds": s.seconds}


def estimate_volume_E(data: torch.Tensor, n: int = 2000, q: float = 0.95, alpha_E: float = 0.001,
                      sigma_db: float = 3.0, C: tuple[float, float] = (-3.0, 3.0), seed: int = 0,
                      progress=None) -> dict:
    """E with lower bound q̲_E >= ``q`` at confidence 1 − α_E (``errors.E_for_q``) for volume
    changes; the paper's setting (§7.3) is σ_γ = 3 dB, C = [-3, 3] dB, α_E = 0.001, q_E = 0.95."""
    from semsmooth_core import errors

    smp = volume_error_norms(data, n, sigma_db, C, seed, progress=progress)
    got = errors.E_for_q(smp["norms"], q, alpha_E)
    if not math.isfinite(got["E"]):
        raise SemsmoothError(f"{n} error samples are too few for q = {q} at alpha_E {alpha_E}; use more")
    return {**got, "quantiles": errors.quantiles(smp["norms"]), "sigma_db": sigma_db, "C": list(C),
            "seconds": smp["seconds"], "predicted_rounding_l2": rounding_error_l2(data.shape[1])}
