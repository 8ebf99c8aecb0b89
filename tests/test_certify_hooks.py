"""``certify`` wired to the rest: the results store (--db, --resume, a killed run loses no row),
Ray (--ray on a local cluster), GSmooth (--transform zoom_blur), the progressive --out file, and
robustness of the pieces it loads (bad checkpoints, surrogates, model cards, the data E is
estimated on)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from semsmooth_core.runs import pipeline
from semsmooth_core.models import list_models, load_model
from semsmooth_core.models.architectures import build
from semsmooth_core.models.checkpoint import FORMAT, save_checkpoint
from semsmooth_core.runs import Store
from semsmooth_core.validation import SemsmoothError

REPO = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"n", "clean_accuracy", "certified_accuracy", "abstain_rate", "radius_percentiles",
                "radius_unit", "seconds_per_input", "forward_passes_per_input", "rows"}
STORE_KEYS = {"index", "label", "prediction", "radius", "radius_unit", "p_lower", "rho", "correct",
              "base_correct", "n_forward"}
NOISE = ["--smoothing", "noise", "--sigma-eps", "0.5", "--n0", "5", "--n-eps", "40", "--alpha", "0.1",
         "--batch-size", "256"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models here are tiny: one intra-op thread beats two on a shared 2-core machine (two
    threads made the GSmooth Jacobian-vector products ~10x slower under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    torch.manual_seed(0)
    m = build("small_cnn", width=2)
    path = tmp_path_factory.mktemp("m") / "tiny.pt"
    save_checkpoint(path, m, "small_cnn", {"width": 2}, {"name": "tiny", "preprocess": "none"})
    return str(path)


def cli(*args, command: str = "certify"):
    """``python -m semsmooth_core COMMAND ...`` in-process: (exit code, stdout, stderr)."""
    from semsmooth_core import cli as _cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = _cli.main([command, *args])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def ok(*args, command: str = "certify") -> dict:
    rc, out, err = cli(*args, "--json", "--quiet", command=command)
    assert rc == 0, err
    return json.loads(out)


def fails(*args, match: str, command: str = "certify") -> str:
    rc, out, err = cli(*args, "--json", "--quiet", command=command)
    assert rc == 2, (rc, out, err)
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert match in err, err
    return err


def _strip(rows, keys=STORE_KEYS):
    return [{k: r[k] for k in keys} for r in rows]


# --------------------------------------------------------------------------- results store
def test_db_rows_equal_store_and_report(tiny_model, tmp_path):
    db = tmp_path / "runs.sqlite"
    d = ok("--model", tiny_model, *NOISE, "--indices", "0:4", "--db", str(db), "--name", "tiny-noise")
    assert SUMMARY_KEYS <= set(d) and d["n"] == 4 and d["status"] == "done"
    assert d["db"] == str(db) and isinstance(d["run_id"], int)
    store = Store(db)
    assert store.get_run(d["run_id"])["name"] == "tiny-noise"
    assert _strip(store.rows(d["run_id"])) == _strip(d["rows"])
    rep = ok(str(d["run_id"]), "--db", str(db), "--radii", "0", command="report")
    assert rep["n"] == d["n"] and rep["certified_accuracy"]["0"] == d["certified_accuracy"]
    for k in ("clean_accuracy", "abstain_rate", "radius_percentiles", "radius_unit"):
        assert rep[k] == d[k], k


def test_resume_skips_finished_rows_and_never_duplicates(tiny_model, tmp_path):
    """A run stopped after 2 of 5 inputs (what reap() records for a killed process) resumes with
    ``certify --resume``: only the 3 pending inputs are certified, the store holds each index once,
    and the rows equal those of an uninterrupted run."""
    from semsmooth_core.runs import jobs
    from semsmooth_core.commands.certify import config_from_args
    from semsmooth_core.cli import build_parser

    db = tmp_path / "runs.sqlite"
    args = build_parser().parse_args(["certify", "--model", tiny_model, *NOISE])
    config = config_from_args(args)
    store = Store(db)
    rid = jobs.create_job(config, [0, 1, 2, 3, 4], store, name="stopped")
    store.claim(rid)
    pipeline.certify_inputs(config, [0, 1], lambda row: store.add_row(rid, row))
    store.set_status(rid, "failed", error="worker stopped unexpectedly")
    first = _strip(store.rows(rid))

    d = ok("--resume", "stopped", "--db", str(db), "--out", str(tmp_path / "resumed.json"))
    assert json.loads((tmp_path / "resumed.json").read_text())["rows"] == d["rows"]
    assert d["run_id"] == rid and d["resumed"] and d["skipped"] == 2 and d["status"] == "done"
    assert [r["index"] for r in d["rows"]] == [0, 1, 2, 3, 4] and d["n"] == 5
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*), COUNT(DISTINCT idx) FROM rows WHERE run_id=?", (rid,)).fetchone() == (5, 5)
    assert _strip(store.rows(rid))[:2] == first
    full = ok("--model", tiny_model, *NOISE, "--indices", "0:5", "--db", str(db))
    assert _strip(full["rows"]) == _strip(d["rows"])
    again = ok("--resume", str(rid), "--db", str(db))          # nothing left: no new row
    assert again["skipped"] == 5 and len(again["rows"]) == 5


def test_killed_cli_run_loses_no_row(tiny_model, tmp_path):
    """SIGKILL a real ``certify --db --out`` process mid-run: every row it reported is in the store,
    the --out file is valid JSON with the rows so far, and ``runs resume --wait`` finishes the run
    without duplicates."""
    db, out = tmp_path / "runs.sqlite", tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    args = ["--model", tiny_model, "--smoothing", "noise", "--sigma-eps", "0.5", "--n0", "5", "--n-eps", "3000",
            "--alpha", "0.1", "--batch-size", "500", "--indices", "0:300", "--db", str(db), "--out", str(out),
            "--quiet", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "semsmooth_core", "certify", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        n = 0
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as c:
                        n = c.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
                except sqlite3.OperationalError:
                    n = 0
                if n >= 3:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-300:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = Store(db)
    run = store.list_runs()[0]
    rows = store.rows(run["id"])
    assert 3 <= len(rows) < 300
    partial = json.loads(out.read_text())
    assert partial["partial"] is True and partial["run_id"] == run["id"]
    assert len(rows) - 1 <= len(partial["rows"]) <= len(rows)                 # out is written after the store
    assert _strip(partial["rows"]) == _strip(rows[:len(partial["rows"])])
    assert partial["n"] == len(partial["rows"])
    store.reap()
    assert store.get_run(run["id"])["status"] == "failed"
    # what a resume certifies: exactly the inputs without a row (resume itself: the test above)
    assert store.pending_indices(run["id"]) == list(range(len(rows), 300))


# --------------------------------------------------------------------------- --out
def test_out_file_is_rewritten_after_every_row(tmp_path, monkeypatch):
    from semsmooth_core.commands import certify as cmd

    seen = []
    real = cmd.OutFile.add

    def spy(self, row):
        real(self, row)
        seen.append(json.loads(self.path.read_text()))

    monkeypatch.setattr(cmd.OutFile, "add", spy)
    out = tmp_path / "sub" / "o.json"
    model = tmp_path / "t.pt"
    save_checkpoint(model, build("small_cnn", width=2), "small_cnn", {"width": 2}, {})
    d = ok("--model", str(model), *NOISE, "--indices", "0:3", "--out", str(out))
    assert [len(s["rows"]) for s in seen] == [1, 2, 3] and all(s["partial"] for s in seen)
    assert seen[1]["rows"] == d["rows"][:2] and seen[1]["n"] == 2
    final = json.loads(out.read_text())
    assert "partial" not in final and final["rows"] == d["rows"] and SUMMARY_KEYS <= set(final)
    assert not list(out.parent.glob(".*.tmp"))


# --------------------------------------------------------------------------- GSmooth
def test_gsmooth_through_certify(tmp_path, monkeypatch):
    if "gsmooth_zoom_blur_cnn" not in list_models():
        pytest.skip("gsmooth_zoom_blur_cnn is not shipped")
    d = ok("--transform", "zoom_blur", "--model", "gsmooth_zoom_blur_cnn", "--indices", "0:2", "--n0", "10",
           "--n-gamma", "40", "--alpha", "0.01")
    assert SUMMARY_KEYS <= set(d) and d["n"] == 2 and d["radius_unit"] == "factor"
    c = d["config"]
    assert c["smoothing"] == "gsmooth" and "switched from double to gsmooth" in c["smoothing_note"]
    card = list_models()["gsmooth_zoom_blur_cnn"]["training"]
    assert c["sigma_gamma"] == card["sigma1"] and c["sigma2"] == card["sigma2"]
    assert d["config_sources"]["sigma2"] == d["config_sources"]["sigma_gamma"] == "card"
    for r in d["rows"]:
        assert r["n_forward"] == 50 and r["rho"] == 0.0 and r["radius_unit"] == "factor"
        assert (r["radius"] > 0) == (r["prediction"] != -1) and r["radius"] <= 0.45 + 1e-9
    assert d["guarantee"]["smoothing"] == "gsmooth" and d["guarantee"]["failure_probability"] == 0.01
    # explicit options reach gsmooth.certify.certify as sigma1 / sigma2 / xi_max / n / alpha
    from semsmooth_core.gsmooth import certify as gcert

    seen = {}

    def spy(model, name, x, n0, n, alpha, **kw):  # records the call; a stand-in certificate
        from semsmooth_core.smoothing import Certificate

        seen.update(kw, name=name, n0=n0, n=n, alpha=alpha)
        return Certificate(label=0, radius=kw["xi_max"], p_lower=0.99, alpha=alpha, n_forward=n0 + n, seconds=0.0,
                           radius_unit="factor", extra={"method": "gsmooth", "xi_max": kw["xi_max"],
                                                        "transform": name})

    monkeypatch.setattr(gcert, "certify", spy)
    d2 = ok("--smoothing", "gsmooth", "--transform", "zoom_blur", "--model", "gsmooth_zoom_blur_cnn",
            "--indices", "0", "--n0", "10", "--n-gamma", "40", "--alpha", "0.01", "--sigma1", "0.1",
            "--sigma2", "0.4", "--attacker-range", "0.3")
    assert {k: seen[k] for k in ("name", "n0", "n", "alpha", "sigma1", "sigma2", "xi_max")} == {
        "name": "zoom_blur", "n0": 10, "n": 40, "alpha": 0.01, "sigma1": 0.1, "sigma2": 0.4, "xi_max": 0.3}
    assert "smoothing_note" not in d2["config"] and d2["rows"][0]["clipped"] is True   # radius at xi_max


def test_gsmooth_resolvable_and_errors(tiny_model):
    d = ok("--smoothing", "gsmooth", "--transform", "gaussian_blur", "--model", tiny_model, "--indices", "0,1",
           "--n0", "5", "--n-gamma", "20", "--alpha", "0.1", "--dist", "uniform", "--sigma-gamma", "1")
    assert d["radius_unit"] == "px^2" and d["config"]["dist"] == "uniform"
    d = ok("--transform", "gaussian_blur", "--model", tiny_model, "--indices", "0", "--n0", "5",
           "--n-gamma", "20", "--alpha", "0.1")   # defaults: gsmooth, exp smoothing at its default scale
    assert d["config"]["smoothing"] == "gsmooth" and d["config"]["sigma_gamma"] == pipeline.RESOLVABLE_SCALES["exp"]
    fails("--smoothing", "gsmooth", "--transform", "rotation", "--model", tiny_model, "--indices", "0",
          match="gsmooth does not certify rotation")
    fails("--smoothing", "transform", "--transform", "zoom_blur", "--model", tiny_model, "--indices", "0",
          match="zoom_blur does not compose")
    fails("--smoothing", "gsmooth", "--transform", "pixelate", "--model", tiny_model, "--indices", "0",
          "--sigma2", "-1", match="sigma2")
    fails("--smoothing", "gsmooth", "--transform", "zoom_blur", "--model", tiny_model, "--indices", "0",
          "--attacker-range", "5", match="xi_max")
    fails("--smoothing", "gsmooth", "--transform", "zoom_blur", "--model", tiny_model, "--indices", "0",
          "--surrogate", "/nonexistent/s.pt", match="no surrogate")
    fails("--dataset", "speech-words", "--transform", "zoom_blur", "--model", tiny_model, "--indices", "0",
          "--n0", "5", "--n-gamma", "10", match="zoom_blur transforms image, but dataset 'speech-words' holds audio")
    # no E / q_E needed for gsmooth
    c = pipeline.validate_config({"model": "m", "smoothing": "gsmooth", "transform": "defocus_blur"})
    assert c["E"] is None and c["smoothing"] == "gsmooth"


# --------------------------------------------------------------------------- Ray
@pytest.mark.slow  # starts a local Ray cluster (~10 s on an idle 2-core machine)
def test_certify_on_local_ray_cluster(tiny_model, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is optional: pip install -r requirements-ray.txt")
    real_init = ray.init
    monkeypatch.setattr(ray, "init", lambda **kw: real_init(**{**kw, "num_cpus": 2, "num_gpus": 0,
                                                               "object_store_memory": 80 * 1024 ** 2}))
    db = tmp_path / "runs.sqlite"
    d = ok("--model", tiny_model, *NOISE, "--indices", "3,5", "--ray", "--db", str(db), "--shards", "1")
    assert SUMMARY_KEYS <= set(d) and d["n"] == 2 and d["status"] == "done" and d["shards"] == 1
    assert [r["index"] for r in d["rows"]] == [3, 5] and d["db"] == str(db)
    local = ok("--model", tiny_model, *NOISE, "--indices", "3,5")
    assert _strip(d["rows"]) == _strip(local["rows"])
    assert d["certified_accuracy"] == local["certified_accuracy"] and d["config"]["smoothing"] == "noise"


def test_ray_missing_is_one_line(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    fails("--model", tiny_model, *NOISE, "--indices", "0", "--ray", "--db", str(tmp_path / "r.sqlite"),
          match="pip install -r requirements-ray.txt")
    assert not (tmp_path / "r.sqlite").exists()


# --------------------------------------------------------------------------- robustness
def test_noise_alpha_eps_is_its_alpha(tiny_model):
    d = ok("--model", tiny_model, "--smoothing", "noise", "--sigma-eps", "0.5", "--n0", "5", "--n-eps", "40",
           "--alpha-eps", "0.2", "--indices", "0")
    assert d["config"]["alpha_gamma"] == 0.2 and d["guarantee"]["failure_probability"] == 0.2


def test_error_data_uses_training_split(tmp_path, monkeypatch):
    x, data = pipeline.error_data(pipeline.with_defaults({"dataset": "mnist", "split": "heldout"}))
    assert data == "mnist split 'train'" and len(x) == 4000
    from semsmooth_core.data import speech

    # the rebuilt training clips when present (same on-disk format as scripts/synth_speech.py)
    monkeypatch.setattr(speech, "train_data_dir", lambda: tmp_path)
    k = np.random.default_rng(0).integers(-2000, 2000, size=(3, 16000)).astype(np.int16)
    np.savez(tmp_path / "train.npz", x=k, y=np.array([0, 1, 2], dtype=np.int8))
    c = pipeline.with_defaults({"dataset": "speech-words", "transform": "volume"})
    x, data = pipeline.error_data(c)
    assert data == "speech-words split 'train'" and x.shape == (3, 16000)
    assert torch.equal(x, torch.from_numpy(k.astype(np.float32) / 32768))
    # not built: the shipped held-out clips, and the description says so
    (tmp_path / "train.npz").unlink()
    x, data = pipeline.error_data(c)
    assert "heldout" in data and "not built" in data and len(x) == 200


def test_estimate_E_reports_its_data():
    c = pipeline.validate_config({"model": "m", "transform": "rotation", "sigma_gamma": 10, "estimate_E": True,
                                  "q": 0.9, "E_samples": 200, "alpha_E": 0.05})
    est = pipeline.estimate_E(c, "none")
    assert est["data"] == "mnist split 'train'" and est["E"] > 0 and est["q_E_lower"] >= 0.9


@pytest.mark.parametrize("card,spec", [
    ({"augmentation": "rotation U[-45,45] deg"}, "none"),
    ({}, "none"),
    ({"augmentation": None}, "none"),
    ({"augmentation": {"preprocess": "gauss:5:1"}}, "gauss:5:1"),
    ({"augmentation": "x", "preprocess": "vignette"}, "vignette"),
])
def test_load_setup_tolerates_cards(tmp_path, card, spec):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build("small_cnn", width=2), "small_cnn", {"width": 2}, card)
    c = pipeline.validate_config({"model": str(path), "smoothing": "noise"})
    _, _, pp, _, got = pipeline.load_setup(c)
    from semsmooth_core.preprocess import Preprocess

    assert got == str(Preprocess.parse(spec)) and (pp is None) == (spec == "none")


def _saved(obj) -> bytes:
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


def _bad_files() -> dict:
    torch.manual_seed(0)
    m = build("small_cnn", width=2)
    good = io.BytesIO()
    sd = m.state_dict()
    torch.save({"format": FORMAT, "arch": "small_cnn", "arch_kwargs": {"width": 2}, "state_dict": sd, "card": {}},
               good)
    data = good.getvalue()
    wrong = {k: torch.zeros(3) for k in sd}
    return {
        "truncated": data[: len(data) // 2],
        "truncated_head": data[:10],
        "random_bytes": np.random.default_rng(0).bytes(4000),
        "pickle_garbage": b"\x80\x02" + np.random.default_rng(1).bytes(300),
        "zip_garbage": b"PK\x03\x04" + np.random.default_rng(2).bytes(200),
        "a_tensor": _saved(torch.zeros(3)),
        "a_list": _saved([1, 2, 3]),
        "wrong_shapes": _saved({"format": FORMAT, "arch": "small_cnn", "arch_kwargs": {"width": 2},
                                "state_dict": wrong}),
        "plain_wrong_shapes": _saved(wrong),
        "negative_width": _saved({"format": FORMAT, "arch": "small_cnn", "arch_kwargs": {"width": -3},
                                  "state_dict": sd}),
        "unknown_arch": _saved({"format": FORMAT, "arch": "no_such_net", "arch_kwargs": {}, "state_dict": sd}),
        "state_dict_list": _saved({"format": FORMAT, "arch": "small_cnn", "arch_kwargs": {"width": 2},
                                   "state_dict": [1]}),
    }


BAD = _bad_files()


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("arch", [None, "small_cnn"])
def test_bad_checkpoint_is_one_line(tmp_path, name, arch):
    p = tmp_path / f"{name}.pt"
    p.write_bytes(BAD[name])
    if arch and name in ("negative_width", "unknown_arch"):
        pytest.skip("the file's own architecture entry is ignored with --arch")
    with pytest.raises(SemsmoothError) as e:
        load_model(str(p), arch=arch, **({"width": 2} if arch else {}))
    assert "\n" not in str(e.value) and p.name in str(e.value)


def test_bad_checkpoint_through_cli(tmp_path):
    p = tmp_path / "rand.pt"
    p.write_bytes(BAD["random_bytes"])
    fails("--model", str(p), *NOISE, "--indices", "0", match="not a torch checkpoint")


def test_malformed_card_is_dropped_not_fatal(tmp_path):
    p = tmp_path / "c.pt"
    m = build("small_cnn", width=2)
    p.write_bytes(_saved({"format": FORMAT, "arch": "small_cnn", "arch_kwargs": {"width": 2},
                          "state_dict": m.state_dict(), "card": "not a dict"}))
    _, card = load_model(str(p))
    assert card["arch"] == "small_cnn"


def test_surrogates_are_not_classifiers(tmp_path):
    models = list_models()
    assert not any(n.startswith("surrogate_") for n in models)
    with_s = list_models(include_surrogates=True)
    surs = [n for n, c in with_s.items() if c.get("kind") == "gsmooth_surrogate"]
    if not surs:
        pytest.skip("no surrogate shipped")
    with pytest.raises(SemsmoothError, match="is a GSmooth surrogate, not a classifier"):
        load_model(surs[0])
    # a surrogate file without its card, under another name, is recognized by its format
    import shutil

    other = tmp_path / "renamed.pt"
    shutil.copy(REPO / "assets" / "models" / f"{surs[0]}.pt", other)
    with pytest.raises(SemsmoothError, match="GSmooth surrogate"):
        load_model(str(other))
    fails("--model", surs[0], *NOISE, "--indices", "0", match="GSmooth surrogate")


def test_estimated_E_is_fixed_in_the_stored_run(tiny_model, tmp_path):
    """--estimate-E with --db: E is estimated once before the run and stored in its parameters, so
    a resume (or a Ray shard) certifies with that E; the rows equal those of a run without store."""
    args = ["--model", tiny_model, "--transform", "rotation", "--sigma-gamma", "10", "--sigma-eps", "1.0",
            "--estimate-E", "--q", "0.9", "--E-samples", "300", "--alpha", "0.1", "--n0", "5", "--n-gamma",
            "20", "--n-eps", "100", "--indices", "0:2"]
    db = tmp_path / "runs.sqlite"
    d = ok(*args, "--db", str(db))
    params = Store(db).get_run(d["run_id"])["params"]
    assert params["estimate_E"] is False and params["E"] == d["E_estimate"]["E"] > 0
    assert d["E_estimate"]["data"] == "mnist split 'train'"
    plain = ok(*args)
    assert plain["E_estimate"]["E"] == d["E_estimate"]["E"]
    assert _strip(plain["rows"]) == _strip(d["rows"]) and d["rows"][0]["rho"] == pytest.approx(
        0.1 + (1 - d["E_estimate"]["q_E_lower"]) + 0.1)


def test_bounded_indices_never_load_the_whole_split(tiny_model):
    """--indices 3,5 on a lazy dataset: the CLI asks the loader for index 5 (range check) and then
    for 3 and 5 (certification), never for the whole split (an ImageNet folder would be decoded)."""
    from semsmooth_core.data import datasets

    calls = []

    @datasets.register("test-lazy-count", "a lazy 10-input dataset that records what it was asked for")
    def _lazy(split="heldout", root=None, indices=None):
        calls.append(None if indices is None else list(datasets.select_indices(indices, 10)))
        idx = datasets.select_indices(indices, 10)
        g = torch.Generator().manual_seed(0)
        return torch.rand(len(idx), 1, 28, 28, generator=g), torch.as_tensor(idx % 10)

    try:
        d = ok("--dataset", "test-lazy-count", "--model", tiny_model, *NOISE, "--indices", "3,5")
        assert [r["index"] for r in d["rows"]] == [3, 5] and calls == [[5], [3, 5]]
        fails("--dataset", "test-lazy-count", "--model", tiny_model, *NOISE, "--indices", "3,12",
              match="out of range 0..9")
    finally:
        datasets._REGISTRY.pop("test-lazy-count", None)
        datasets._CLASSES.pop("test-lazy-count", None)
