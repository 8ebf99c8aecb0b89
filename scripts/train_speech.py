"""Train the shipped spoken-word classifier ``assets/models/speech_cnn.pt`` (waveform -> MFCC -> CNN).

Training follows Fischer App. C (GCommands), scaled down: each batch gets a random volume change
β ~ U[-10, 10] dB through the project's ``volume`` transform (stored as int16, as an attacker's
clip would be), then Gaussian noise N(0, σ_ε²) ON THE WAVEFORM (σ_ε in [-1,1] units) — the
space where the inner smoothing adds its noise at certification time. Adam, one-cycle LR,
CPU, one thread by default.

    python scripts/synth_speech.py            # builds data/speech_words/train.npz first
    OMP_NUM_THREADS=1 python -m scripts.train_speech --sigma-eps 0.01 --epochs 8 --seed 0

Held-out accuracy is measured on the shipped held-out clips (speakers disjoint from training):
clean, under N(0, σ_ε²) noise (mean over 5 draws), and under noise + random volume in ±3 dB.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def evaluate(model, x, y, sigma: float, gen: torch.Generator, volume_db: float = 0.0, draws: int = 1,
             batch: int = 200) -> float:
    from semsmooth_core import transforms

    vol = transforms.get("volume")
    model.eval()
    accs = []
    for _ in range(draws):
        correct = 0
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            if volume_db:
                beta = (torch.rand(len(xb), 1, generator=gen) * 2 - 1) * volume_db
                xb = vol(xb, beta)
            if sigma:
                xb = xb + sigma * torch.randn(xb.shape, generator=gen)
            correct += int((model(xb).argmax(1) == y[i:i + batch]).sum())
        accs.append(correct / len(x))
    return sum(accs) / len(accs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sigma-eps", type=float, default=0.01)
    ap.add_argument("--volume-db", type=float, default=10.0)
    ap.add_argument("--clean-fraction", type=float, default=0.25,
                    help="fraction of training clips without noise (so the base model also knows clean clips)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=540.0, help="stop training after this wall time")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "models" / "speech_cnn.pt")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from semsmooth_core import transforms
    from semsmooth_core.data.speech import WORDS, embedded_speech
    from semsmooth_core.models.audio_models import SpeechCNN
    from semsmooth_core.models.checkpoint import save_checkpoint
    from semsmooth_core.repro import environment, seed_everything
    from semsmooth_core.models.training import optimizer_step

    gen = seed_everything(args.seed)
    xtr, ytr, _ = embedded_speech("train")
    xte, yte, _ = embedded_speech("heldout")
    vol = transforms.get("volume")
    arch_kwargs = {"num_classes": len(WORDS), "width": args.width}
    model = SpeechCNN(**arch_kwargs)
    model.fit_normalization(xtr + args.sigma_eps * torch.randn(xtr.shape, generator=gen))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(xtr) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    t0 = time.perf_counter()
    history, steps, epochs_done, loss_v = [], 0, 0, float("nan")
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot, n = 0.0, 0
        for i in range(0, len(xtr), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            beta = (torch.rand(len(xb), 1, generator=gen) * 2 - 1) * args.volume_db
            noisy = (torch.rand(len(xb), 1, generator=gen) >= args.clean_fraction).float()
            xb = vol(xb, beta) + noisy * args.sigma_eps * torch.randn(xb.shape, generator=gen)
            loss = optimizer_step(opt, sched, F.cross_entropy(model(xb), yb))
            steps += 1
            tot += loss * len(idx)
            n += len(idx)
        epochs_done = epoch + 1
        loss_v = tot / n
        acc = evaluate(model, xte, yte, args.sigma_eps, torch.Generator().manual_seed(1))
        history.append({"epoch": epochs_done, "train_loss": round(loss_v, 4), "heldout_noise_acc": round(acc, 4),
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(history[-1], flush=True)
        if time.perf_counter() - t0 > args.max_seconds:
            print("time limit reached", flush=True)
            break
    train_s = time.perf_counter() - t0
    model.eval()
    g = torch.Generator().manual_seed(123)
    clean = evaluate(model, xte, yte, 0.0, g)
    noisy = evaluate(model, xte, yte, args.sigma_eps, g, draws=5)
    noisy_vol = evaluate(model, xte, yte, args.sigma_eps, g, volume_db=3.0, draws=5)
    cmd = (f"OMP_NUM_THREADS={args.threads} python -m scripts.train_speech --sigma-eps {args.sigma_eps} "
           f"--volume-db {args.volume_db} --clean-fraction {args.clean_fraction} --epochs {args.epochs} --batch-size {args.batch_size} --lr {args.lr} "
           f"--width {args.width} --seed {args.seed} --max-seconds {args.max_seconds}")
    card = {
        "summary": f"spoken words (10), waveform->MFCC->CNN, sigma_eps={args.sigma_eps}, "
                   f"held-out acc {clean:.3f} clean / {noisy:.3f} under noise",
        "task": "speech-words", "modality": "audio", "classes": list(WORDS),
        "input": "waveform [B,16000] float in [-1,1) (int16/32768), 16 kHz, 1 s",
        "features": "MFCC in torch (semsmooth_core.audio.MFCC = librosa.feature.mfcc: n_mfcc 40, n_fft 480, "
                    "hop 160, 40 mels 20-7600 Hz, power_to_db top_db 80, DCT-II ortho) inside the model",
        "sigma_eps": args.sigma_eps, "noise_space": "waveform, [-1,1] scale",
        "augmentation": {"volume_db": args.volume_db, "noise_sigma": args.sigma_eps,
                         "clean_fraction": args.clean_fraction, "preprocess": "none",
                         "description": f"volume beta ~ U[-{args.volume_db}, {args.volume_db}] dB (int16-rounded), "
                                        f"then N(0, sigma_eps^2) on the waveform of a fraction "
                                        f"{1 - args.clean_fraction:g} of the clips (the rest clean)"},
        "preprocess": "none",
        "training_data": "data/speech_words/train.npz from scripts/synth_speech.py (espeak-ng, 86 voice variants)",
        "heldout_data": "assets/speech_words/heldout.npz (200 clips, 12 voice variants never used in training)",
        "heldout_clean_accuracy": round(clean, 4), "heldout_noise_accuracy": round(noisy, 4),
        "heldout_noise_volume3db_accuracy": round(noisy_vol, 4),
        "epochs": epochs_done, "steps": steps, "train_seconds": round(train_s, 1), "seed": args.seed,
        "optimizer": f"Adam lr {args.lr} one-cycle, weight decay 1e-4, batch {args.batch_size}",
        "command": "python scripts/synth_speech.py && " + cmd, "history": history, "environment": {k: str(v) for k, v in environment().items()},
    }
    save_checkpoint(args.out, model, "speech_cnn", arch_kwargs, card)
    print({k: card[k] for k in ("heldout_clean_accuracy", "heldout_noise_accuracy",
                                "heldout_noise_volume3db_accuracy", "epochs", "train_seconds")})


if __name__ == "__main__":
    main()
