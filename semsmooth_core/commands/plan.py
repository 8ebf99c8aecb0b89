"""``plan``: before a double-smoothing run — the largest certifiable radius at given n's, ρ, the
inner threshold, dead ends (E out of reach of the inner smoothing), and the planner's best
n_γ / n_ε / alpha split / E for a forward-pass budget (``semsmooth_core.planner``)."""

from __future__ import annotations

NAME = "plan"
HELP = "preview a double-smoothing run: max radius, rho, dead ends, best n's and alpha split for a budget"
ORDER = 21


def add_arguments(p):
    p.add_argument("--sigma-gamma", type=float, default=30.0, help="std of β (transform units)")
    p.add_argument("--sigma-eps", type=float, default=0.25)
    p.add_argument("--E", type=float, action="append", required=True,
                   help="bound on ‖ε‖₂; repeat with --q-E-lower to compare several (E, q) pairs")
    p.add_argument("--q-E-lower", type=float, action="append", required=True)
    p.add_argument("--n0", type=int, default=50)
    p.add_argument("--n-gamma", type=int, default=100)
    p.add_argument("--n-eps", type=int, default=200)
    p.add_argument("--alpha-gamma", type=float, default=0.001)
    p.add_argument("--alpha-eps", type=float, default=0.001)
    p.add_argument("--alpha-E", type=float, default=0.001)
    p.add_argument("--attacker-range", type=float, default=None, help="clip radii to C = [-r, r]")
    p.add_argument("--budget", type=int, default=None, help="forward passes per input (default n_gamma*n_eps)")
    p.add_argument("--top", type=int, default=5)


def run(args, progress):
    from semsmooth_core import planner
    from semsmooth_core.validation import SemsmoothError

    if len(args.E) != len(args.q_E_lower):
        raise SemsmoothError("give one --q-E-lower per --E")
    pre = planner.summary_before_run(args.sigma_gamma, args.sigma_eps, args.E[0], args.q_E_lower[0],
                                     args.n_gamma, args.n_eps, args.alpha_gamma, args.alpha_eps, args.alpha_E,
                                     args.attacker_range, args.n0)
    budget = args.budget or args.n_gamma * args.n_eps
    plans = planner.plan_double(budget, args.sigma_gamma, args.sigma_eps, list(zip(args.E, args.q_E_lower)),
                                alpha_total=args.alpha_gamma + args.alpha_eps, alpha_E=args.alpha_E,
                                attacker_max=args.attacker_range)
    return {"given": pre, "budget": budget, "best": [p.to_dict() for p in plans[: args.top]]}
