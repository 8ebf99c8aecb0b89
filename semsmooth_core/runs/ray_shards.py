"""Scale-out on Ray: certify the inputs of one run as shards of Ray tasks, results flowing into
the same results store.

``ray`` is an optional extra (``pip install -r requirements-ray.txt``), imported only here and
only when a Ray run is asked for. The driver (the process calling :func:`run_on_ray`) owns the
SQLite store: tasks return their rows and the driver writes each shard's rows in one
transaction as soon as that shard finishes, so the store never has to be reachable from the
cluster's machines, and a driver stopped mid-run loses only unfinished shards (``runs resume
RUN --ray`` skips the finished indices). Each task certifies with the same code as the CLI
(``jobs.get_runner()``, i.e. ``pipeline.certify_inputs``); every input is certified
deterministically from ``(seed, index)``, so a sharded run gives the same rows as a local one.

Where the cluster has GPUs, each task asks for one GPU (``num_gpus=1``) and runs on it.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence

from semsmooth_core.runs.lifecycle import claim, execute, worker_environment
from semsmooth_core.validation import SemsmoothError

INSTALL_HINT = "pip install -r requirements-ray.txt"


def import_ray():
    """``import ray`` with a one-line SemsmoothError telling how to install it."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SemsmoothError(f"Ray is not installed; for --ray run: {INSTALL_HINT}") from None
    return ray


def split_shards(indices: Sequence[int], shards: int) -> list[list[int]]:
    """Split ``indices`` into ``shards`` contiguous, nearly equal, non-empty pieces (order kept)."""
    idx = list(indices)
    k = max(1, min(int(shards), len(idx)))
    size, extra = divmod(len(idx), k)
    out, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        out.append(idx[start:end])
        start = end
    return [s for s in out if s]


def certify_shard(config: dict, indices: list[int], runner: str | None = None) -> list[dict]:
    """Body of one Ray task: certify ``indices`` and return their rows (plain dicts)."""
    from semsmooth_core.runs.jobs import get_runner
    from semsmooth_core.runs.lifecycle import collect_rows

    return collect_rows(get_runner(runner), config, indices)


def _init_ray(ray, address: str | None, init_kwargs: Mapping | None) -> bool:
    """Start or join Ray unless this process already did; True when it was started here."""
    if ray.is_initialized():
        return False
    kw = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
    if address:
        kw = {"address": address, "ignore_reinit_error": True, "log_to_driver": False}
    else:
        # a local cluster's workers inherit this process's environment: make the package (and
        # its assets) importable there without a runtime_env (which costs seconds per worker)
        os.environ.update(worker_environment())
    kw.update(dict(init_kwargs or {}))
    try:
        ray.init(**kw)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise SemsmoothError(f"cannot start or reach Ray ({address or 'local cluster'}): "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return True


def run_on_ray(config: Mapping, indices: Sequence[int], db_path=None, address: str | None = None,
               shards: int | None = None, name: str | None = None, run_id: int | None = None,
               runner: str | None = None, num_cpus_per_task: float = 1.0,
               progress: Callable[[int, int], None] | None = None,
               init_kwargs: Mapping | None = None) -> dict:
    """Certify ``indices`` with ``config`` on a Ray cluster; rows go to the store at ``db_path``.

    ``address``: None starts (or joins, if ``RAY_ADDRESS`` is set) a local cluster; ``"auto"``
    joins the cluster this machine belongs to; ``"ray://HOST:10001"`` connects a client to a
    remote head node. ``shards`` defaults to 4 per available CPU/GPU slot. ``run_id`` resumes an
    existing run (only its pending indices are sharded). The run goes through the one lifecycle
    (``runs.lifecycle``: claim, certify, record, finish); the run's cancel flag (``runs cancel``)
    is polled between shards: pending tasks are cancelled, finished rows stay.
    Returns ``{"id", "status", "done", "total", "shards", "gpus_per_task", "summary"}``.
    """
    from semsmooth_core.runs import Store
    from semsmooth_core.runs.jobs import create_job
    from semsmooth_core.runs.summary import summarize

    ray = import_ray()
    store = Store(db_path)
    if run_id is None:
        run_id = create_job(config, indices, store, name=name)
        claim(store, run_id)
        claimed = True
    else:
        claimed = claim(store, run_id, requeue=True)
    info = {"shards": 0, "gpus_per_task": 0}

    def certify_on_ray(cfg: dict, pending: list[int], record, progress=None, should_stop=None) -> dict:
        started_here = _init_ray(ray, address, init_kwargs)
        try:
            res = ray.cluster_resources()
            gpus = 1 if res.get("GPU", 0) >= 1 and str(cfg.get("device") or "auto") != "cpu" else 0
            slots = int(res.get("GPU", 0)) if gpus else max(1, int(res.get("CPU", 1) // num_cpus_per_task))
            pieces = split_shards(pending, int(shards) if shards else 4 * slots)
            task = ray.remote(num_cpus=num_cpus_per_task, num_gpus=gpus, max_retries=2)(certify_shard)
            if gpus and cfg.get("device") in (None, "", "auto"):
                cfg = {**cfg, "device": "cuda"}
            remaining = [task.remote(cfg, piece, runner) for piece in pieces]
            info.update(shards=len(remaining), gpus_per_task=gpus)
            done = 0
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1, timeout=1.0)
                for ref in ready:
                    rows = ray.get(ref)
                    record(rows)
                    done += len(rows)
                    if progress is not None:
                        progress(done, len(pending))
                if remaining and should_stop is not None and should_stop():
                    for ref in remaining:
                        ray.cancel(ref, force=True)
                    break
        except SemsmoothError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise SemsmoothError(f"a Ray task failed: {msg[:300]}") from None
        finally:
            if started_here:  # stops a local instance; only disconnects from a remote cluster
                ray.shutdown()
        return {}

    status = execute(store, run_id, certify_on_ray, progress=progress)["status"] if claimed else "done"
    run = store.get_run(run_id)
    return {"id": run_id, "db": str(store.path), "status": status, "done": run["done"], "total": run["total"],
            **info, "summary": summarize(store.rows(run_id))}
