"""``certify``: certify inputs of a dataset against a semantic transformation (Fischer Thm 4.2,
Lemma 4.3, §6.2, §6.3) or plain Gaussian noise, with the shared runner
``semsmooth_core.pipeline.certify_inputs``."""

from __future__ import annotations

import json

NAME = "certify"
HELP = "certify dataset inputs: double smoothing (default), parameter smoothing, Gaussian noise, k-smoothing"
DESCRIPTION = (HELP + ". Prints a summary (n, clean_accuracy, certified_accuracy, abstain_rate, "
               "radius_percentiles, radius_unit, seconds_per_input, forward_passes_per_input) and one "
               "row per input.")
ORDER = 20


def _floats(s: str):
    v = [float(t) for t in str(s).split(",")]
    return v[0] if len(v) == 1 else v


def _ints(s: str):
    v = [int(t) for t in str(s).split(",")]
    return v[0] if len(v) == 1 else v


def add_arguments(p):
    p.add_argument("--dataset", default="mnist", help="dataset name (default: embedded mnist)")
    p.add_argument("--split", default="heldout", help="dataset split (mnist: heldout | train)")
    p.add_argument("--root", default=None, help="folder of a dataset on disk")
    p.add_argument("--model", required=True, help="shipped model name or checkpoint path")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--smoothing", default="double", choices=["double", "transform", "noise", "ksmooth"],
                   help="double: Fischer §6.2 (default); transform: Thm 4.2 only; noise: Gaussian l2; "
                        "ksmooth: §6.3 partitions")
    p.add_argument("--transform", default="rotation", help="registry transformation (rotation, translation, ...)")
    p.add_argument("--interpolation", default="bilinear", choices=["nearest", "bilinear", "bicubic"])
    p.add_argument("--sigma-gamma", type=_floats, default=None,
                   help="std of β in the transform's units; one number, or one per dimension (anisotropic, App. B)")
    p.add_argument("--sigma-eps", type=_floats, default=0.25, help="std of the inner l2 noise (pixel scale [0,1])")
    p.add_argument("--E", type=_floats, default=None, help="bound on ‖ε‖₂ (per partition for ksmooth)")
    p.add_argument("--q-E-lower", type=_floats, default=None, help="lower confidence bound on q_E for E")
    p.add_argument("--estimate-E", action="store_true", help="estimate E (q-quantile) on the training split")
    p.add_argument("--q", type=float, default=0.98, help="target q_E lower bound with --estimate-E")
    p.add_argument("--E-samples", type=int, default=2000, help="error samples with --estimate-E")
    p.add_argument("--E-worst-case", action="store_true", help="E bounds the worst case over C (malicious attacker)")
    p.add_argument("--attacker-range", type=_floats, default=None,
                   help="attacker range C as a half-width (e.g. 30 for [-30,30]); default: the transform's")
    p.add_argument("--n0", type=int, default=50)
    p.add_argument("--n-gamma", type=int, default=100)
    p.add_argument("--n-eps", type=_ints, default=200)
    p.add_argument("--alpha", type=float, default=None, help="sets alpha_gamma, alpha_eps and alpha_E at once")
    p.add_argument("--alpha-gamma", type=float, default=None)
    p.add_argument("--alpha-eps", type=_floats, default=None)
    p.add_argument("--alpha-E", type=float, default=None)
    p.add_argument("--inner-mode", default="lemma", choices=["lemma", "bonferroni"],
                   help="how the inner tests' error enters (docs/theory.md, Certification)")
    p.add_argument("--partitions", default="halves", choices=["halves", "channels", "quadrants", "none"])
    p.add_argument("--preprocess", default="auto", help="preprocessing spec (default: the model card's)")
    p.add_argument("--sequential", nargs="?", const="looks", default=None, choices=["looks", "mixture"],
                   help="sound early stopping of the inner tests (default schedule: looks)")
    p.add_argument("--indices", default="0:100", help="START:STOP or a comma list")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON result (summary + rows) to this file")


def config_from_args(args) -> dict:
    a = args.alpha if args.alpha is not None else 0.001
    rng = args.attacker_range
    return {"dataset": args.dataset, "split": args.split, "root": args.root, "model": args.model,
            "device": args.device, "smoothing": args.smoothing, "transform": args.transform,
            "interpolation": args.interpolation, "sigma_gamma": args.sigma_gamma,
            "sigma_eps": args.sigma_eps, "E": args.E, "q_E_lower": args.q_E_lower,
            "estimate_E": args.estimate_E, "q": args.q, "E_samples": args.E_samples,
            "E_worst_case": args.E_worst_case, "attacker_range": rng,
            "n0": args.n0, "n_gamma": args.n_gamma, "n_eps": args.n_eps,
            "alpha_gamma": args.alpha_gamma if args.alpha_gamma is not None else a,
            "alpha_eps": args.alpha_eps if args.alpha_eps is not None else a,
            "alpha_E": args.alpha_E if args.alpha_E is not None else a,
            "inner_mode": args.inner_mode, "partitions": args.partitions, "preprocess": args.preprocess,
            "sequential": args.sequential, "batch_size": args.batch_size, "seed": args.seed}


def run(args, progress):
    from semsmooth_core.data.datasets import load_dataset, parse_indices
    from semsmooth_core.pipeline import certify_inputs, validate_config
    from semsmooth_core.validation import SemsmoothError

    config = config_from_args(args)
    validate_config(config)
    sel = parse_indices(args.indices)
    x, _ = load_dataset(config["dataset"], split=config["split"], root=config["root"])
    n = len(x)
    if sel is None:
        indices = list(range(n))
    elif isinstance(sel, slice):
        if (sel.stop is not None and sel.stop > n) or (sel.start is not None and not 0 <= sel.start < n):
            raise SemsmoothError(f"indices must select inputs in 0..{n - 1}, got {args.indices}")
        indices = list(range(n))[sel]
    else:
        indices = sel
    if not indices or min(indices) < 0 or max(indices) >= n:
        raise SemsmoothError(f"indices must select inputs in 0..{n - 1}")
    rows: list[dict] = []
    summary = certify_inputs(config, indices, rows.append, progress=progress)
    summary["rows"] = rows
    if args.out:
        from semsmooth_core.cli import _clean, _json_default

        with open(args.out, "w") as fh:
            json.dump(_clean(summary), fh, default=_json_default, indent=1)
    return summary
