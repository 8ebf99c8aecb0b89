"""``attack``: search the real transformation (interpolated and rounded as the attacker stores it)
inside the attacker range C for the parameter that fools the base classifier or a smoothed one
(``semsmooth_core.attacks``): a dense grid, random search, worst-of-k and a local refinement
(gradient-based where the transformation is differentiable), within a budget of forward passes,
deterministic for a seed."""

from __future__ import annotations

NAME = "attack"
PROGRESS_UNIT = "inputs"
HELP = "empirical robustness: attack dataset inputs with the real transformation inside a range C"
DESCRIPTION = (
    HELP + ". Prints a summary (n, clean_accuracy, empirical_robust_accuracy, forward_passes_per_input, "
    "seconds_per_input) and one row per input (index, label, prediction, broken, worst_param, "
    "worst_prediction, margin). Smoothed targets answer with PREDICT (abstain counts as not correct) at "
    "the stated alpha.")
ORDER = 25


def add_arguments(p):
    from semsmooth_core.commands.certify import _floats

    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", default="mnist", help="dataset name (default: embedded mnist)")
    g.add_argument("--split", default="heldout")
    g.add_argument("--root", default=None, help="folder of a dataset on disk")
    g.add_argument("--model", required=True, help="shipped model name or checkpoint path")
    g.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: auto)")
    g.add_argument("--indices", default="0:20", help="START:STOP[:STEP] or a comma list (default 0:20)")
    g.add_argument("--preprocess", default="auto", help="preprocessing spec (default: the model card's)")
    g = p.add_argument_group("attack")
    g.add_argument("--transform", default="rotation", help="registry transformation (python -m semsmooth_core info)")
    g.add_argument("--interpolation", default="bilinear", choices=["nearest", "bilinear", "bicubic"])
    g.add_argument("--range", dest="attacker_range", default=None,
                   help="attacker range C: a half-width (30 = [-30, 30]; a severity: [0, v]), low:high, or one "
                        "per dimension (-4:4,-4:4); default: the transform's")
    g.add_argument("--budget", type=int, default=2000,
                   help="forward passes per input for the search and the final predictions (default 2000)")
    g.add_argument("--k-worst", type=int, default=2, help="final predictions at the k worst points (default 2)")
    g.add_argument("--refine", default="auto", choices=["auto", "gradient", "random", "none"],
                   help="local refinement: gradient where differentiable (auto), random proposals, or none")
    g.add_argument("--seed", type=int, default=0, help="input i uses a generator seeded by (seed, i)")
    g.add_argument("--batch-size", type=int, default=1000)
    g = p.add_argument_group("smoothed target")
    g.add_argument("--smoothing", default="none", choices=["none", "noise", "transform", "double", "gsmooth"],
                   help="none: the base classifier (default); otherwise the smoothed classifier, by PREDICT")
    g.add_argument("--sigma-gamma", "--sigma1", dest="sigma_gamma", type=_floats, default=None,
                   help="std of β (transform units; GSmooth: sigma1 or the resolvable scale)")
    g.add_argument("--sigma-eps", type=float, default=0.25, help="std of the l2 noise (pixel scale; default 0.25)")
    g.add_argument("--sigma2", type=float, default=None, help="GSmooth augmented noise (default: the card's)")
    g.add_argument("--dist", default="exp", choices=["exp", "uniform", "folded_gaussian"])
    g.add_argument("--surrogate", default=None, help="GSmooth surrogate (default surrogate_<transform>)")
    g.add_argument("--n-predict", type=int, default=1000, help="PREDICT samples (double: outer n_gamma; default 1000)")
    g.add_argument("--n-eps", type=int, default=20, help="double: inner samples per β in PREDICT (default 20)")
    g.add_argument("--n-probe", type=int, default=32, help="noise draws per searched candidate (EoT; default 32)")
    g.add_argument("--alpha", type=float, default=0.001, help="PREDICT's alpha (default 0.001)")


def run(args, progress):
    from semsmooth_core.attacks import attack_inputs, parse_range, validate_attack_config
    from semsmooth_core.commands.certify import select_indices

    config = {k: getattr(args, k) for k in (
        "dataset", "split", "root", "model", "device", "preprocess", "transform", "interpolation", "budget",
        "k_worst", "refine", "seed", "batch_size", "smoothing", "sigma_gamma", "sigma_eps", "sigma2", "dist",
        "surrogate", "n_predict", "n_eps", "n_probe", "alpha")}
    config["attacker_range"] = parse_range(args.attacker_range)
    valid = validate_attack_config(config)
    indices = select_indices(valid, args.indices)
    return attack_inputs(valid, indices, progress=progress)
