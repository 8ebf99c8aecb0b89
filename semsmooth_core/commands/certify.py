"""``certify``: certify inputs of a dataset against a semantic transformation (Fischer Thm 4.2,
Lemma 4.3, §6.2, §6.3), a transformation without a closed form (GSmooth) or plain Gaussian
noise, with the shared runner ``semsmooth_core.runs.pipeline.certify_inputs``.

Where finished rows go (none is lost when the command is killed):

- ``--db PATH``: every row is committed to the SQLite results store (``semsmooth_core.runs``) as
  soon as its input is finished; the JSON says ``run_id`` and ``db``. A stopped run continues
  with ``certify --resume RUN --db PATH`` (or ``runs resume RUN``): finished indices are skipped.
- ``--ray [ADDRESS]``: shards on a Ray cluster (``semsmooth_core.runs.ray_shards.run_on_ray``), rows
  into the store at ``--db`` (default: ``runs.db_path()``).
- ``--out FILE``: the JSON result, rewritten (atomically) after every finished row while the run
  goes on (``"partial": true`` until the end), in the same format as the final file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

NAME = "certify"
PROGRESS_UNIT = "inputs"  # what the progress bar counts
HELP = ("certify dataset inputs: double smoothing (default), parameter smoothing, Gaussian noise, "
        "k-smoothing, GSmooth (blur, pixelate)")
DESCRIPTION = (
    HELP + ". Prints a summary (n, clean_accuracy, certified_accuracy, abstain_rate, radius_percentiles, "
    "radius_unit, seconds_per_input, forward_passes_per_input) and one row per input. With --db every "
    "finished row is written to the results store at once (resume with --resume RUN); --ray runs shards "
    "on a Ray cluster; --out rewrites its JSON file after every row.")
ORDER = 20


def _floats(s: str):
    import argparse
    import math

    v = [float(t) for t in str(s).split(",")]
    if not all(math.isfinite(x) for x in v):
        raise argparse.ArgumentTypeError(f"{s!r}: give finite numbers (not nan or inf)")
    return v[0] if len(v) == 1 else v


def _ints(s: str):
    v = [int(t) for t in str(s).split(",")]
    return v[0] if len(v) == 1 else v


def add_arguments(p):
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", default=None, help="dataset name (default: embedded mnist)")
    g.add_argument("--split", default=None, help="dataset split (mnist: heldout | train)")
    g.add_argument("--root", default=None, help="folder of a dataset on disk")
    g.add_argument("--model", default=None, help="shipped model name or checkpoint path (required unless --resume)")
    g.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: auto)")
    g.add_argument("--indices", default="0:100", help="START:STOP[:STEP] or a comma list (default 0:100)")
    g.add_argument("--preprocess", default=None, help="preprocessing spec (default: the model card's)")
    g.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="resize images (shorter side to N pixels, centre crop N x N): for folders of mixed sizes")
    g.add_argument("--channels", default=None, choices=["grey", "rgb"],
                   help="convert images to grey (1 channel) or rgb (3) to match the model")

    g = p.add_argument_group("smoothing")
    g.add_argument("--smoothing", default=None, choices=["double", "transform", "noise", "ksmooth", "gsmooth"],
                   help="double: Fischer §6.2 (default; for a transformation that does not compose but that "
                        "GSmooth handles, e.g. zoom_blur, it switches to gsmooth and the config says so); "
                        "transform: Thm 4.2 only; noise: Gaussian l2; ksmooth: §6.3 partitions; "
                        "gsmooth: Hao et al. (blurs, pixelate)")
    g.add_argument("--transform", default=None,
                   help="registry transformation (rotation, translation, scaling, brightness, contrast, volume; "
                        "GSmooth: zoom_blur, defocus_blur, rotational_blur, motion_blur, pixelate, gaussian_blur)")
    g.add_argument("--interpolation", default=None, choices=["nearest", "bilinear", "bicubic"])
    g.add_argument("--sigma-gamma", "--sigma1", dest="sigma_gamma", type=_floats, default=None,
                   help="std of β in the transform's units; one number, or one per dimension (anisotropic, "
                        "App. B). GSmooth: sigma1 (default: the model card's, else the transform's); for "
                        "gaussian_blur the scale of --dist")
    g.add_argument("--sigma-eps", type=_floats, default=None,
                   help="std of the inner l2 noise, also of noise smoothing (pixel scale [0,1]; waveform scale for audio; default: the model card's training noise, else 0.25)")
    g.add_argument("--sigma2", type=float, default=None,
                   help="GSmooth: std of the augmented noise in the semantic layer (pixel scale; default: the "
                        "model card's, else 0.5)")
    g.add_argument("--dist", default=None, choices=["exp", "uniform", "folded_gaussian"],
                   help="GSmooth, resolvable gaussian_blur: smoothing distribution of the kernel variance")
    g.add_argument("--surrogate", default=None,
                   help="GSmooth: surrogate name or file (default: assets/models/surrogate_<transform>.pt)")
    g.add_argument("--attacker", default=None, choices=["random", "worst-case"],
                   help="random (default): the parameter is drawn uniformly from C (Fischer's distributional "
                        "attacker); worst-case: any parameter in C (E bounds the max over C per input)")
    g.add_argument("--E-scope", dest="E_scope", default=None, choices=["input", "dataset"],
                   help="input (default): E and q_E estimated for each certified input at certify time, the "
                        "certificate holds for that input; dataset: one E for all inputs (--estimate-E on the "
                        "training split, or --E/--q-E-lower), the certificate holds on average over inputs "
                        "like the training set")
    g.add_argument("--E-input-samples", dest="E_input_samples", type=int, default=None,
                   help="per-input E: estimation samples n_E per input (default: the planner's)")
    g.add_argument("--E", type=_floats, default=None, help="bound on ‖ε‖₂ (per partition for ksmooth); "
                   "implies --E-scope dataset")
    g.add_argument("--q-E-lower", type=_floats, default=None, help="lower confidence bound on q_E for E")
    g.add_argument("--estimate-E", action="store_true", default=None, help="estimate E (q-quantile) on the training split")
    g.add_argument("--q", type=float, default=None, help="target quantile of ‖ε‖ with --estimate-E (default 0.95)")
    g.add_argument("--E-samples", type=int, default=None, help="error samples with --estimate-E (default 2000)")
    g.add_argument("--E-worst-case", action="store_true", default=None, help="old name of --attacker worst-case (per-input E only; refused with --estimate-E/--E)")
    g.add_argument("--attacker-range", type=_floats, default=None,
                   help="attacker range C as a half-width (e.g. 30 for [-30,30]); default: the transform's. "
                        "GSmooth: the largest severity ξ_max (default: the surrogate's training range)")
    g.add_argument("--inner-mode", default=None, choices=["lemma", "bonferroni"],
                   help="how the inner tests' error enters (docs/theory.md, Certification)")
    g.add_argument("--partitions", default=None, choices=["halves", "channels", "quadrants", "none"])
    g.add_argument("--sequential", nargs="?", const="looks", default=None, choices=["looks", "mixture"],
                   help="sound early stopping of the inner tests (default schedule: looks)")

    g = p.add_argument_group("samples and confidence")
    g.add_argument("--n0", type=int, default=None, help="selection samples (default 50)")
    g.add_argument("--n-gamma", type=int, default=None,
                   help="outer (parameter) samples; also n of transform and gsmooth smoothing (default 100)")
    g.add_argument("--n-eps", type=_ints, default=None, help="inner noise samples of double smoothing (default 200)")
    g.add_argument("--n", type=int, default=None, help="noise smoothing: estimation samples (default 200; --n-eps is read as n there too)")
    g.add_argument("--alpha", type=float, default=None, help="noise smoothing's alpha; sets alpha_gamma, alpha_eps "
                                                             "and alpha_E too unless they are given (default 0.001)")
    g.add_argument("--alpha-gamma", type=float, default=None,
                   help="outer failure probability; the alpha of transform and gsmooth smoothing")
    g.add_argument("--alpha-eps", type=_floats, default=None,
                   help="inner failure probability; the alpha of noise smoothing (unless --alpha-gamma is given)")
    g.add_argument("--alpha-E", type=float, default=None)
    g.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass (default 1000)")
    g.add_argument("--seed", type=int, default=None, help="run seed; input i uses a generator seeded by (seed, i) (default 0)")

    g.add_argument("--attack", action="store_true", default=None,
                   help="attack every certified input with the real transformation inside its certified radius "
                        "(semsmooth_core.attacks); each row gets attack_broken, attack_param, attack_prediction")
    g.add_argument("--attack-budget", type=int, default=None,
                   help="with --attack: forward passes per input (default: 24 probed candidates + 2 PREDICTs)")

    g = p.add_argument_group("where results go")
    g.add_argument("--out", default=None,
                   help="write the JSON result (summary + rows) to this file; rewritten after every row")
    g.add_argument("--db", default=None,
                   help="results store (SQLite): every finished row is committed at once; the JSON gives "
                        "run_id (default with --ray/--resume: $SEMSMOOTH_DB or <data home>/runs.sqlite)")
    g.add_argument("--name", default=None, help="a name for the run in the results store")
    g.add_argument("--resume", default=None, metavar="RUN",
                   help="continue run RUN (id or name) of the results store with its own options; "
                        "finished indices are skipped (other options except --db/--ray/--out are ignored)")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run shards on Ray: a local cluster, or ADDRESS (auto, ray://HOST:10001); "
                        "needs pip install -r requirements-ray.txt")
    g.add_argument("--shards", type=int, default=None, help="with --ray: number of shards (default: 4 per worker)")


FLAG_FIELDS = ("dataset", "split", "root", "model", "device", "smoothing", "transform", "interpolation",
               "sigma_gamma", "sigma_eps", "E", "q_E_lower", "estimate_E", "q", "E_samples", "E_worst_case",
               "attacker_range", "n0", "n_gamma", "n_eps", "n", "alpha", "alpha_gamma", "alpha_eps", "alpha_E",
               "inner_mode", "partitions", "preprocess", "sequential", "batch_size", "seed", "sigma2", "dist",
               "surrogate", "attacker", "E_scope", "E_input_samples", "attack", "attack_budget", "image_size",
               "channels")


def flags_from_args(args) -> dict:
    """The options given on the command line (field -> value), for ``config.resolve``."""
    return {k: getattr(args, k) for k in FLAG_FIELDS if getattr(args, k, None) is not None}


def resolve_args(args):
    """``(CertifyConfig, provenance)`` of the command line (flag > model card > default)."""
    from semsmooth_core.runs.config import resolve

    return resolve(flags_from_args(args))


def config_from_args(args) -> dict:
    """The pipeline dict of the command line (validated; ``resolve_args(args)[0].to_dict()``)."""
    return resolve_args(args)[0].to_dict()


def select_indices(config: dict, spec: str) -> list[int]:
    """Dataset indices of ``--indices`` checked against the dataset's size (one-line errors).

    A comma list or a bounded ``START:STOP[:STEP]`` is checked by asking the loader for its
    largest index only (a lazy loader such as ``imagefolder`` then decodes one file, not the whole
    split); an open range (``100:``, or all) needs the dataset's size and loads it."""
    from functools import partial

    from semsmooth_core.data import datasets
    from semsmooth_core.data.datasets import parse_indices
    from semsmooth_core.runs.pipeline import data_options
    from semsmooth_core.validation import SemsmoothError

    if spec is not None and not str(spec).strip():
        raise SemsmoothError("--indices is empty: give START:STOP[:STEP] or a comma list (e.g. 0:100)")
    load_dataset = partial(datasets.load_dataset, **data_options(config))
    sel = parse_indices(spec)
    bounded = isinstance(sel, list) or (isinstance(sel, slice) and sel.stop is not None and sel.stop >= 0
                                        and (sel.start or 0) >= 0 and (sel.step or 1) > 0)
    if bounded:
        indices = sel if isinstance(sel, list) else list(range(sel.start or 0, sel.stop, sel.step or 1))
        if not indices:
            raise SemsmoothError(f"indices {spec!r} select no input")
        if min(indices) < 0:
            raise SemsmoothError(f"indices must be >= 0, got {spec}")
        try:
            load_dataset(config["dataset"], split=config["split"], root=config["root"], indices=[max(indices)])
        except SemsmoothError as e:
            if "out of range" not in str(e):
                raise
            raise SemsmoothError(f"indices {spec}: {e}") from None
    else:
        if sel is not None and ((sel.start or 0) < 0 or (sel.stop is not None and sel.stop < 0)):
            raise SemsmoothError(f"indices must be >= 0, got {spec}")
        _, y = load_dataset(config["dataset"], split=config["split"], root=config["root"])
        n = len(y)
        indices = list(range(n))[sel] if sel is not None else list(range(n))
        if not indices:
            raise SemsmoothError(f"indices must select inputs in 0..{n - 1}, got {spec}")
    if len(set(indices)) != len(indices):
        raise SemsmoothError(f"indices {spec!r} list an input twice")
    return indices


class OutFile:
    """``--out``: the JSON result rewritten after every finished row (write to a temporary file,
    then ``os.replace``: a reader or a kill never sees half a file). While the run goes on the
    file holds the summary of the rows so far, ``"partial": true`` and the rows; at the end, the
    final result (without ``partial``). Each row is serialized once, so a rewrite costs about a
    millisecond per thousand rows."""

    def __init__(self, path: str | None, extra: dict | None = None):
        self.path = Path(path) if path else None
        self.rows: list[dict] = []
        self._text: list[str] = []
        self.extra = dict(extra or {})
        self.error: str | None = None
        self.error_said: str | None = None
        if self.path is not None:
            from semsmooth_core.validation import SemsmoothError

            if self.path.is_dir():
                raise SemsmoothError(f"--out {path} is a folder; give a file name")
            try:  # before the first input: a file that cannot be written fails now, not after the work
                self.path.parent.mkdir(parents=True, exist_ok=True)
                probe = self._tmp()
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.close(fd)
                os.unlink(probe)
                if self.path.exists() and not os.access(self.path, os.W_OK):
                    raise PermissionError(13, "Permission denied")
            except OSError as e:
                raise SemsmoothError(f"--out {path}: cannot write there ({e.strerror or e})") from None

    @staticmethod
    def _dumps(obj) -> str:
        from semsmooth_core.cli import _clean, _json_default

        return json.dumps(_clean(obj), default=_json_default)

    def _tmp(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")

    def _replace(self, text: str) -> None:
        """Write the file; a failure (disk full, folder removed) is kept in :attr:`error`, said
        once on stderr, and never stops the run: the result still goes to stdout (and the store)."""
        if self.error is not None:
            return
        tmp = self._tmp()
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError as e:
            import sys

            said = self.error_said
            self.error = self.error_said = f"--out {self.path}: {e.strerror or e}; the result is printed instead"
            if not said:
                print(f"warning: {self.error}", file=sys.stderr)

    def preload(self, rows: list[dict]) -> None:
        """Rows finished before this session (a resumed run): in the file from the first rewrite on."""
        self.rows.extend(rows)
        if self.path is not None:
            self._text.extend(self._dumps(r) for r in rows)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if self.path is None:
            return
        from semsmooth_core.runs.summary import summarize

        self._text.append(self._dumps(row))
        unit = next((r.get("radius_unit") for r in self.rows if r.get("radius_unit")), None)
        head = self._dumps({**summarize(self.rows, radius_unit=unit), **self.extra, "partial": True})
        self._replace(head[:-1] + ', "rows": [\n' + ",\n".join(self._text) + "\n]}\n")

    def final(self, result: dict) -> None:
        if self.path is not None:
            from semsmooth_core.cli import _clean, _json_default

            self.error = None  # try once more at the end
            self._replace(json.dumps(_clean(result), default=_json_default, indent=1))
            if self.error is not None:
                result["out_error"] = self.error


def _rows_of_run(store, run_id: int, fresh: list[dict]) -> list[dict]:
    """All rows of a run in its index order: the rows certified in this process as they came
    (with every key), the others as the store keeps them (earlier sessions of a resumed run)."""
    by_index = {int(r["index"]): r for r in fresh}
    order = {i: k for k, i in enumerate(store.get_run(run_id)["indices"])}
    rows = [by_index.get(int(r["index"]), r) for r in store.rows(run_id)]
    return sorted(rows, key=lambda r: order.get(int(r["index"]), len(order)))


def _finish(summary_meta: dict, rows: list[dict], extra: dict) -> dict:
    from semsmooth_core.runs.summary import summarize

    unit = next((r.get("radius_unit") for r in rows if r.get("radius_unit")), None)
    out = summarize(rows, radius_unit=unit)
    out.update({k: v for k, v in summary_meta.items() if k not in out and k != "rows"})
    cfg = out.get("config")
    if "E_estimate" not in out and isinstance(cfg, dict) and isinstance(cfg.get("E_estimate"), dict):
        out["E_estimate"] = cfg["E_estimate"]          # estimated once before the run (resolve_E)
    out.update(extra)
    # what each certificate claims, in words (the row's statement, from its attacker / E_scope /
    # E / q_E_lower / sound fields); rows of stores written before these fields have none
    out["statements"] = [f"input {r['index']}: {r['statement']}" for r in rows if r.get("statement")]
    out["rows"] = rows
    return out


def _run_in_store(store, run_id: int, progress, out: OutFile, config: dict | None = None) -> dict:
    """Certify the pending inputs of a claimed run through the one lifecycle
    (``runs.lifecycle.execute``: rows committed at once, final status set, errors recorded and
    raised); also rewrite ``--out`` after each row. Returns the pipeline's summary of this session."""
    from semsmooth_core.runs import lifecycle

    return lifecycle.execute(store, run_id, on_row=out.add, progress=progress, config=config)["meta"]


def _store_meta(store, run_id: int) -> dict:
    """What the store knows of a run (for a JSON without a session of its own: Ray, a done run)."""
    from semsmooth_core.runs.config import as_validated
    from semsmooth_core.validation import SemsmoothError

    run = store.get_run(run_id)
    try:
        config = as_validated(run["params"])
    except SemsmoothError:
        config = run["params"]
    out = {"config": config, "seed": run["seed"], "model_sha256": run["model_sha256"],
           "environment": run["environment"]}
    if isinstance(run["params"].get("E_estimate"), dict):
        out["E_estimate"] = run["params"]["E_estimate"]
    return out


def run(args, progress):
    from semsmooth_core.runs.pipeline import resolve_E
    from semsmooth_core.validation import SemsmoothError

    if args.resume is not None:
        return _resume(args, progress)
    if not args.model:
        raise SemsmoothError("certify needs --model (a shipped model name or a checkpoint path)")
    if args.shards is not None and args.ray is None:
        raise SemsmoothError("--shards only applies with --ray")
    if args.name is not None and args.db is None and args.ray is None:
        raise SemsmoothError("--name names a run in the results store: add --db PATH (or --ray)")
    OutFile(args.out)  # --out is checked before the data is read or any input certified
    cfg, sources = resolve_args(args)
    config = cfg.to_dict()
    indices = select_indices(config, args.indices)
    shown = {"config_sources": sources}

    if args.ray is not None:
        return _on_ray(args, resolve_E(config), indices, progress, shown=shown)

    if args.db is None:
        from semsmooth_core.runs.pipeline import certify_inputs

        out = OutFile(args.out)
        summary = certify_inputs(config, indices, out.add, progress=progress)
        result = _finish(summary, out.rows, shown)
        out.final(result)
        return result

    from semsmooth_core.runs import Store, jobs, lifecycle

    store = Store(args.db)
    config = resolve_E(config)
    run_id = jobs.create_job(config, indices, store, name=args.name)
    lifecycle.claim(store, run_id)
    extra = {"run_id": run_id, "db": str(store.path), **shown}
    out = OutFile(args.out, extra=extra)
    meta = _run_in_store(store, run_id, progress, out, config=config)
    extra["status"] = store.get_run(run_id)["status"]
    result = _finish(meta, _rows_of_run(store, run_id, out.rows), extra)
    out.final(result)
    return result


def _resume(args, progress):
    from semsmooth_core.runs import Store, lifecycle
    from semsmooth_core.validation import SemsmoothError

    OutFile(args.out)  # checked before any work
    store = Store(args.db, create=False)
    run_id = store.find_run(args.resume)
    run = store.get_run(run_id)
    if run["kind"] != "run":
        raise SemsmoothError(f"run {run_id} is an imported log; it cannot be resumed")
    if args.ray is not None:
        return _on_ray(args, run["params"], run["indices"], progress, store=store, run_id=run_id)
    claimed = lifecycle.claim(store, run_id, requeue=True)
    extra = {"run_id": run_id, "db": str(store.path), "resumed": True,
             "skipped": run["done"]}
    out = OutFile(args.out, extra=extra)
    out.preload(store.rows(run_id))
    meta = _run_in_store(store, run_id, progress, out) if claimed else {}
    extra["status"] = store.get_run(run_id)["status"]
    result = _finish(meta or _store_meta(store, run_id), _rows_of_run(store, run_id, out.rows), extra)
    out.final(result)
    return result


def _on_ray(args, config: dict, indices: list[int], progress, store=None, run_id: int | None = None,
            shown: dict | None = None) -> dict:
    """``--ray``: shards as Ray tasks (``distributed.run_on_ray``), rows into the store; the same
    JSON as a local run (summary + rows) plus ``run_id``, ``db``, ``status``, ``shards``."""
    from semsmooth_core.runs.ray_shards import import_ray, run_on_ray
    from semsmooth_core.runs import Store, db_path

    import_ray()  # the install hint before any run is recorded
    store = store or Store(db_path(args.db))
    t0 = time.perf_counter()
    res = run_on_ray(config, indices, store.path, address=args.ray or None, shards=args.shards,
                     name=args.name, run_id=run_id, progress=progress)
    rid = int(res["id"])
    rows = _rows_of_run(store, rid, [])
    meta = _store_meta(store, rid)
    extra = {"run_id": rid, "db": str(store.path), "status": res["status"], "shards": res["shards"],
             "gpus_per_task": res["gpus_per_task"], "ray_address": args.ray or "local",
             "wall_seconds": time.perf_counter() - t0, **(shown or {})}
    result = _finish(meta, rows, extra)
    OutFile(args.out).final(result)
    return result
