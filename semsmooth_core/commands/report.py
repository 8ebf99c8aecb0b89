"""``report``: certified accuracy at given radii, clean accuracy, abstain rate and radius
percentiles of a run in the results store or of a Cohen-format TSV log."""

from __future__ import annotations

NAME = "report"
HELP = "summarize a run (id or name in the results store) or a certify log (TSV file)"
DESCRIPTION = (
    "Summarize certification results: RUN_OR_FILE is a run id or name in the results store, or a "
    "Cohen-format TSV log (idx label predict radius correct time). certified_accuracy maps each radius "
    "of --radii, as written, to the fraction of ALL rows with a correct prediction and radius >= r "
    "(abstentions count as wrong).")
ORDER = 30
DEFAULT_RADII = "0,0.25,0.5,0.75,1.0,1.5,2.0"


def add_arguments(p):
    p.add_argument("target", metavar="RUN_OR_FILE", help="a run id or name, or a TSV log file")
    p.add_argument("--radii", default=DEFAULT_RADII,
                   help=f"comma-separated radii, in the run's radius unit (default {DEFAULT_RADII})")
    p.add_argument("--db", default=None, help="results database (default: $SEMSMOOTH_DB or <data home>/runs.sqlite)")


def parse_radii(spec: str) -> list[str]:
    """``"0.25,0.5"`` -> ["0.25", "0.5"]: kept as written (they become the JSON keys); each must
    be a finite number >= 0."""
    import math

    from semsmooth_core.validation import SemsmoothError

    parts = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not parts:
        raise SemsmoothError("--radii is empty: give comma-separated numbers such as 0.25,0.5,1")
    for s in parts:
        try:
            v = float(s)
        except ValueError:
            raise SemsmoothError(f"--radii: {s!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise SemsmoothError(f"--radii: {s!r} must be a finite number >= 0")
    return parts


def run(args, progress):
    from semsmooth_core.runs import Store, db_path, load_rows
    from semsmooth_core.runs.summary import summarize

    radii = parse_radii(args.radii)
    from pathlib import Path

    from semsmooth_core.validation import SemsmoothError

    target = Path(args.target).expanduser()
    store = None
    if not target.is_file():
        if target.exists():
            raise SemsmoothError(f"{args.target} is not a file (give a TSV log, or a run id or name)")
        looks_like_file = target.suffix.lower() in (".tsv", ".txt", ".csv", ".log") or "/" in args.target
        try:
            store = Store(db_path(args.db), create=False)  # a read command never creates a store
        except SemsmoothError as e:
            if looks_like_file or "no results database" in str(e):
                raise SemsmoothError(f"no file {args.target!r}" + (f" and {e}" if "no results database" in str(e)
                                                                   else "")) from None
            raise
        if looks_like_file and not str(args.target).strip().isdigit():
            try:
                store.find_run(args.target)
            except SemsmoothError:
                raise SemsmoothError(f"no file {args.target!r} (and no run of that name in {store.path})") from None
    rows, info = load_rows(store, args.target)
    out = summarize(rows, radii=radii, radius_unit=info.get("radius_unit"))
    return {"source": info["source"]} | {k: v for k, v in info.items() if k in ("run_id", "name", "status", "total")} | out
