"""The one run lifecycle (``semsmooth_core.runs.lifecycle``) through each entry point: the
foreground CLI (``certify --db``), the background worker (``runs worker``, as the pages start
it), the lifecycle called in-process and Ray shards give the same rows for the same seed; the
CLI killed with SIGKILL or cancelled mid-run keeps its rows and resumes to the rows of an
uninterrupted run; a failure is recorded with one line and the rows stay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semsmooth_core.runs import Store, jobs, lifecycle
from semsmooth_core.runs.config import resolve
from semsmooth_core.validation import SemsmoothError

REPO = Path(__file__).resolve().parents[1]
MODEL = "mnist_cnn_noise025"
FAST = ["--model", MODEL, "--smoothing", "noise", "--n0", "5", "--n", "30", "--seed", "7", "--batch-size", "64"]
SLOW = ["--model", MODEL, "--smoothing", "noise", "--n0", "20", "--n", "1500", "--seed", "7", "--batch-size", "500"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _cli(*args, timeout=300):
    p = subprocess.run([sys.executable, "-m", "semsmooth_core", "certify", *args, "--json", "--quiet"],
                       capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_env())
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _strip(rows):
    return [{k: r[k] for k in ("index", "label", "prediction", "radius", "p_lower", "correct", "n_forward")}
            for r in rows]


def _flags(args):
    it = iter(args)
    return {a[2:].replace("-", "_"): (int(v) if v.isdigit() else v) for a, v in zip(it, it)}


def _wait(pred, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_each_entry_point_gives_the_same_rows(tmp_path):
    db = tmp_path / "runs.sqlite"
    indices = [0, 3, 5, 8]
    cli = _cli(*FAST, "--indices", ",".join(map(str, indices)), "--db", str(db))
    assert cli["status"] == "done"
    store = Store(db)
    cfg, _ = resolve(_flags(FAST))
    # the background worker, started as the pages start it (a detached process)
    rid = jobs.start_job(cfg, indices, store, name="worker")
    assert _wait(lambda: store.get_run(rid)["status"] in ("done", "failed")), store.get_run(rid)
    assert store.get_run(rid)["status"] == "done", store.get_run(rid)["error"]
    # the lifecycle in this process (the code under all of them)
    rid2 = jobs.create_job(cfg, indices, store, name="in-process")
    assert lifecycle.run_stored(store, rid2)["status"] == "done"
    want = _strip(cli["rows"])
    assert _strip(store.rows(rid)) == want and _strip(store.rows(rid2)) == want
    assert store.get_run(rid)["params"] == store.get_run(cli["run_id"])["params"]


@pytest.mark.slow  # a local Ray cluster takes ~10-60 s to start on the shared 2-core machine
def test_ray_shards_give_the_same_rows(tmp_path):
    pytest.importorskip("ray", reason="ray is optional: pip install -r requirements-ray.txt")
    from semsmooth_core.runs.ray_shards import run_on_ray

    db = tmp_path / "runs.sqlite"
    indices = [0, 3, 5, 8]
    cli = _cli(*FAST, "--indices", ",".join(map(str, indices)), "--db", str(db))
    cfg, _ = resolve(_flags(FAST))
    out = run_on_ray(cfg, indices, db, shards=2,
                     init_kwargs={"num_cpus": 2, "num_gpus": 0, "object_store_memory": 80 * 1024**2})
    assert out["status"] == "done" and out["shards"] == 2
    assert _strip(Store(db).rows(out["id"])) == _strip(cli["rows"])


def _start_cli(db, indices, name):
    return subprocess.Popen([sys.executable, "-m", "semsmooth_core", "certify", *SLOW, "--indices", indices,
                             "--db", str(db), "--name", name, "--json", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=_env())


@pytest.mark.slow  # three CLI processes of 10 inputs each (~30 s on an idle 2-core machine)
def test_cli_killed_then_resumed_equals_an_uninterrupted_run(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = _start_cli(db, "0:10", "killed")
    store = Store(db)
    try:
        assert _wait(lambda: db.exists() and store.list_runs() and store.list_runs()[0]["done"] >= 1, 240)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    rid = store.find_run("killed")
    kept = store.rows(rid)
    if len(kept) == 10:
        pytest.skip("the run finished before it could be killed")
    assert store.get_run(rid)["status"] == "running"           # the killed process said nothing
    resumed = _cli("--resume", "killed", "--db", str(db), timeout=600)
    assert resumed["status"] == "done" and resumed["skipped"] == len(kept)
    assert _strip(resumed["rows"][:len(kept)]) == _strip(kept)  # nothing lost, nothing redone
    fresh = _cli(*SLOW, "--indices", "0:10", timeout=600)      # no store: the same rows
    assert _strip(resumed["rows"]) == _strip(fresh["rows"])


@pytest.mark.slow  # two CLI processes of 10 inputs each
def test_cli_cancelled_keeps_rows_then_resumes(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = _start_cli(db, "0:10", "cancelled")
    store = Store(db)
    assert _wait(lambda: db.exists() and store.list_runs() and store.list_runs()[0]["done"] >= 1, 240)
    rid = store.find_run("cancelled")
    store.request_cancel(rid) if hasattr(store, "request_cancel") else store.cancel(rid)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    d = json.loads(out)
    if d["status"] == "done":
        pytest.skip("the run finished before the cancel flag was read")
    assert d["status"] == "cancelled" and 1 <= d["n"] < 10
    assert store.get_run(rid)["status"] == "cancelled" and len(store.rows(rid)) == d["n"]
    resumed = _cli("--resume", str(rid), "--db", str(db), timeout=600)
    assert resumed["status"] == "done" and [r["index"] for r in resumed["rows"]] == list(range(10))


def test_failures_are_recorded_with_one_line_and_rows_stay(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    rid = store.create_run({"seed": 0}, [0, 1, 2], name="boom")

    def certify(config, indices, record, progress=None, should_stop=None):
        record({"index": indices[0], "label": 0, "prediction": 0, "radius": 1.0, "correct": True})
        raise SemsmoothError("bad value\nsecond line")

    assert lifecycle.claim(store, rid)
    with pytest.raises(SemsmoothError):
        lifecycle.execute(store, rid, certify)
    run = store.get_run(rid)
    assert run["status"] == "failed" and run["error"] == "bad value" and run["done"] == 1
    # a worker goes on: the failure is returned, not raised
    assert lifecycle.claim(store, rid, requeue=True)

    def crash(config, indices, record, progress=None, should_stop=None):
        raise RuntimeError("device lost")

    res = lifecycle.execute(store, rid, crash, raise_errors=False)
    assert res["status"] == "failed" and res["error"] == "RuntimeError: device lost"
    assert len(store.rows(rid)) == 1
    # a runner that returns early without a cancel: failed, with the count of what is left
    assert lifecycle.claim(store, rid, requeue=True)
    assert lifecycle.execute(store, rid, lambda *a, **k: {})["error"] == "2 inputs not certified"
    # a done run is not taken again
    store.add_rows(rid, [{"index": i, "label": 0, "prediction": 0, "radius": 1.0, "correct": True} for i in (1, 2)])
    store.set_status(rid, "done")
    assert lifecycle.claim(store, rid, requeue=True) is False
