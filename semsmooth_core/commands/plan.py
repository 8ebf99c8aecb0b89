"""``plan``: before a double-smoothing run — the largest certifiable radius at given n's, ρ, the
inner threshold, dead ends (E out of reach of the inner smoothing), and the planner's best
n_γ / n_ε / alpha split / E for a forward-pass budget (``semsmooth_core.planner``)."""

from __future__ import annotations

NAME = "plan"
HELP = "preview a double-smoothing run: max radius, rho, dead ends, best n's and alpha split for a budget"
ORDER = 21


def add_arguments(p):
    p.add_argument("--transform", default=None, help="transformation (default rotation): its units, default σ and C")
    p.add_argument("--model", default=None, help="model whose card gives σ_ε (default: 0.25)")
    p.add_argument("--sigma-gamma", type=float, default=None, help="std of β (transform units; default: the transform's)")
    p.add_argument("--sigma-eps", type=float, default=None, help="default: the model card's, else 0.25")
    p.add_argument("--E", type=float, action="append", required=True,
                   help="bound on ‖ε‖₂; repeat with --q-E-lower to compare several (E, q) pairs")
    p.add_argument("--q-E-lower", type=float, action="append", required=True)
    p.add_argument("--n0", type=int, default=None)
    p.add_argument("--n-gamma", type=int, default=None)
    p.add_argument("--n-eps", type=int, default=None)
    p.add_argument("--alpha-gamma", type=float, default=None)
    p.add_argument("--alpha-eps", type=float, default=None)
    p.add_argument("--alpha-E", type=float, default=None)
    p.add_argument("--attacker-range", type=float, default=None,
                   help="clip radii to C = [-r, r] per parameter (default: the transform's C)")
    p.add_argument("--budget", type=int, default=None, help="forward passes per input (default n_gamma*n_eps)")
    p.add_argument("--top", type=int, default=5)


def run(args, progress):
    from semsmooth_core import planner
    from semsmooth_core.runs.config import resolve
    from semsmooth_core.validation import SemsmoothError

    if len(args.E) != len(args.q_E_lower):
        raise SemsmoothError("give one --q-E-lower per --E")
    keys = ("transform", "model", "sigma_gamma", "sigma_eps", "n0", "n_gamma", "n_eps", "alpha_gamma",
            "alpha_eps", "alpha_E", "attacker_range")
    # the run's config without E (E is compared below): defaults, card and C as certify resolves them
    c, sources = resolve({**{k: getattr(args, k) for k in keys}, "estimate_E": True}, need_model=False)
    sg = float(c.sigma_gamma if not isinstance(c.sigma_gamma, (list, tuple)) else c.sigma_gamma[0])
    pre = planner.summary_before_run(sg, float(c.sigma_eps), args.E[0], args.q_E_lower[0], c.n_gamma, c.n_eps,
                                     c.alpha_gamma, c.alpha_eps, c.alpha_E, c.range_norm_max, c.n0)
    budget = args.budget or c.n_gamma * c.n_eps
    plans = planner.plan_double(budget, sg, float(c.sigma_eps), list(zip(args.E, args.q_E_lower)),
                                alpha_total=c.alpha_gamma + c.alpha_eps, alpha_E=c.alpha_E,
                                attacker_max=c.range_norm_max)
    return {"given": pre, "budget": budget, "best": [p.to_dict() for p in plans[: args.top]],
            "config": {k: getattr(c, k) for k in keys + ("range_norm_max", "radius_unit")},
            "config_sources": {k: sources.get(k, "default") for k in keys + ("range_norm_max",)}}
