"""``estimate-error``: sample ‖ε(β, γ, x)‖₂ and estimate E, q_E and its lower bound (Fischer §6)."""

NAME = "estimate-error"
PROGRESS_UNIT = "samples"  # what the progress bar counts
HELP = "estimate the interpolation error bound E and q_E for a composable transformation"
DESCRIPTION = ("Sample eps(beta, gamma, x) = P(psi_beta(psi_gamma x)) - P(psi_{beta+gamma} x) with "
               "beta ~ N(0, sigma^2), gamma ~ U(C), x from a dataset (Fischer et al. §5.2, §6); report "
               "quantiles of ||eps||_2 (pixel scale for images, waveform [-1,1) units for audio), q_E at --E with its one-sided Clopper-Pearson lower bound, and the "
               "E that reaches --q. --worst-case bounds the maximum over gamma in C (malicious attacker).")
ORDER = 20


def add_arguments(p):
    p.add_argument("--dataset", default="mnist", help="registered dataset (default: embedded mnist)")
    p.add_argument("--split", default="heldout", help="dataset split (default: heldout)")
    p.add_argument("--indices", default=None, help="restrict x to these inputs: START:STOP or a comma list")
    p.add_argument("--transform", default="rotation", help="composable transformation (rotation, translation, "
                   "scaling, brightness, contrast; volume for audio datasets such as speech-words)")
    p.add_argument("--interpolation", default="bilinear", choices=["nearest", "bilinear", "bicubic"])
    p.add_argument("--sigma", type=float, nargs="+", default=None,
                   help="std of beta per dimension, in the transform's units (default: the transform's)")
    p.add_argument("--range", type=float, nargs="+", default=None, dest="range_",
                   help="attacker range: R gives C=[-R,R] per dimension; LO HI [LO HI ...] gives intervals")
    p.add_argument("--samples", type=int, default=20000, help="number of (beta, gamma, x) samples")
    p.add_argument("--vignette", action="store_true", help="preprocess with vignetting (inscribed circle)")
    p.add_argument("--vignette-margin", type=float, default=0.0, help="vignette margin in pixels")
    p.add_argument("--lowpass", type=float, default=None, metavar="B", help="FFT low-pass, keep |k| <= B")
    p.add_argument("--gauss", default=None, metavar="K:STD", help="Gaussian filter, size K (odd) and std")
    p.add_argument("--preprocess", default=None,
                   help="a preprocessing spec instead of the flags, e.g. vignette+lowpass:8")
    p.add_argument("--no-quantize", action="store_true", help="ideal case: no rounding to k/255")
    p.add_argument("--upscale", type=float, default=1.0,
                   help="attacker resize (Fischer §7.1): transform at this factor, downscale to classify")
    p.add_argument("--E", type=float, default=None, help="report q_E at this E (default: the E for --q)")
    p.add_argument("--q", type=float, default=0.95, help="target lower bound on q_E (default 0.95)")
    p.add_argument("--alpha-E", type=float, default=0.001, dest="alpha_E", help="confidence 1 - alpha_E")
    p.add_argument("--norm", default="whole", choices=["whole", "channel", "half", "quadrant"],
                   help="norm partition (k-smoothing, Fischer §6.3); audio: whole or half (first | second half in time)")
    p.add_argument("--worst-case", action="store_true",
                   help="also bound max over gamma in C per (beta, x) (malicious attacker, interval bound)")
    p.add_argument("--worst-samples", type=int, default=200, help="(beta, x) pairs for --worst-case")
    p.add_argument("--cells", type=int, default=None,
                   help="starting gamma cells per dimension for --worst-case (default: about 0.15 px of motion per cell)")
    p.add_argument("--rel-tol", type=float, default=0.25, dest="rel_tol",
                   help="--worst-case: refine gamma cells until bound <= (1 + REL_TOL) x the largest exact "
                        "error found (or --max-cells); default 0.25")
    p.add_argument("--max-cells", type=int, default=1024, dest="max_cells",
                   help="--worst-case: at most this many gamma cells per (beta, x) (default 1024)")
    p.add_argument("--bins", type=int, default=60, help="histogram bins")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--seed", type=int, default=0)


def run(args, progress):
    import time

    from semsmooth_core import errors
    from semsmooth_core.data.datasets import load_dataset, parse_indices
    from semsmooth_core.device import get_device
    from semsmooth_core.preprocess import Preprocess, build
    from semsmooth_core.repro import environment
    from semsmooth_core.transforms import get
    from semsmooth_core.validation import SemsmoothError, check_alpha, check_count

    t = get(args.transform)
    sigma = args.sigma if args.sigma is not None else list(t.default_sigma)
    if any(s <= 0 for s in sigma):
        raise SemsmoothError(f"sigma must be > 0, got {' '.join(f'{s:g}' for s in sigma)}")
    if len(sigma) == 1:
        sigma = sigma * t.dim
    if args.range_ is None:
        C = None
    elif len(args.range_) == 1:
        if args.range_[0] < 0:
            raise SemsmoothError(f"range must be >= 0, got {args.range_[0]:g}")
        C = args.range_[0]
    elif len(args.range_) == 2 * t.dim:
        C = [tuple(args.range_[2 * i:2 * i + 2]) for i in range(t.dim)]
    else:
        raise SemsmoothError(f"--range takes R or {t.dim} LO HI pair(s) for {args.transform}")
    n = check_count("samples", args.samples)
    check_alpha(args.alpha_E, "alpha-E")
    if not (0 < args.q < 1):
        raise SemsmoothError(f"q must lie strictly between 0 and 1, got {args.q:g}")
    if args.E is not None and not (args.E >= 0):
        raise SemsmoothError(f"E must be >= 0, got {args.E:g}")
    if args.preprocess is not None:
        pre = Preprocess.parse(args.preprocess)
    else:
        pre = build(args.vignette, args.vignette_margin, args.lowpass, args.gauss)
    setup = errors.ErrorSetup(args.transform, args.interpolation, sigma, C, pre,
                              quantize=not args.no_quantize, norm=args.norm, upscale=args.upscale)
    x, _ = load_dataset(args.dataset, split=args.split, indices=parse_indices(args.indices))
    dev = get_device(args.device)
    t0 = time.perf_counter()
    s = errors.sample_errors(setup, x, n, seed=args.seed, batch_size=args.batch_size, device=dev,
                             progress=progress)
    target = errors.E_for_q(s.norms, args.q, args.alpha_E)
    E = args.E if args.E is not None else target["E"]
    at = errors.q_E(s.norms, E, args.alpha_E) if E != float("inf") else {"q_E": 0.0, "q_E_lower": 0.0, "k": 0}
    if args.E is None and E != float("inf"):
        # E is an order statistic of these samples: bound with the planned count k*, not with the
        # count below E (tied norms would inflate it; errors.E_for_q, issue 13)
        at = {**at, "q_E_lower": target["q_E_lower"], "k": target["k"]}
    out = {"setup": setup.describe(), "dataset": args.dataset, "split": args.split, "n_data": len(x),
           "n": s.n, "seed": args.seed, "alpha_E": args.alpha_E, "parts": s.parts,
           "quantiles": errors.quantiles(s.norms),
           "quantiles_linf": errors.quantiles(s.linf),
           "E": E, "q_E": at["q_E"], "q_E_lower": at["q_E_lower"], "k": at["k"],
           # without --E the E is picked from these same samples (E_for_q): q_E_lower then describes
           # this sample; for a certificate fix --E in advance (or re-estimate with another --seed)
           "E_selected_from_samples": args.E is None,
           "E_for_q": target,
           "histogram": errors.histogram(s.norms, bins=args.bins),
           "seconds": s.seconds, "samples_per_second": s.n / max(s.seconds, 1e-12),
           "device": str(dev)}
    if len(s.parts) > 1:
        out["quantiles_per_part"] = {name: errors.quantiles(s.norms[:, i]) for i, name in enumerate(s.parts)}
    if args.worst_case:
        import numpy as np

        if not (args.rel_tol >= 0):
            raise SemsmoothError(f"rel-tol must be >= 0, got {args.rel_tol:g}")
        wc = errors.worst_case(setup, x, check_count("worst-samples", args.worst_samples), seed=args.seed,
                               cells=args.cells, device=dev, progress=progress, rel_tol=args.rel_tol,
                               max_cells=check_count("max-cells", args.max_cells))
        wE = errors.E_for_q(wc.bound, args.q, args.alpha_E)
        ratio = wc.ratio
        out["worst_case"] = {"n": wc.n, "cells": wc.cells, "seconds": wc.seconds,
                             "method": "adaptive gamma-cell refinement, interval + linear-model bound "
                                       "(semsmooth_core.worstcase.max_eps_upper)",
                             "rel_tol": wc.rel_tol, "max_cells": wc.max_cells,
                             "cells_evaluated": errors.quantiles(wc.cells_evaluated.astype(float)),
                             "seconds_per_pair": wc.seconds_per_pair,
                             "quantiles_bound": errors.quantiles(wc.bound),
                             "quantiles_sampled_max": errors.quantiles(wc.sampled_max),
                             "bound_over_sampled": {"median": float(np.median(ratio)),
                                                    "q95": float(np.quantile(ratio, 0.95)),
                                                    "max": float(ratio.max())},
                             "mean_gap": float((wc.bound - wc.sampled_max).mean()),
                             "mean_ratio": float(ratio.mean()),
                             "E_for_q": wE,
                             "q_E_prime_at_E": errors.q_E(wc.bound, E, args.alpha_E) if E != float("inf") else None}
    out["total_seconds"] = time.perf_counter() - t0
    out["environment"] = environment()
    return out


def _defaults() -> dict:
    """Every option's default, as ``add_arguments`` declares it (one list of defaults)."""
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    return {a.dest: a.default for a in p._actions if a.dest != "help"}


def estimate(progress=None, **options) -> dict:
    """The ``estimate-error`` result as a library call: keyword arguments named as the options'
    destinations (``transform``, ``interpolation``, ``sigma`` (a list), ``range_`` (a list),
    ``samples``, ``preprocess``, ``q``, ``alpha_E``, ``seed``, ...); the others keep their
    defaults. Benchmarks call this, not the command line."""
    from types import SimpleNamespace

    from semsmooth_core.validation import SemsmoothError

    d = _defaults()
    unknown = sorted(set(options) - set(d))
    if unknown:
        raise SemsmoothError(f"estimate-error has no option {', '.join(unknown)}")
    return run(SimpleNamespace(**{**d, **options}), progress)
