"""``python -m semsmooth_core certify`` contract: one JSON object with the summary keys and one row
per input, every smoothing type reachable, --out file, resumable determinism (same rows for the
same seed and index), and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semsmooth_core.runs import pipeline
from semsmooth_core.models.architectures import build
from semsmooth_core.models.checkpoint import save_checkpoint
from semsmooth_core.validation import SemsmoothError

REPO = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"n", "clean_accuracy", "certified_accuracy", "abstain_rate", "radius_percentiles",
                "radius_unit", "seconds_per_input", "forward_passes_per_input", "rows"}
ROW_KEYS = {"index", "label", "prediction", "radius", "radius_unit", "p_lower", "rho", "correct",
            "base_correct", "n_forward", "seconds", "clipped"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    torch.manual_seed(0)
    m = build("small_cnn", width=2)
    path = tmp_path_factory.mktemp("m") / "tiny.pt"
    save_checkpoint(path, m, "small_cnn", {"width": 2}, {"name": "tiny", "preprocess": "none"})
    return str(path)


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args, subprocess_run: bool = False):
    """Run ``certify`` in-process through ``semsmooth_core.cli.main`` (imports cost seconds on the
    shared CI machine); ``subprocess_run=True`` runs the real ``python -m semsmooth_core``."""
    if subprocess_run:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
        return subprocess.run([sys.executable, "-m", "semsmooth_core", "certify", *args], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=300)
    import contextlib
    import io

    from semsmooth_core import cli as _cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = _cli.main(["certify", *args])
        except SystemExit as e:  # argparse errors
            rc = e.code
    return Result(rc, out.getvalue(), err.getvalue())


SMALL = ["--n0", "5", "--n-gamma", "20", "--n-eps", "30", "--alpha", "0.1", "--sigma-eps", "0.5",
         "--batch-size", "256"]


def test_double_json_contract_and_out_file(tiny_model, tmp_path):
    out = tmp_path / "run.json"
    r = cli("--model", tiny_model, "--transform", "rotation", "--sigma-gamma", "30", "--E", "0.1",
            "--q-E-lower", "0.97", "--indices", "0:2", "--sequential", "--out", str(out), "--json", *SMALL,
            subprocess_run=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert SUMMARY_KEYS <= set(d)
    assert d["n"] == 2 and len(d["rows"]) == 2 and d["radius_unit"] == "degrees"
    assert set(d["radius_percentiles"]) == {"25", "50", "75"}
    for row in d["rows"]:
        assert ROW_KEYS <= set(row)
        assert row["rho"] == pytest.approx(0.1 + 0.03 + 0.1)
    assert d["config"]["sequential"] == "looks" and d["model_sha256"] and "torch" in d["environment"]
    assert json.loads(out.read_text())["rows"] == d["rows"]


@pytest.mark.parametrize("smoothing,unit", [("noise", "l2"), ("transform", "pixels")])
def test_other_smoothings(tiny_model, smoothing, unit):
    r = cli("--model", tiny_model, "--smoothing", smoothing, "--transform", "translation", "--sigma-gamma",
            "2", "--indices", "3,5", "--json", *SMALL)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["n"] == 2 and unit in d["radius_unit"]


def test_rows_are_deterministic_per_seed_and_index(tiny_model):
    cfg = {"model": tiny_model, "sigma_gamma": 20, "sigma_eps": 0.5, "E": 0.1, "q_E_lower": 0.97, "n0": 5,
           "n_gamma": 15, "n_eps": 30, "alpha_gamma": 0.1, "alpha_eps": 0.1, "alpha_E": 0.1, "seed": 3}
    a, b = [], []
    pipeline.certify_inputs(cfg, [4, 7], a.append)
    pipeline.certify_inputs(cfg, [7], b.append)            # a "resumed" run: only the pending input
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert strip(a[1]) == strip(b[0])
    stops = iter([False, True])
    out = pipeline.certify_inputs(cfg, [4, 7], lambda r: None, should_stop=lambda: next(stops))
    assert out["stopped"] and out["n"] == 1


@pytest.mark.parametrize("args,msg", [
    (["--sigma-gamma", "0"], "sigma"),
    (["--sigma-eps", "-1"], "sigma_eps"),
    (["--n0", "500", "--n-gamma", "100"], "n0"),
    (["--E", "5"], "out of reach"),
    (["--transform", "twirl"], "unknown transformation"),
    (["--alpha", "2"], "alpha"),
    (["--indices", "0:5000"], "indices"),
])
def test_bad_input_one_line_exit_2(tiny_model, args, msg):
    base = {"--sigma-gamma": "30", "--E": "0.1", "--q-E-lower": "0.97", "--indices": "0:1",
            "--transform": "rotation"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = [t for kv in base.items() for t in kv]
    extra = [a for a in args if a not in base and a not in base.values()]
    r = cli("--model", tiny_model, *flat, *extra, "--json", "--quiet")
    assert r.returncode == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""


def test_validate_config_messages():
    # no E given: the per-input E (the default); a dataset E must then be given or estimated
    assert pipeline.validate_config({"model": "x", "sigma_gamma": 30})["E_scope"] == "input"
    with pytest.raises(SemsmoothError, match="needs E"):
        pipeline.validate_config({"model": "x", "sigma_gamma": 30, "E_scope": "dataset"})
    with pytest.raises(SemsmoothError, match="unknown smoothing"):
        pipeline.validate_config({"model": "x", "smoothing": "triple"})
    with pytest.raises(SemsmoothError, match="sequential"):
        pipeline.validate_config({"model": "x", "E": 0.1, "q_E_lower": 0.9, "sequential": "maybe"})


def test_certify_page_runs_small():
    """AppTest of pages/5_Certify.py: renders, and certifies with tiny settings without exceptions."""
    from streamlit.testing.v1 import AppTest

    from semsmooth_core.models import list_models

    if not list_models():
        pytest.skip("no shipped model")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/5_Certify.py")
    at.run()
    assert not at.exception
    for key, v in {"cf_n0": 5, "cf_ng": 10, "cf_ne": 30, "cf_ag": 0.1, "cf_ae": 0.1, "cf_aE": 0.1,
                   "cf_E": 0.05}.items():
        at.number_input(key=key).set_value(v)
    at.run()
    at.button(key="cf_run").click()
    at.run()
    assert not at.exception
    said = [c.value for c in at.caption] + [s.value for s in at.success]
    assert any("In one sentence:" in v and ("With probability" in v or "abstains" in v) for v in said), said
