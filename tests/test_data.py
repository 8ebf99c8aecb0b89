"""Datasets on disk (fixtures written in the real formats), the embedded data, uploads."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semsmooth_core.data import decode_image, embedded_mnist, embedded_photos
from semsmooth_core.data.datasets import dataset_classes, dataset_names, load_dataset, parse_indices
from semsmooth_core.validation import SemsmoothError

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- fixture writers

def _write_idx(path: Path, arr: np.ndarray) -> None:
    """The MNIST IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian int32 dims, data."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as fh:
        fh.write(struct.pack(">BBBB", 0, 0, 0x08, arr.ndim))
        fh.write(struct.pack(f">{arr.ndim}i", *arr.shape))
        fh.write(arr.tobytes())


@pytest.fixture
def mnist_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", 50), ("t10k", 20)):
        x = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = RNG.integers(0, 10, size=n, dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        data[prefix] = (x, y)
    return tmp_path, data


def _write_cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    # as the official python version: a dict with bytes keys, data [N, 3072] uint8 (R, G, B planes
    # of 32x32, row-major), labels a list of ints; pickled with protocol 2.
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"fixture", b"labels": labels, b"data": data,
                     b"filenames": [b"x.png"] * len(labels)}, fh, protocol=2)


@pytest.fixture
def cifar_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name, n in [(f"data_batch_{i}", 6) for i in range(1, 6)] + [("test_batch", 7)]:
        d = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        lab = RNG.integers(0, 10, size=n).tolist()
        _write_cifar_batch(folder / name, d, lab)
        batches[name] = (d, lab)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog",
                                      b"frog", b"horse", b"ship", b"truck"]}, fh, protocol=2)
    return tmp_path, batches


@pytest.fixture
def folder_root(tmp_path):
    root = tmp_path / "imgs"
    files = {}
    for ci, cls in enumerate(["cat", "dog", "emu"]):
        (root / "val" / cls).mkdir(parents=True)
        for j in range(2):
            arr = RNG.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
            p = root / "val" / cls / f"{j}.png"
            Image.fromarray(arr).save(p)
            files[(cls, j)] = arr
    return root, files


# --------------------------------------------------------------------------- mnist-torchvision

def test_mnist_torchvision_layout(mnist_root):
    root, data = mnist_root
    x, y = load_dataset("mnist-torchvision", split="train", root=str(root), indices=[3, 0, 49])
    xs, ys = data["train"]
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_array_equal((x[:, 0] * 255).round().byte().numpy(), xs[[3, 0, 49]])
    np.testing.assert_array_equal(y.numpy(), ys[[3, 0, 49]])
    xt, yt = load_dataset("mnist-torchvision", split="test", root=str(root), indices=slice(5, 9))
    np.testing.assert_array_equal((xt[:, 0] * 255).round().byte().numpy(), data["t10k"][0][5:9])
    assert dataset_classes("mnist-torchvision") == [str(i) for i in range(10)]


def test_mnist_torchvision_missing(tmp_path):
    with pytest.raises(SemsmoothError, match="MNIST not found"):
        load_dataset("mnist-torchvision", split="test", root=str(tmp_path))
    with pytest.raises(SemsmoothError, match="needs --root"):
        load_dataset("mnist-torchvision", split="test")
    with pytest.raises(SemsmoothError, match="not a folder"):
        load_dataset("mnist-torchvision", split="test", root=str(tmp_path / "nope"))


def test_mnist_torchvision_bad_split_and_index(mnist_root):
    root, _ = mnist_root
    with pytest.raises(SemsmoothError, match="splits train and test"):
        load_dataset("mnist-torchvision", split="banana", root=str(root))
    with pytest.raises(SemsmoothError, match="out of range"):
        load_dataset("mnist-torchvision", split="test", root=str(root), indices=[20])


# --------------------------------------------------------------------------- cifar10

def _cifar_images(d: np.ndarray) -> np.ndarray:
    return d.reshape(-1, 3, 32, 32)


def test_cifar10_layout_and_global_indices(cifar_root):
    root, batches = cifar_root
    # positions are global over data_batch_1..5 (6 images each): 7 -> batch 2, row 1
    x, y = load_dataset("cifar10", split="train", root=str(root), indices=[0, 7, 29])
    assert x.shape == (3, 3, 32, 32)
    want = np.stack([_cifar_images(batches["data_batch_1"][0])[0],
                     _cifar_images(batches["data_batch_2"][0])[1],
                     _cifar_images(batches["data_batch_5"][0])[5]])
    np.testing.assert_array_equal((x * 255).round().byte().numpy(), want)
    assert y.tolist() == [batches["data_batch_1"][1][0], batches["data_batch_2"][1][1],
                          batches["data_batch_5"][1][5]]
    xt, yt = load_dataset("cifar10", split="test", root=str(root))
    np.testing.assert_array_equal((xt * 255).round().byte().numpy(), _cifar_images(batches["test_batch"][0]))
    assert yt.tolist() == batches["test_batch"][1]
    assert dataset_classes("cifar10", root=str(root))[9] == "truck"


def test_cifar10_reads_only_needed_batches(cifar_root):
    root, _ = cifar_root
    # later batches are garbage: a selection inside batch 1 must not open them
    for i in range(2, 6):
        (root / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(b"garbage")
    x, _ = load_dataset("cifar10", split="train", root=str(root), indices=slice(0, 4))
    assert x.shape == (4, 3, 32, 32)
    with pytest.raises(SemsmoothError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", split="train", root=str(root), indices=[8])


def test_cifar10_refuses_code_in_pickle(cifar_root, tmp_path):
    root, _ = cifar_root
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(SemsmoothError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", split="test", root=str(root))
    assert not marker.exists()


def test_cifar10_missing(tmp_path):
    with pytest.raises(SemsmoothError, match="CIFAR-10 not found"):
        load_dataset("cifar10", split="test", root=str(tmp_path))


# --------------------------------------------------------------------------- imagefolder

def test_imagefolder_tree(folder_root):
    root, files = folder_root
    x, y = load_dataset("imagefolder", split="val", root=str(root), indices=[0, 3, 5])
    assert x.shape == (3, 3, 20, 30)
    # ImageFolder order: classes sorted, files sorted -> 0 = cat/0, 3 = dog/1, 5 = emu/1
    want = np.stack([files[("cat", 0)], files[("dog", 1)], files[("emu", 1)]]).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal((x * 255).round().byte().numpy(), want)
    assert y.tolist() == [0, 1, 2]
    assert dataset_classes("imagefolder", split="val", root=str(root)) == ["cat", "dog", "emu"]
    # the split folder is optional: root itself may be the class-per-folder tree
    x2, _ = load_dataset("imagefolder", split="heldout", root=str(root / "val"), indices=[0])
    torch.testing.assert_close(x2, x[:1])


def test_imagefolder_size_and_lazy(folder_root):
    root, _ = folder_root
    (root / "val" / "emu" / "9_broken.png").write_bytes(b"not a png")  # never decoded unless selected
    x, y = load_dataset("imagefolder", split="val", root=str(root), indices=slice(0, 4), size=16)
    assert x.shape == (4, 3, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    with pytest.raises(SemsmoothError, match="not a readable image"):
        load_dataset("imagefolder", split="val", root=str(root), indices=[6])
    with pytest.raises(SemsmoothError, match="size must be"):
        load_dataset("imagefolder", split="val", root=str(root), indices=[0], size=0)
    with pytest.raises(SemsmoothError, match="takes no option"):
        load_dataset("cifar10", split="test", root=str(root), size=3)


def test_imagefolder_mixed_sizes_need_size(folder_root):
    root, _ = folder_root
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "val" / "cat" / "2.png")
    with pytest.raises(SemsmoothError, match="differ in size"):
        load_dataset("imagefolder", split="val", root=str(root))
    x, _ = load_dataset("imagefolder", split="val", root=str(root), size=8)
    assert x.shape == (7, 3, 8, 8)


def test_imagefolder_empty(tmp_path):
    with pytest.raises(SemsmoothError, match="ImageFolder"):
        load_dataset("imagefolder", root=str(tmp_path))


# --------------------------------------------------------------------------- registry, embedded

def test_registry_names_and_indices():
    names = dataset_names()
    assert {"mnist", "mnist-torchvision", "cifar10", "imagefolder"} <= set(names)
    with pytest.raises(SemsmoothError, match="unknown dataset"):
        load_dataset("nope")
    assert parse_indices("0:10:2") == slice(0, 10, 2)
    assert parse_indices("3,7") == [3, 7]
    assert parse_indices(None) is None
    for bad in ("a:b", "1,x", "0:1:0", "1:2:3:4"):
        with pytest.raises(SemsmoothError):
            parse_indices(bad)


def test_embedded_mnist_split_disjoint_and_stratified():
    xt, yt = embedded_mnist("train")
    xh, yh = embedded_mnist("heldout")
    assert xt.shape == (4000, 1, 28, 28) and xh.shape == (1000, 1, 28, 28)
    assert torch.bincount(yh, minlength=10).min() >= 90
    # no held-out image is also a training image
    ht = {bytes((a * 255).round().byte().numpy()) for a in xt}
    assert not any(bytes((a * 255).round().byte().numpy()) in ht for a in xh)
    x, y = load_dataset("mnist", indices=[0, 1])
    torch.testing.assert_close(x, xh[:2])
    with pytest.raises(SemsmoothError, match="unknown split"):
        embedded_mnist("test")


def test_embedded_photos_are_pngs_with_provenance():
    photos = embedded_photos()
    assert len(photos) >= 4
    import json

    meta = json.loads((next(iter(photos.values())).parent / "photos.json").read_text())
    for name, path in photos.items():
        assert name in meta["photos"] and meta["photos"][name]["licence"]
        with Image.open(path) as im:
            assert im.format == "PNG" and max(im.size) <= 512
            assert list(meta["photos"][name]["saved_size_hw"]) == [im.height, im.width]


# --------------------------------------------------------------------------- uploads

def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_image_roundtrip_and_options():
    arr = RNG.integers(0, 256, size=(12, 9, 3), dtype=np.uint8)
    x = decode_image(_png_bytes(arr))
    assert x.shape == (3, 12, 9)
    np.testing.assert_array_equal((x * 255).round().byte().numpy(), arr.transpose(2, 0, 1))
    g = decode_image(_png_bytes(arr), grayscale=True, size=(28, 28))
    assert g.shape == (1, 28, 28)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n garbage", b"hello world" * 10, bytes(range(256))])
def test_decode_image_refuses_garbage(data):
    with pytest.raises(SemsmoothError):
        decode_image(data)


def test_decode_image_truncated_png():
    arr = RNG.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    with pytest.raises(SemsmoothError, match="not an image"):
        decode_image(_png_bytes(arr)[:200])
