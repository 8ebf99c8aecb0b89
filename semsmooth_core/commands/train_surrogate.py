"""``train-surrogate``: fit the GSmooth surrogate τ(θ,x) = H(F1(θ)+F2(x)) to a real transformation."""

NAME = "train-surrogate"
PROGRESS_UNIT = "steps"  # what the progress bar counts
HELP = "train a GSmooth surrogate network for a non-resolvable transformation (zoom blur, pixelate, ...)"
ORDER = 45


def add_arguments(p):
    p.add_argument("--transform", required=True, help="registered transform, e.g. zoom_blur, defocus_blur, "
                   "rotational_blur, pixelate, motion_blur")
    p.add_argument("--theta-max", type=float, default=None,
                   help="train on severities U[0, theta_max] (transform units); default 1.5x its default range")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--unet-width", type=int, default=8)
    p.add_argument("--heldout", type=int, default=300, help="held-out images for the approximation error")
    p.add_argument("--out", default=None, help="output .pt (default assets/models/surrogate_<transform>.pt)")
    p.add_argument("--threads", type=int, default=1)


def run(args, progress):
    import sys

    import torch

    from semsmooth_core import transforms
    from semsmooth_core.data.embedded import embedded_mnist
    from semsmooth_core.gsmooth.surrogate import approximation_error, save_surrogate, train_surrogate
    from semsmooth_core.paths import models_dir
    from semsmooth_core.repro import environment
    from semsmooth_core.validation import SemsmoothError, check_count

    t = transforms.get(args.transform)
    if t.modality != "image" or t.dim != 1:
        raise SemsmoothError(f"train-surrogate supports 1-parameter image transforms, not {t.name}")
    torch.set_num_threads(check_count("threads", args.threads))
    theta_max = args.theta_max if args.theta_max is not None else min(1.5 * t.default_range[0][1], t.bounds[0][1])
    x, _ = embedded_mnist("train")
    xh, _ = embedded_mnist("heldout")
    n_h = check_count("heldout", args.heldout)
    sur, rec = train_surrogate(t.name, x, theta_max, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               seed=args.seed, latent_channels=args.latent_channels,
                               unet_width=args.unet_width, progress=progress)
    err = approximation_error(sur, t, xh[:n_h], theta_max)
    err.pop("eps_per_image")
    out = args.out or str(models_dir() / f"surrogate_{t.name}.pt")
    card = {"summary": f"GSmooth surrogate for {t.label} ({t.units[0]}), trained on embedded MNIST train",
            "transform": t.name, "unit": t.units[0], "training": rec,
            "approximation_error_heldout": err,
            "command": "python -m semsmooth_core train-surrogate " + " ".join(sys.argv[2:]),
            "environment": environment()}
    path = save_surrogate(out, sur, card)
    return {"path": str(path), "transform": t.name, "theta_max": theta_max, "unit": t.units[0],
            "training": rec, "approximation_error_heldout": err}
