"""Cost of the sound GSmooth radius (gsmooth/sound.py: radius_real) next to the surrogate estimate's extra
work (estimate_M + surrogate_error at certify_gsmooth's grids), per input, on held-out MNIST digits.

    OMP_NUM_THREADS=1 python benchmarks/bench_gsmooth_sound.py --images 10 --repeats 3

p̲_A is fixed (``--p``) so that only the radius computation is timed; medians over repeats and digits.
Writes benchmarks/results/gsmooth_sound_timing.json. Timings on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from semsmooth_core.data.embedded import embedded_mnist  # noqa: E402
from semsmooth_core.gsmooth import sound  # noqa: E402
from semsmooth_core.gsmooth.certify import estimate_M, surrogate_error  # noqa: E402
from semsmooth_core.gsmooth.surrogate import load_surrogate  # noqa: E402
from semsmooth_core.repro import environment  # noqa: E402
from semsmooth_core.transforms import get  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--p", type=float, default=0.99)
    p.add_argument("--sigma2", type=float, default=0.5)
    p.add_argument("--transforms", default="zoom_blur,defocus_blur,rotational_blur,pixelate,motion_blur")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gsmooth_sound_timing.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    x, _ = embedded_mnist("heldout")
    out = {"settings": vars(a), "environment": environment(), "rows": []}
    for name in a.transforms.split(","):
        t = get(name)
        sur, _ = load_surrogate(name)
        s1 = t.default_sigma[0]
        xi_max = float(sur.config["theta_scale"])
        real, est, radii = [], [], []
        for i in range(a.images):
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                r = sound.radius_real(t, x[i], a.p, a.sigma2, xi_max, A1=sur.A1_matrix().detach(), sigma1=s1)
                real.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                estimate_M(sur, x[i], s1, a.sigma2, xi_max, grid=17)
                surrogate_error(sur, t, x[i], xi_max, grid=17)
                est.append(time.perf_counter() - t0)
            radii.append(r["radius_real"])
        row = {"transformation": name, "unit": t.units[0], "xi_max": xi_max,
               "median_seconds_radius_real": statistics.median(real),
               "median_seconds_surrogate_M_eps": statistics.median(est),
               "median_radius_real": statistics.median(radii)}
        out["rows"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    Path(a.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out["rows"], indent=1))


if __name__ == "__main__":
    main()
