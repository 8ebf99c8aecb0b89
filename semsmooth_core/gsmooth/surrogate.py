"""The GSmooth surrogate τ(θ, x) = H(F1(θ) + F2(x)) (Hao et al., Eq. 8, Cor. 1, App. B.2).

Shapes: the image ``x`` ``[B,C,H,W]`` (n = C·H·W), the severity ``θ`` ``[B,m]``, the semantic
layer ``z`` ``[B,L,H,W]`` (d = L·H·W, L > C).

- ``F1(θ) = A1 θ + b1`` is linear (Cor. 1, Eq. 16): ``A1 ∈ R^{d×m}``, ``b1 ∈ R^d`` learned (θ is
  divided by the fixed ``theta_scale`` first, which only rescales A1).
- ``F2(x) = [x; 0]`` pads x with L - C zero channels: the dimension augmentation of Eq. 9
  (x ∈ R^n embedded in R^d by zero entries). It is an isometry, so the augmented noise σ₂ is in
  pixel units ([0,1] scale) and ``||F2(u) - F2(v)|| = ||u - v||`` (used by Thm 3).
- ``H`` is a small U-Net with GroupNorm (App. B.2) plus a residual on the image channel,
  ``H(z) = clamp(z[:, :C] + UNet(z), 0, 1)``.

The surrogate is trained with an L1 loss on (θ, x, ψ_θ(x)) triples of the REAL transformation
(App. B.2; :func:`train_surrogate`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from semsmooth_core.validation import SemsmoothError, check_count, check_positive
from semsmooth_core.models.training import fit_steps

SURROGATE_FORMAT = "semsmooth-gsmooth-surrogate/1"


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(4, c), c)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), _gn(cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), _gn(cout), nn.SiLU())


class _Conv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), _gn(cout), nn.SiLU())


class UNetH(nn.Module):
    """H: a small two-level U-Net with GroupNorm (App. B.2).

    With ``C`` image channels and ``m`` gate channels at positions C..C+m-1 of z:
    ``H(z) = clamp(z_img + Σ_k z_gate_k · U_k(z), 0, 1)`` — the correction is gated by the gate
    channels, which F1 fills with θ, so τ(0, x) = x exactly (no approximation error at ξ = 0).
    Full resolution: one conv in, one conv out; half and quarter resolution: two convs each (kept
    lean so that it trains in minutes on one CPU thread)."""

    def __init__(self, latent_channels: int, out_channels: int = 1, width: int = 8, gates: int = 1):
        super().__init__()
        w = width
        self.out_channels, self.gates = out_channels, gates
        self.enc1 = _Conv(latent_channels, w)
        self.enc2 = _Block(w, 2 * w)
        self.mid = _Block(2 * w, 4 * w)
        self.dec2 = _Conv(4 * w + 2 * w, 2 * w)
        self.dec1 = _Conv(2 * w + w, w)
        self.out = nn.Conv2d(w, out_channels * gates, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        C, G = self.out_channels, self.gates
        e1 = self.enc1(z)
        e2 = self.enc2(F.avg_pool2d(e1, 2, ceil_mode=True))
        m = self.mid(F.avg_pool2d(e2, 2, ceil_mode=True))
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        u = self.out(d1).reshape(z.shape[0], G, C, *z.shape[-2:])
        gate = z[:, C:C + G].unsqueeze(2)
        return clamp01(z[:, :C] + (gate * u).sum(dim=1))


def clamp01(t: torch.Tensor) -> torch.Tensor:
    """H's output range [0, 1]. Its derivative AT the bounds differs between PyTorch versions (2.11:
    passed, 2.14: zero), and τ(0, x) = x puts every pixel of a digit at 0 or 1 there: derivatives
    at ξ = 0 are therefore taken from the right (``estimate_M``), never at the kink."""
    return t.clamp(0.0, 1.0)


class Surrogate(nn.Module):
    """τ(θ, x) = H(A1 θ + b1 + [x; 0]) (Eq. 8 with F1 linear, Eq. 16).

    Latent channels: C image channels (F2 = zero padding puts x there; A1 and b1 are 0 there),
    m gate channels (A1 = 1/theta_scale, b1 = 0: the gate carries θ itself), and
    L - C - m free channels where A1 and b1 are learned."""

    def __init__(self, m: int = 1, channels: int = 1, height: int = 28, width: int = 28,
                 latent_channels: int = 4, unet_width: int = 8, theta_scale: float = 1.0):
        super().__init__()
        if latent_channels < channels + m + 1:
            raise SemsmoothError("latent_channels must be at least channels + m + 1 (d > n, Eq. 9)")
        self.config = dict(m=m, channels=channels, height=height, width=width,
                           latent_channels=latent_channels, unet_width=unet_width,
                           theta_scale=float(theta_scale))
        self.m, self.channels, self.theta_scale = m, channels, float(theta_scale)
        self.latent_shape = (latent_channels, height, width)
        free = latent_channels - channels - m
        self.A1_free = nn.Parameter(0.1 * torch.randn(m, free, height, width))
        self.b1_free = nn.Parameter(torch.zeros(free, height, width))
        self.H = UNetH(latent_channels, channels, unet_width, gates=m)

    @property
    def device(self) -> torch.device:
        return self.A1_free.device

    def A1_full(self) -> torch.Tensor:
        """A1 ``[m, L, H, W]`` (per unit of θ/theta_scale): 0 on the image, identity on the gates."""
        m, C = self.m, self.channels
        _, H, W = self.latent_shape
        z = torch.zeros(m, C, H, W, dtype=self.A1_free.dtype, device=self.device)
        gate = torch.eye(m, dtype=self.A1_free.dtype, device=self.device).view(m, m, 1, 1).expand(m, m, H, W)
        return torch.cat([z, gate, self.A1_free], dim=1)

    def b1_full(self) -> torch.Tensor:
        m, C = self.m, self.channels
        _, H, W = self.latent_shape
        return torch.cat([torch.zeros(C + m, H, W, dtype=self.b1_free.dtype, device=self.device), self.b1_free], 0)

    # ---- the three parts of Eq. 8
    def F1(self, theta: torch.Tensor) -> torch.Tensor:
        """A1 θ + b1 (Eq. 16), ``[B,L,H,W]``."""
        A1 = self.A1_full()
        return torch.einsum("bm,mlhw->blhw", theta.to(A1.dtype) / self.theta_scale, A1) + self.b1_full()

    def F2(self, x: torch.Tensor) -> torch.Tensor:
        """[x; 0]: zero padding to the latent channels (Eq. 9)."""
        B, C, H, W = x.shape
        pad = torch.zeros(B, self.latent_shape[0] - C, H, W, dtype=x.dtype, device=x.device)
        return torch.cat([x, pad], dim=1)

    def A1_matrix(self) -> torch.Tensor:
        """A1 as a ``[d, m]`` matrix in the units of θ (theta_scale folded in)."""
        return (self.A1_full().reshape(self.m, -1) / self.theta_scale).T

    def forward(self, theta: torch.Tensor, x: torch.Tensor, latent_noise: torch.Tensor | None = None):
        """τ(θ, x); with ``latent_noise`` θ' ``[B,L,H,W]`` the augmented τ((θ, θ'), x) of Eq. 11-12:
        H(F1(θ) + θ' + F2(x))."""
        z = self.F1(theta) + self.F2(x)
        if latent_noise is not None:
            z = z + latent_noise
        return self.H(z)

    def check_input(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c["channels"], c["height"], c["width"]):
            raise SemsmoothError(f"this surrogate takes images [B,{c['channels']},{c['height']},{c['width']}], "
                                 f"got {tuple(x.shape)}")


# --------------------------------------------------------------------------- save / load
def save_surrogate(path: str | Path, sur: Surrogate, card: dict) -> Path:
    from semsmooth_core.models.checkpoint import sha256_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    card = json.loads(json.dumps(card, default=str))   # plain types only (weights_only loading)
    state = {k: v.detach().cpu().contiguous() for k, v in sur.state_dict().items()}
    torch.save({"format": SURROGATE_FORMAT, "config": dict(sur.config), "state_dict": state,
                "card": dict(card)}, path)
    out = dict(card)
    out.update({"kind": "gsmooth_surrogate", "config": dict(sur.config), "file": path.name,
                "sha256": sha256_file(path)})
    path.with_suffix(".json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return path


def surrogate_path(name_or_path: str) -> Path:
    from semsmooth_core.paths import models_dir

    p = Path(name_or_path)
    if p.exists():
        return p
    for cand in (models_dir() / f"{name_or_path}.pt", models_dir() / f"surrogate_{name_or_path}.pt"):
        if cand.exists():
            return cand
    raise SemsmoothError(f"no surrogate {name_or_path!r}: not a file, and no assets/models/surrogate_{name_or_path}.pt")


def load_surrogate(name_or_path: str, device="cpu") -> tuple[Surrogate, dict]:
    """Load a surrogate (a transform name such as ``zoom_blur`` or a path), ``weights_only=True``."""
    p = surrogate_path(name_or_path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - turned into one line for the user
        raise SemsmoothError(f"{p.name} is not a loadable surrogate ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(obj, dict) or obj.get("format") != SURROGATE_FORMAT:
        raise SemsmoothError(f"{p.name} is not a GSmooth surrogate checkpoint")
    sur = Surrogate(**obj["config"])
    sur.load_state_dict(obj["state_dict"])
    return sur.to(device).eval(), dict(obj.get("card", {}))


# --------------------------------------------------------------------------- training
def sample_theta(b: int, theta_max: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(b, 1, generator=generator) * theta_max


@torch.no_grad()
def approximation_error(sur: Surrogate, transform, x: torch.Tensor, theta_max: float,
                        grid: int = 9, batch_size: int = 256) -> dict:
    """The surrogate's error against the REAL (quantized) transform on ``x`` over a θ grid.

    ε_i = max over the grid θ_j = j θ_max/(grid-1) of ||τ(θ_j, x_i) − ψ_{θ_j}(x_i)||₂ (pixel
    scale). Returns the per-image ε (a tensor) and summaries: mean L1 per pixel, mean / q95 / max ε.
    """
    dev = sur.device
    thetas = torch.linspace(0.0, theta_max, grid)
    eps = torch.zeros(x.shape[0])
    l1 = 0.0
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size].to(dev)
        worst = torch.zeros(xb.shape[0], device=dev)
        for th in thetas.tolist():
            p = torch.full((xb.shape[0], 1), th, device=dev)
            d = sur(p, xb) - transform(xb, p)
            worst = torch.maximum(worst, d.flatten(1).norm(dim=1))
            l1 += float(d.abs().mean(dim=(1, 2, 3)).sum())
        eps[s:s + batch_size] = worst.cpu()
    return {"eps_per_image": eps, "l1_mean": l1 / (x.shape[0] * grid), "eps_mean": float(eps.mean()),
            "eps_q95": float(torch.quantile(eps, 0.95)), "eps_max": float(eps.max()), "grid": grid,
            "n_images": int(x.shape[0])}


def train_surrogate(transform_name: str, x_train: torch.Tensor, theta_max: float, steps: int = 1500,
                    batch_size: int = 32, lr: float = 2e-3, seed: int = 0, latent_channels: int = 4,
                    unet_width: int = 8, device="cpu",
                    progress: Callable[[int, int], None] | None = None) -> tuple[Surrogate, dict]:
    """Fit τ to the real transform ``transform_name`` with an L1 loss (App. B.2).

    Each step draws ``batch_size`` training images and θ ~ U[0, θ_max] and regresses
    τ(θ, x) on ψ_θ(x) (quantized to k/255, the realistic attacker). Adam with lr ``lr`` and a
    cosine decay. Returns the surrogate (eval mode) and a training record.
    """
    from semsmooth_core import transforms

    t = transforms.get(transform_name)
    theta_max = check_positive("theta_max", theta_max)
    if theta_max > t.bounds[0][1]:
        raise SemsmoothError(f"theta_max {theta_max:g} exceeds {t.name}'s range [0, {t.bounds[0][1]:g}] {t.units[0]}")
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    _, C, H, W = x_train.shape
    sur = Surrogate(m=1, channels=C, height=H, width=W, latent_channels=latent_channels,
                    unet_width=unet_width, theta_scale=theta_max).to(device)
    opt = torch.optim.Adam(sur.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()

    def batch_loss(_step):
        idx = torch.randint(0, x_train.shape[0], (batch_size,), generator=g)
        xb = x_train[idx].to(device)
        th = sample_theta(batch_size, theta_max, g).to(device)
        with torch.no_grad():
            target = t(xb, th)
        return (sur(th, xb) - target).abs().mean()

    losses = fit_steps(sur, steps, batch_loss, opt, sched, progress)
    rec = {"transform": t.name, "theta_max": theta_max, "unit": t.units[0], "steps": steps,
           "batch_size": batch_size, "lr": lr, "seed": seed, "latent_channels": latent_channels,
           "unet_width": unet_width, "train_seconds": time.perf_counter() - t0,
           "final_train_l1": float(sum(losses[-50:]) / len(losses[-50:])),
           "n_params": int(sum(p.numel() for p in sur.parameters()))}
    return sur, rec
