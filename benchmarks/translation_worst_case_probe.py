"""Worst-case bound for translation (bicubic, sigma 4 px, C [-4,4]^2, gauss:5:1, rounding) on 2
held-out digits x 4 beta each, threshold = the inner-test cap: how far is the sound bound above it?"""
import json, time, torch
from semsmooth_core.errors import ErrorSetup
from semsmooth_core.worstcase import max_eps_upper
from semsmooth_core.data.datasets import load_dataset
from semsmooth_core import planner
torch.manual_seed(0)
cap = planner.plan_input_E(0.3, 200, 0.75e-3, 1e-3, 100, 1e-3, 4.0, 4 * 2 ** 0.5, attacker="worst-case").E_cap
ds = load_dataset("mnist", split="heldout")[0]
out = []
for interp in ("bicubic", "bilinear"):
    s = ErrorSetup("translation", interp, sigma=[4.0, 4.0], C=[(-4, 4), (-4, 4)], preprocess="gauss:5:1")
    for idx in (0, 500):
        x = ds[idx]
        beta = torch.randn(4, 2, dtype=torch.float64) * 4.0
        t0 = time.process_time()
        r = max_eps_upper(s, x, beta, max_cells=1024)
        out.append({"interpolation": interp, "index": idx, "bound": r.bound.tolist(), "sampled_max": r.sampled.tolist(),
                    "cells": r.cells.tolist(), "cpu_s": time.process_time() - t0})
        print(out[-1], flush=True)
print(json.dumps({"E_cap": cap, "rows": out}))  # saved as benchmarks/results/translation_worst_case_probe.json
