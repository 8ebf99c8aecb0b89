"""Results store: round trip, idempotent writes, cancel/requeue, concurrent writers, TSV
import/export (both time formats), bad files."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from semsmooth_core.runs import (Store, db_path, export_tsv, import_tsv, parse_time, parse_tsv,
                                 progress_info)
from semsmooth_core.validation import SemsmoothError


def _row(i, correct=True, radius=0.5, pred=None):
    label = i % 10
    return {"index": i, "label": label, "prediction": label if pred is None else pred, "radius": radius,
            "radius_unit": "degrees", "p_lower": 0.9, "rho": 0.001, "correct": correct,
            "base_correct": True, "n_forward": 100, "seconds": 0.25, "clipped": i % 2 == 1}


def test_db_path_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSMOOTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEMSMOOTH_DB", raising=False)
    assert db_path() == tmp_path / "home" / "runs.sqlite"
    monkeypatch.setenv("SEMSMOOTH_DB", str(tmp_path / "env.sqlite"))
    assert db_path() == tmp_path / "env.sqlite"
    assert db_path(tmp_path / "flag.sqlite") == tmp_path / "flag.sqlite"


def test_round_trip_and_idempotent_rows(tmp_path):
    s = Store(tmp_path / "r.sqlite")
    params = {"dataset": "mnist", "smoothing": "noise", "sigma_eps": 0.25, "seed": 7}
    rid = s.create_run(params, [3, 1, 2], name="t", model_sha256="abc", environment={"torch": "x"})
    run = s.get_run(rid)
    assert run["params"] == params and run["seed"] == 7 and run["indices"] == [3, 1, 2]
    assert run["status"] == "queued" and run["total"] == 3 and run["done"] == 0
    assert run["model_sha256"] == "abc" and run["environment"] == {"torch": "x"}
    assert s.add_row(rid, _row(1)) is True
    assert s.add_row(rid, _row(1, correct=False)) is False  # same (run, index): ignored, first stays
    assert s.add_rows(rid, [_row(3), _row(1)]) == 1
    rows = s.rows(rid)
    assert [r["index"] for r in rows] == [1, 3]
    assert rows[0] == _row(1)  # every field survives the round trip
    assert s.pending_indices(rid) == [2]
    with sqlite3.connect(s.path) as c:  # independent check of the table
        assert c.execute("SELECT COUNT(*) FROM rows WHERE run_id=?", (rid,)).fetchone()[0] == 2
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.find_run("t") == rid and s.find_run(str(rid)) == rid
    with pytest.raises(SemsmoothError, match="no run"):
        s.find_run("nope")


def test_store_of_an_older_schema_gains_the_clipped_column(tmp_path):
    path = tmp_path / "old.sqlite"
    s = Store(path)
    rid = s.create_run({"seed": 0}, [0, 1])
    s.close()
    with sqlite3.connect(path) as c:  # as written before rows kept the clipped flag
        c.execute("ALTER TABLE rows DROP COLUMN clipped")
    s = Store(path)
    assert s.add_row(rid, _row(1))
    assert s.rows(rid)[0]["clipped"] is True


def test_claim_cancel_requeue(tmp_path):
    s = Store(tmp_path / "r.sqlite")
    a = s.create_run({}, [0, 1])
    b = s.create_run({}, [0])
    assert s.request_cancel(b) == "cancelled"  # queued -> cancelled at once
    assert s.claim() == a and s.claim() is None  # b is not queued any more
    assert s.get_run(a)["status"] == "running"
    assert s.request_cancel(a) == "running" and s.cancel_requested(a)
    s.set_status(a, "cancelled")
    assert s.requeue(a) == 2 and not s.cancel_requested(a)
    assert s.get_run(a)["status"] == "queued"


def test_reap_dead_worker(tmp_path):
    s = Store(tmp_path / "r.sqlite")
    rid = s.create_run({}, [0])
    s.claim(rid)
    p = mp.get_context("spawn").Process(target=int)
    p.start()
    p.join()
    with sqlite3.connect(s.path) as c:  # pretend the run belongs to a process that has exited
        c.execute("UPDATE runs SET pid=? WHERE id=?", (p.pid, rid))
    assert s.reap() == [rid]
    assert s.get_run(rid)["status"] == "failed"


def _writer(path, run_id, start, n):
    s = Store(path)
    for i in range(start, start + n):
        s.add_row(run_id, _row(i))
        s.add_row(run_id, _row(i))  # duplicates from a second writer are ignored


def test_concurrent_writers(tmp_path):
    path = tmp_path / "r.sqlite"
    s = Store(path)
    rid = s.create_run({}, range(120))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, rid, k * 30, 40)) for k in range(3)]  # overlapping ranges
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    idx = [r["index"] for r in s.rows(rid)]
    assert idx == list(range(100))  # 0..99: every row once, none lost, none twice


def test_progress_info():
    run = {"status": "running", "done": 5, "total": 20, "seconds": 10.0, "n_forward": 5000}
    p = progress_info(run)
    assert p["forward_per_second"] == pytest.approx(500.0)
    assert p["eta_seconds"] == pytest.approx(15 * 2.0)
    assert p["fraction"] == pytest.approx(0.25)


# ------------------------------------------------------------------ TSV
def test_parse_time_formats():
    assert parse_time("15.4") == pytest.approx(15.4)
    assert parse_time("0:02:32.717239") == pytest.approx(152.717239)
    assert parse_time("1 day, 0:00:01") == pytest.approx(86401.0)
    with pytest.raises(ValueError):
        parse_time("abc")


def test_tsv_round_trip(tmp_path):
    rows = [_row(0), _row(1, correct=False, pred=-1, radius=0.0), _row(2, radius=1.23456)]
    text = export_tsv(rows)
    assert text.splitlines()[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    back = parse_tsv(text)
    assert [(r["index"], r["label"], r["prediction"], r["correct"]) for r in back] == \
           [(r["index"], r["label"], r["prediction"], r["correct"]) for r in rows]
    assert back[2]["radius"] == pytest.approx(1.23, abs=1e-9)  # 3 significant digits, like certify.py
    s = Store(tmp_path / "r.sqlite")
    f = tmp_path / "mylog.tsv"
    f.write_text(text)
    rid = import_tsv(s, f)
    run = s.get_run(rid)
    assert run["kind"] == "import" and run["status"] == "done" and run["name"] == "mylog.tsv"
    assert len(s.rows(rid)) == 3


@pytest.mark.parametrize("content, msg", [
    ("", "empty file"),
    ("\n\n", "empty file"),
    ("idx\tlabel\tpredict\n0\t1\t1\n", "missing column"),
    ("a,b,c\n1,2,3\n", "missing column"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n", "no rows"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\tbig\t1\t1.0\n", "radius 'big'"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\tnan\t1\t1.0\n", "radius"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t2\t1.0\n", "correct"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\n", "columns"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t1\n0\t1\t1\t0.5\t1\t1\n", "twice"),
])
def test_bad_tsv(content, msg):
    with pytest.raises(SemsmoothError, match=msg) as e:
        parse_tsv(content.encode(), name="bad.tsv")
    assert "\n" not in str(e.value)


def test_attack_fields_survive_the_store(tmp_path):
    """certify --attack rows keep attack_broken, the worst parameter and its prediction in the store
    (issue 17: 'records attack_broken per row'); a row without an attack leaves them out."""
    s = Store(tmp_path / "a.sqlite")
    rid = s.create_run({"smoothing": "transform"}, [0, 1], name="att")
    hit = _row(0) | {"attack_broken": False, "attack_param": [12.5], "attack_prediction": 7}
    s.add_rows(rid, [hit, _row(1)])
    rows = s.rows(rid)
    assert rows[0]["attack_broken"] is False and rows[0]["attack_param"] == [12.5]
    assert rows[0]["attack_prediction"] == 7
    assert "attack_broken" not in rows[1] and "attack_param" not in rows[1]
    with sqlite3.connect(s.path) as c:  # independent read: stored as 0 and JSON text
        assert c.execute("SELECT attack_broken, attack_param FROM rows WHERE idx=0").fetchone() == (0, "[12.5]")
