"""What is attacked: the base classifier f(P(·)) or a smoothed classifier built on it.

A target scores attacked inputs x' = ψ^I_γ(x) (the real transformation, interpolated and rounded
as the attacker stores it) and predicts on them:

- ``score(xs [B,...], y)``: a margin, lower = worse for the classifier. Base: the logit margin
  z_y − max_{c≠y} z_c (< 0: wrong). Smoothed: the expectation over the smoothing noise (EoT) of
  softmax_y − max_{c≠y} softmax_c, estimated with ``n_probe`` noise draws shared by every
  candidate (common random numbers, so candidates are compared on the same noise). Differentiable
  in ``xs`` (the gradient-based refinement uses it).
- ``predict(x', generator)``: the label. Base: argmax. Smoothed: Cohen et al.'s PREDICT (top two
  vote counts, two-sided binomial test at ``alpha``; −1 = abstain) through the PREDICT functions of
  :mod:`semsmooth_core.smoothing` and :mod:`semsmooth_core.gsmooth.certify`: a returned class other
  than the smoothed classifier's true one has probability <= ``alpha`` (the stated confidence).

Smoothed classifiers, as the certificates define them (P = the model's preprocessing):

=============  =================================================  ============================
kind           sample of g at x'                                  PREDICT
=============  =================================================  ============================
noise          f(P(x') + ε), ε ~ N(0, σ_ε²)                       ``smoothing.predict_noise``
transform      f(P(ψ_β(x'))), β ~ N(0, Σ_γ)                        ``smoothing.predict_transform``
double         f(P(ψ_β(x')) + ε)                                  ``smoothing.predict_double``
gsmooth        f(P(H(A1θ + b1 + θ' + F2(x'))))  (Hao et al. Eq. 10)  ``gsmooth.certify.predict_gsmooth``
resolvable     f(P(ψ_θ(x'))), θ ~ dist (Gaussian blur, TSS)       votes + ``predict_from_counts``
=============  =================================================  ============================

For ``double`` the search probe draws one ε per β (the classifier that the double-smoothed one
smooths again); its PREDICT is the full two-level one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from semsmooth_core import smoothing
from semsmooth_core.smoothing import model_device, predict_from_counts
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_sigma

KINDS = ("none", "noise", "transform", "double", "gsmooth")


def soft_margin(probs: torch.Tensor, y: int) -> torch.Tensor:
    """p_y − max_{c≠y} p_c per row of ``probs`` ``[B, K]`` (also for logits)."""
    other = probs.clone()
    other[:, y] = -torch.inf
    return probs[:, y] - other.max(dim=1).values


class Target:
    """Base classifier ``f(P(x))`` (``kind = "none"``)."""

    kind = "none"
    smoothed = False

    def __init__(self, model, preprocess: Callable | None = None, batch_size: int = 1000):
        self.model = model
        self.pp = preprocess
        self.batch_size = check_count("batch_size", batch_size)
        self.device = model_device(model)
        self.n_probe = 1
        self.alpha = None

    # ---- the classifier on a batch
    def logits(self, xs: torch.Tensor) -> torch.Tensor:
        xs = xs.to(self.device)
        return self.model(self.pp(xs) if self.pp is not None else xs)

    @property
    def cost(self) -> int:
        """Forward passes per scored candidate."""
        return 1

    def prepare(self, generator: torch.Generator | None) -> None:
        """Draw the shared probe noise (smoothed targets); nothing for the base classifier."""

    def score(self, xs: torch.Tensor, y: int) -> torch.Tensor:
        out = []
        for s in range(0, xs.shape[0], self.batch_size):
            out.append(soft_margin(self.logits(xs[s:s + self.batch_size]), y))
        return torch.cat(out)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        z = self.logits(x.unsqueeze(0))[0]
        lab = int(z.argmax())
        top2 = torch.topk(z, k=min(2, z.numel())).values
        return {"label": lab, "margin": float(top2[0] - top2[-1]) if z.numel() > 1 else 0.0, "n_forward": 1}

    def describe(self) -> dict:
        return {"target": "base classifier", "kind": self.kind}


class SmoothedTarget(Target):
    """A smoothed classifier (see the module table)."""

    smoothed = True

    def __init__(self, model, preprocess, kind: str, *, transform=None, interpolation: str = "bilinear",
                 sigma_gamma=None, sigma_eps: float | None = None, n_predict: int = 1000, n_eps: int = 20,
                 alpha: float = 0.001, n_probe: int = 32, batch_size: int = 1000, surrogate=None,
                 sigma1: float | None = None, sigma2: float | None = None, dist: str = "exp",
                 scale: float | None = None):
        super().__init__(model, preprocess, batch_size)
        if kind not in KINDS[1:]:
            raise SemsmoothError(f"unknown smoothing {kind!r} for an attack; use {', '.join(KINDS)}")
        self.kind = kind
        self.n_predict = check_count("n_predict", n_predict)
        self.n_eps = check_count("n_eps", n_eps)
        self.alpha = check_alpha(alpha)
        self.n_probe = check_count("n_probe", n_probe)
        self.interpolation = interpolation
        self.t = transform
        self.sigma_eps = check_sigma(sigma_eps, "sigma_eps") if kind in ("noise", "double") else None
        self.cov = None
        self.sigma_gamma = sigma_gamma
        if kind in ("transform", "double"):
            if transform is None:
                raise SemsmoothError(f"{kind} smoothing needs a transformation")
            self.cov, _ = smoothing.parse_sigma(sigma_gamma, transform.dim)
            self.spec = smoothing.resolve_transform(transform, interpolation, True)
        # PREDICT's two-sided test of n votes can reject only if 2·0.5^n <= alpha: fewer samples always abstain
        for what, n in (("n_predict", self.n_predict), ("n_eps", self.n_eps if kind == "double" else None)):
            if n is not None and 2 * 0.5 ** n > self.alpha:
                need = int(np.ceil(np.log2(2 / self.alpha)))
                raise SemsmoothError(f"PREDICT with {what} = {n} always abstains at alpha {self.alpha:g}; "
                                     f"use {what} >= {need}")
        self.sur, self.sigma1, self.sigma2 = surrogate, sigma1, sigma2
        self.dist, self.scale = dist, scale
        if kind == "gsmooth" and surrogate is None and (scale is None):
            raise SemsmoothError("gsmooth attack target needs a surrogate (or a resolvable transform's scale)")
        self._noise = None

    @property
    def resolvable(self) -> bool:
        return self.kind == "gsmooth" and self.sur is None

    @property
    def cost(self) -> int:
        return self.n_probe

    # ---- shared probe noise (common random numbers)
    def prepare(self, generator: torch.Generator | None) -> None:
        n, g = self.n_probe, generator
        if self.kind == "noise":
            self._noise = {"eps": None, "gen": g}
        elif self.kind in ("transform", "double"):
            L = torch.linalg.cholesky(self.cov).float()
            self._noise = {"beta": torch.randn((n, L.shape[0]), generator=g) @ L.T, "eps": None, "gen": g}
        elif self.resolvable:
            from semsmooth_core.gsmooth.certify import sample_nonneg

            self._noise = {"theta": sample_nonneg(self.dist, float(self.scale), n, g)}
        else:
            Lc, H, W = self.sur.latent_shape
            self._noise = {"theta": self.sigma1 * torch.randn((n, self.sur.m), generator=g),
                           "nz": self.sigma2 * torch.randn((n, Lc, H, W), generator=g)}

    def _eps(self, shape) -> torch.Tensor:
        nz = self._noise
        if nz.get("eps") is None or tuple(nz["eps"].shape) != tuple(shape):
            nz["eps"] = torch.randn(shape, generator=nz["gen"])
        return nz["eps"].to(self.device)

    def _samples(self, xs: torch.Tensor) -> torch.Tensor:
        """The n_probe smoothing samples of every x' in ``xs`` ``[B,...]`` -> ``[B·n, ...]``
        (the classifier's input after P), candidate-major."""
        n = self.n_probe
        B = xs.shape[0]
        xs = xs.to(self.device)
        rep = xs.repeat_interleave(n, dim=0)
        nz = self._noise
        if self.kind == "noise":
            base = self.pp(rep) if self.pp is not None else rep
            return base + self.sigma_eps * self._eps((n, *xs.shape[1:])).repeat(B, *([1] * (xs.ndim - 1)))
        if self.kind in ("transform", "double"):
            beta = nz["beta"].to(self.device).repeat(B, 1)
            z = self.spec.fn(rep, beta)
            z = self.pp(z) if self.pp is not None else z
            if self.kind == "double":
                z = z + self.sigma_eps * self._eps((n, *xs.shape[1:])).repeat(B, *([1] * (xs.ndim - 1)))
            return z
        if self.resolvable:
            z = self.t(rep, nz["theta"].to(self.device).repeat(B, 1))
        else:
            z = self.sur(nz["theta"].to(self.device).repeat(B, 1), rep, nz["nz"].to(self.device).repeat(B, 1, 1, 1))
        return self.pp(z) if self.pp is not None else z

    def score(self, xs: torch.Tensor, y: int) -> torch.Tensor:
        """EoT margin: mean over the probe noise of softmax_y − max other (of the mean softmax)."""
        if self._noise is None:
            raise SemsmoothError("call prepare(generator) before scoring a smoothed target")
        n = self.n_probe
        per = max(1, self.batch_size // n)
        out = []
        for s in range(0, xs.shape[0], per):
            chunk = xs[s:s + per]
            probs = torch.softmax(self.model(self._samples(chunk)), dim=-1)
            out.append(soft_margin(probs.view(chunk.shape[0], n, -1).mean(dim=1), y))
        return torch.cat(out)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """PREDICT at ``x`` (a class other than g(x) with probability <= alpha; −1 = abstain)."""
        k, bs, a = self.kind, self.batch_size, self.alpha
        if k == "noise":
            xin = self.pp(x.unsqueeze(0))[0] if self.pp is not None else x
            r = smoothing.predict_noise(self.model, xin, self.sigma_eps, self.n_predict, a, bs, generator)
        elif k == "transform":
            r = smoothing.predict_transform(self.model, x, self.t, self.sigma_gamma, self.n_predict, a, bs, generator,
                                            interpolation=self.interpolation, preprocess=self.pp)
        elif k == "double":
            r = smoothing.predict_double(self.model, x, self.t, self.sigma_gamma, self.sigma_eps, self.n_predict,
                                         self.n_eps, a, a, batch_size=bs, generator=generator,
                                         interpolation=self.interpolation, preprocess=self.pp)
        elif self.resolvable:
            from semsmooth_core.gsmooth.certify import sample_nonneg

            xd = x.to(self.device)

            def make(b):
                th = sample_nonneg(self.dist, float(self.scale), b, generator).to(self.device)
                z = self.t(xd.unsqueeze(0).expand(b, *x.shape), th)
                return self.pp(z) if self.pp is not None else z

            counts = smoothing.count_votes(self.model, make, self.n_predict, bs)
            lab, pv = predict_from_counts(counts, a)
            r = {"label": lab, "p_value": pv, "counts": counts.tolist(), "n_forward": self.n_predict}
        else:
            from semsmooth_core.gsmooth.certify import predict_gsmooth
            from semsmooth_core.runs.pipeline import _Preprocessed

            m = _Preprocessed(self.pp, self.model) if self.pp is not None else self.model
            r = predict_gsmooth(m, self.sur, x, self.sigma1, self.sigma2, self.n_predict, a, bs, generator)
        counts = torch.as_tensor(r["counts"], dtype=torch.float64)
        tot = float(counts.sum()) or 1.0
        top2 = torch.topk(counts, k=min(2, counts.numel())).values / tot
        return {"label": int(r["label"]), "p_value": float(r["p_value"]), "counts": r["counts"],
                "margin": float(top2[0] - top2[-1]) if counts.numel() > 1 else 1.0,
                "n_forward": int(r.get("n_forward", self.predict_cost))}

    @property
    def predict_cost(self) -> int:
        return self.n_predict * (self.n_eps if self.kind == "double" else 1)

    def describe(self) -> dict:
        d = {"target": f"{self.kind}-smoothed classifier", "kind": self.kind,
             "predict": f"Cohen et al.'s PREDICT, n = {self.predict_cost}, alpha = {self.alpha:g} "
                        "(a wrong non-abstaining answer has probability <= alpha)",
             "n_probe": self.n_probe, "alpha": self.alpha, "n_predict": self.n_predict}
        if self.kind == "double":
            d["n_eps"] = self.n_eps
        return d
