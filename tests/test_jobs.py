"""Background workers: a real worker process is killed with SIGKILL mid-run and resumed — no
finished row is lost, none is duplicated, and the resumed rows equal those of an uninterrupted
run; cancel stops a running worker; the queue runs runs in order.

The runner used here (``noise_runner``) certifies real embedded MNIST digits with
``smoothing.certify_noise`` on a small fixed linear model, deterministically from
(seed, index) — the contract of ``pipeline.certify_inputs``; the worker loads it by
``--runner tests.test_jobs:noise_runner``. When ``semsmooth_core.runs.pipeline`` exists, the last
test also drives it through the worker.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from semsmooth_core.runs import jobs
from semsmooth_core.runs import Store
from semsmooth_core.validation import SemsmoothError

RUNNER = "tests.test_jobs:noise_runner"
REPO = Path(__file__).resolve().parents[1]


def _model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with torch.no_grad():  # a fixed, crude digit classifier: class means as templates
        from semsmooth_core.data.embedded import embedded_mnist

        x, y = embedded_mnist("train")
        means = torch.stack([x[y == c].mean(0).flatten() for c in range(10)])
        m[1].weight.copy_(means * 10)
        m[1].bias.copy_(-(means ** 2).sum(1) * 5)
    return m.eval()


def noise_runner(config, indices, on_row, progress=None, should_stop=None):
    """Certify embedded MNIST inputs by Gaussian smoothing, one row per input (the
    ``certify_inputs`` API). ``config["sleep"]`` slows each input down for the kill test."""
    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.smoothing import certify_noise

    torch.set_num_threads(1)
    model = _model()
    xs, ys = load_dataset("mnist", split="heldout")
    for i in indices:
        if should_stop is not None and should_stop():
            break
        g = torch.Generator().manual_seed(int(config["seed"]) * 1_000_003 + int(i))
        cert = certify_noise(model, xs[i], config["sigma_eps"], config["n0"], config["n_eps"],
                             config["alpha_eps"], batch_size=500, generator=g)
        label = int(ys[i])
        base = int(model(xs[i][None]).argmax())
        time.sleep(float(config.get("sleep", 0.0)))
        on_row({"index": int(i), "label": label, "prediction": cert.label, "radius": cert.radius,
                "radius_unit": cert.radius_unit, "p_lower": cert.p_lower, "rho": 0.0,
                "correct": cert.label == label, "base_correct": base == label,
                "n_forward": cert.n_forward, "seconds": cert.seconds})
    return {}


CONFIG = {"dataset": "mnist", "split": "heldout", "smoothing": "noise", "sigma_eps": 0.25, "n0": 20,
          "n_eps": 200, "alpha_eps": 0.001, "seed": 3}


@pytest.fixture(autouse=True)
def _no_pipeline_validation(monkeypatch):
    # the configs here are for noise_runner; do not let a pipeline's validator judge them
    monkeypatch.setattr(jobs, "validate", lambda config: dict(config))


def _wait(pred, timeout=60.0, every=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(every)
    return False


def _worker(db, run_id):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "semsmooth_core", "runs", "worker", "--db", str(db),
                             "--run", str(run_id), "--runner", RUNNER, "--quiet", "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _raw_rows(db, run_id):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT idx, label, prediction, radius, p_lower, correct FROM rows WHERE run_id=? "
                         "ORDER BY idx", (run_id,)).fetchall()


def test_kill_9_mid_run_then_resume(tmp_path):
    db = tmp_path / "runs.sqlite"
    store = Store(db)
    indices = list(range(12))
    # started the way the app starts it: a detached worker process (jobs.start_job)
    rid = jobs.start_job(CONFIG | {"sleep": 0.4}, indices, store, name="killed", runner=RUNNER)
    assert _wait(lambda: store.get_run(rid)["done"] >= 3), store.get_run(rid)
    pid = store.get_run(rid)["pid"]
    assert pid and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    # our child: reaped by jobs.spawn_worker's waiter thread (no defunct process left behind)
    assert _wait(lambda: not _pid_exists(pid)), f"worker {pid} left as a defunct process"
    before = _raw_rows(db, rid)
    assert 3 <= len(before) < len(indices)
    assert store.get_run(rid)["status"] == "running"  # the dead worker could not say anything
    assert store.reap() == [rid] and store.get_run(rid)["status"] == "failed"

    # resume in this process (same code path as the worker): only pending indices are certified
    seen = []

    def spying_runner(config, idx, on_row, progress=None, should_stop=None):
        seen.extend(idx)
        return noise_runner(config, idx, on_row, progress, should_stop)

    store.requeue(rid)
    assert jobs.worker_loop(store, run_id=rid, runner=spying_runner) == [(rid, "done")]
    assert sorted(seen) == sorted(set(indices) - {r[0] for r in before})
    after = _raw_rows(db, rid)
    assert [r[0] for r in after] == indices  # every index exactly once (primary key + INSERT OR IGNORE)
    assert set(before) <= set(after)  # the rows written before the kill are unchanged

    # an uninterrupted run gives the same rows: certification is deterministic from (seed, index)
    rid2 = jobs.create_job(CONFIG, indices, store, name="straight")
    jobs.worker_loop(store, run_id=rid2, runner=noise_runner)
    assert [r[1:] for r in _raw_rows(db, rid2)] == [r[1:] for r in after]


def test_cancel_running_worker(tmp_path):
    db = tmp_path / "runs.sqlite"
    store = Store(db)
    rid = jobs.create_job(CONFIG | {"sleep": 0.3}, range(10), store)
    proc = _worker(db, rid)
    try:
        assert _wait(lambda: store.get_run(rid)["done"] >= 1)
        assert store.request_cancel(rid) == "running"
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    run = store.get_run(rid)
    assert run["status"] == "cancelled" and 1 <= run["done"] < 10
    # resume finishes it; the finished rows are not certified again
    store.requeue(rid)
    assert jobs.worker_loop(store, run_id=rid, runner=noise_runner) == [(rid, "done")]
    assert [r[0] for r in _raw_rows(db, rid)] == list(range(10))


def test_queue_runs_in_order_and_failures_are_recorded(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    a = jobs.create_job(CONFIG, [0, 1], store)
    b = jobs.create_job(CONFIG | {"sigma_eps": -1.0}, [2], store)  # bad sigma: SemsmoothError in the runner
    c = jobs.create_job(CONFIG, [3], store)
    done = jobs.worker_loop(store, runner=noise_runner)
    assert done == [(a, "done"), (b, "failed"), (c, "done")]
    assert "sigma" in store.get_run(b)["error"]
    with pytest.raises(SemsmoothError, match="empty"):
        jobs.create_job(CONFIG, [], store)


def test_runs_cli_list_show_export(tmp_path, capsys):
    import json

    from semsmooth_core.cli import main

    db = tmp_path / "runs.sqlite"
    store = Store(db)
    rid = jobs.create_job(CONFIG, [0, 1, 2], store, name="cli")
    jobs.worker_loop(store, run_id=rid, runner=noise_runner)

    def run(*a):
        code = main([*a, "--db", str(db), "--quiet"])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("runs", "list", "--json")
    assert code == 0 and json.loads(out)["runs"][0]["done"] == 3
    code, out, _ = run("runs", "show", "cli", "--json")
    assert json.loads(out)["summary"]["n"] == 3
    tsv = tmp_path / "x.tsv"
    code, out, _ = run("runs", "export", str(rid), "--out", str(tsv), "--json")
    assert code == 0 and tsv.read_text().startswith("idx\tlabel\tpredict\tradius\tcorrect\ttime")
    code, out, err = run("runs", "show", "999", "--json")
    assert code == 2 and "no run" in err and out == ""
    code, _, err = run("runs", "start", "--config", '{"dataset": "mnist", "smoothing": "noise"}', "--indices", "0:5000")
    assert code == 2 and "0..999" in err  # checked before anything is queued
    code, _, err = run("runs", "start", "--config", "{not json")
    assert code == 2 and "JSON" in err
    code, out, _ = run("runs", "import", str(tsv), "--name", "again", "--json")
    assert code == 0 and json.loads(out)["rows"] == 3


def test_real_pipeline_through_worker(tmp_path):
    pipeline = pytest.importorskip("semsmooth_core.runs.pipeline", reason="pipeline.py not written yet")
    from semsmooth_core.models import list_models

    if not list_models():
        pytest.skip("no shipped model")
    name = "mnist_cnn_noise025" if "mnist_cnn_noise025" in list_models() else next(iter(list_models()))
    cfg = {"dataset": "mnist", "split": "heldout", "model": name, "smoothing": "noise", "sigma_eps": 0.25,
           "n0": 10, "n_eps": 100, "alpha_eps": 0.01, "seed": 0, "batch_size": 100, "device": "cpu"}
    pipeline.validate_config(cfg)
    store = Store(tmp_path / "runs.sqlite")
    rid = store.create_run(cfg, [0, 1], name="pipeline")
    assert jobs.worker_loop(store, run_id=rid, runner=pipeline.certify_inputs) == [(rid, "done")], \
        store.get_run(rid)["error"]
    assert len(store.rows(rid)) == 2


def test_worker_estimates_E_once_and_keeps_it_with_the_run(tmp_path):
    """A queued run with estimate_E gets its E once, before its first input, stored in its
    parameters, so a resumed run certifies with the same E (the pipeline's resolve_E)."""
    from semsmooth_core.runs import pipeline

    cfg = {"dataset": "mnist", "model": "mnist_cnn_noise025", "smoothing": "double", "transform": "rotation",
           "sigma_gamma": 10, "attacker_range": 5, "sigma_eps": 1.5, "estimate_E": True, "q": 0.9,
           "E_samples": 200, "n0": 5, "n_gamma": 10, "n_eps": 40, "alpha_gamma": 0.01, "alpha_eps": 0.01,
           "alpha_E": 0.01, "seed": 0, "batch_size": 400, "device": "cpu"}
    store = Store(tmp_path / "runs.sqlite")
    rid = jobs.create_job(cfg, [0], store)
    seen = []

    def runner(config, indices, on_row, progress=None, should_stop=None):
        seen.append(dict(config))
        for i in indices:
            on_row({"index": i, "label": 0, "prediction": 0, "radius": 1.0, "correct": True})

    assert jobs.worker_loop(store, run_id=rid, runner=runner) == [(rid, "done")]
    params = store.get_run(rid)["params"]
    expect = pipeline.resolve_E(cfg)  # deterministic under the run's seed
    assert params["estimate_E"] is False and seen[0]["estimate_E"] is False
    assert params["E"] == seen[0]["E"] == expect["E"] > 0
    assert params["q_E_lower"] == expect["q_E_lower"] and 0.9 <= params["q_E_lower"] < 1
