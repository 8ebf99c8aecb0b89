"""Ray scale-out on a local CPU cluster: shards run as Ray tasks, rows land in the same store, and
they equal the rows of a local (unsharded) run — certification is deterministic from
(seed, index). Skips cleanly when ``ray`` is not installed (``pip install -r requirements-ray.txt``)."""

from __future__ import annotations

import sys

import pytest

from semsmooth_core.runs import jobs
from semsmooth_core.runs.ray_shards import run_on_ray, split_shards
from semsmooth_core.runs import Store
from semsmooth_core.validation import SemsmoothError
from tests.test_jobs import CONFIG, noise_runner

RUNNER = "tests.test_jobs:noise_runner"


def test_split_shards():
    assert split_shards(range(7), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_shards([5, 9], 8) == [[5], [9]]
    parts = split_shards(range(100), 7)
    assert sum(parts, []) == list(range(100)) and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_missing_ray_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SemsmoothError, match=r"pip install -r requirements-ray.txt"):
        run_on_ray(CONFIG, [0], tmp_path / "r.sqlite")


@pytest.mark.slow  # starting a local Ray cluster takes ~10 s on an idle 2-core machine
def test_local_ray_cluster_matches_local_run(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="ray is optional: pip install -r requirements-ray.txt")
    monkeypatch.setattr(jobs, "validate", lambda config: dict(config))
    db = tmp_path / "runs.sqlite"
    indices = list(range(8))
    out = run_on_ray(CONFIG, indices, db, shards=3, runner=RUNNER,
                     init_kwargs={"num_cpus": 2, "num_gpus": 0, "object_store_memory": 80 * 1024**2})
    assert out["status"] == "done" and out["done"] == 8 and out["shards"] == 3 and out["gpus_per_task"] == 0
    store = Store(db)
    ray_rows = store.rows(out["id"])
    assert [r["index"] for r in ray_rows] == indices
    local = store.create_run(CONFIG, indices, name="local")
    jobs.worker_loop(store, run_id=local, runner=noise_runner)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(store.rows(local)) == strip(ray_rows)
    assert store.get_run(out["id"])["status"] == "done"
