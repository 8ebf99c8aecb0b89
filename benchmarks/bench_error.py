"""E-sampling throughput: batched torch (semsmooth_core.errors) vs a plain per-sample PIL reference.

The reference works like the reference code (eth-sri/transformation-smoothing): one image and one
angle at a time, PIL's ``Image.rotate`` on uint8 images (so each step rounds to k/255), then the
ℓ2 norm of the difference in numpy. Both sides use THE SAME draws (x index, β, γ from
``semsmooth_core.errors.draw``), in the same run, several repeats, median time; the ratio is
reported. The median ‖ε‖₂ of both is reported too (a fidelity check: PIL's bilinear/bicubic kernels
and pixel-centre conventions differ slightly from grid_sample's, so the values are close, not equal).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_error            # CPU, 1 thread
    python -m benchmarks.bench_error --device cuda --threads 16   # GPU when present

Writes benchmarks/results/bench_error_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from semsmooth_core import errors as E  # noqa: E402
from semsmooth_core.data import embedded_mnist, embedded_photos  # noqa: E402
from semsmooth_core.device import describe_device, get_device  # noqa: E402
from semsmooth_core.repro import environment  # noqa: E402

PIL_MODES = {"nearest": 0, "bilinear": 2, "bicubic": 3}     # Image.NEAREST, BILINEAR, BICUBIC


def pil_reference(imgs_u8: list[np.ndarray], idx, beta, gamma, interpolation: str) -> np.ndarray:
    """Per-sample PIL loop: ‖rot_β(rot_γ x) − rot_{β+γ} x‖₂ in [0,1] pixel scale (whole image)."""
    from PIL import Image
    mode = PIL_MODES[interpolation]
    out = np.empty(len(idx))
    for i in range(len(idx)):
        im = Image.fromarray(imgs_u8[idx[i]])
        g, b = float(gamma[i]), float(beta[i])
        two = np.asarray(im.rotate(g, mode).rotate(b, mode), dtype=np.float32)
        one = np.asarray(im.rotate(b + g, mode), dtype=np.float32)
        out[i] = np.linalg.norm((two - one) / 255.0)
    return out


def to_u8_list(x: torch.Tensor) -> list[np.ndarray]:
    a = (x * 255).round().to(torch.uint8).numpy()
    return [im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0) for im in a]


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    times, res = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, res


def bench_case(name: str, data: torch.Tensor, n: int, interpolation: str, repeats: int, device,
               batch_size: int, skip_pil: bool = False) -> dict:
    setup = E.ErrorSetup("rotation", interpolation, 30.0, 30.0)
    idx, beta, gamma = E.draw(setup, n, len(data), seed=0)
    dev_data = data.to(device)
    E.sample_errors(setup, dev_data, min(n, batch_size), seed=1, batch_size=batch_size, device=device)  # warm-up
    u8 = to_u8_list(data)

    def ours():
        return E.sample_errors(setup, dev_data, n, seed=0, batch_size=batch_size, device=device)

    def pil():
        return pil_reference(u8, idx.numpy(), beta[:, 0].numpy(), gamma[:, 0].numpy(), interpolation)

    # interleave the repeats (ours, PIL, ours, PIL, ...) so that both see the same machine load
    ours_times, pil_times, s, ref = [], [], None, None
    for _ in range(repeats):
        t, _, s = timed(ours, 1)
        ours_times.append(t)
        if not skip_pil:
            t, _, ref = timed(pil, 1)
            pil_times.append(t)
    t_ours = statistics.median(ours_times)
    row = {"case": name, "image_hw": list(data.shape[-2:]), "channels": int(data.shape[1]),
           "interpolation": interpolation, "n": n, "repeats": repeats, "batch_size": batch_size,
           "ours_seconds_median": t_ours, "ours_seconds": ours_times,
           "ours_samples_per_second": n / t_ours, "ours_median_eps": float(np.median(s.norms[:, 0]))}
    if not skip_pil:
        t_pil = statistics.median(pil_times)
        row.update({"pil_seconds_median": t_pil, "pil_seconds": pil_times, "pil_samples_per_second": n / t_pil,
                    "pil_median_eps": float(np.median(ref)), "speedup": t_pil / t_ours,
                    "speedup_per_repeat": [p / o for p, o in zip(pil_times, ours_times)]})
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n-mnist", type=int, default=4000)
    p.add_argument("--n-photo", type=int, default=40)
    p.add_argument("--photo-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = get_device(a.device)
    x, _ = embedded_mnist("heldout")
    rows = []
    for ip in ("nearest", "bilinear", "bicubic"):
        rows.append(bench_case("mnist 28x28", x, a.n_mnist, ip, a.repeats, device, a.batch_size))
        print(json.dumps({k: v for k, v in rows[-1].items() if not isinstance(v, list)}), flush=True)
    # a large photo (grey, photo_size x photo_size crop) — Fischer Fig. 6: the image size matters
    from PIL import Image
    ph = embedded_photos()
    if ph:
        im = Image.open(ph.get("astronaut", next(iter(ph.values())))).convert("L")
        im = im.resize((a.photo_size, a.photo_size), Image.BILINEAR)
        big = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None, None]
        for ip in ("bilinear", "bicubic"):
            rows.append(bench_case(f"photo {a.photo_size}x{a.photo_size}", big, a.n_photo, ip, a.repeats, device,
                                   batch_size=min(a.batch_size, 16 if device.type == "cpu" else 64)))
            print(json.dumps({k: v for k, v in rows[-1].items() if not isinstance(v, list)}), flush=True)
    out = {"benchmark": "E sampling throughput (rotation, sigma 30, C=[-30,30], no preprocessing)",
           "command": "python -m benchmarks.bench_error " + " ".join(argv if argv is not None else sys.argv[1:]),
           "device": describe_device(device), "threads": a.threads, "rows": rows, "environment": environment()}
    path = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"bench_error_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
