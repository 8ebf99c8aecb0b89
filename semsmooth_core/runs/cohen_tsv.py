"""Cohen et al.'s ``certify.py`` log format (TSV, REFERENCE_NOTES): ``idx label predict radius
correct time``; abstention = predict -1 with radius 0; ``time`` in seconds (``15.4``) or as
``str(datetime.timedelta)`` (``0:02:32.717239``). :func:`parse_tsv` reads both,
:func:`export_tsv` writes it, :func:`import_tsv` stores a log as a run of kind ``import``.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Iterable, Mapping

from semsmooth_core.runs.store import DEFAULT_UNIT, Store
from semsmooth_core.validation import SemsmoothError

COHEN_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
_TD = re.compile(r"^(?:(?P<d>-?\d+) days?, )?(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


MAX_TSV_ROWS = 100_000
"""Most rows a log may have (Cohen et al.'s largest, ImageNet validation, has 50,000)."""
MAX_TSV_BYTES = 20 * 2**20
"""Largest log file read (the app's log-upload limit too)."""


def parse_time(text: str) -> float:
    """Seconds from a Cohen log's ``time`` cell: ``15.4`` or ``0:02:32.717239`` (a
    ``datetime.timedelta`` string, possibly ``1 day, 2:00:00``). Negative times are refused."""
    s = text.strip()
    m = _TD.match(s)
    if m:
        v = int(m["d"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
    else:
        v = float(s)
    if not math.isfinite(v) or v < 0:
        raise ValueError(s)
    return v


def _open_lines(source, name: str, max_bytes: int):
    """(name, total characters or None, an iterator over the lines) of a path, bytes or text; a
    UTF-8 byte-order mark is dropped; a file is read line by line (never whole)."""
    if isinstance(source, (bytes, bytearray)):
        if len(source) > max_bytes:
            raise SemsmoothError(f"{name}: {len(source) / 2**20:.1f} MiB; logs are limited to {max_bytes // 2**20} MiB")
        text = bytes(source).decode("utf-8-sig", errors="replace")
        return name, len(text), iter(text.splitlines())
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and len(source) < 4096
                                    and Path(source).is_file()):
        p = Path(source)
        try:
            size = p.stat().st_size
            if size > max_bytes:
                raise SemsmoothError(f"{p.name}: {size / 2**20:.1f} MiB; logs are limited to {max_bytes // 2**20} MiB")
            fh = open(p, encoding="utf-8-sig", errors="replace", newline="")
        except OSError as e:
            raise SemsmoothError(f"cannot read {p}: {e.strerror or e}") from None

        def lines():
            with fh:
                for ln in fh:
                    yield ln.rstrip("\r\n")
        return p.name, size, lines()
    text = str(source)
    if len(text) > max_bytes:
        raise SemsmoothError(f"{name}: {len(text) / 2**20:.1f} MiB; logs are limited to {max_bytes // 2**20} MiB")
    return name, len(text), iter(text.lstrip("\ufeff").splitlines())


def parse_tsv(source, name: str = "log", radius_unit: str = DEFAULT_UNIT, *, max_rows: int = MAX_TSV_ROWS,
              max_bytes: int = MAX_TSV_BYTES, progress=None) -> list[dict]:
    """Rows of a Cohen-format log (``idx label predict radius correct time``, tab separated,
    header first). ``source``: a path, bytes or text (a UTF-8 BOM is accepted). A file is
    streamed; at most ``max_rows`` rows and ``max_bytes`` bytes. ``progress(done, total)``
    counts characters read. Each row is checked: integers where Cohen writes integers, radius
    and time finite and >= 0, ``correct`` 1 exactly when ``predict`` = ``label`` (an abstention,
    predict -1, is never correct). Any problem -> one-line SemsmoothError naming the file and line."""
    name, total, lines = _open_lines(source, name, max_bytes)
    split = None
    header: list[str] = []
    pos: dict = {}
    rows, seen = [], set()
    done = 0
    for lineno, ln in enumerate(lines, start=1):
        done += len(ln) + 1
        if progress is not None and lineno % 10000 == 0:
            progress(min(done, total or done), total or done)
        if not ln.strip():
            continue
        if split is None:
            split = (lambda t: t.split("\t")) if "\t" in ln else (lambda t: t.split())
            header = [h.strip().lower() for h in split(ln)]
            missing = [c for c in COHEN_COLUMNS if c not in header]
            if missing:
                raise SemsmoothError(f"{name}: not a certify log: missing column(s) {', '.join(missing)} "
                                     f"(header is {' '.join(header)[:80]!r}; expected {' '.join(COHEN_COLUMNS)})")
            pos = {c: header.index(c) for c in COHEN_COLUMNS}
            continue
        if len(rows) >= max_rows:
            raise SemsmoothError(f"{name}: more than {max_rows:,} rows; split the log (or import it from the "
                                 "command line with a larger cap)")
        cells = [c.strip() for c in split(ln)]
        if len(cells) < len(header):
            raise SemsmoothError(f"{name} line {lineno}: {len(cells)} columns, the header has {len(header)}")
        col = "idx"
        try:
            idx = int(cells[pos["idx"]]); col = "label"
            label = int(cells[pos["label"]]); col = "predict"
            pred = int(cells[pos["predict"]]); col = "radius"
            rad = float(cells[pos["radius"]])
            if not math.isfinite(rad) or rad < 0:
                raise ValueError
            col = "correct"
            corr = int(cells[pos["correct"]])
            if corr not in (0, 1):
                raise ValueError
            col = "time"
            secs = parse_time(cells[pos["time"]])
        except (ValueError, IndexError):
            bad = cells[pos[col]] if pos[col] < len(cells) else ""
            raise SemsmoothError(f"{name} line {lineno}: {col} {bad[:30]!r} is not a valid "
                                 f"{'non-negative number' if col in ('radius', 'time') else 'integer'}") from None
        if idx in seen:
            raise SemsmoothError(f"{name} line {lineno}: index {idx} appears twice")
        if pred < -1 or label < 0:
            raise SemsmoothError(f"{name} line {lineno}: {'predict' if pred < -1 else 'label'} must be a class "
                                 "number >= 0 (predict -1 = abstain)")
        if bool(corr) != (pred == label and pred != -1):
            raise SemsmoothError(f"{name} line {lineno}: correct = {corr} but predict {pred} "
                                 f"{'=' if pred == label else '!='} label {label} (correct is 1 exactly when "
                                 "predict = label; an abstention, predict -1, is never correct)")
        seen.add(idx)
        rows.append({"index": idx, "label": label, "prediction": pred, "radius": rad,
                     "radius_unit": radius_unit, "correct": bool(corr), "seconds": secs})
    if split is None:
        raise SemsmoothError(f"{name}: empty file (expected a header 'idx label predict radius correct time')")
    if not rows:
        raise SemsmoothError(f"{name}: the log has a header but no rows")
    if progress is not None:
        progress(total or done, total or done)
    return rows


def export_tsv(rows: Iterable[Mapping]) -> str:
    """A Cohen-format log of rows: ``idx label predict radius correct time``, radius with 3
    significant digits (as their ``certify.py`` writes it), time in seconds."""
    out = io.StringIO()
    out.write("\t".join(COHEN_COLUMNS) + "\n")
    for r in rows:
        secs = r.get("seconds")
        out.write(f"{int(r['index'])}\t{int(r['label'])}\t{int(r['prediction'])}\t{float(r['radius']):.3}\t"
                  f"{int(bool(r['correct']))}\t{'' if secs is None else format(float(secs), '.4f')}\n")
    return out.getvalue()


def import_tsv(store: Store, source, name: str | None = None, radius_unit: str = DEFAULT_UNIT,
               progress=None, **limits) -> int:
    """Store a Cohen-format log as a run of kind ``import`` (status done). Returns its id.
    ``progress`` and ``limits`` (``max_rows``, ``max_bytes``) go to :func:`parse_tsv`."""
    label = name or (Path(source).name if isinstance(source, (str, Path)) and "\n" not in str(source)
                     else "imported log")
    rows = parse_tsv(source, name=label, radius_unit=radius_unit, progress=progress, **limits)
    run_id = store.create_run({"source": label, "format": "cohen-tsv", "radius_unit": radius_unit},
                              [r["index"] for r in rows], name=label, status="queued", kind="import")
    store.add_rows(run_id, rows)
    store.set_status(run_id, "done")
    return run_id


def load_rows(store: Store | None, ref) -> tuple[list[dict], dict]:
    """Rows and a description for ``report``: ``ref`` is a TSV file path, a run id or a run name."""
    p = Path(str(ref)).expanduser()
    if p.is_file():
        rows = parse_tsv(p)
        return rows, {"source": str(p), "kind": "file", "radius_unit": DEFAULT_UNIT}
    store = store or Store(create=False)
    run_id = store.find_run(ref)
    run = store.get_run(run_id)
    rows = store.rows(run_id)
    unit = next((r.get("radius_unit") for r in rows if r.get("radius_unit")), run["params"].get("radius_unit"))
    return rows, {"source": f"run {run_id}", "run_id": run_id, "name": run["name"], "kind": run["kind"],
                  "status": run["status"], "total": run["total"], "params": run["params"],
                  "radius_unit": unit}
