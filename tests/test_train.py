"""Training: augmentation through the transform registry, determinism, learning, the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semsmooth_core import transforms
from semsmooth_core.data import embedded_mnist
from semsmooth_core.models import load_model
from semsmooth_core.models.training import add_noise, augment, evaluate, resolve_preprocess, train
from semsmooth_core.validation import SemsmoothError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    xt, yt = embedded_mnist("train")
    xh, yh = embedded_mnist("heldout")
    # every 10th image: all classes (the splits are stored sorted by class)
    return xt[::10][:300], yt[::10][:300], xh[::10], yh[::10]


def test_augment_uses_registered_transforms(gen):
    x = torch.rand(6, 1, 28, 28, generator=gen)
    g1 = torch.Generator().manual_seed(5)
    out = augment(x, g1, rotation_deg=30, translation_px=3)
    g2 = torch.Generator().manual_seed(5)
    theta = (torch.rand(6, 1, generator=g2) * 2 - 1) * 30
    shift = (torch.rand(6, 2, generator=g2) * 2 - 1) * 3
    assert theta.abs().max() <= 30 and shift.abs().max() <= 3
    want = transforms.get("translation")(transforms.get("rotation")(x, theta, interpolation="bilinear"),
                                         shift, interpolation="bilinear")
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    # no augmentation asked: the batch is untouched
    assert augment(x, g1) is x


def test_noise_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.full((4, 1, 64, 64), 0.5)
    e = add_noise(x, 0.25, g) - x
    assert abs(float(e.mean())) < 0.01 and abs(float(e.std()) - 0.25) < 0.01
    assert add_noise(x, 0.0, g) is x


@pytest.fixture
def one_thread():
    """Training tests run single-threaded: on a busy 2-core machine that is the fastest."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_train_deterministic(tiny, one_thread):
    xt, yt, xh, yh = tiny
    kw = dict(sigma_eps=0.25, epochs=1, batch_size=16, lr=0.05, rotation_deg=10, translation_px=2,
              arch_kwargs={"width": 4}, noise_draws=2, device="cpu")
    m1, r1 = train("small_cnn", xt[:64], yt[:64], xh[:30], yh[:30], seed=3, **kw)
    m2, r2 = train("small_cnn", xt[:64], yt[:64], xh[:30], yh[:30], seed=3, **kw)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert r1.heldout_noise_accuracy_draws == r2.heldout_noise_accuracy_draws
    m3, _ = train("small_cnn", xt[:64], yt[:64], xh[:30], yh[:30], seed=4, **kw)
    assert not torch.equal(m1.state_dict()["classifier.4.weight"], m3.state_dict()["classifier.4.weight"])
    assert len(r1.heldout_noise_accuracy_draws) == 2 and r1.n_train == 64 and r1.n_heldout == 30
    assert r1.steps == 4 and len(r1.history) == 1


def test_train_learns(tiny, one_thread):
    xt, yt, xh, yh = tiny
    model, res = train("small_cnn", xt, yt, xh, yh, sigma_eps=0.1, epochs=3, batch_size=16, lr=0.05,
                       seed=0, arch_kwargs={"width": 8}, noise_draws=1, device="cpu")
    # far above chance (10%) on held-out digits after 3 epochs over 300 noisy images
    assert res.heldout_clean_accuracy > 0.4, res
    assert res.heldout_noise_accuracy > 0.4, res
    assert res.arch_kwargs["num_classes"] == 10 and res.steps == 3 * 19
    assert res.history[0]["train_loss"] > res.history[-1]["train_loss"]
    # the reported numbers are what evaluate() measures on the returned model
    clean, _ = evaluate(model, xh, yh)
    assert clean == res.heldout_clean_accuracy


def test_preprocess_runs_before_noise(tiny):
    xt, yt, xh, yh = tiny
    seen = []

    def pre(x):
        seen.append((float(x.min()), float(x.max())))
        return x * 0.5

    train("small_cnn", xt[:64], yt[:64], xh[:20], yh[:20], sigma_eps=0.5, epochs=1, batch_size=32,
          arch_kwargs={"width": 4}, preprocess=pre, noise_draws=1, device="cpu")
    # noise (sigma 0.5) is added after preprocessing: preprocess always sees pixel values in [0,1]
    assert len(seen) >= 3 and all(lo >= 0 and hi <= 1 for lo, hi in seen)


def test_train_rejects_bad_input(tiny):
    xt, yt, xh, yh = tiny
    for kw, msg in [({"sigma_eps": -0.1}, "sigma_eps"), ({"sigma_eps": float("nan")}, "sigma_eps"),
                    ({"epochs": 0}, "epochs"), ({"rotation_deg": 400}, "rotation"),
                    ({"lr": 0}, "learning rate"), ({"optimizer": "lbfgs"}, "optimizer")]:
        args = dict(sigma_eps=0.25, epochs=1) | kw
        with pytest.raises(SemsmoothError, match=msg):
            train("small_cnn", xt, yt, xh, yh, **args)
    with pytest.raises(SemsmoothError, match="labels"):
        train("small_cnn", xt, yt[:5], xh, yh, sigma_eps=0.25, epochs=1)


def test_resolve_preprocess():
    assert resolve_preprocess(None) is None and resolve_preprocess("none") is None
    f = resolve_preprocess("vignette")
    x = torch.ones(1, 1, 28, 28)
    y = f(x)
    assert y.shape == x.shape and float(y[0, 0, 0, 0]) == 0.0  # the corner is outside the disc


# --------------------------------------------------------------------------- CLI contract

def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "semsmooth_core", "train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_train_end_to_end(tmp_path):
    out = tmp_path / "tiny_model.pt"
    r = _cli("--dataset", "mnist", "--arch", "small_cnn", "--width", "8", "--sigma-eps", "0.25",
             "--epochs", "1", "--rotation", "20", "--translation", "2", "--seed", "0",
             "--train-indices", "0:4000:10", "--val-indices", "0:1000:5", "--noise-draws", "2",
             "--threads", "1", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout[:500]
    card = json.loads(lines[0])
    assert out.exists() and out.with_suffix(".json").exists()
    assert card == json.loads(out.with_suffix(".json").read_text())
    assert card["n_train"] == 400 and card["n_heldout"] == 200 and card["seed"] == 0
    assert card["sigma_eps"] == 0.25 and card["augmentation"]["rotation_deg"] == 20
    assert card["augmentation"]["translation_px"] == 2
    assert 0 <= card["heldout_clean_accuracy"] <= 1 and len(card["heldout_noise_accuracy_draws"]) == 2
    assert card["seconds"] > 0 and card["command"].startswith("python -m semsmooth_core train")
    assert "--rotation 20" in card["command"] and "--train-indices 0:4000:10" in card["command"]
    from semsmooth_core.models.checkpoint import sha256_file

    assert card["sha256"] == sha256_file(out)
    # the checkpoint reproduces the card's held-out clean accuracy exactly
    model, _ = load_model(str(out))
    xh, yh = embedded_mnist("heldout")
    clean, _ = evaluate(model, xh[0:1000:5], yh[0:1000:5])
    assert clean == card["heldout_clean_accuracy"]


@pytest.mark.parametrize("args, msg", [
    (["--sigma-eps", "-1"], "--sigma-eps must be >= 0"),
    (["--sigma-eps", "nan"], "--sigma-eps must be a finite number"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--rotation", "-5"], "--rotation must be >= 0"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--out", "model.txt"], "--out must be a .pt file"),
    (["--train-indices", "a:b"], "bad --indices"),
    (["--preprocess", "sharpen:3"], "preprocess"),
    (["--width", "8", "--arch", "resnet18_small"], "--width applies to --arch small_cnn only"),
    (["--epochs", "two"], "invalid int value"),
])
def test_cli_train_bad_args_exit_2(tmp_path, capsys, args, msg):
    from semsmooth_core.cli import main

    argv = ["train", "--out", str(tmp_path / "m.pt"), "--epochs", "1", "--json",
            "--train-indices", "0:4000:100", "--val-indices", "0:10"] + args
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors (type conversion) exit from the parser
        rc = e.code
    cap = capsys.readouterr()
    assert rc == 2, (rc, cap.err[-500:])
    assert cap.out == ""
    err = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(err) == 1 and msg in err[0], cap.err
    assert not (tmp_path / "m.pt").exists()


def test_cli_train_bad_arg_process_exit_code(tmp_path):
    r = _cli("--out", str(tmp_path / "m.pt"), "--sigma-eps", "-0.5", "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "--sigma-eps must be >= 0" in r.stderr


def test_cli_train_on_torchvision_mnist_folder(tmp_path, capsys, one_thread):
    """The train command on a real on-disk dataset (torchvision's MNIST layout, written here)."""
    import numpy as np

    import struct

    from semsmooth_core.cli import main

    def _write_idx(path, arr):  # MNIST IDX: magic (0, 0, 0x08 ubyte, ndim), big-endian dims, bytes
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
        path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape)
                         + arr.tobytes())

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 40), ("t10k", 12)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    out = tmp_path / "m.pt"
    rc = main(["train", "--dataset", "mnist-torchvision", "--root", str(tmp_path), "--width", "4",
               "--epochs", "1", "--batch-size", "20", "--noise-draws", "1", "--out", str(out),
               "--json", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    card = json.loads(cap.out)
    assert card["n_train"] == 40 and card["n_heldout"] == 12 and card["heldout_split"] == "test"
    assert card["num_classes"] == 10 and "--root" in card["command"]
    model, _ = load_model(str(out))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_cli_train_on_imagefolder_with_image_size(tmp_path, capsys, one_thread):
    import numpy as np
    from PIL import Image

    from semsmooth_core.cli import main

    rng = np.random.default_rng(2)
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("a", "b", "c"):
            (tmp_path / split / cls).mkdir(parents=True)
            for j in range(n):
                Image.fromarray(rng.integers(0, 256, (20 + j, 30, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{j}.png")
    out = tmp_path / "m.pt"
    rc = main(["train", "--dataset", "imagefolder", "--root", str(tmp_path), "--train-split", "train",
               "--val-split", "val", "--image-size", "16", "--width", "4", "--epochs", "1",
               "--noise-draws", "1", "--out", str(out), "--json", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    card = json.loads(cap.out)
    assert card["input_shape"] == [3, 16, 16] and card["num_classes"] == 3
    assert card["n_train"] == 12 and card["n_heldout"] == 6 and "--image-size 16" in card["command"]
