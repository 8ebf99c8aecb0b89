"""Classifier architectures for small inputs.

Every model maps a batch ``[B,C,H,W]`` in pixel scale [0,1] to logits; normalisation lives
inside the model so that smoothing noise is added in pixel space (as Cohen et al.).
"""

from __future__ import annotations

import torch
from torch import nn

from semsmooth_core.validation import SemsmoothError


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """A compact CNN for 28x28 (or 32x32) inputs: 3 conv blocks + 2 dense layers (~0.4 M params)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32,
                 mean=None, std=None):
        super().__init__()
        mean = mean if mean is not None else [0.1307] * in_channels
        std = std if std is not None else [0.3081] * in_channels
        w = width
        self.norm = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(3),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * 9, 128), nn.ReLU(inplace=True), nn.Dropout(0.2),
            nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(self.norm(x)))


def resnet18_small(in_channels: int = 1, num_classes: int = 10, mean=None, std=None) -> nn.Module:
    """ResNet-18 adapted to small inputs (3x3 stem, stride 1, no max-pool), as used for
    MNIST/CIFAR by Fischer et al. App. C.1."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    mean = mean if mean is not None else [0.1307] * in_channels
    std = std if std is not None else [0.3081] * in_channels
    return nn.Sequential(Normalize(mean, std), net)


ARCHITECTURES = {
    "small_cnn": SmallCNN,
    "resnet18_small": resnet18_small,
}


def build(arch: str, **kwargs) -> nn.Module:
    """Build an architecture by name: one of ours (``ARCHITECTURES``) or any torchvision
    classification model name (``resnet18``, ``mobilenet_v3_small``, ...), untrained."""
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch](**kwargs)
    import torchvision.models as tvm

    try:
        return tvm.get_model(arch, weights=None, **kwargs)
    except (ValueError, KeyError):
        known = ", ".join(sorted(ARCHITECTURES))
        raise SemsmoothError(f"unknown architecture {arch!r}: use one of {known} or a torchvision "
                             "model name") from None


# --- audio (issue 6): waveform -> MFCC -> CNN, defined in semsmooth_core.models.audio_models
def _speech_cnn(**kwargs):
    from semsmooth_core.models.audio_models import speech_cnn

    return speech_cnn(**kwargs)


ARCHITECTURES["speech_cnn"] = _speech_cnn


def _silero_vad(**kwargs):
    from semsmooth_core.models.audio_models import silero_vad

    return silero_vad(**kwargs)


ARCHITECTURES["silero_vad"] = _silero_vad
