"""``runs``: the results store from the command line — list, show, start, cancel, resume, export,
import, delete, and ``worker`` (the background process the app and ``start`` launch)."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "runs"
PROGRESS_UNIT = "inputs"  # what the progress bar counts
HELP = "manage certification runs in the results store (list/show/start/cancel/resume/export/import)"
DESCRIPTION = (
    "Manage certification runs in the results store (SQLite; --db, else $SEMSMOOTH_DB, else "
    "<data home>/runs.sqlite). ACTION is one of: list; show RUN; start (queue a run from --config, "
    "with --indices; --wait runs it here, --ray [ADDRESS] on a Ray cluster); cancel RUN; resume RUN; "
    "export RUN [--out FILE] (Cohen-format TSV, or CSV with --csv); import FILE [--name NAME]; "
    "delete RUN; worker (take queued runs until none is left).")
ORDER = 40
ACTIONS = ("list", "show", "start", "cancel", "resume", "export", "import", "delete", "worker")


def add_db_argument(p) -> None:
    p.add_argument("--db", default=None, help="results database (default: $SEMSMOOTH_DB or <data home>/runs.sqlite)")


def add_arguments(p):
    p.add_argument("action", choices=ACTIONS, metavar="ACTION", help=", ".join(ACTIONS))
    p.add_argument("target", nargs="?", default=None, help="a run id or name (import: a TSV file)")
    add_db_argument(p)
    p.add_argument("--config", default=None,
                   help="start: the certify options as a JSON object or a JSON file "
                        "(dataset, model, smoothing, sigma_eps, n0, n_eps, alpha_eps, seed, ...)")
    p.add_argument("--indices", default="0:20", help="start: dataset indices, START:STOP[:STEP] or a comma list")
    p.add_argument("--name", default=None, help="start/import: a name for the run")
    p.add_argument("--wait", action="store_true", help="start/resume: run in this process instead of a background worker")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="start/resume: run on Ray (a local cluster, or ADDRESS such as ray://host:10001 or auto)")
    p.add_argument("--shards", type=int, default=None, help="with --ray: number of shards (default: 4 per worker)")
    p.add_argument("--out", default=None, help="export: write to this file (default: stdout / the JSON result)")
    p.add_argument("--csv", action="store_true", help="export: all columns as CSV instead of Cohen TSV")
    p.add_argument("--unit", default=None, help="import: the radius unit of the log (default l2 on [0,1] pixels)")
    p.add_argument("--run", dest="run_id", type=int, default=None, help="worker: take only this run")
    p.add_argument("--runner", default=None, help="worker: certification function MODULE:FUNC "
                                                  "(default semsmooth_core.runs.pipeline:certify_inputs)")


def _config(spec: str | None) -> dict:
    from semsmooth_core.validation import SemsmoothError

    if not spec:
        raise SemsmoothError("start needs --config (a JSON object or file with the certify options)")
    text = Path(spec).read_text() if Path(spec).is_file() else spec
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise SemsmoothError(f"--config is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(cfg, dict):
        raise SemsmoothError("--config must be a JSON object")
    return cfg


def _indices(spec: str, config: dict) -> list[int]:
    """Dataset indices of ``--indices`` (START:STOP[:STEP] or a comma list), checked against the
    dataset's size so that a bad range fails here and not in the background worker."""
    from semsmooth_core.data.datasets import load_dataset, parse_indices
    from semsmooth_core.validation import SemsmoothError

    if spec is not None and not str(spec).strip():
        raise SemsmoothError("--indices is empty: give START:STOP[:STEP] or a comma list (e.g. 0:20)")
    n = len(load_dataset(config.get("dataset", "mnist"), split=config.get("split") or "heldout",
                         root=config.get("root"))[1])
    sel = parse_indices(spec)
    if isinstance(sel, slice) and ((sel.stop is not None and sel.stop > n)
                                   or (sel.start is not None and not 0 <= sel.start < n)):
        raise SemsmoothError(f"--indices must select inputs in 0..{n - 1}, got {spec!r}")
    out = sel if isinstance(sel, list) else list(range(n))[sel if sel is not None else slice(None)]
    if not out:
        raise SemsmoothError(f"--indices {spec!r} selects no input")
    if min(out) < 0 or max(out) >= n:
        raise SemsmoothError(f"--indices must select inputs in 0..{n - 1}, got {spec!r}")
    return out


def preflight(config: dict, indices: list[int]) -> None:
    """What a background worker would find out too late (exit 0 here, a failed run later): the
    config is valid, the model loads, the first input loads and fits the model (modality,
    channels). One-line SemsmoothError otherwise; nothing is queued."""
    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.models import load_model
    from semsmooth_core.models.checkpoint import check_input_channels
    from semsmooth_core.runs.pipeline import _check_modality, data_options, validate_config

    c = validate_config(dict(config))
    model, card = load_model(c["model"], device="cpu")
    x, _ = load_dataset(c["dataset"], split=c["split"], root=c["root"], indices=[int(indices[0])],
                        **data_options(c))
    _check_modality(c, x)
    check_input_channels(model, card, x, f"dataset {c['dataset']!r}")


def _summary(run: dict) -> dict:
    from semsmooth_core.runs import progress_info

    keep = ("id", "name", "kind", "status", "done", "total", "created", "started", "finished", "pid", "error")
    d = {k: run.get(k) for k in keep}
    d.update({k: v for k, v in progress_info(run).items() if k in ("forward_per_second", "eta_seconds")})
    return d


def run(args, progress):
    from semsmooth_core.runs import jobs
    from semsmooth_core.runs import Store, export_tsv, import_tsv
    from semsmooth_core.runs.summary import summarize
    from semsmooth_core.validation import SemsmoothError

    a = args.action
    # Only actions that add runs may create the store; reading one never makes an empty file.
    if a == "list":
        from semsmooth_core.runs import db_path

        if not db_path(args.db).exists():
            return {"db": str(db_path(args.db)), "runs": [], "note": "no results database there yet"}
    store = Store(args.db, create=a in ("start", "import", "worker"))
    need_target = a in ("show", "cancel", "resume", "export", "import", "delete")
    if need_target and not args.target:
        raise SemsmoothError(f"runs {a} needs a {'file' if a == 'import' else 'run id or name'}")

    if a == "list":
        store.reap()
        return {"db": str(store.path), "runs": [_summary(r) for r in store.list_runs()]}
    if a == "worker":
        done = jobs.worker_loop(store, run_id=args.run_id, runner=args.runner, progress=progress)
        return {"db": str(store.path), "finished": [{"id": i, "status": s} for i, s in done]}
    if a == "import":
        if progress is not None:  # the bar counts characters read, not inputs
            from semsmooth_core.cli import stderr_progress

            progress = stderr_progress("runs import", "characters")
        rid = import_tsv(store, Path(args.target), name=args.name, progress=progress,
                         **({"radius_unit": args.unit} if args.unit else {}))
        run = store.get_run(rid)
        return {"db": str(store.path), "id": rid, "name": run["name"], "rows": run["done"]}
    if a == "start":
        cfg = _config(args.config)
        idx = _indices(args.indices, cfg)
        preflight(cfg, idx)
        if args.ray is not None:
            from semsmooth_core.runs.ray_shards import run_on_ray

            return run_on_ray(cfg, idx, store.path, address=args.ray or None, shards=args.shards,
                              name=args.name, progress=progress)
        if args.wait:
            rid = jobs.create_job(cfg, idx, store, name=args.name)
            store.claim(rid)
            status = jobs.execute_run(store, rid, jobs.get_runner(args.runner), progress)
            return {"db": str(store.path), "id": rid, "status": status,
                    "summary": summarize(store.rows(rid))}
        rid = jobs.start_job(cfg, idx, store, name=args.name, runner=args.runner)
        return {"db": str(store.path), "id": rid, "status": store.get_run(rid)["status"], "total": len(idx)}

    rid = store.find_run(args.target)
    if a == "show":
        store.reap()
        run = store.get_run(rid)
        rows = store.rows(rid)
        unit = next((r.get("radius_unit") for r in rows if r.get("radius_unit")), None)
        out = _summary(run) | {"params": run["params"], "seed": run["seed"], "model_sha256": run["model_sha256"],
                               "environment": run["environment"],
                               "summary": summarize(rows, radius_unit=unit)}
        return out
    if a == "cancel":
        return {"id": rid, "status": store.request_cancel(rid)}
    if a == "resume":
        if args.ray is not None:
            from semsmooth_core.runs.ray_shards import run_on_ray

            run = store.get_run(rid)
            return run_on_ray(run["params"], run["indices"], store.path, address=args.ray or None,
                              shards=args.shards, run_id=rid, progress=progress)
        if args.wait:
            store.reap()
            store.requeue(rid)
            store.claim(rid)
            status = jobs.execute_run(store, rid, jobs.get_runner(args.runner), progress)
            return {"id": rid, "status": status, "done": store.get_run(rid)["done"]}
        remaining = jobs.resume_job(rid, store, runner=args.runner)
        return {"id": rid, "status": store.get_run(rid)["status"], "remaining": remaining}
    if a == "delete":
        store.delete_run(rid)
        return {"id": rid, "deleted": True}
    if a == "export":
        rows = store.rows(rid)
        if args.csv:
            import pandas as pd

            text = pd.DataFrame(rows).to_csv(index=False)
        else:
            text = export_tsv(rows)
        if args.out:
            Path(args.out).write_text(text)
            return {"id": rid, "rows": len(rows), "out": args.out}
        if args.json:
            return {"id": rid, "rows": len(rows), "text": text}
        import sys

        sys.stdout.write(text)
        sys.exit(0)
    raise SemsmoothError(f"unknown action {a!r}")  # pragma: no cover
