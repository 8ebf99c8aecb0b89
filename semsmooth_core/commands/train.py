"""``train``: train a base classifier with Gaussian noise augmentation (and optional rotation /
translation augmentation) and write a checkpoint plus its card.

    python -m semsmooth_core train --dataset mnist --arch small_cnn --sigma-eps 0.25 \\
        --epochs 15 --rotation 30 --seed 0 --out assets/models/NAME.pt --json
"""

from __future__ import annotations

NAME = "train"
PROGRESS_UNIT = "steps"  # what the progress bar counts
HELP = "train a base classifier with Gaussian noise (+ rotation/translation) augmentation"
DESCRIPTION = ("Train a base classifier for randomized smoothing: Gaussian noise N(0, sigma_eps^2) in "
               "pixel space [0,1], optional random rotation U[-r, r] degrees and translation "
               "U[-t, t]^2 pixels through the project's transforms. Writes NAME.pt (weights, loaded "
               "with weights_only=True) and NAME.json (the card: held-out accuracy clean and under "
               "noise, the command, seed, seconds, sha256).")
ORDER = 40


def add_arguments(p):
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="mnist", help="registered dataset (default: the embedded MNIST)")
    d.add_argument("--root", default=None, help="dataset folder for on-disk datasets")
    d.add_argument("--train-split", default="train", help="split trained on (default: train)")
    d.add_argument("--val-split", default=None,
                   help="held-out split evaluated on, never trained on (default: heldout for the "
                        "embedded mnist, test otherwise)")
    d.add_argument("--train-indices", default=None, help="subset of the training split: START:STOP or a,b,c")
    d.add_argument("--val-indices", default=None, help="subset of the held-out split: START:STOP or a,b,c")
    d.add_argument("--image-size", type=int, default=None,
                   help="imagefolder only: resize the shorter side to N pixels and centre-crop N x N")
    m = p.add_argument_group("model")
    m.add_argument("--arch", default="small_cnn", help="small_cnn, resnet18_small or a torchvision name")
    m.add_argument("--width", type=int, default=None, help="channel width of small_cnn (default 32)")
    a = p.add_argument_group("augmentation")
    a.add_argument("--sigma-eps", type=float, default=0.25,
                   help="std of the Gaussian noise augmentation, pixel scale [0,1] (default 0.25)")
    a.add_argument("--rotation", type=float, default=0.0,
                   help="random rotation U[-r, r], degrees (default 0 = none)")
    a.add_argument("--translation", type=float, default=0.0,
                   help="random translation U[-t, t] per axis, pixels (default 0 = none)")
    a.add_argument("--interpolation", default="bilinear", help="interpolation of the augmentation transforms")
    a.add_argument("--preprocess", default=None,
                   help="preprocessing before the noise (spec for semsmooth_core.preprocess.from_spec)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=15)
    o.add_argument("--batch-size", type=int, default=64)
    o.add_argument("--lr", type=float, default=0.05, help="peak learning rate (default 0.05)")
    o.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    o.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine")
    o.add_argument("--weight-decay", type=float, default=5e-4)
    o.add_argument("--noise-draws", type=int, default=5,
                   help="noise draws for the held-out accuracy under noise (default 5)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    o.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    w = p.add_argument_group("output")
    w.add_argument("--out", required=True, help="checkpoint path NAME.pt (the card goes to NAME.json)")
    w.add_argument("--summary", default=None, help="one-line description stored in the card")


def _command_line(args) -> str:
    """The canonical command that reproduces this run (every option that matters, explicit)."""
    import shlex

    parts = ["python", "-m", "semsmooth_core", "train", "--dataset", args.dataset]
    if args.root:
        parts += ["--root", str(args.root)]
    parts += ["--train-split", args.train_split, "--val-split", args.val_split]
    if args.train_indices:
        parts += ["--train-indices", args.train_indices]
    if args.val_indices:
        parts += ["--val-indices", args.val_indices]
    if args.image_size is not None:
        parts += ["--image-size", str(args.image_size)]
    parts += ["--arch", args.arch]
    if args.width is not None:
        parts += ["--width", str(args.width)]
    parts += ["--sigma-eps", f"{args.sigma_eps:g}", "--rotation", f"{args.rotation:g}",
              "--translation", f"{args.translation:g}", "--interpolation", args.interpolation]
    if args.preprocess:
        parts += ["--preprocess", args.preprocess]
    parts += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", f"{args.lr:g}",
              "--optimizer", args.optimizer, "--schedule", args.schedule,
              "--weight-decay", f"{args.weight_decay:g}", "--noise-draws", str(args.noise_draws),
              "--seed", str(args.seed)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    parts += ["--out", str(args._out_display)]
    return shlex.join(parts)


def run(args, progress):
    import datetime
    import json
    from pathlib import Path

    import torch

    from semsmooth_core.data.datasets import load_dataset, parse_indices
    from semsmooth_core.device import describe_device, get_device
    from semsmooth_core.models.checkpoint import save_checkpoint
    from semsmooth_core.models.training import resolve_preprocess, train
    from semsmooth_core.paths import REPO_ROOT
    from semsmooth_core.repro import environment
    from semsmooth_core.validation import SemsmoothError, check_count, check_positive

    # validate everything cheap before touching data
    check_positive("--sigma-eps", args.sigma_eps, allow_zero=True)
    check_positive("--rotation", args.rotation, allow_zero=True)
    check_positive("--translation", args.translation, allow_zero=True)
    check_positive("--lr", args.lr)
    check_positive("--weight-decay", args.weight_decay, allow_zero=True)
    check_count("--epochs", args.epochs)
    check_count("--batch-size", args.batch_size)
    check_count("--noise-draws", args.noise_draws)
    if args.width is not None:
        check_count("--width", args.width)
    if args.threads is not None:
        torch.set_num_threads(check_count("--threads", args.threads))
    out = Path(args.out)
    if out.suffix != ".pt":
        raise SemsmoothError(f"--out must be a .pt file, got {args.out!r}")
    if out.exists() and out.is_dir():
        raise SemsmoothError(f"--out {args.out!r} is a directory")
    try:
        args._out_display = out.resolve().relative_to(REPO_ROOT)
    except ValueError:
        args._out_display = out
    if args.val_split is None:
        args.val_split = "heldout" if args.dataset == "mnist" else "test"
    if args.val_split == args.train_split and args.dataset == "mnist":
        raise SemsmoothError("--val-split must differ from --train-split (held-out data is never trained on)")
    preprocess = resolve_preprocess(args.preprocess)
    device = get_device(args.device)

    options = {}
    if args.image_size is not None:
        options["size"] = check_count("--image-size", args.image_size)
    x_tr, y_tr = load_dataset(args.dataset, split=args.train_split, root=args.root,
                              indices=parse_indices(args.train_indices), **options)
    x_va, y_va = load_dataset(args.dataset, split=args.val_split, root=args.root,
                              indices=parse_indices(args.val_indices), **options)
    arch_kwargs = {}
    if args.width is not None:
        if args.arch != "small_cnn":
            raise SemsmoothError("--width applies to --arch small_cnn only")
        arch_kwargs["width"] = args.width

    model, res = train(args.arch, x_tr, y_tr, x_va, y_va, sigma_eps=args.sigma_eps, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       rotation_deg=args.rotation, translation_px=args.translation,
                       preprocess=preprocess, progress=progress, arch_kwargs=arch_kwargs,
                       optimizer=args.optimizer, schedule=args.schedule,
                       weight_decay=args.weight_decay, noise_draws=args.noise_draws,
                       interpolation=args.interpolation, device=device)

    aug = [f"Gaussian noise sigma_eps={args.sigma_eps:g}"]
    if args.rotation:
        aug.append(f"rotation U[-{args.rotation:g}, {args.rotation:g}] deg")
    if args.translation:
        aug.append(f"translation U[-{args.translation:g}, {args.translation:g}]^2 px")
    if args.preprocess:
        aug.append(f"preprocess {args.preprocess}")
    summary = args.summary or (f"{args.arch} on {args.dataset}, {', '.join(aug)}; held-out clean "
                               f"accuracy {100 * res.heldout_clean_accuracy:.1f}%")
    card = {
        "name": out.stem,
        "summary": summary,
        "dataset": args.dataset,
        "train_split": args.train_split,
        "heldout_split": args.val_split,
        "input_shape": list(x_tr.shape[1:]),
        "num_classes": int(res.arch_kwargs.get("num_classes", 0)),
        "input_scale": "pixel [0,1], normalisation inside the model",
        "heldout_clean_accuracy": round(res.heldout_clean_accuracy, 4),
        "heldout_noise_accuracy": round(res.heldout_noise_accuracy, 4),
        "heldout_noise_accuracy_draws": [round(a, 4) for a in res.heldout_noise_accuracy_draws],
        "noise_draws": res.noise_draws,
        "sigma_eps": args.sigma_eps,
        "augmentation": {"gaussian_noise_sigma": args.sigma_eps, "rotation_deg": args.rotation,
                         "rotation_distribution": "uniform [-r, r]" if args.rotation else None,
                         "translation_px": args.translation,
                         "translation_distribution": "uniform [-t, t] per axis" if args.translation else None,
                         "interpolation": args.interpolation if (args.rotation or args.translation) else None,
                         "preprocess": str(preprocess) if preprocess is not None else None},
        "preprocess": str(preprocess) if preprocess is not None else None,
        "training": {"epochs": args.epochs, "steps": res.steps, "batch_size": args.batch_size,
                     "optimizer": args.optimizer, "lr": args.lr, "schedule": args.schedule,
                     "weight_decay": args.weight_decay, "final_train_loss": res.final_train_loss,
                     "history": res.history},
        "seed": args.seed,
        "n_train": res.n_train,
        "n_heldout": res.n_heldout,
        "seconds": res.seconds,
        "train_seconds": res.train_seconds,
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "command": _command_line(args),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "environment": environment(),
    }
    save_checkpoint(out, model.cpu(), args.arch, res.arch_kwargs, card)
    return json.loads(out.with_suffix(".json").read_text())
