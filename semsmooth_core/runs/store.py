"""Results store (SQLite): runs, their rows, status and the worker bookkeeping.

A *run* is one certification of many inputs: its parameters (the certify options, JSON), seed,
model checksum, library versions, status and timestamps. A *row* is one finished input (DESIGN
principle 5: results are data). Rows are keyed by ``(run_id, idx)`` and written with
``INSERT OR IGNORE`` inside a transaction, so a resumed run (which skips finished indices)
never duplicates a row, and a killed worker loses nothing that was committed.

The database runs in WAL mode with a busy timeout, so several processes (the app, workers,
the Ray driver, a CLI ``report``) can read and write it at once. ``synchronous=FULL``: a row is
on disk once ``add_row`` returns, even if the machine loses power right after.

Where the database lives: ``db_path()`` — an explicit path (``--db``), else ``$SEMSMOOTH_DB``,
else ``semsmooth_core.paths.data_home() / "runs.sqlite"``.

Cohen-format logs (TSV) are read and written by :mod:`semsmooth_core.runs.cohen_tsv`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping

from semsmooth_core.validation import SemsmoothError

STATUSES = ("queued", "running", "done", "cancelled", "failed")
"""Life cycle: queued -> running -> done | cancelled | failed; resume puts a run back to queued."""

ROW_FIELDS = ("index", "label", "prediction", "radius", "radius_unit", "p_lower", "rho", "correct",
              "base_correct", "n_forward", "seconds", "clipped", "attacker", "E_scope", "E", "q_E_lower",
              "sound", "statement", "attack_broken", "attack_param", "attack_prediction")
"""Keys of a row as the certification pipeline emits it (``on_row``) and :meth:`Store.rows` returns it.
The last six are the certificate's claim (``smoothing.Certificate``: attacker random | worst-case,
E_scope input | dataset | None, E, q_E_lower, sound, and its sentence); rows of older stores and of
imported logs lack them (left out, not guessed). The last three are there when the run attacked each
certified input inside its radius (``certify --attack``, :mod:`semsmooth_core.attacks`): broken or
not, the worst parameter found (a list, stored as JSON) and the prediction there."""

#: columns added after the first schema: (name, SQL type); older stores get them by ALTER TABLE
_ADDED_COLUMNS = (("clipped", "INTEGER"), ("attacker", "TEXT"), ("E_scope", "TEXT"), ("E", "REAL"),
                  ("q_E_lower", "REAL"), ("sound", "INTEGER"), ("statement", "TEXT"),
                  ("attack_broken", "INTEGER"), ("attack_param", "TEXT"), ("attack_prediction", "INTEGER"))

DEFAULT_UNIT = "l2 (pixel scale [0,1])"
"""Unit assumed for imported Cohen logs (Gaussian noise on [0,1] pixels) unless told otherwise."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'run',      -- 'run' (ours) or 'import' (a TSV log)
    params        TEXT NOT NULL,                    -- JSON: the certify options
    indices       TEXT NOT NULL,                    -- JSON list of dataset indices to certify
    seed          INTEGER,
    model_sha256  TEXT,
    environment   TEXT,                             -- JSON: repro.environment()
    status        TEXT NOT NULL,
    cancel        INTEGER NOT NULL DEFAULT 0,       -- 1 = cancel requested; the worker polls it
    error         TEXT,
    created       REAL NOT NULL,
    started       REAL,
    finished      REAL,
    total         INTEGER NOT NULL,
    pid           INTEGER,
    host          TEXT
);
CREATE TABLE IF NOT EXISTS rows (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    label         INTEGER NOT NULL,
    prediction    INTEGER NOT NULL,
    radius        REAL NOT NULL,
    unit          TEXT,
    p_lower       REAL,
    rho           REAL,
    correct       INTEGER NOT NULL,
    base_correct  INTEGER,
    n_forward     INTEGER,
    seconds       REAL,
    clipped       INTEGER,
    written       REAL NOT NULL,
    attacker      TEXT,
    E_scope       TEXT,
    E             REAL,
    q_E_lower     REAL,
    sound         INTEGER,
    statement     TEXT,
    attack_broken INTEGER,
    attack_param  TEXT,
    attack_prediction INTEGER,
    PRIMARY KEY (run_id, idx)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, id);
"""


def db_path(path: str | os.PathLike | None = None) -> Path:
    """The results database: ``path`` if given, else ``$SEMSMOOTH_DB``, else
    ``data_home()/runs.sqlite``."""
    if path:
        return Path(path).expanduser()
    if os.environ.get("SEMSMOOTH_DB"):
        return Path(os.environ["SEMSMOOTH_DB"]).expanduser()
    from semsmooth_core.paths import data_home

    return data_home() / "runs.sqlite"


def _opt(v, cast):
    return None if v is None else cast(v)


class Store:
    """The SQLite results store. Cheap to create; every method opens a short connection, so a
    Store can be shared by threads and re-created in every process."""

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 60.0, create: bool = True):
        """Open the store at ``path`` (:func:`db_path`). ``create=False`` (read commands:
        ``report``, ``runs list/show/export``) refuses a missing file instead of creating an empty
        store. A zero-byte file is always refused (a truncated copy, not a store to overwrite
        silently). An existing file gets a quick integrity check (``PRAGMA quick_check``, once
        per process and file). Store errors (a damaged file, a lock held longer than ``timeout``
        seconds) are one-line :class:`SemsmoothError` messages."""
        self.path = db_path(path)
        self.timeout = float(timeout)
        self._local = threading.local()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise SemsmoothError(f"cannot open results database {self.path}: {e.strerror or e}") from None
        if st is None and not create:
            raise SemsmoothError(f"no results database at {self.path} (nothing stored there yet; check --db "
                                 "or $SEMSMOOTH_DB)")
        if st is not None and not os.path.isfile(self.path):
            raise SemsmoothError(f"results database {self.path} is not a file")
        if st is not None and st.st_size == 0:
            raise SemsmoothError(f"results database {self.path} is an empty file (0 bytes), not a store; "
                                 "delete it or point --db elsewhere to start a new one")
        try:
            if st is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            else:
                self._quick_check(st)
            with self._conn() as c:
                c.executescript(_SCHEMA)
                cols = {r[1] for r in c.execute("PRAGMA table_info(rows)")}
                for name, typ in _ADDED_COLUMNS:   # a store written before rows kept these
                    if name not in cols:
                        c.execute(f"ALTER TABLE rows ADD COLUMN {name} {typ}")
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None
        except OSError as e:
            raise SemsmoothError(f"cannot create results database {self.path}: {e.strerror or e}") from None

    _checked: set = set()

    def _quick_check(self, st) -> None:
        key = (str(self.path.resolve()), st.st_dev, st.st_ino)
        if key in Store._checked:
            return
        with self._conn() as c:
            bad = [r[0] for r in c.execute("PRAGMA quick_check(3)")]
        if bad != ["ok"]:
            raise SemsmoothError(f"results database {self.path} is damaged ({'; '.join(map(str, bad))[:160]}); "
                                 "restore a copy, or save what is readable with: sqlite3 FILE .recover")
        Store._checked.add(key)

    def holders(self) -> list[str]:
        """Processes of this user that have the database (or its WAL) open, as ``"pid 123:
        python -m semsmooth_core runs worker"`` (Linux ``/proc``; empty elsewhere)."""
        base = str(self.path.resolve())
        names = {base, base + "-wal", base + "-shm", base + "-journal"}
        out = []
        try:
            pids = [d for d in os.listdir("/proc") if d.isdigit()]
        except OSError:
            return out
        for pid in pids:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
                if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in names for fd in fds):
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            me = " (this process)" if int(pid) == os.getpid() else ""
            out.append(f"pid {pid}{me}: {cmd[:80]}")
        return out

    def _error(self, e: sqlite3.Error) -> SemsmoothError:
        """A one-line SemsmoothError for an SQLite error on this store."""
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
            who = self.holders()
            held = f"; it is open in {', '.join(who[:3])}" if who else ""
            return SemsmoothError(f"results database {self.path} stayed locked by another process for more than "
                                  f"{self.timeout:g} s{held}; try again when that process is done")
        if isinstance(e, sqlite3.OperationalError) and ("unable to open" in msg or "readonly" in msg):
            return SemsmoothError(f"cannot write results database {self.path}: {msg}")
        return SemsmoothError(f"results database {self.path} is damaged or not a results store ({msg}); "
                              "restore a copy, or save what is readable with: sqlite3 FILE .recover")

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _conn(self):
        """This thread's connection (opened once per thread and process, then reused). SQLite
        errors inside become one-line SemsmoothErrors (:meth:`_error`)."""
        key = (os.getpid(), threading.get_ident())
        c = self._local.__dict__.get(key)
        try:
            if c is None:
                c = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None,
                                    check_same_thread=True)
                c.row_factory = sqlite3.Row
                c.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=FULL")
                c.execute("PRAGMA foreign_keys=ON")
                self._local.__dict__.clear()  # a connection inherited through fork is never used
                self._local.__dict__[key] = c
            yield c
        except sqlite3.Error as e:
            raise self._error(e) from None

    def close(self) -> None:
        for c in list(self._local.__dict__.values()):
            try:
                c.close()
            except sqlite3.Error:
                pass
        self._local.__dict__.clear()

    @contextmanager
    def _tx(self, immediate: bool = True):
        """A transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlocks)."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield c
            except BaseException:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:  # nothing to roll back (the statement that failed ended it)
                    pass
                raise
            c.execute("COMMIT")

    # ------------------------------------------------------------------ runs
    def create_run(self, params: Mapping, indices: Iterable[int], name: str | None = None, *,
                   seed: int | None = None, model_sha256: str | None = None,
                   environment: Mapping | None = None, status: str = "queued", kind: str = "run") -> int:
        """Insert a run and return its id. ``indices`` are the dataset indices it will certify."""
        if status not in STATUSES:
            raise SemsmoothError(f"unknown status {status!r}")
        idx = [int(i) for i in indices]
        if len(set(idx)) != len(idx):
            raise SemsmoothError("a run's indices must be distinct")
        if seed is None and "seed" in params:
            seed = int(params["seed"])
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO runs (name, kind, params, indices, seed, model_sha256, environment, status,"
                " created, total) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (name or "", kind, json.dumps(dict(params), sort_keys=True, default=str), json.dumps(idx),
                 seed, model_sha256, json.dumps(dict(environment or {}), sort_keys=True), status,
                 time.time(), len(idx)))
            run_id = int(cur.lastrowid)
            if not name:
                c.execute("UPDATE runs SET name=? WHERE id=?", (f"run {run_id}", run_id))
        return run_id

    @staticmethod
    def _run_dict(r: sqlite3.Row) -> dict:
        d = dict(r)
        d["params"] = json.loads(d["params"])
        d["indices"] = json.loads(d["indices"])
        d["environment"] = json.loads(d["environment"] or "{}")
        d["cancel"] = bool(d["cancel"])
        return d

    def get_run(self, run_id: int) -> dict:
        """The run as a dict (params/indices/environment decoded) plus ``done`` (rows written) and
        the rows' sums ``n_forward`` and ``seconds`` (for :func:`progress_info`)."""
        with self._conn() as c:
            r = c.execute("SELECT * FROM runs WHERE id=?", (int(run_id),)).fetchone()
            if r is None:
                raise SemsmoothError(f"no run with id {run_id} in {self.path}")
            d = self._run_dict(r)
            d["done"], d["n_forward"], d["seconds"] = c.execute(
                "SELECT COUNT(*), COALESCE(SUM(n_forward),0), COALESCE(SUM(seconds),0) FROM rows WHERE run_id=?",
                (int(run_id),)).fetchone()
        return d

    def find_run(self, ref) -> int:
        """A run id from an id (``"3"``) or a unique name."""
        s = str(ref).strip()
        if s.isdigit():
            self.get_run(int(s))
            return int(s)
        with self._conn() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM runs WHERE name=?", (s,))]
        if not ids:
            raise SemsmoothError(f"no run or file named {s!r} (results database {self.path})")
        if len(ids) > 1:
            raise SemsmoothError(f"{len(ids)} runs are named {s!r}; use an id: {', '.join(map(str, ids))}")
        return ids[0]

    def list_runs(self) -> list[dict]:
        """All runs, newest first, with ``done`` counts and per-run sums for progress."""
        q = ("SELECT runs.id, name, kind, status, cancel, total, created, started, finished, pid, host, "
             "error, seed, params, COUNT(rows.idx) AS done, COALESCE(SUM(rows.n_forward),0) AS n_forward, "
             "COALESCE(SUM(rows.seconds),0) AS seconds FROM runs LEFT JOIN rows ON rows.run_id=runs.id "
             "GROUP BY runs.id ORDER BY runs.id DESC")
        with self._conn() as c:
            out = []
            for r in c.execute(q):
                d = dict(r)
                d["params"] = json.loads(d["params"])
                d["cancel"] = bool(d["cancel"])
                out.append(d)
        return out

    def set_params(self, run_id: int, params: Mapping) -> None:
        """Replace a run's parameters (e.g. with the E estimated once before its first input)."""
        with self._tx() as c:
            c.execute("UPDATE runs SET params=? WHERE id=?",
                      (json.dumps(dict(params), sort_keys=True, default=str), int(run_id)))

    def set_status(self, run_id: int, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise SemsmoothError(f"unknown status {status!r}")
        now = time.time()
        with self._tx() as c:
            if status == "running":
                c.execute("UPDATE runs SET status=?, started=?, finished=NULL, error=NULL, pid=?, host=? "
                          "WHERE id=?", (status, now, os.getpid(), socket.gethostname(), int(run_id)))
            elif status in ("done", "cancelled", "failed"):
                c.execute("UPDATE runs SET status=?, finished=?, error=? WHERE id=?",
                          (status, now, error, int(run_id)))
            else:
                c.execute("UPDATE runs SET status=?, error=? WHERE id=?", (status, error, int(run_id)))

    def claim(self, run_id: int | None = None) -> int | None:
        """Atomically take a queued run (the given one, or the oldest) and mark it running by this
        process. Returns its id, or None when there is nothing to take. Two workers never get
        the same run (the check and the update share one write transaction)."""
        with self._tx() as c:
            if run_id is None:
                r = c.execute("SELECT id FROM runs WHERE status='queued' AND kind='run' "
                              "ORDER BY id LIMIT 1").fetchone()
            else:
                r = c.execute("SELECT id FROM runs WHERE status='queued' AND id=?", (int(run_id),)).fetchone()
            if r is None:
                return None
            c.execute("UPDATE runs SET status='running', started=?, finished=NULL, error=NULL, pid=?, "
                      "host=? WHERE id=?", (time.time(), os.getpid(), socket.gethostname(), r[0]))
            return int(r[0])

    def request_cancel(self, run_id: int) -> str:
        """Ask a run to stop. A queued run is cancelled at once; a running one at the worker's next
        poll (``should_stop``); finished rows stay. Returns the status after the request."""
        with self._tx() as c:
            r = c.execute("SELECT status FROM runs WHERE id=?", (int(run_id),)).fetchone()
            if r is None:
                raise SemsmoothError(f"no run with id {run_id}")
            if r[0] == "queued":
                c.execute("UPDATE runs SET status='cancelled', cancel=1, finished=? WHERE id=?",
                          (time.time(), int(run_id)))
                return "cancelled"
            if r[0] == "running":
                c.execute("UPDATE runs SET cancel=1 WHERE id=?", (int(run_id),))
            return r[0]

    def cancel_requested(self, run_id: int) -> bool:
        with self._conn() as c:
            r = c.execute("SELECT cancel FROM runs WHERE id=?", (int(run_id),)).fetchone()
        return bool(r and r[0])

    def requeue(self, run_id: int) -> int:
        """Resume: put a cancelled/failed/interrupted run back in the queue (finished indices are
        skipped when it runs). Returns how many inputs remain."""
        run = self.get_run(run_id)
        if run["kind"] != "run":
            raise SemsmoothError(f"run {run_id} is an imported log; it cannot be resumed")
        if run["status"] == "running" and self.worker_alive(run):
            raise SemsmoothError(f"run {run_id} is still running (pid {run['pid']})")
        with self._tx() as c:
            c.execute("UPDATE runs SET status='queued', cancel=0, finished=NULL, error=NULL WHERE id=?",
                      (int(run_id),))
        return run["total"] - run["done"]

    def delete_run(self, run_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM rows WHERE run_id=?", (int(run_id),))
            c.execute("DELETE FROM runs WHERE id=?", (int(run_id),))

    @staticmethod
    def worker_alive(run: Mapping) -> bool:
        """Whether the process recorded for a running run still exists (on this host; a run of
        another host is assumed alive)."""
        pid = run.get("pid")
        if not pid:
            return False
        if run.get("host") and run["host"] != socket.gethostname():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:  # a zombie (killed, not yet reaped by its parent) is dead for us
            with open(f"/proc/{int(pid)}/stat") as fh:
                return fh.read().split(")")[-1].split()[0] != "Z"
        except OSError:
            return True

    def reap(self) -> list[int]:
        """Mark runs whose worker died (killed, machine restarted) as failed, so they can be resumed.
        Returns their ids."""
        dead = []
        for run in self.list_runs():
            if run["status"] == "running" and not self.worker_alive(run):
                self.set_status(run["id"], "failed", error=f"worker (pid {run['pid']}) stopped unexpectedly")
                dead.append(run["id"])
        return dead

    # ------------------------------------------------------------------ rows
    def add_rows(self, run_id: int, rows: Iterable[Mapping]) -> int:
        """Write rows in one transaction; rows already there (same run and index) are ignored.
        Returns how many were new."""
        now = time.time()
        vals = []
        for r in rows:
            try:
                vals.append((int(run_id), int(r["index"]), int(r["label"]), int(r["prediction"]),
                             float(r["radius"]), r.get("radius_unit"), _opt(r.get("p_lower"), float),
                             _opt(r.get("rho"), float), int(bool(r["correct"])),
                             _opt(r.get("base_correct"), lambda v: int(bool(v))),
                             _opt(r.get("n_forward"), int), _opt(r.get("seconds"), float),
                             _opt(r.get("clipped"), lambda v: int(bool(v))), now,
                             _opt(r.get("attacker"), str), _opt(r.get("E_scope"), str), _opt(r.get("E"), float),
                             _opt(r.get("q_E_lower"), float), _opt(r.get("sound"), lambda v: int(bool(v))),
                             _opt(r.get("statement"), str),
                             _opt(r.get("attack_broken"), lambda v: int(bool(v))),
                             _opt(r.get("attack_param"), json.dumps), _opt(r.get("attack_prediction"), int)))
            except KeyError as e:
                raise SemsmoothError(f"a result row lacks the key {e.args[0]!r}") from None
        for attempt in range(3):  # a finished row is worth waiting for: up to 3 x timeout
            try:
                return self._insert_rows(vals)
            except SemsmoothError as e:
                if "stayed locked" not in str(e) or attempt == 2:
                    raise
        return 0  # pragma: no cover

    def _insert_rows(self, vals: list) -> int:
        with self._tx() as c:
            before = c.total_changes
            c.executemany("INSERT OR IGNORE INTO rows (run_id, idx, label, prediction, radius, unit, p_lower,"
                          " rho, correct, base_correct, n_forward, seconds, clipped, written, attacker, E_scope,"
                          " E, q_E_lower, sound, statement, attack_broken, attack_param, attack_prediction) "
                          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", vals)
            return c.total_changes - before

    def add_row(self, run_id: int, row: Mapping) -> bool:
        """Write one finished input (a transaction of its own). False if it was already there."""
        return self.add_rows(run_id, [row]) == 1

    def rows(self, run_id: int) -> list[dict]:
        """The run's rows in index order, with the keys of :data:`ROW_FIELDS` (missing values,
        e.g. ``p_lower`` of an imported log, are left out rather than set to None)."""
        with self._conn() as c:
            cur = c.execute("SELECT idx AS 'index', label, prediction, radius, unit AS radius_unit, p_lower, "
                            "rho, correct, base_correct, n_forward, seconds, clipped, attacker, E_scope, E, "
                            "q_E_lower, sound, statement, attack_broken, attack_param, attack_prediction "
                            "FROM rows WHERE run_id=? "
                            "ORDER BY idx", (int(run_id),))
            out = []
            for r in cur:
                d = {k: r[k] for k in r.keys() if r[k] is not None}
                d["correct"] = bool(d["correct"])
                for k in ("base_correct", "clipped", "sound", "attack_broken"):
                    if k in d:
                        d[k] = bool(d[k])
                if "attack_param" in d:
                    d["attack_param"] = json.loads(d["attack_param"])
                out.append(d)
        return out

    def done_indices(self, run_id: int) -> set[int]:
        with self._conn() as c:
            return {r[0] for r in c.execute("SELECT idx FROM rows WHERE run_id=?", (int(run_id),))}

    def pending_indices(self, run_id: int) -> list[int]:
        """The run's indices without a row yet, in the run's order (what a resume certifies)."""
        run = self.get_run(run_id)
        done = self.done_indices(run_id)
        return [i for i in run["indices"] if i not in done]


# ---------------------------------------------------------------------- progress
def progress_info(run: Mapping, now: float | None = None) -> dict:
    """done/total, forward passes per second and ETA (seconds) of a run from its rows' sums (as
    :meth:`Store.list_runs` gives them): rate = Σ n_forward / Σ seconds over finished inputs;
    ETA = remaining inputs × mean seconds per input (None until one input is done)."""
    done, total = int(run.get("done", 0)), int(run.get("total", 0))
    secs, fwd = float(run.get("seconds") or 0.0), float(run.get("n_forward") or 0.0)
    rate = fwd / secs if secs > 0 and fwd > 0 else None  # imported logs carry no forward counts
    eta = (total - done) * secs / done if done and secs > 0 else None
    if run.get("status") != "running":
        eta = None if done < total else 0.0
    return {"done": done, "total": total, "fraction": done / total if total else 1.0,
            "forward_per_second": rate, "eta_seconds": eta}


def model_sha256(model: str | None) -> str | None:
    """SHA-256 of the file behind a model name or path (None when there is no such file)."""
    if not model:
        return None
    from semsmooth_core.models.checkpoint import sha256_file
    from semsmooth_core.paths import models_dir

    for p in (Path(model), models_dir() / f"{model}.pt"):
        if p.is_file():
            return sha256_file(p)
    return None


# ---------------------------------------------------------------------- Cohen TSV
