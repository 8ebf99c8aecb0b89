"""benchmarks/certify_tables.py end to end on two digits with small n's: the table row, continuing an
unfinished row without certifying its finished images again, and CPU and GPU rows side by side;
a per-input-E worst-case row beside a dataset-E row, each labelled with its attacker and E scope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = "mnist_cnn_rot_vg_noise030"
pytestmark = pytest.mark.skipif(not (REPO / "assets" / "models" / f"{MODEL}.pt").exists(),
                                reason="the shipped rotation model is not in assets/")


def run(out: Path, *extra: str, scope: tuple = ("--E-scope", "dataset"), indices: str = "0,500"
        ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "benchmarks.certify_tables", "--model", MODEL, "--transforms", "rotation",
           "--interpolations", "bicubic", "--indices", indices, "--n0", "5", "--n-gamma", "10",
           "--n-eps", "100", "--E-samples", "300", "--q", "0.9", "--out", str(out), *scope, *extra]
    got = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert got.returncode == 0, got.stderr[-2000:]
    return got


def test_table_row_continue_and_devices(tmp_path):
    out = tmp_path / "t.json"
    run(out)
    rec, = json.loads(out.read_text())["records"]
    assert rec["finished"] and rec["images"] == 2 and [r["index"] for r in rec["rows"]] == [0, 500]
    assert rec["device"] == "cpu" and rec["E"] > 0 and 0.9 <= rec["q_E_lower"] < 1
    assert list(tmp_path.glob("t.E.rotation_bicubic_*.json")), "the E estimate is saved beside the table"
    md = out.with_suffix(".md").read_text()
    assert "| bic. |" in md and "(CPU) |" in md and "--n-gamma 10" in md

    # a row cut short after its first image: the same command continues it
    first = rec["rows"][1]
    rec.update(rows=rec["rows"][:1], images=1, finished=False)
    out.write_text(json.dumps({"records": [rec]}))
    got = run(out)
    assert "continuing, 1/2 images already done" in got.stderr
    again, = json.loads(out.read_text())["records"]
    assert again["finished"] and again["images"] == 2
    redone = again["rows"][1]  # certified again with its own (seed, index) generator: the same row
    assert {k: redone[k] for k in ("index", "prediction", "radius", "p_lower", "n_forward")} == \
        {k: first[k] for k in ("index", "prediction", "radius", "p_lower", "n_forward")}
    assert "all 2 images done" in run(out).stderr  # nothing left to do

    # a GPU run of the same settings sits beside the CPU row, not in its place
    gpu = {**again, "device": "NVIDIA H100 80GB HBM3", "seconds_per_image": 0.0419,
           "environment": {"device": "NVIDIA H100 80GB HBM3", "python": "3.12.3", "torch": "2.11.0+cu130"}}
    out.write_text(json.dumps({"records": [again, gpu]}))
    run(out, "--render")
    md = out.with_suffix(".md").read_text()
    assert "0.0419 (H100) |" in md and "(CPU) |" in md and "on a lent NVIDIA H100 80GB HBM3" in md
    assert len(json.loads(out.read_text())["records"]) == 2


def test_worst_case_per_input_row_beside_dataset_row(tmp_path):
    out = tmp_path / "t.json"
    run(out, indices="0")
    run(out, indices="0", scope=("--attacker", "worst-case", "--E-scope", "input", "--E-input-samples", "12"))
    old, wc = json.loads(out.read_text())["records"]  # other attacker / E scope: a second row, not a replacement
    assert (old["attacker"], old["E_scope"]) == ("random", "dataset")
    assert (wc["attacker"], wc["E_scope"]) == ("worst-case", "input") and wc["E"] is None
    row, = wc["rows"]
    assert row["attacker"] == "worst-case" and row["E_scope"] == "input" and row["sound"]
    e = wc["E_per_input"]
    assert e["E_min"] == e["E_median"] == e["E_max"] == row["E"] and e["q_E_lower_min"] == row["q_E_lower"]
    assert 0 < wc["E_cap"] < 1 and e["capped_share"] == float(row["E"] >= wc["E_cap"] * (1 - 1e-6))
    md = out.with_suffix(".md").read_text()
    assert "| attacker | E scope |" in md and "| random | dataset average |" in md and "| worst-case | input |" in md
    assert f"{row['E']:.3f} [{row['E']:.3f}–{row['E']:.3f}]" in md and f"cap {wc['E_cap']:.3f}" in md
    assert "--attacker worst-case" in md
