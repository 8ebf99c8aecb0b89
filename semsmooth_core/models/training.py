"""Training base classifiers for smoothing: Gaussian noise augmentation plus optional random
rotation / translation augmentation (and an optional preprocessing step).

Pipeline of one training batch (pixel scale [0,1] throughout)::

    x  --(random rotation θ ~ U[-r, r] degrees, translation t ~ U[-s, s]^2 pixels;
          the project's transforms via ``semsmooth_core.transforms.get``)-->
       --(preprocess, e.g. vignette / low-pass, optional)-->
       --(+ ε, ε ~ N(0, σ_ε² I), no clipping: Cohen et al.'s noise augmentation)-->  network

Noise is added after preprocessing because that is where the smoothing noise of the inner
(l2) smoothing enters at certification time (Fischer et al. §6.2: the base classifier of the
inner smoothing sees ``preprocess(ψ_β(x)) + ε``). The transforms are never re-implemented
here: the augmentation calls the same registered implementation as certification and the
E estimate (REFERENCE_NOTES: one implementation of each transform rules out mismatches).

Everything random is drawn from one CPU ``torch.Generator`` seeded with ``seed``, so a run is
reproducible on the same device, thread count and library versions.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from semsmooth_core.models.architectures import build
from semsmooth_core.validation import SemsmoothError, check_count, check_positive

Preprocess = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]


@dataclass
class TrainResult:
    """Metrics of a training run (all accuracies on the held-out data, in [0,1])."""

    heldout_clean_accuracy: float
    heldout_noise_accuracy: float          # mean over ``noise_draws`` independent noise draws
    heldout_noise_accuracy_draws: list[float]
    noise_draws: int
    sigma_eps: float
    train_seconds: float
    seconds: float                         # training + evaluation
    n_train: int
    n_heldout: int
    epochs: int
    steps: int
    final_train_loss: float
    arch_kwargs: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- augmentation

def _transform(name: str):
    """The registered transform ``name`` (written once, in ``semsmooth_core.transforms``)."""
    from semsmooth_core import transforms

    try:
        return transforms.get(name)
    except SemsmoothError:
        raise SemsmoothError(f"{name} augmentation needs the {name!r} transform, which is not "
                             f"registered (known: {', '.join(transforms.names()) or 'none'})") from None


def augment(x: torch.Tensor, generator: torch.Generator, rotation_deg: float = 0.0,
            translation_px: float = 0.0, interpolation: str = "bilinear") -> torch.Tensor:
    """Random rotation (θ ~ U[-rotation_deg, rotation_deg], degrees) then random translation
    (t ~ U[-translation_px, translation_px]² pixels, independent per axis) of a batch
    ``[B,C,H,W]``, one parameter draw per sample, through the project's transforms (stored as
    uint8, as an attacker's image would be)."""
    b = x.shape[0]
    if rotation_deg > 0:
        theta = (torch.rand(b, 1, generator=generator) * 2 - 1) * rotation_deg
        x = _transform("rotation")(x, theta.to(x.device), interpolation=interpolation)
    if translation_px > 0:
        t = (torch.rand(b, 2, generator=generator) * 2 - 1) * translation_px
        x = _transform("translation")(x, t.to(x.device), interpolation=interpolation)
    return x


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, σ² I) in pixel space, drawn on the CPU generator (reproducible across devices)."""
    if sigma <= 0:
        return x
    eps = torch.randn(x.shape, generator=generator) * sigma
    return x + eps.to(x.device)


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma_eps: float = 0.0,
             noise_draws: int = 1, batch_size: int = 500, preprocess: Preprocess | None = None,
             generator: torch.Generator | None = None) -> tuple[float, list[float]]:
    """Clean accuracy and accuracies under ``noise_draws`` independent draws of
    N(0, σ_ε² I) (after ``preprocess``). Returns ``(clean, [noisy per draw])``."""
    model.eval()
    dev = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    g = generator or torch.Generator().manual_seed(0)
    correct_clean = 0
    correct_noise = [0] * (noise_draws if sigma_eps > 0 else 0)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        yb = y[i:i + batch_size].to(dev)
        if preprocess is not None:
            xb = preprocess(xb)
        correct_clean += int((model(xb).argmax(1) == yb).sum())
        for d in range(len(correct_noise)):
            correct_noise[d] += int((model(add_noise(xb, sigma_eps, g)).argmax(1) == yb).sum())
    n = max(len(x), 1)
    return correct_clean / n, [c / n for c in correct_noise]


# --------------------------------------------------------------------------- training

def optimizer_step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor) -> float:
    """One gradient step (zero grad, backward, optimizer and scheduler step); returns the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach())


def fit_steps(module: nn.Module, steps: int, batch_loss: Callable[[int], torch.Tensor], opt, sched,
              progress: Callable[[int, int], None] | None = None) -> list[float]:
    """A step-based training loop: ``batch_loss(step)`` builds one batch and returns its loss;
    the module is in train mode during the loop and in eval mode after. Returns the losses."""
    module.train()
    losses = []
    for step in range(steps):
        losses.append(optimizer_step(opt, sched, batch_loss(step)))
        if progress is not None and (step % 10 == 0 or step == steps - 1):
            progress(step + 1, steps)
    module.eval()
    return losses


def _check_data(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise SemsmoothError(f"{what} images must be a tensor [N,C,H,W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if len(x) == 0 or len(x) != len(y):
        raise SemsmoothError(f"{what}: {len(x)} images but {len(y)} labels (need the same number, > 0)")


def train(arch: str, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
          y_val: torch.Tensor, sigma_eps: float, epochs: int, batch_size: int = 64,
          lr: float = 0.05, seed: int = 0, rotation_deg: float = 0.0, translation_px: float = 0.0,
          preprocess: Preprocess | None = None, progress: Progress | None = None, *,
          arch_kwargs: dict | None = None, optimizer: str = "sgd", schedule: str = "cosine",
          weight_decay: float = 5e-4, momentum: float = 0.9, noise_draws: int = 5,
          label_smoothing: float = 0.0, interpolation: str = "bilinear",
          device: torch.device | str | None = None) -> tuple[nn.Module, TrainResult]:
    """Train ``arch`` on ``(x_train, y_train)`` with Gaussian noise augmentation
    N(0, σ_ε² I) in pixel space (Cohen et al.; the base classifier of Fischer Thm 3.1 / §6.2)
    and optional random rotation ``U[-rotation_deg, rotation_deg]`` (degrees) / translation
    ``U[-translation_px, translation_px]²`` (pixels). ``preprocess`` (a callable on a batch) is
    applied after augmentation and before the noise.

    Optimiser: SGD (Nesterov momentum) or Adam, learning rate with a cosine decay to 0 (or a
    step schedule: ×0.1 at 50% and 75% of the steps), weight decay ``weight_decay``.

    Evaluates on ``(x_val, y_val)`` — which must be data never trained on — the clean accuracy
    and the accuracy under noise σ_ε (mean of ``noise_draws`` draws). Returns
    ``(model.eval(), TrainResult)``.
    """
    sigma_eps = check_positive("sigma_eps", sigma_eps, allow_zero=True)
    epochs = check_count("epochs", epochs)
    batch_size = check_count("batch size", batch_size)
    lr = check_positive("learning rate", lr)
    rotation_deg = check_positive("rotation (degrees)", rotation_deg, allow_zero=True)
    translation_px = check_positive("translation (pixels)", translation_px, allow_zero=True)
    noise_draws = check_count("noise draws", noise_draws)
    if rotation_deg > 180:
        raise SemsmoothError(f"rotation must be at most 180 degrees, got {rotation_deg:g}")
    if optimizer not in ("sgd", "adam"):
        raise SemsmoothError(f"optimizer must be sgd or adam, got {optimizer!r}")
    if schedule not in ("cosine", "step", "constant"):
        raise SemsmoothError(f"schedule must be cosine, step or constant, got {schedule!r}")
    _check_data(x_train, y_train, "training data")
    _check_data(x_val, y_val, "held-out data")
    # fail early (before any training) if an augmentation's transform is missing
    if rotation_deg > 0:
        _transform("rotation")
    if translation_px > 0:
        _transform("translation")

    from semsmooth_core.device import get_device

    dev = get_device(device if device is None else str(device))
    g = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))  # weight initialisation
    kwargs = dict(arch_kwargs or {})
    kwargs.setdefault("num_classes", int(max(int(y_train.max()), int(y_val.max())) + 1))
    if arch in ("small_cnn", "resnet18_small"):
        kwargs.setdefault("in_channels", int(x_train.shape[1]))
    model = build(arch, **kwargs).to(dev)

    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0,
                              weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total = steps_per_epoch * epochs
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    elif schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.5 * total), int(0.75 * total)], 0.1)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    t0 = time.perf_counter()
    history = []
    step = 0
    loss_avg = float("nan")
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        loss_sum, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb = x_train[idx].to(dev)
            yb = y_train[idx].to(dev)
            xb = augment(xb, g, rotation_deg, translation_px, interpolation)
            if preprocess is not None:
                xb = preprocess(xb)
            xb = add_noise(xb, sigma_eps, g)
            loss = optimizer_step(opt, sched, F.cross_entropy(model(xb), yb, label_smoothing=label_smoothing))
            step += 1
            loss_sum += loss * len(idx)
            seen += len(idx)
            if progress is not None:
                progress(step, total)
        loss_avg = loss_sum / seen
        history.append({"epoch": epoch + 1, "train_loss": round(loss_avg, 5),
                        "lr": round(opt.param_groups[0]["lr"], 6)})
    train_seconds = time.perf_counter() - t0

    geval = torch.Generator().manual_seed(int(seed) + 1)
    clean, noisy = evaluate(model, x_val, y_val, sigma_eps, noise_draws, preprocess=preprocess,
                            generator=geval)
    seconds = time.perf_counter() - t0
    res = TrainResult(
        heldout_clean_accuracy=clean,
        heldout_noise_accuracy=(sum(noisy) / len(noisy)) if noisy else clean,
        heldout_noise_accuracy_draws=noisy or [clean], noise_draws=noise_draws if noisy else 0,
        sigma_eps=sigma_eps, train_seconds=round(train_seconds, 2), seconds=round(seconds, 2),
        n_train=n, n_heldout=len(x_val), epochs=epochs, steps=step,
        final_train_loss=round(loss_avg, 5), arch_kwargs=kwargs, history=history)
    model.eval()
    return model, res


def resolve_preprocess(spec: str | None) -> Preprocess | None:
    """Turn a ``--preprocess`` spec (e.g. ``"vignette+gauss:5:1"``) into a callable. The steps
    (vignette, low-pass, Gaussian filter) live in ``semsmooth_core.preprocess``; nothing is
    re-implemented here. ``None``/``""``/``"none"`` -> no preprocessing."""
    if not spec or str(spec).strip().lower() == "none":
        return None
    try:
        from semsmooth_core import preprocess as pp
    except ImportError:
        raise SemsmoothError("--preprocess needs semsmooth_core.preprocess, which is not available "
                             "in this version") from None
    if hasattr(pp, "from_spec"):
        return pp.from_spec(spec)
    if hasattr(pp, "Preprocess"):
        return pp.Preprocess.parse(spec)
    raise SemsmoothError("--preprocess: semsmooth_core.preprocess offers no parser in this version")


__all__ = ["train", "evaluate", "augment", "add_noise", "TrainResult", "resolve_preprocess"]
