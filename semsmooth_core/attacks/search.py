"""Search of the attacker's parameter set for the parameter that hurts a classifier most.

Everything here is a search over parameters γ (in the transform's units), independent of what is
attacked: a ``score(params [B,d]) -> [B]`` (lower = worse for the classifier; a base classifier's
logit margin, a smoothed classifier's Monte-Carlo margin) and a budget in forward passes.

Phases (each batched; the same seed gives the same points):

1. **grid**: a dense grid over the region (m points per axis, m^d ≈ ``grid_fraction`` of the budget;
   the corners and the clean parameter 0 when it lies inside);
2. **random**: uniform draws in the region (``random_fraction`` of the budget);
3. **refine** around the ``k`` worst points so far, until the budget is spent: gradient-based
   (signed-gradient steps with a backtracking line search, the gradient taken through the ideal
   transform and the score evaluated on the real, rounded one) where ``grad`` is given, otherwise
   gradient-free (uniform proposals in a box around each point whose half-width halves when no
   proposal improves).

The region is the attacker range C (a box), optionally intersected with a certified ball
``{γ : ‖γ‖ < r}`` (l2 in units, or Mahalanobis ``sqrt(γᵀΣ⁻¹γ) < r``) and with a feasibility test
(``feasible(params) -> bool [B]``, e.g. ``‖ψ_γ(x) − x‖₂ < r`` for an l2 certificate). Points
outside the ball are pulled radially inside it; infeasible points are scored +inf and cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from semsmooth_core.validation import SemsmoothError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Region:
    """Box ``[lo, hi]`` per dimension ∩ optional ball ``‖γ‖ < radius`` (l2, or Mahalanobis with
    ``cov``) ∩ optional ``feasible``; ``open_ball`` keeps points strictly inside the radius."""

    lo: torch.Tensor
    hi: torch.Tensor
    radius: float | None = None
    cov: torch.Tensor | None = None
    feasible: Callable[[torch.Tensor], torch.Tensor] | None = None
    _cov_inv: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def box(cls, ranges, radius: float | None = None, cov=None, feasible=None) -> "Region":
        r = torch.as_tensor(ranges, dtype=torch.float64).reshape(-1, 2)
        if not torch.isfinite(r).all() or bool((r[:, 0] > r[:, 1]).any()):
            raise SemsmoothError(f"attack range must be pairs (low <= high), got {r.tolist()}")
        lo, hi = r[:, 0].clone(), r[:, 1].clone()
        c = None if cov is None else torch.as_tensor(cov, dtype=torch.float64)
        if radius is not None:
            if not (math.isfinite(float(radius)) and float(radius) >= 0):
                raise SemsmoothError(f"radius must be a finite number >= 0, got {radius!r}")
            # the ball's bounding box: |γ_i| <= r·σ_i (Mahalanobis) or r (l2)
            half = float(radius) * (torch.sqrt(torch.diag(c)) if c is not None else torch.ones_like(lo))
            lo, hi = torch.maximum(lo, -half), torch.minimum(hi, half)
            if bool((lo > hi).any()):
                raise SemsmoothError("the certified ball does not meet the attacker range")
        return cls(lo, hi, None if radius is None else float(radius), c, feasible,
                   None if c is None else torch.linalg.inv(c))

    @property
    def dim(self) -> int:
        return int(self.lo.numel())

    def norm(self, p: torch.Tensor) -> torch.Tensor:
        p = p.to(torch.float64)
        if self._cov_inv is None:
            return p.norm(dim=1)
        return torch.sqrt(((p @ self._cov_inv) * p).sum(dim=1).clamp_min(0))

    def project(self, p: torch.Tensor) -> torch.Tensor:
        """Clamp to the box, then pull points on or beyond the ball's sphere radially inside."""
        p = torch.maximum(torch.minimum(p.to(torch.float64), self.hi), self.lo)
        if self.radius is not None:
            r_in = self.radius * (1 - 1e-6)
            nrm = self.norm(p)
            scale = torch.where(nrm > r_in, r_in / nrm.clamp_min(1e-300), torch.ones_like(nrm))
            p = p * scale[:, None]
            p = torch.maximum(torch.minimum(p, self.hi), self.lo)
        return p

    def contains(self, p: torch.Tensor) -> torch.Tensor:
        p = p.to(torch.float64)
        ok = ((p >= self.lo - 1e-12) & (p <= self.hi + 1e-12)).all(dim=1)
        if self.radius is not None:
            ok &= self.norm(p) < self.radius
        return ok

    def grid(self, n: int) -> torch.Tensor:
        """About ``n`` points: m per axis with m^d <= n (m >= 2 when the axis has width), plus 0."""
        d = self.dim
        m = max(1, int(math.floor(n ** (1.0 / d) + 1e-9)))
        axes = [torch.linspace(float(a), float(b), m if b > a else 1, dtype=torch.float64)
                for a, b in zip(self.lo, self.hi)]
        pts = torch.cartesian_prod(*axes).reshape(-1, d)
        zero = torch.zeros(1, d, dtype=torch.float64)
        if bool(self.contains(zero)[0]):
            pts = torch.cat([zero, pts])
        return torch.unique(self.project(pts), dim=0)

    def random(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        u = torch.rand((n, self.dim), generator=generator, dtype=torch.float64)
        return self.project(self.lo + u * (self.hi - self.lo))

    def spacing(self, n_grid: int) -> torch.Tensor:
        m = max(2, int(math.floor(max(n_grid, 1) ** (1.0 / self.dim) + 1e-9)))
        return ((self.hi - self.lo) / (m - 1)).clamp_min(1e-12)


@dataclass
class SearchResult:
    params: torch.Tensor          # [m, d] every point scored (float64)
    scores: torch.Tensor          # [m] (lower = worse for the classifier; +inf = infeasible)
    phase: list[str]              # per point: grid | random | refine
    n_forward: int                # forward passes spent
    n_backward: int = 0           # backward passes (gradients); the budget counts each as a forward pass
    spacing: torch.Tensor | None = None   # the grid spacing per dimension

    def worst(self, k: int = 1, min_dist: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` lowest-scoring distinct points and their scores; with ``min_dist`` (per
        dimension) a point is skipped unless it differs from every chosen one by more than that
        in some dimension (worst-of-k then looks at k different places)."""
        order = torch.argsort(self.scores, stable=True)
        out, sc = [], []
        for i in order.tolist():
            if not math.isfinite(float(self.scores[i])):
                break
            if any(torch.equal(self.params[i], q) for q in out):
                continue
            if min_dist is not None and any(bool(((self.params[i] - q).abs() <= min_dist).all()) for q in out):
                continue
            out.append(self.params[i])
            sc.append(float(self.scores[i]))
            if len(out) == k:
                break
        if not out:
            return torch.zeros(0, self.params.shape[1], dtype=torch.float64), torch.zeros(0)
        return torch.stack(out), torch.tensor(sc, dtype=torch.float64)


def search(score: ScoreFn, region: Region, budget: int, *, cost: int = 1, generator: torch.Generator | None = None,
           grid_fraction: float = 0.5, random_fraction: float = 0.2, k: int = 4, grad: GradFn | None = None,
           stop_below: float | None = None, max_rounds: int = 12) -> SearchResult:
    """Spend at most ``budget`` passes (``cost`` forward passes per scored point; a gradient costs
    ``cost`` forward and ``cost`` backward passes, both counted against the budget)
    searching ``region`` for low ``score``. ``stop_below``: stop after the phase or round in
    which a score below it was found (e.g. 0 = the base classifier is already wrong)."""
    if budget < cost:
        raise SemsmoothError(f"attack budget {budget} is below the cost of one candidate ({cost} forward passes)")
    cap = budget // cost                            # points we may score
    P: list[torch.Tensor] = []
    S: list[torch.Tensor] = []
    phase: list[str] = []
    used = 0                                        # points scored, a gradient counting 2
    n_grad = 0

    def run(pts: torch.Tensor, name: str) -> None:
        nonlocal used
        if pts.numel() == 0:
            return
        pts = pts[: max(0, cap - used)]
        if pts.shape[0] == 0:
            return
        ok = region.feasible(pts) if region.feasible is not None else torch.ones(pts.shape[0], dtype=torch.bool)
        sc = torch.full((pts.shape[0],), math.inf, dtype=torch.float64)
        if bool(ok.any()):
            sc[ok] = score(pts[ok]).to(torch.float64).cpu()
            used += int(ok.sum())
        P.append(pts)
        S.append(sc)
        phase.extend([name] * pts.shape[0])

    def best() -> float:
        return float(torch.cat(S).min()) if S else math.inf

    def done() -> bool:
        return used >= cap or (stop_below is not None and best() < stop_below)

    n_grid = max(1, int(cap * grid_fraction))
    run(region.grid(n_grid), "grid")
    if not done():
        run(region.random(max(1, int(cap * random_fraction)), generator), "random")
    step = region.spacing(n_grid)
    steps = step.unsqueeze(0).repeat(k, 1)
    rounds = 0
    while not done() and rounds < max_rounds:
        rounds += 1
        res = SearchResult(torch.cat(P), torch.cat(S), phase, used * cost)
        centres, cs = res.worst(k)
        if centres.shape[0] == 0:
            break
        left = cap - used
        if grad is not None:
            # one gradient per centre (2 passes), then a line search of 3 step sizes (3 passes)
            if left < 5 * centres.shape[0]:
                centres, cs = centres[: max(1, left // 5)], cs[: max(1, left // 5)]
            if left < 5:
                break
            _, g = grad(centres)
            used += 2 * centres.shape[0]
            n_grad += centres.shape[0]
            g = g.to(torch.float64).cpu()
            props = []
            for j in range(centres.shape[0]):
                s = steps[j]
                dirn = torch.sign(g[j])
                props += [centres[j] - f * s * dirn for f in (1.0, 0.5, 0.25)]
            props = region.project(torch.stack(props))
            before = best()
            run(props, "refine")
            if best() >= before:
                steps = steps * 0.5
        else:
            per = max(1, min(8, left // max(1, centres.shape[0])))
            u = torch.rand((centres.shape[0], per, region.dim), generator=generator, dtype=torch.float64) * 2 - 1
            props = region.project((centres[:, None, :] + u * steps[: centres.shape[0], None, :]).reshape(-1, region.dim))
            before = best()
            run(props, "refine")
            if best() >= before:
                steps = steps * 0.5
    res = SearchResult(torch.cat(P), torch.cat(S), phase, (used - n_grad) * cost, n_grad * cost)
    res.spacing = region.spacing(n_grid)
    return res
