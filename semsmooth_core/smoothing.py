"""Randomized smoothing: CERTIFY and PREDICT (Fischer Alg. 1; Cohen et al.).

This module holds the Gaussian (l2) smoothing of Fischer Thm 3.1 and the machinery shared by
every smoothing type: drawing a batch of perturbed inputs, classifying it on the device and
counting votes there, separate selection (n0) and estimation (n) samples, the Certificate.
Parameter smoothing (Thm 4.2), double smoothing (Lemma 4.3, §6.2) and k-smoothing (§6.3)
build on the same pieces.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from semsmooth_core import stats
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_n0_n, check_sigma

ABSTAIN = stats.ABSTAIN

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: called after every batch with forward passes done so far."""


@dataclass
class Certificate:
    """The result of certifying one input.

    ``label`` is the predicted class (-1 = abstain); ``radius`` is in ``radius_unit`` (0 when
    abstaining); ``p_lower`` is the one-sided Clopper-Pearson lower bound on p_A (before any ρ
    correction); ``rho`` the correction of Fischer Lemma 4.3 (0 for plain smoothing);
    ``alpha`` the failure probability of the certificate as a whole; ``n_forward`` the number of
    model forward passes (single inputs) spent; ``seconds`` wall-clock time.
    """

    label: int
    radius: float
    p_lower: float
    alpha: float
    n_forward: int
    seconds: float
    radius_unit: str = "l2 (pixel scale [0,1])"
    rho: float = 0.0
    counts: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def abstained(self) -> bool:
        return self.label == ABSTAIN

    def to_dict(self) -> dict:
        d = asdict(self)
        d["abstained"] = self.abstained
        return d


# --------------------------------------------------------------------------- sampling
@torch.no_grad()
def count_votes(model: Callable[[torch.Tensor], torch.Tensor],
                make_batch: Callable[[int], torch.Tensor],
                num: int,
                batch_size: int,
                num_classes: int | None = None,
                progress: ProgressFn | None = None,
                progress_offset: int = 0,
                progress_total: int | None = None) -> torch.Tensor:
    """Classify ``num`` perturbed inputs and count the predicted classes, on the model's device.

    ``make_batch(b)`` returns ``b`` perturbed inputs ``[b, ...]`` already on the device. Votes are
    accumulated with ``bincount`` on the device; one host sync happens at the end. Returns a
    CPU int64 tensor of length ``num_classes`` (inferred from the first logits if None).
    """
    counts = None
    done = 0
    total = progress_total if progress_total is not None else num
    while done < num:
        b = min(batch_size, num - done)
        logits = model(make_batch(b))
        if counts is None:
            k = num_classes or logits.shape[-1]
            counts = torch.zeros(k, dtype=torch.long, device=logits.device)
        pred = logits.argmax(dim=-1)
        counts += torch.bincount(pred, minlength=counts.numel())[: counts.numel()]
        done += b
        if progress is not None:
            progress(progress_offset + done, total)
    if counts is None:
        return torch.zeros(num_classes or 0, dtype=torch.long)
    return counts.cpu()


def model_device(model) -> torch.device:
    """The device of a module's first parameter (CPU for parameter-free callables)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def gaussian_batch_maker(x: torch.Tensor, sigma: float, device: torch.device,
                         generator: torch.Generator | None = None) -> Callable[[int], torch.Tensor]:
    """``make_batch`` for l2 smoothing: ``b`` copies of ``x`` plus N(0, σ²) noise, on ``device``.

    The noise is drawn on the generator's device (so a CPU generator gives the same samples on
    every machine) and moved to ``device``.
    """
    x = x.to(device)
    gen_dev = generator.device if generator is not None else device

    def make(b: int) -> torch.Tensor:
        noise = torch.randn((b, *x.shape), generator=generator, device=gen_dev, dtype=x.dtype)
        return x.unsqueeze(0) + sigma * noise.to(device, non_blocking=True)

    return make


def _check_input(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise SemsmoothError("x must be a torch tensor [C,H,W]")
    if not torch.isfinite(x).all():
        raise SemsmoothError("x contains NaN or infinite values")
    return x.float()


# --------------------------------------------------------------------------- Gaussian smoothing
def certify_noise(model, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float,
                  batch_size: int = 1000, generator: torch.Generator | None = None,
                  progress: ProgressFn | None = None, num_classes: int | None = None) -> Certificate:
    """CERTIFY for l2 Gaussian smoothing (Fischer Thm 3.1 with ψ_β(x) = x + β; Cohen et al.).

    Selection: ``n0`` noisy samples choose ĉ_A = argmax. Estimation: ``n`` fresh samples count
    n_A; ``p̲_A = cp_lower(n_A, n, alpha)``. Abstain (label -1, radius 0) unless p̲_A > 1/2, else
    ``R = σ Φ⁻¹(p̲_A)`` in l2 units of the input scale. Holds with probability >= 1 - alpha.

    ``x`` is one input ``[C,H,W]`` (any shape the model takes without the batch dimension);
    ``model`` maps a batch to logits and runs where its parameters live (CUDA when there).
    """
    sigma = check_sigma(sigma)
    n0, n = check_n0_n(n0, n)
    alpha = check_alpha(alpha)
    batch_size = check_count("batch_size", batch_size)
    x = _check_input(x)
    t0 = time.perf_counter()
    device = model_device(model)
    make = gaussian_batch_maker(x, sigma, device, generator)
    total = n0 + n
    c0 = count_votes(model, make, n0, batch_size, num_classes, progress, 0, total)
    c_hat = int(c0.argmax())
    c1 = count_votes(model, make, n, batch_size, num_classes or c0.numel(), progress, n0, total)
    n_a = int(c1[c_hat])
    p_lower = stats.cp_lower(n_a, n, alpha)
    r = stats.radius(sigma, p_lower)
    label = c_hat if p_lower > 0.5 else ABSTAIN
    return Certificate(label=label, radius=r if label != ABSTAIN else 0.0, p_lower=p_lower,
                       alpha=alpha, n_forward=total, seconds=time.perf_counter() - t0,
                       counts=c1.tolist(), extra={"sigma": sigma, "n0": n0, "n": n})


def predict_from_counts(counts: torch.Tensor, alpha: float) -> tuple[int, float]:
    """PREDICT's decision (Cohen et al.): the top class if the two-sided binomial test of the
    top two counts rejects equality at ``alpha``, else abstain. Returns (label, p-value)."""
    top2 = torch.topk(counts, k=min(2, counts.numel()))
    n_a = int(top2.values[0])
    n_b = int(top2.values[1]) if counts.numel() > 1 else 0
    pval = stats.binom_test_pvalue(n_a, n_b)
    return (int(top2.indices[0]) if pval <= alpha else ABSTAIN), pval


def predict_noise(model, x: torch.Tensor, sigma: float, n: int, alpha: float, batch_size: int = 1000,
                  generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                  num_classes: int | None = None) -> dict:
    """PREDICT for l2 smoothing: the smoothed classifier's label with abstention; the label is
    wrong (not abstained and not g(x)) with probability at most ``alpha``."""
    sigma = check_sigma(sigma)
    n = check_count("n", n)
    alpha = check_alpha(alpha)
    x = _check_input(x)
    t0 = time.perf_counter()
    make = gaussian_batch_maker(x, sigma, model_device(model), generator)
    counts = count_votes(model, make, n, batch_size, num_classes, progress)
    label, pval = predict_from_counts(counts, alpha)
    return {"label": label, "p_value": pval, "counts": counts.tolist(), "n_forward": n,
            "seconds": time.perf_counter() - t0}
