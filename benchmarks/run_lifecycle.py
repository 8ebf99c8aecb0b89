"""A 1,000-input background run through the same calls as the Results page's buttons.

Start (``jobs.create_job`` + ``ensure_worker``: the "Start run" button), watch (``progress_info``:
the progress bar's figures), cancel after ``--cancel-after`` rows (``request_cancel``: "Cancel"),
resume (``requeue`` + ``ensure_worker``: "Resume") and wait until the run is done; then check that
every input has exactly one row and print/write what a user reads on the page.

    python -m benchmarks.run_lifecycle                      # 1,000 held-out digits, ~22 min on 2 cores
    python -m benchmarks.run_lifecycle --inputs 50 --cancel-after 10 --db /tmp/x.sqlite

Defaults are the Results page's "Start a new background run" form (σ = 0.25, n0 = 100,
n = 1,000, α = 0.001, batch 500) with the shipped ``mnist_cnn_noise025``.
Writes ``benchmarks/results/run_lifecycle_<inputs>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from semsmooth_core.runs import jobs  # noqa: E402
from semsmooth_core.repro import environment  # noqa: E402
from semsmooth_core.runs import Store, progress_info  # noqa: E402
from semsmooth_core.runs.summary import summarize  # noqa: E402

RADII = [0.0, 0.25, 0.5, 0.75]


def wait_until(store: Store, run_id: int, done, timeout: float, every: float = 1.0) -> tuple[dict, list[dict]]:
    """Poll the store as the page's progress panel does; return the run and the samples seen."""
    seen, t0 = [], time.time()
    while True:
        store.reap()
        run = next(r for r in store.list_runs() if r["id"] == run_id)
        p = progress_info(run)
        seen.append({"t": round(time.time() - t0, 1), "status": run["status"], "done": p["done"],
                     "forward_per_second": p["forward_per_second"], "eta_seconds": p["eta_seconds"]})
        if done(run):
            return run, seen
        if time.time() - t0 > timeout:
            raise TimeoutError(f"run {run_id}: {run['status']}, {p['done']}/{p['total']} after {timeout:.0f} s")
        time.sleep(every)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=1000)
    p.add_argument("--cancel-after", type=int, default=100, help="rows finished before pressing Cancel")
    p.add_argument("--model", default="mnist_cnn_noise025")
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--db", help="results store (default: a new one in a temporary folder)")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", help="JSON file (default benchmarks/results/run_lifecycle_<inputs>.json)")
    a = p.parse_args(argv)
    if not 0 < a.cancel_after < a.inputs:
        p.error("--cancel-after must lie between 0 and --inputs")

    db = Path(a.db) if a.db else Path(tempfile.mkdtemp(prefix="semsmooth-lifecycle-")) / "runs.sqlite"
    store = Store(db)
    cfg = {"dataset": "mnist", "split": "heldout", "model": a.model, "smoothing": "noise",
           "sigma_eps": a.sigma, "n0": a.n0, "n_eps": a.n, "alpha_eps": a.alpha,
           "batch_size": a.batch_size, "seed": 0}
    t0 = time.time()
    rid = jobs.create_job(cfg, range(a.inputs), store, name=f"lifecycle {a.inputs}")  # "Start run"
    jobs.ensure_worker(store)
    run, seen1 = wait_until(store, rid, lambda r: r["done"] >= a.cancel_after, a.timeout)
    t_cancel = time.time() - t0
    store.request_cancel(rid)  # "Cancel"
    run, seen2 = wait_until(store, rid, lambda r: r["status"] not in ("queued", "running"), a.timeout, 0.5)
    status_after_cancel, rows_at_cancel = run["status"], run["done"]
    t_stopped = time.time() - t0
    store.reap()
    remaining = store.requeue(rid)  # "Resume"
    jobs.ensure_worker(store)
    run, seen3 = wait_until(store, rid, lambda r: r["status"] not in ("queued", "running"), a.timeout, 2.0)
    wall = time.time() - t0

    rows = store.rows(rid)
    idx = [r["index"] for r in rows]
    summary = summarize(rows, RADII, rows[0].get("radius_unit"))
    out = {
        "inputs": a.inputs, "config": cfg, "db": str(db), "run_id": rid,
        "final_status": run["status"], "rows": len(rows), "distinct_inputs": len(set(idx)),
        "every_input_once": sorted(idx) == list(range(a.inputs)),
        "cancel_pressed_at_rows": a.cancel_after, "cancel_pressed_at_s": round(t_cancel, 1),
        "status_after_cancel": status_after_cancel, "rows_kept_at_cancel": rows_at_cancel,
        "cancel_took_s": round(t_stopped - t_cancel, 1), "remaining_on_resume": remaining,
        "wall_seconds": round(wall, 1),
        "forward_per_second": progress_info(run)["forward_per_second"], "summary": summary,
        "progress_samples": len(seen1) + len(seen2) + len(seen3),
        "first_eta_seconds": next((s["eta_seconds"] for s in seen1 if s["eta_seconds"] is not None), None),
        "command": "python -m benchmarks.run_lifecycle " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(),
    }
    dest = Path(a.out) if a.out else REPO / "benchmarks" / "results" / f"run_lifecycle_{a.inputs}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "environment"}, indent=1))
    return 0 if out["every_input_once"] and out["final_status"] == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())
