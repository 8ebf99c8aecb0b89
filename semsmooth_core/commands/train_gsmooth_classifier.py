"""``train-gsmooth-classifier``: a base classifier for the GSmooth classifier of one transformation."""

NAME = "train-gsmooth-classifier"
PROGRESS_UNIT = "steps"  # what the progress bar counts
HELP = "train a base classifier on GSmooth samples (surrogate + augmented noise) of a transformation"
ORDER = 46


def add_arguments(p):
    p.add_argument("--transform", required=True, help="transform with a shipped/trained surrogate, e.g. zoom_blur")
    p.add_argument("--surrogate", default=None, help="surrogate name or path (default: surrogate_<transform>)")
    p.add_argument("--sigma1", type=float, default=None, help="parameter noise (transform units); "
                   "default: the transform's default sigma")
    p.add_argument("--sigma2", type=float, default=0.25, help="augmented noise in the semantic layer (pixel scale)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output .pt (default assets/models/gsmooth_<transform>_cnn.pt)")
    p.add_argument("--threads", type=int, default=1)


def run(args, progress):
    import sys

    import torch

    from semsmooth_core import transforms
    from semsmooth_core.data.embedded import embedded_mnist
    from semsmooth_core.gsmooth.classifier import gsmooth_accuracy, train_gsmooth_classifier
    from semsmooth_core.gsmooth.surrogate import load_surrogate
    from semsmooth_core.models.checkpoint import save_checkpoint
    from semsmooth_core.paths import models_dir
    from semsmooth_core.repro import environment
    from semsmooth_core.validation import check_count

    torch.set_num_threads(check_count("threads", args.threads))
    t = transforms.get(args.transform)
    sur, sur_card = load_surrogate(args.surrogate or t.name)
    sigma1 = args.sigma1 if args.sigma1 is not None else t.default_sigma[0]
    xi_max = float(sur.config["theta_scale"])
    x, y = embedded_mnist("train")
    xh, yh = embedded_mnist("heldout")
    model, rec = train_gsmooth_classifier(sur, t, x, y, sigma1, args.sigma2, xi_max, steps=args.steps,
                                          batch_size=args.batch_size, lr=args.lr, width=args.width,
                                          seed=args.seed, progress=progress)
    acc_clean = float((model(xh).argmax(1) == yh).float().mean())
    acc_gs = gsmooth_accuracy(model, sur, t, xh, yh, sigma1, args.sigma2, xi_max)
    acc_gs_att = gsmooth_accuracy(model, sur, t, xh, yh, sigma1, args.sigma2, xi_max, attack_fraction=1.0)
    out = args.out or str(models_dir() / f"gsmooth_{t.name}_cnn.pt")
    card = {"summary": f"small_cnn base classifier for GSmooth on {t.label} (sigma1={sigma1:g} {t.units[0]}, "
                       f"sigma2={args.sigma2:g})",
            "kind": "gsmooth_base_classifier", "transform": t.name, "surrogate": sur_card.get("transform", t.name),
            "training": rec, "dataset": "embedded MNIST train (4,000)",
            "heldout_clean_accuracy": acc_clean, "heldout_gsmooth_sample_accuracy": acc_gs,
            "heldout_gsmooth_sample_accuracy_after_real_transform": acc_gs_att,
            "command": "python -m semsmooth_core train-gsmooth-classifier " + " ".join(sys.argv[2:]),
            "environment": environment()}
    save_checkpoint(out, model, "small_cnn", {"width": args.width}, card)
    return {"path": out, "transform": t.name, "sigma1": sigma1, "sigma2": args.sigma2,
            "heldout_clean_accuracy": acc_clean, "heldout_gsmooth_sample_accuracy": acc_gs,
            "heldout_gsmooth_sample_accuracy_after_real_transform": acc_gs_att, "training": rec}
