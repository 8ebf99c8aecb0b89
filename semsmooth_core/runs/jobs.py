"""Background certification jobs: a worker process that takes queued runs from the results store.

``start_job(config, indices)`` records a queued run and makes sure a worker is running; the
worker (``python -m semsmooth_core runs worker``, a separate process started in its own session
so it outlives the app or the shell that started it) takes the oldest queued run, certifies its
pending inputs with the same code as ``certify`` (``semsmooth_core.runs.pipeline.certify_inputs``),
writes each finished input as one committed row, polls the run's cancel flag between inputs,
and goes on with the next queued run until the queue is empty.

Nothing about a job lives in the app's memory: progress, ETA and status are read back from
the store, so a page survives navigation and refresh, and a killed worker loses no finished
row (a resume skips them; the rows' primary key rules out duplicates).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from semsmooth_core.runs import Store, lifecycle, model_sha256
from semsmooth_core.validation import SemsmoothError

Runner = Callable[..., dict]
"""``runner(config, indices, on_row, progress=None, should_stop=None) -> dict`` (the API of
``semsmooth_core.runs.pipeline.certify_inputs``)."""


def get_runner(spec: str | None = None) -> Runner:
    """The certification runner: ``module:function`` if given, else
    ``semsmooth_core.runs.pipeline.certify_inputs`` (the code behind the ``certify`` command)."""
    spec = spec or os.environ.get("SEMSMOOTH_RUNNER") or "semsmooth_core.runs.pipeline:certify_inputs"
    mod_name, _, fn = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        if mod_name == "semsmooth_core.runs.pipeline":
            raise SemsmoothError("the certification pipeline (semsmooth_core.runs.pipeline) is not "
                                 f"available in this installation: {e}") from None
        raise SemsmoothError(f"cannot import runner {spec!r}: {e}") from None
    try:
        return getattr(mod, fn or "certify_inputs")
    except AttributeError:
        raise SemsmoothError(f"runner {spec!r}: {mod_name} has no {fn!r}") from None


def validate(config: Mapping) -> dict:
    """The config validated once (``runs.config.as_validated``; raises SemsmoothError)."""
    from semsmooth_core.runs.config import as_validated

    return as_validated(config)


def create_job(config: Mapping, indices: Sequence[int], store: Store | None = None,
               name: str | None = None) -> int:
    """Validate ``config`` (a ``CertifyConfig``, a validated dict, or a plain dict resolved against
    the model card) and record a queued run (with seed, model checksum, library versions)."""
    from semsmooth_core.repro import environment

    store = store or Store()
    indices = [int(i) for i in indices]
    if not indices:
        raise SemsmoothError("no inputs to certify (empty index list)")
    params = validate(config)
    return store.create_run(dict(params), indices, name=name, seed=params.get("seed"),
                            model_sha256=model_sha256(params.get("model")), environment=environment())


def live_worker(store: Store) -> dict | None:
    """A running run whose worker process is alive (so it will take the next queued run)."""
    for run in store.list_runs():
        if run["status"] == "running" and Store.worker_alive(run):
            return run
    return None


def spawn_worker(store: Store, run_id: int | None = None, log_dir: Path | None = None,
                 runner: str | None = None) -> subprocess.Popen:
    """Start ``python -m semsmooth_core runs worker --db ...`` detached (own session), with its
    output in ``<db dir>/logs/worker-<time>.log``."""
    log_dir = Path(log_dir or store.path.parent / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "semsmooth_core", "runs", "worker", "--db", str(store.path), "--quiet"]
    if run_id is not None:
        cmd += ["--run", str(run_id)]
    if runner:
        cmd += ["--runner", runner]
    log = open(log_dir / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", "ab")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(lifecycle.REPO_ROOT), env=lifecycle.worker_environment(),
                                start_new_session=True)
    finally:
        log.close()
    # reap it when it exits (no defunct process under the app or the shell that started it)
    threading.Thread(target=proc.wait, name=f"reap-worker-{proc.pid}", daemon=True).start()
    return proc


def ensure_worker(store: Store | None = None, runner: str | None = None) -> subprocess.Popen | None:
    """Reap dead workers' runs, and start a worker if runs are queued and none is alive."""
    store = store or Store()
    store.reap()
    if live_worker(store) is not None:
        return None
    if not any(r["status"] == "queued" and r["kind"] == "run" for r in store.list_runs()):
        return None
    return spawn_worker(store, runner=runner)


def start_job(config: Mapping, indices: Sequence[int], db=None, name: str | None = None,
              runner: str | None = None) -> int:
    """Queue a certification of ``indices`` with ``config`` and make sure a worker runs it.
    Returns the run id; everything else (progress, rows, status) is read from the store."""
    store = db if isinstance(db, Store) else Store(db)
    run_id = create_job(config, indices, store, name=name)
    ensure_worker(store, runner=runner)
    return run_id


def resume_job(run_id: int, db=None, runner: str | None = None) -> int:
    """Requeue a cancelled/failed run (its finished inputs are skipped) and ensure a worker.
    Returns how many inputs remain."""
    store = db if isinstance(db, Store) else Store(db)
    store.reap()
    remaining = store.requeue(run_id)
    ensure_worker(store, runner=runner)
    return remaining


_poller = lifecycle.cancel_poller   # the old name (tests, pages)


def execute_run(store: Store, run_id: int, runner: Runner, progress=None) -> str:
    """Certify the pending inputs of a run already claimed through the one lifecycle
    (``runs.lifecycle.execute``); a failure is recorded and the worker goes on. Returns the
    final status (done / cancelled / failed)."""
    return lifecycle.execute(store, run_id, runner, progress=progress, raise_errors=False)["status"]


def worker_loop(db=None, run_id: int | None = None, runner: Runner | str | None = None,
                progress=None, once: bool = False) -> list[tuple[int, str]]:
    """The worker: take queued runs (``run_id`` only, or the oldest each time) until none is
    left. Returns ``[(run_id, final status), ...]``."""
    store = db if isinstance(db, Store) else Store(db)
    fn = runner if callable(runner) else get_runner(runner)
    done = []
    while True:
        rid = store.claim(run_id)
        if rid is None:
            break
        done.append((rid, execute_run(store, rid, fn, progress)))
        if once or run_id is not None:
            break
    return done
