"""Hostile and careless input (issue 16): every case gets one line (or the correct decoded
values), the app and the CLI stay usable, no finished row is lost. Fixtures are generated under
tmp_path. Numbered as in the issue:

1. network exposure and tracebacks; 2. uploads; 3. link loops; 4. 16-bit images;
5. tracebacks / lost work; 6. TSV logs; 7. smaller cases.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semsmooth_core.cli import main
from semsmooth_core.validation import SemsmoothError

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")


def one_line(msg: str) -> bool:
    return bool(msg.strip()) and "\n" not in msg.strip() and "Traceback" not in msg


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private data home and results store for the test."""
    h = tmp_path / "home"
    monkeypatch.setenv("SEMSMOOTH_HOME", str(h))
    monkeypatch.delenv("SEMSMOOTH_DB", raising=False)
    monkeypatch.delenv("SEMSMOOTH_DATA_ROOT", raising=False)
    monkeypatch.delenv("SEMSMOOTH_ALLOW_ANY_DATA_FOLDER", raising=False)
    return h


def cli(capsys, *argv):
    try:
        code = main([*map(str, argv), "--quiet"])
    except SystemExit as e:  # argparse's one-line usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def _rgb_folder(root: Path, sizes=((8, 8),), per_class: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            _png(root / c / f"{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return root


def _tiny_checkpoint(path: Path, in_channels: int = 1) -> Path:
    from semsmooth_core.models.architectures import build
    from semsmooth_core.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build("small_cnn", width=4, in_channels=in_channels).eval()
    return save_checkpoint(path, model, "small_cnn", {"width": 4, "in_channels": in_channels}, {"summary": "test"})


def _bomb_png(path: Path, side: int = 30000) -> Path:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * (side + 1) * 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


# =========================================================================== 1. network, tracebacks
def test_1_config_binds_localhost_and_hides_tracebacks():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] == "none"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    out = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            addr, p = parts[1].rsplit(":", 1)
            if int(p, 16) == port and parts[3] == "0A":  # LISTEN
                out.add(addr)
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_1_streamlit_run_listens_on_loopback_only(home):
    """``streamlit run app.py`` with the project's config answers on 127.0.0.1 only."""
    import urllib.request

    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        ok = False
        while time.time() < deadline and not ok:
            try:
                ok = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok"
            except OSError:
                time.sleep(0.5)
        assert ok, "the app did not answer on 127.0.0.1"
        addrs = _listening(port)
        assert addrs == {"0100007F"}, f"listening on {addrs} (0100007F = 127.0.0.1 only)"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=120)


def test_1_forced_exception_shows_one_line_and_logs_the_traceback(home, monkeypatch):
    from semsmooth_core.runs import Store

    def boom(*a, **k):
        raise RuntimeError("forced failure for the test\nsecond line with secrets")

    monkeypatch.setattr(Store, "reap", boom)  # the Results page calls it unguarded
    at = _app_test()
    at.run()
    at.switch_page("pages/6_Results.py")
    at.run()
    assert not at.exception, "a traceback reached the page"
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and one_line(errs[0]) and "forced failure" in errs[0] and "secrets" not in errs[0], errs
    log = home / "logs" / "app-errors.log"
    assert str(log) in errs[0]
    text = log.read_text()
    assert "Traceback" in text and "second line with secrets" in text
    assert (log.stat().st_mode & 0o777) == 0o600
    # the app stays usable: the sidebar and navigation are still there
    assert at.selectbox(key="dataset").value == "mnist"


def test_1_forced_exception_in_the_sidebar(home, monkeypatch):
    import pages._shared as shared

    monkeypatch.setattr(shared, "sidebar", lambda *a, **k: (_ for _ in ()).throw(KeyError("x")))
    at = _app_test()
    at.run()
    assert not at.exception
    assert any("KeyError" in e.value and "app-errors.log" in e.value for e in at.error)


def test_1_dataset_folder_must_lie_under_the_data_root(home, tmp_path, monkeypatch):
    from semsmooth_core.paths import check_data_folder

    inside = home / "datasets" / "mine"
    inside.mkdir(parents=True)
    assert check_data_folder(inside) == inside.resolve()
    for bad in ("/etc", str(home / ".." / "elsewhere"), str(tmp_path)):
        with pytest.raises(SemsmoothError, match="outside the data root") as e:
            check_data_folder(bad)
        assert one_line(str(e.value))
    link = home / "escape"
    link.symlink_to("/etc")                      # a link inside the root that points outside
    with pytest.raises(SemsmoothError, match="outside the data root"):
        check_data_folder(link)
    monkeypatch.setenv("SEMSMOOTH_ALLOW_ANY_DATA_FOLDER", "1")
    assert check_data_folder("/etc") == Path("/etc").resolve()
    monkeypatch.delenv("SEMSMOOTH_ALLOW_ANY_DATA_FOLDER")
    monkeypatch.setenv("SEMSMOOTH_DATA_ROOT", str(tmp_path))
    assert check_data_folder(tmp_path / "x") == (tmp_path / "x").resolve()


def test_1_sidebar_refuses_a_folder_outside_the_root(home):
    at = _app_test()
    at.run()
    at.selectbox(key="dataset").select("imagefolder").run()
    at.text_input(key="data_root").input("/etc").run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert any("outside the data root" in e and one_line(e) for e in errs), errs
    import pages._shared as shared

    with pytest.raises(SemsmoothError, match="outside the data root"):
        shared.checked_data_root("/etc")


# =========================================================================== 2. uploads
def test_2_upload_area_is_private_unpredictable_and_verified(tmp_path):
    from semsmooth_core.data.uploads import UploadArea

    a, b = UploadArea(tmp_path), UploadArea(tmp_path)
    assert a.path != b.path and a.path.parent == tmp_path
    assert (a.path.stat().st_mode & 0o777) == 0o700
    data = b"model bytes"
    p = a.store("../../evil name.pt", data)
    assert p.parent.parent == a.path and p.read_bytes() == data and "/" not in p.name
    assert (p.stat().st_mode & 0o777) == 0o600
    # a file planted under the same name with other content is not used
    p.write_bytes(b"planted")
    assert a.store("../../evil name.pt", data).read_bytes() == data
    # a link planted at the file's place is replaced, its target untouched
    target = tmp_path / "victim.txt"
    target.write_text("keep")
    p.unlink()
    p.symlink_to(target)
    q = a.store("../../evil name.pt", data)
    assert not q.is_symlink() and q.read_bytes() == data and target.read_text() == "keep"
    # a linked digest folder is refused (never writes through it)
    import hashlib

    other = b"other"
    (a.path / hashlib.sha256(other).hexdigest()).symlink_to(tmp_path)
    with pytest.raises(SemsmoothError, match="tampered"):
        a.store("x.pt", other)
    a.cleanup()
    assert not a.path.exists()
    path_b = b.path
    del b                                         # the session ends: its folder goes with it
    import gc

    gc.collect()
    assert not path_b.exists()


def test_2_size_limits_per_kind():
    from semsmooth_core.data.uploads import UPLOAD_LIMITS, check_upload_size, decode_image

    assert set(UPLOAD_LIMITS) == {"image", "audio", "model", "log"}
    with pytest.raises(SemsmoothError, match="limited to"):
        check_upload_size("image", UPLOAD_LIMITS["image"] + 1)
    check_upload_size("model", UPLOAD_LIMITS["image"] + 1)
    with pytest.raises(SemsmoothError, match="limited to"):
        decode_image(b"\0" * (UPLOAD_LIMITS["image"] + 1))


def test_2_sidebar_upload_goes_to_the_session_area_with_a_limit(home, tmp_path, monkeypatch):
    from semsmooth_core.data import uploads

    ckpt = _tiny_checkpoint(tmp_path / "m.pt").read_bytes()
    at = _app_test()
    at.run()
    at.selectbox(key="model_name").select("Bring your own model…").run()
    at.file_uploader(key="model_upload").set_value(("m.pt", ckpt, "application/octet-stream")).run()
    assert not at.exception
    path = Path(at.session_state["model_path"])
    area = at.session_state["_upload_area"].path
    assert area in path.parents and (area.stat().st_mode & 0o777) == 0o700 and path.read_bytes() == ckpt
    monkeypatch.setitem(uploads.UPLOAD_LIMITS, "model", 100)
    at.file_uploader(key="model_upload").set_value(("big.pt", b"x" * 101, "application/octet-stream")).run()
    assert not at.exception
    assert any("limited to" in e.value and one_line(e.value) for e in at.error)


# =========================================================================== 3. link loops
def test_3_symlink_loop_in_an_image_folder_ends(tmp_path):
    """Two links back up the tree: following links, the walk has 2^40 paths (it never ends)."""
    import threading

    from semsmooth_core.data.datasets import load_dataset

    root = _rgb_folder(tmp_path / "data")
    (root / "a" / "loop1").symlink_to(root / "a")
    (root / "a" / "loop2").symlink_to(root)
    got = {}
    t = threading.Thread(target=lambda: got.update(y=load_dataset("imagefolder", root=str(root))[1]), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "loading an image folder with a link loop did not end within 30 s"
    assert got["y"].tolist() == [0, 0, 1, 1]


def test_3_file_count_cap(tmp_path, monkeypatch):
    from semsmooth_core.data.datasets import load_dataset

    root = _rgb_folder(tmp_path / "data", per_class=6)
    monkeypatch.setenv("SEMSMOOTH_MAX_FOLDER_FILES", "5")
    with pytest.raises(SemsmoothError, match="more than 5 files") as e:
        load_dataset("imagefolder", root=str(root))
    assert one_line(str(e.value))


# =========================================================================== 4. image modes
def _grey16(value: int, shape=(6, 5)) -> Image.Image:
    return Image.fromarray(np.full(shape, value, dtype=np.uint16))


def test_4_sixteen_bit_and_float_images_are_scaled_not_white(tmp_path):
    import io

    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.data.uploads import decode_image

    img = _grey16(32768)
    assert img.mode.startswith("I;16") or img.mode == "I"
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    notes: list[str] = []
    x = decode_image(buf.getvalue(), grayscale=True, notices=notes)
    want = round(32768 / 65535 * 255) / 255               # 128/255, not 1.0
    assert x.shape == (1, 6, 5) and torch.allclose(x, torch.full_like(x, want))
    assert any("16-bit" in n for n in notes)
    x3 = decode_image(buf.getvalue(), grayscale=False)
    assert x3.shape == (3, 6, 5) and torch.allclose(x3, torch.full_like(x3, want))
    # a ramp keeps its order and range
    ramp = np.linspace(0, 65535, 30, dtype=np.uint16).reshape(5, 6)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    xr = decode_image(buf.getvalue(), grayscale=True)[0].numpy()
    assert np.allclose(xr, np.round(ramp / 65535 * 255) / 255)
    # float TIFF in [0,1]
    f = np.full((4, 4), 0.25, dtype=np.float32)
    buf = io.BytesIO()
    Image.fromarray(f, mode="F").save(buf, format="TIFF")
    assert torch.allclose(decode_image(buf.getvalue(), grayscale=True), torch.full((1, 4, 4), 64 / 255))
    buf = io.BytesIO()
    Image.fromarray(f * 9, mode="F").save(buf, format="TIFF")
    with pytest.raises(SemsmoothError, match=r"outside \[0,1\]"):
        decode_image(buf.getvalue())
    # in an image folder too
    root = tmp_path / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        _grey16(32768 if c == "a" else 1000).save(root / c / "x.png")
    xs, ys = load_dataset("imagefolder", root=str(root), channels="grey")
    assert torch.allclose(xs[0], torch.full((1, 6, 5), want))
    assert torch.allclose(xs[1], torch.full((1, 6, 5), round(1000 / 65535 * 255) / 255))


def test_4_alpha_dropped_with_a_notice_palette_expanded():
    import io

    from semsmooth_core.data.uploads import decode_image

    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    notes: list[str] = []
    x = decode_image(buf.getvalue(), notices=notes)
    assert torch.allclose(x[0], torch.full((4, 4), 200 / 255)) and float(x[1:].abs().max()) == 0
    assert any("alpha" in n for n in notes)
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 250, 240, 230] + [0] * 762)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    x = decode_image(buf.getvalue())
    assert torch.allclose(x[:, 0, 0] * 255, torch.tensor([10.0, 20.0, 30.0]))


# =========================================================================== 5. tracebacks, lost work
def test_5_decompression_bomb_in_an_image_folder(tmp_path):
    from semsmooth_core.data.datasets import load_dataset
    from semsmooth_core.data.uploads import decode_image

    root = _rgb_folder(tmp_path / "data")
    bomb = _bomb_png(root / "a" / "zz_bomb.png")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(SemsmoothError, match="too large") as e:
        load_dataset("imagefolder", root=str(root))
    assert one_line(str(e.value))
    x, _ = load_dataset("imagefolder", root=str(root), indices=[0, 3])   # the other files still load
    assert x.shape == (2, 3, 8, 8)
    with pytest.raises(SemsmoothError, match="too large"):
        decode_image(bomb.read_bytes())


def _store_with_rows(db: Path, n: int = 50) -> int:
    from semsmooth_core.runs import Store

    s = Store(db)
    rid = s.create_run({"x": "y" * 2000}, range(n), name="r", status="running")
    s.add_rows(rid, [{"index": i, "label": 1, "prediction": 1, "radius": 0.5, "correct": True} for i in range(n)])
    s.close()
    c = sqlite3.connect(db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return rid


def _corrupt(db: Path) -> None:
    raw = bytearray(db.read_bytes())
    assert len(raw) > 3 * 4096
    for off in range(4096 + 100, len(raw), 997):          # page 1 (the header) stays
        raw[off:off + 50] = b"\xde\xad\xbe\xef" * 12 + b"!!"
    db.write_bytes(bytes(raw))


def test_5_corrupted_store_is_one_line_in_the_cli(tmp_path, capsys, home):
    from semsmooth_core.runs.store import Store

    db = tmp_path / "runs.sqlite"
    _store_with_rows(db)
    _corrupt(db)
    getattr(Store, "_checked", set()).clear()  # checked once per process and file
    for argv in (("report", "1", "--db", db), ("runs", "list", "--db", db), ("runs", "show", "1", "--db", db)):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and one_line(err) and "damaged" in err, (argv, err)
    with pytest.raises(SemsmoothError, match="damaged"):
        Store(db)


def test_5_corrupted_store_is_a_message_on_the_results_page(tmp_path, home, monkeypatch):
    from semsmooth_core.runs.store import Store

    db = tmp_path / "runs.sqlite"
    _store_with_rows(db)
    _corrupt(db)
    getattr(Store, "_checked", set()).clear()  # checked once per process and file
    monkeypatch.setenv("SEMSMOOTH_DB", str(db))
    at = _app_test()
    at.run()
    at.switch_page("pages/6_Results.py")
    at.run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert any("damaged" in e and one_line(e) for e in errs), errs


def test_5_lock_held_too_long_names_the_holder_and_keeps_rows(tmp_path):
    from semsmooth_core.runs import Store

    db = tmp_path / "runs.sqlite"
    s = Store(db, timeout=0.2)
    rid = s.create_run({}, range(3), status="running")
    assert s.add_row(rid, {"index": 0, "label": 0, "prediction": 0, "radius": 1.0, "correct": True})
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.perf_counter()
        with pytest.raises(SemsmoothError, match="locked") as e:
            s.add_row(rid, {"index": 1, "label": 0, "prediction": 0, "radius": 1.0, "correct": True})
        assert time.perf_counter() - t0 >= 0.5                  # retried (3 x 0.2 s) before giving up
        assert one_line(str(e.value)) and f"pid {os.getpid()}" in str(e.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [r["index"] for r in s.rows(rid)] == [0]            # the committed row is still there
    assert s.add_row(rid, {"index": 1, "label": 0, "prediction": 0, "radius": 1.0, "correct": True})


def _noise_args(root, model, *extra):
    return ("certify", "--dataset", "imagefolder", "--root", root, "--split", "x", "--model", model,
            "--smoothing", "noise", "--n0", 5, "--n-eps", 10, "--indices", "0:2", "--json", *extra)


def test_5_channel_mismatch_is_found_before_work_and_can_be_converted(tmp_path, capsys, home):
    root = _rgb_folder(tmp_path / "data")
    model = _tiny_checkpoint(tmp_path / "grey.pt", in_channels=1)
    code, out, err = cli(capsys, *_noise_args(root, model))
    assert code == 2 and one_line(err) and "1-channel" in err and "--channels grey" in err, err
    code, out, err = cli(capsys, *_noise_args(root, model, "--channels", "grey"))
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 2 and res["config"]["channels"] == "grey"
    # grey conversion = PIL's luma, as an independent check
    from semsmooth_core.data.datasets import load_dataset

    x, _ = load_dataset("imagefolder", root=str(root), channels="grey", indices=[0])
    want = np.asarray(Image.open(sorted((root / "a").glob("*.png"))[0]).convert("L"), dtype=np.float32) / 255
    assert np.allclose(x[0, 0].numpy(), want)


def test_5_channels_option_for_tensor_datasets():
    from semsmooth_core.data.datasets import load_dataset

    g, _ = load_dataset("mnist", indices=[0, 1])
    rgb, _ = load_dataset("mnist", indices=[0, 1], channels="rgb")
    assert rgb.shape == (2, 3, 28, 28) and torch.equal(rgb[:, 2], g[:, 0])
    small, _ = load_dataset("mnist", indices=[0, 1], image_size=14)
    assert small.shape == (2, 1, 14, 14) and torch.equal(torch.round(small * 255), small * 255)


def test_5_mixed_image_sizes_take_image_size(tmp_path, capsys, home):
    root = _rgb_folder(tmp_path / "data", sizes=((8, 8), (10, 12)))
    model = _tiny_checkpoint(tmp_path / "rgb.pt", in_channels=3)
    code, out, err = cli(capsys, *_noise_args(root, model, "--indices", "0:3"))
    assert code == 2 and one_line(err) and "--image-size" in err, err
    code, out, err = cli(capsys, *_noise_args(root, model, "--indices", "0:3", "--image-size", 8))
    assert code == 0, err
    assert json.loads(out)["n"] == 3


def test_5_unwritable_out_fails_before_any_input(tmp_path, capsys, home, monkeypatch):
    from semsmooth_core.runs import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "certify_inputs", lambda *a, **k: calls.append(1) or {})
    for bad in ("/proc/semsmooth-test.json", str(tmp_path / "afile" / "out.json")):
        (tmp_path / "afile").write_text("a file, not a folder")
        code, out, err = cli(capsys, "certify", "--model", "mnist_cnn_noise025", "--smoothing", "noise",
                             "--indices", "0:2", "--out", bad, "--json")
        assert code == 2 and one_line(err) and "--out" in err, err
    assert calls == []


def test_5_out_failing_mid_run_loses_no_row(tmp_path, capsys, home, monkeypatch):
    """The disk fills after the start: the rows are in the store and the result on stdout."""
    import semsmooth_core.commands.certify as certify_cmd

    model = _tiny_checkpoint(tmp_path / "m.pt")
    db = tmp_path / "runs.sqlite"

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(certify_cmd.os, "replace", full)
    code, out, err = cli(capsys, "certify", "--model", model, "--smoothing", "noise", "--n0", 5, "--n-eps", 10,
                         "--indices", "0:3", "--out", tmp_path / "o.json", "--db", db, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 3 and len(res["rows"]) == 3 and "No space" in res["out_error"]
    assert err.count("No space") == 1                             # said once, not per row
    from semsmooth_core.runs import Store

    assert len(Store(db).rows(res["run_id"])) == 3


# =========================================================================== 6. TSV logs
HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"


@pytest.mark.parametrize("row,match", [
    ("0\t3\t5\t0.5\t1\t1.0", "correct = 1 but predict 5 != label 3"),
    ("0\t3\t3\t0.5\t0\t1.0", "correct = 0 but predict 3 = label 3"),
    ("0\t3\t-1\t0.0\t1\t1.0", "abstention"),
    ("0\t3\t3\t0.5\t1\t-1 day, 23:59:00", "time"),
    ("0\t3\t3\t0.5\t1\t-2.0", "time"),
])
def test_6_inconsistent_rows_and_negative_times_are_refused(row, match):
    from semsmooth_core.runs.cohen_tsv import parse_tsv

    with pytest.raises(SemsmoothError, match=match) as e:
        parse_tsv(HEADER + row + "\n", name="log.tsv")
    assert one_line(str(e.value)) and "line 2" in str(e.value)


def test_6_bom_is_accepted(tmp_path):
    from semsmooth_core.runs.cohen_tsv import parse_tsv

    text = HEADER + "0\t3\t3\t0.5\t1\t0:00:01.5\n1\t2\t-1\t0.0\t0\t2\n"
    for src in ("\ufeff" + text, ("\ufeff" + text).encode()):
        rows = parse_tsv(src)
        assert [r["seconds"] for r in rows] == [1.5, 2.0] and [r["correct"] for r in rows] == [True, False]
    p = tmp_path / "bom.tsv"
    p.write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode())
    assert len(parse_tsv(p)) == 2


def test_6_large_logs_are_streamed_capped_with_progress(tmp_path, capsys, home):
    from semsmooth_core.runs.cohen_tsv import parse_tsv

    p = tmp_path / "big.tsv"
    n = 25_000
    with open(p, "w") as fh:
        fh.write(HEADER)
        for i in range(n):
            fh.write(f"{i}\t{i % 10}\t{i % 10}\t0.25\t1\t0.1\n")
    seen = []
    rows = parse_tsv(p, progress=lambda d, t: seen.append((d, t)))
    assert len(rows) == n and seen and seen[-1][0] == seen[-1][1] == p.stat().st_size
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    with pytest.raises(SemsmoothError, match="more than 1,000 rows"):
        parse_tsv(p, max_rows=1000)
    with pytest.raises(SemsmoothError, match="limited to"):
        parse_tsv(p, max_bytes=1000)
    with pytest.raises(SemsmoothError, match="limited to"):
        parse_tsv(p.read_bytes(), max_bytes=1000)
    code, out, err = cli(capsys, "runs", "import", p, "--db", tmp_path / "db.sqlite", "--json")
    assert code == 0 and json.loads(out)["rows"] == n


# =========================================================================== 7. smaller
def test_7_empty_indices_and_nan_range_are_refused(tmp_path, capsys, home, monkeypatch):
    from semsmooth_core.runs import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "certify_inputs", lambda config, idx, *a, **k: calls.append(len(idx)) or {})
    code, out, err = cli(capsys, "certify", "--model", "mnist_cnn_noise025", "--smoothing", "noise",
                         "--indices", "", "--json")
    assert code == 2 and "--indices is empty" in err and one_line(err), err
    code, out, err = cli(capsys, "runs", "start", "--config", '{"model": "x", "smoothing": "noise"}',
                         "--indices", " ", "--db", tmp_path / "db.sqlite")
    assert code == 2 and "--indices is empty" in err, err
    for v in ("nan", "inf", "1,nan"):
        code, out, err = cli(capsys, "certify", "--model", "mnist_cnn_noise025", "--transform", "rotation",
                             "--smoothing", "transform", "--attacker-range", v, "--indices", "0:1", "--json")
        assert code == 2 and one_line(err) and "finite" in err, (v, err)
    with pytest.raises(SemsmoothError, match="finite"):
        pipeline.validate_config({"model": "m", "smoothing": "transform", "attacker_range": float("nan")})
    assert calls == []


def test_7_zero_byte_and_missing_stores_are_never_created_by_reads(tmp_path, capsys, home):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for argv in (("report", "1", "--db", empty), ("runs", "list", "--db", empty),
                 ("certify", "--model", "m", "--resume", "1", "--db", empty)):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and one_line(err) and "0 bytes" in err, (argv, err)
    code, out, err = cli(capsys, "certify", "--model", "m", "--smoothing", "noise", "--db", empty, "--indices", "0:1")
    assert code == 2 and "0 bytes" in err
    assert empty.stat().st_size == 0
    missing = tmp_path / "nothing.sqlite"
    code, out, err = cli(capsys, "report", "7", "--db", missing)
    assert code == 2 and one_line(err) and "no results database" in err
    code, out, err = cli(capsys, "runs", "show", "1", "--db", missing)
    assert code == 2 and "no results database" in err
    code, out, err = cli(capsys, "runs", "list", "--db", missing, "--json")
    assert code == 0 and json.loads(out)["runs"] == []
    assert not missing.exists()


def test_7_report_on_a_mistyped_file(tmp_path, capsys, home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = home / "runs.sqlite"
    code, out, err = cli(capsys, "report", "results.tsvx")
    assert code == 2 and one_line(err) and "no file 'results.tsvx'" in err, err
    assert not db.exists()
    code, out, err = cli(capsys, "report", "logs/run.tsv", "--db", tmp_path / "db.sqlite")
    assert code == 2 and "no file" in err and not (tmp_path / "db.sqlite").exists()


def test_7_runs_start_checks_model_and_data_before_queueing(tmp_path, capsys, home):
    db = tmp_path / "db.sqlite"
    code, out, err = cli(capsys, "runs", "start", "--config",
                         json.dumps({"model": str(tmp_path / "missing.pt"), "smoothing": "noise"}),
                         "--indices", "0:2", "--db", db)
    assert code == 2 and one_line(err) and "missing.pt" in err, err
    root = _rgb_folder(home / "data")
    grey = _tiny_checkpoint(tmp_path / "grey.pt", in_channels=1)
    code, out, err = cli(capsys, "runs", "start", "--config",
                         json.dumps({"model": str(grey), "smoothing": "noise", "dataset": "imagefolder",
                                     "root": str(root), "split": "x"}), "--indices", "0:2", "--db", db)
    assert code == 2 and "1-channel" in err, err
    from semsmooth_core.runs import Store

    assert Store(db).list_runs() == []                          # nothing was queued


def test_7_loud_float_wav_gets_a_notice():
    import io

    import soundfile as sf

    from semsmooth_core import audio

    t = np.arange(16000) / 16000
    x = (10 * 0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)     # peak 5 = +14 dBFS
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
    dec = audio.decode_audio(buf.getvalue(), "loud.wav")
    msg = [n for n in dec.notices if "clipped" in n]
    assert msg and "+14.0 dBFS" in msg[0], dec.notices
    quiet = io.BytesIO()
    sf.write(quiet, x / 10, 16000, format="WAV", subtype="FLOAT")
    assert not any("clipped" in n for n in audio.decode_audio(quiet.getvalue(), "ok.wav").notices)


def test_6_results_page_import_checks_the_log(home):
    at = _app_test()
    at.run()
    at.switch_page("pages/6_Results.py")
    at.run()
    bad = (HEADER + "0\t3\t5\t0.5\t1\t1.0\n").encode()
    at.file_uploader(key="results_upload").set_value(("bad.tsv", bad, "text/tab-separated-values")).run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert len(errs) == 1 and "correct = 1" in errs[0] and one_line(errs[0]), errs
    good = ("\ufeff" + HEADER + "0\t3\t3\t0.5\t1\t1.0\n1\t2\t-1\t0\t0\t2.0\n").encode()
    at.file_uploader(key="results_upload").set_value(("good.tsv", good, "text/tab-separated-values")).run()
    assert not at.exception and not at.error
    assert any("Imported good.tsv" in s.value for s in at.success)
