"""Base classifiers for the GSmooth classifier (App. B.2): trained on the distribution the smoothed
classifier samples from, H(A1 θ + b1 + θ' + F2(x')), where x' is the clean image or the image
after the REAL transformation ψ_ξ with ξ ~ U[0, ξ_max] (data augmentation with the semantic
transformation and with the augmented noise, as App. B.2 describes)."""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F

from semsmooth_core.models.architectures import build
from semsmooth_core.models.training import fit_steps
from semsmooth_core.validation import check_count, check_sigma


@torch.no_grad()
def gsmooth_inputs(sur, transform, x: torch.Tensor, sigma1: float, sigma2: float, xi_max: float,
                   generator: torch.Generator, attack_fraction: float = 0.5) -> torch.Tensor:
    """One training batch: a fraction of the images goes through ψ_ξ (ξ ~ U[0, ξ_max]) first, then
    every image gets the augmented noise of Eq. 9-12."""
    B = x.shape[0]
    xi = torch.rand(B, 1, generator=generator) * xi_max
    mask = (torch.rand(B, generator=generator) < attack_fraction).view(-1, 1, 1, 1)
    xa = torch.where(mask, transform(x, xi), x)
    L, H, W = sur.latent_shape
    th = sigma1 * torch.randn(B, sur.m, generator=generator)
    nz = sigma2 * torch.randn(B, L, H, W, generator=generator)
    return sur(th, xa, nz)


def train_gsmooth_classifier(sur, transform, x: torch.Tensor, y: torch.Tensor, sigma1: float, sigma2: float,
                             xi_max: float, steps: int = 1000, batch_size: int = 64, lr: float = 2e-3,
                             width: int = 16, seed: int = 0,
                             progress: Callable[[int, int], None] | None = None):
    """Train a ``small_cnn`` (``width``) with cross-entropy on :func:`gsmooth_inputs` batches.
    Adam, cosine decay. Returns ``(model.eval(), record)``."""
    sigma1, sigma2 = check_sigma(sigma1, "sigma1"), check_sigma(sigma2, "sigma2")
    steps, batch_size = check_count("steps", steps), check_count("batch_size", batch_size)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build("small_cnn", width=width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()

    def batch_loss(_step):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=g)
        return F.cross_entropy(model(gsmooth_inputs(sur, transform, x[idx], sigma1, sigma2, xi_max, g)), y[idx])

    losses = fit_steps(model, steps, batch_loss, opt, sched, progress)
    return model, {"steps": steps, "batch_size": batch_size, "lr": lr, "width": width, "seed": seed,
                   "sigma1": sigma1, "sigma2": sigma2, "xi_max": xi_max,
                   "train_seconds": time.perf_counter() - t0,
                   "final_train_loss": sum(losses[-50:]) / len(losses[-50:])}


@torch.no_grad()
def gsmooth_accuracy(model, sur, transform, x: torch.Tensor, y: torch.Tensor, sigma1: float, sigma2: float,
                     xi_max: float, seed: int = 1, attack_fraction: float = 0.0) -> float:
    """Accuracy of the base classifier on one draw of GSmooth samples of ``x`` (held-out)."""
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for s in range(0, x.shape[0], 256):
        xb = gsmooth_inputs(sur, transform, x[s:s + 256], sigma1, sigma2, xi_max, g, attack_fraction)
        correct += int((model(xb).argmax(1) == y[s:s + 256]).sum())
    return correct / x.shape[0]
