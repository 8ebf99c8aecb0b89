"""The one lifecycle of a run in the results store: claim -> certify the pending inputs -> record
each row -> done / cancelled / failed.

Every entry point runs a stored run through :func:`execute`:

- the foreground CLI (``certify --db``, ``certify --resume``): ``commands/certify.py``;
- the background worker (``runs worker``, started by the Results and Certify pages):
  :func:`semsmooth_core.runs.jobs.worker_loop`;
- the Ray shards (``certify --ray``): :func:`semsmooth_core.runs.ray_shards.run_on_ray`.

They differ only in the ``certify`` callable that turns pending indices into rows (the local
pipeline, a pluggable runner, Ray tasks) and in what they do with each row (``on_row``: the CLI
also rewrites its ``--out`` file). The run's config is validated once per process (by the
certify callable, ``config.as_validated``); with ``estimate_E`` E is estimated once and kept with the run,
so a resumed run or another shard certifies with the same E. Each row is committed as soon as it
is handed over, so a killed process loses no finished row; the run's cancel flag is polled
between inputs (and between Ray shards).

Also here: the sequence that takes a stored run for a session (:func:`claim`: reap dead workers,
requeue a stopped run, claim it) and the environment of worker processes
(:func:`worker_environment`), both used by the three entry points.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable, Mapping

from semsmooth_core.validation import SemsmoothError

REPO_ROOT = Path(__file__).resolve().parents[2]

Certify = Callable[..., dict]
"""``certify(config, indices, record, progress=None, should_stop=None) -> dict``: certify the
inputs, handing each finished row (or a list of rows) to ``record``; returns a summary (the API
of ``semsmooth_core.runs.pipeline.certify_inputs``)."""


def worker_environment(env: Mapping | None = None) -> dict:
    """The environment of a worker process (background worker, local Ray workers): the package
    importable from the repository root, one BLAS thread per process unless set."""
    env = dict(os.environ if env is None else env)
    root, path = str(REPO_ROOT), env.get("PYTHONPATH", "")
    if root not in path.split(os.pathsep):
        env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def claim(store, run_id: int, requeue: bool = False) -> bool:
    """Take run ``run_id`` for this process: with ``requeue`` (a resume), first mark runs of dead
    workers failed and put a stopped run back in the queue. Returns False when the run is done
    already (nothing to take); a run another live worker holds is a one-line SemsmoothError."""
    if requeue:
        store.reap()
        if store.get_run(run_id)["status"] == "done":
            return False
        store.requeue(run_id)
    if store.claim(run_id) is None:
        raise SemsmoothError(f"run {run_id} was taken by a background worker; follow it with "
                             f"python -m semsmooth_core runs show {run_id} --db {store.path}")
    return True


def cancel_poller(store, run_id: int, every: float = 0.5) -> Callable[[], bool]:
    """``should_stop()``: the run's cancel flag, read from the store at most every ``every`` s."""
    state = {"t": 0.0, "stop": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["t"] >= every:
            state["t"] = now
            state["stop"] = store.cancel_requested(run_id)
        return state["stop"]

    return should_stop


def _first_line(e: BaseException) -> str:
    msg = str(e).strip()
    return msg.splitlines()[0] if msg else ""


def execute(store, run_id: int, certify: Certify | None = None, *,
            on_row: Callable[[dict], None] | None = None, progress: Callable[[int, int], None] | None = None,
            raise_errors: bool = True, config: Mapping | None = None) -> dict:
    """Certify the pending inputs of a run this process has claimed (status running), commit each
    row at once, and set the final status: ``done`` (every index has a row), ``cancelled`` (the
    cancel flag was set) or ``failed`` (with a one-line error; the rows stay).

    ``certify`` defaults to ``pipeline.certify_inputs``. ``on_row(row)`` is called after each row
    is committed. ``progress(done, total)`` counts the run's inputs (earlier sessions included).
    ``raise_errors``: re-raise a failure after recording it (the CLI); else return it (a worker
    goes on with its queue). ``config``: the run's parameters as this process validated them when
    it recorded the run (not checked again); default: the stored ones. Returns ``{"status", "meta" (certify's summary), "error"}``."""
    from semsmooth_core.runs import pipeline

    certify = certify or pipeline.certify_inputs
    run = store.get_run(run_id)
    pending = store.pending_indices(run_id)
    done_before = run["total"] - len(pending)
    should_stop = cancel_poller(store, run_id)

    def record(rows) -> None:
        rows = [rows] if isinstance(rows, Mapping) else list(rows)
        store.add_rows(run_id, rows)
        if on_row is not None:
            for r in rows:
                on_row(r)

    def prog(done: int, total: int) -> None:
        if progress is not None:
            progress(done_before + done, run["total"])

    meta: dict = {}
    try:
        if pending and not should_stop():
            params = config if config is not None else dict(run["params"])  # validated by certify
            if params.get("estimate_E"):
                # estimate E once and keep it with the run: a resume certifies with the same E
                params = pipeline.resolve_E(params)
                store.set_params(run_id, params)
            meta = certify(params, pending, record, progress=prog, should_stop=should_stop) or {}
    except BaseException as e:  # noqa: BLE001 - record every failure, then raise or return it
        if isinstance(e, SemsmoothError):
            error = _first_line(e)
        elif isinstance(e, KeyboardInterrupt):
            error = "interrupted (Ctrl-C); finished rows are kept"
        else:
            if not raise_errors:
                traceback.print_exc()
            error = f"{type(e).__name__}: {_first_line(e)}"
        store.set_status(run_id, "failed", error=error)
        if raise_errors or not isinstance(e, Exception):
            raise
        return {"status": "failed", "meta": meta, "error": error}
    left = len(store.pending_indices(run_id))
    status = "done" if left == 0 else ("cancelled" if store.cancel_requested(run_id) else "failed")
    error = None if status != "failed" else f"{left} inputs not certified"
    store.set_status(run_id, status, error=error)
    return {"status": status, "meta": meta, "error": error}


def run_stored(store, run_id: int, certify: Certify | None = None, *, requeue: bool = False,
               **kwargs) -> dict:
    """:func:`claim` then :func:`execute` (a run already done: nothing is certified)."""
    if not claim(store, run_id, requeue=requeue):
        return {"status": "done", "meta": {}, "error": None}
    return execute(store, run_id, certify, **kwargs)


def collect_rows(certify: Certify, config: Mapping, indices: Iterable[int]) -> list[dict]:
    """Certify ``indices`` outside the store and return their rows (the body of one Ray shard)."""
    rows: list[dict] = []
    certify(dict(config), list(indices), rows.append, progress=None, should_stop=None)
    return rows
