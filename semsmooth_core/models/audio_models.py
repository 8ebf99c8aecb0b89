"""Spoken-word classifiers that map WAVEFORMS to logits.

The MFCC front end (:class:`MFCC`, a torch port of
``librosa.feature.mfcc``) is the first layer of the model, so that both the inner Gaussian
noise of double smoothing and the bound E of the rounding error live in the waveform space
(Fischer §7.3: "We apply the noise before the waveform is converted to the MFCC spectrum").

``speech_cnn``: waveform ``[B,16000]`` -> MFCC ``[B,40,101]`` -> per-coefficient standardisation
(mean/std buffers fitted on the training clips) -> a small CNN on the MFCC image (4 conv blocks,
global average pooling, ~61 k parameters) -> 10 logits. Registered in
``semsmooth_core.models.architectures.ARCHITECTURES`` so checkpoints load through the normal
registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semsmooth_core.audio import CLIP_SAMPLES, SAMPLE_RATE
from semsmooth_core.validation import SemsmoothError


# --------------------------------------------------------------------------- MFCC features
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




class SpeechCNN(nn.Module):
    """Waveform -> MFCC -> CNN. ``forward`` takes ``[B,T]`` (or ``[T]``) float in [-1,1)."""

    def __init__(self, num_classes: int = 10, width: int = 16, n_mfcc: int = 40,
                 num_samples: int = CLIP_SAMPLES):
        super().__init__()
        self.num_samples = num_samples
        self.mfcc = MFCC(MFCCConfig(n_mfcc=n_mfcc))
        self.register_buffer("feat_mean", torch.zeros(1, 1, n_mfcc, 1))
        self.register_buffer("feat_std", torch.ones(1, 1, n_mfcc, 1))
        w = width

        def block(cin, cout, stride=1):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(1, w, stride=2),                        # 20 x 51
            block(w, 2 * w), nn.MaxPool2d(2),             # 10 x 25
            block(2 * w, 4 * w), nn.MaxPool2d(2),         # 5 x 12
            block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, num_classes))

    def features_of(self, wave: torch.Tensor) -> torch.Tensor:
        """Standardised MFCC image ``[B,1,n_mfcc,frames]`` of a waveform batch."""
        if wave.ndim == 1:
            wave = wave[None]
        if wave.ndim != 2 or wave.shape[-1] != self.num_samples:
            raise SemsmoothError(f"speech model takes waveforms [B,{self.num_samples}] (1 s at 16 kHz), "
                                 f"got {tuple(wave.shape)}")
        m = self.mfcc(wave).unsqueeze(1)
        return (m - self.feat_mean) / self.feat_std

    @torch.no_grad()
    def fit_normalization(self, waves: torch.Tensor, batch_size: int = 256) -> None:
        """Set the per-coefficient mean/std of the MFCC features from training waveforms."""
        feats = torch.cat([self.mfcc(waves[i:i + batch_size]) for i in range(0, len(waves), batch_size)])
        self.feat_mean.copy_(feats.mean(dim=(0, 2)).view(1, 1, -1, 1))
        self.feat_std.copy_(feats.std(dim=(0, 2)).clamp_min(1e-3).view(1, 1, -1, 1))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.features_of(wave)))


def speech_cnn(**kwargs) -> SpeechCNN:
    return SpeechCNN(**kwargs)


# --------------------------------------------------------------------------- Silero VAD (pretrained)
SILERO_VERSION = "6.2.3"
SPEECH_VAD_CLASSES = ("no speech", "speech")


def silero_jit_path() -> str:
    """Path of ``silero_vad.jit`` inside the installed PyPI package ``silero-vad`` (MIT licence),
    found WITHOUT importing the package (its import calls ``torch.set_num_threads(1)``)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise SemsmoothError(f"the Silero VAD model needs the PyPI package silero-vad "
                             f"(pip install silero-vad=={SILERO_VERSION}); it is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.jit")
    if not os.path.isfile(path):
        raise SemsmoothError(f"silero-vad is installed but {path} is missing")
    return path


class SileroSpeechDetector(nn.Module):
    """Silero VAD (pretrained, TorchScript, shipped inside the ``silero-vad`` package) as a
    two-class classifier of 1 s clips: logits ``[threshold, p]`` where ``p`` is the largest
    per-chunk speech probability over the clip's 32-ms chunks; class 1 = "speech" iff
    ``p > threshold``. Waveform in, so smoothing noise and E live in the waveform space.

    The TorchScript module is stateful (LSTM state across calls); its state is reset before
    every batch so that every clip is classified on its own. It holds no trainable state of
    ours: ``state_dict`` has only an empty anchor parameter (for the device).
    """

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = float(threshold)
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)
        jit = torch.jit.load(silero_jit_path(), map_location="cpu").eval()
        object.__setattr__(self, "_jit", jit)     # not a submodule: not in state_dict
        object.__setattr__(self, "_jit_device", torch.device("cpu"))

    @torch.no_grad()
    def speech_probability(self, wave: torch.Tensor) -> torch.Tensor:
        """Per-clip speech probability ``[B]`` (max over chunks) of a waveform batch ``[B,T]``."""
        if wave.ndim == 1:
            wave = wave[None]
        if wave.device != self._jit_device:
            object.__setattr__(self, "_jit", self._jit.to(wave.device))
            object.__setattr__(self, "_jit_device", wave.device)
        self._jit.reset_states()
        probs = self._jit.audio_forward(wave.float(), 16000)       # [B, chunks]
        self._jit.reset_states()
        return probs.amax(dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        p = self.speech_probability(wave)
        return torch.stack([torch.full_like(p, self.threshold), p], dim=1)


def silero_vad(threshold: float = 0.5) -> SileroSpeechDetector:
    return SileroSpeechDetector(threshold=threshold)
