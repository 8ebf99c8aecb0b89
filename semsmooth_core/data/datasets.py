"""Dataset registry: a name -> loader returning ``(x [N,C,H,W] float in [0,1], y [N] int64)``.

``mnist`` is the embedded default (held-out split unless ``split="train"``). Real datasets on
disk register here as well; nothing downloads at run time:

- ``mnist-torchvision``: torchvision's MNIST layout, ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,
  labels-idx1}-ubyte`` (read by ``torchvision.datasets.MNIST(root, download=False)``);
  splits ``train`` (60,000) / ``test`` (10,000).
- ``cifar10``: the CIFAR-10 python version, ``ROOT/cifar-10-batches-py/{data_batch_1..5,
  test_batch}``; splits ``train`` / ``test``. Read here (not by ``torchvision.datasets.CIFAR10``,
  which unpickles without restriction and also refuses any file whose md5 differs from the
  official archive): batch files are opened one at a time with an unpickler that only accepts
  NumPy arrays, and only the batches that hold the asked indices are read.
- ``imagefolder``: a class-per-folder tree (``ROOT/[SPLIT/]CLASS/*.png|jpg``, the ImageNet
  validation layout) through ``torchvision.datasets.ImageFolder``; option ``size=N`` resizes the
  shorter side to N pixels and centre-crops N x N; only the selected files are decoded.

Lazy loaders receive the selection (``indices``) and decode only those inputs.
"""

from __future__ import annotations

import inspect
import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from semsmooth_core.data.embedded import embedded_mnist
from semsmooth_core.validation import SemsmoothError

Loader = Callable[..., tuple[torch.Tensor, torch.Tensor]]
_REGISTRY: dict[str, tuple[Loader, str]] = {}
_CLASSES: dict[str, Callable[..., list[str]]] = {}

MNIST_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def register(name: str, description: str, classes: list[str] | Callable[..., list[str]] | None = None):
    """Register a loader ``fn(split=..., root=..., [indices=...], [**options])``.

    A loader that takes ``indices`` is *lazy*: it gets the selection (a slice, a list or None)
    and must return only those inputs. ``classes`` is the list of class names (or a callable
    ``(split, root) -> list``)."""
    def deco(fn: Loader) -> Loader:
        _REGISTRY[name] = (fn, description)
        if classes is not None:
            _CLASSES[name] = classes if callable(classes) else (lambda split=None, root=None, _c=list(classes): _c)
        return fn
    return deco


@register("mnist", "embedded real MNIST digits, 28x28 grey (held-out split: 1,000 images)", MNIST_CLASSES)
def _mnist(split: str = "heldout", root: str | None = None):
    return embedded_mnist(split)


_CORE_MODULES = {"__init__", "datasets", "embedded", "uploads"}


def _ensure_loaded() -> None:
    """Import the other modules of ``semsmooth_core.data`` (e.g. ``speech``): they register
    their datasets here on import (lazily, so that importing this module stays cheap)."""
    import importlib
    import pkgutil

    import semsmooth_core.data as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in _CORE_MODULES and not info.name.startswith("_"):
            importlib.import_module(f"semsmooth_core.data.{info.name}")


def dataset_names() -> dict[str, str]:
    _ensure_loaded()
    return {k: v[1] for k, v in _REGISTRY.items()}


def dataset_classes(name: str, split: str = "heldout", root: str | None = None) -> list[str] | None:
    """Class names of a registered dataset (index = label), or None when unknown."""
    _check_name(name)
    fn = _CLASSES.get(name)
    return fn(split=split, root=root) if fn else None


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        _ensure_loaded()
    if name not in _REGISTRY:
        raise SemsmoothError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}")


def select_indices(indices: slice | list[int] | None, n: int) -> np.ndarray:
    """Concrete int64 positions for a selection of a dataset of size ``n`` (range-checked)."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(indices, slice):
        return np.arange(n, dtype=np.int64)[indices]
    idx = np.asarray(list(indices), dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise SemsmoothError(f"indices out of range 0..{n - 1}")
    return idx


def load_dataset(name: str, split: str = "heldout", root: str | None = None,
                 indices: slice | list[int] | None = None, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a registered dataset; ``indices`` (a slice or list) selects inputs; ``options`` go to
    the loader (e.g. ``size=224`` for ``imagefolder``). Two options work for every image dataset:
    ``image_size=N`` (shorter side to N, centre crop N x N; the loader's ``size`` when it has one)
    and ``channels="grey"|"rgb"`` (convert, e.g. to match a one-channel model)."""
    _check_name(name)
    fn = _REGISTRY[name][0]
    params = inspect.signature(fn).parameters
    options = dict(options)
    image_size = _check_size(options.pop("image_size", None))
    channels = options.pop("channels", None) or None
    if channels not in (None, "grey", "rgb"):
        raise SemsmoothError(f"channels must be grey or rgb, got {channels!r}")
    if image_size is not None and "size" in params:
        options["size"], image_size = image_size, None      # the loader resizes each file
    if channels is not None and "channels" in params:
        options["channels"], channels = channels, None
    accepts_var = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not accepts_var]
    if unknown:
        raise SemsmoothError(f"dataset {name!r} takes no option {', '.join(unknown)}")
    if "indices" in params:
        x, y = fn(split=split, root=root, indices=indices, **options)
    else:
        x, y = fn(split=split, root=root, **options)
        if indices is not None:
            idx = torch.from_numpy(select_indices(indices, len(x)))
            x, y = x[idx], y[idx]
    if channels is not None:
        x = convert_channels(x, channels)
    if image_size is not None:
        x = resize_images(x, image_size)
    return x, y


def parse_indices(spec: str | None) -> slice | list[int] | None:
    """``"0:100"`` -> slice(0, 100); ``"0:4000:10"`` -> slice(0, 4000, 10); ``"3,7,9"`` -> [3, 7, 9];
    None/"" -> None (all)."""
    if not spec:
        return None
    try:
        if ":" in spec:
            parts = [int(p) if p else None for p in spec.split(":")]
            if len(parts) > 3 or parts[-1] == 0 and len(parts) == 3:
                raise ValueError
            return slice(*parts)
        return [int(p) for p in spec.split(",")]
    except ValueError:
        raise SemsmoothError(f"bad --indices {spec!r}: use START:STOP[:STEP] or a comma list") from None


# --------------------------------------------------------------------------- real datasets on disk

def _need_root(root, name: str) -> Path:
    if not root:
        raise SemsmoothError(f"dataset {name!r} needs --root (the folder that holds it)")
    p = Path(root).expanduser()
    if not p.is_dir():
        raise SemsmoothError(f"dataset root {str(p)!r} is not a folder")
    return p


def _split_is_train(split: str, name: str) -> bool:
    if split in ("train",):
        return True
    if split in ("test", "heldout", "val"):
        return False
    raise SemsmoothError(f"dataset {name!r} has splits train and test, not {split!r}")


@register("mnist-torchvision", "torchvision MNIST under --root (ROOT/MNIST/raw/*-ubyte); splits train/test",
          MNIST_CLASSES)
def _mnist_torchvision(split: str = "test", root: str | None = None, indices=None):
    """torchvision's MNIST files, read by ``torchvision.datasets.MNIST(root, download=False)``.
    The uint8 arrays are read whole (47 MB for train), only the selection is converted."""
    from torchvision.datasets import MNIST

    r = _need_root(root, "mnist-torchvision")
    train = _split_is_train(split, "mnist-torchvision")
    try:
        ds = MNIST(str(r), train=train, download=False)
    except RuntimeError:
        raise SemsmoothError(f"MNIST not found under {r}: expected {r / 'MNIST' / 'raw'}/"
                             "{train,t10k}-{images-idx3,labels-idx1}-ubyte (download once with "
                             "torchvision.datasets.MNIST(root, download=True))") from None
    except (ValueError, AssertionError, OSError) as e:
        raise SemsmoothError(f"MNIST files under {r} are unreadable ({str(e).splitlines()[0][:120]})") from None
    data, targets = ds.data, ds.targets
    if data.ndim != 3 or len(data) != len(targets):
        raise SemsmoothError(f"MNIST files under {r} are inconsistent: {tuple(data.shape)} images, "
                             f"{len(targets)} labels")
    idx = torch.from_numpy(select_indices(indices, len(data)))
    x = data[idx].unsqueeze(1).float() / 255.0
    return x, targets[idx].long()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batch dicts: builtins containers, NumPy arrays and dtypes only."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as fh:
            entry = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise SemsmoothError(f"{path.name} is not a CIFAR-10 python batch ({str(e)[:120]})") from None
    if not isinstance(entry, dict):
        raise SemsmoothError(f"{path.name} is not a CIFAR-10 python batch (no dict inside)")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data = np.asarray(entry.get("data"))
    labels = entry.get("labels", entry.get("fine_labels"))
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels is None or len(labels) != len(data):
        raise SemsmoothError(f"{path.name} is not a CIFAR-10 python batch (data {data.shape})")
    return data, list(labels)


def _cifar_classes(split=None, root=None) -> list[str]:
    if root:
        meta = Path(root) / "cifar-10-batches-py" / "batches.meta"
        if meta.is_file():
            try:
                with open(meta, "rb") as fh:
                    m = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
                names = m.get("label_names") or m.get(b"label_names")
                if names:
                    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
            except Exception:  # a broken meta file only loses the names
                pass
    return list(CIFAR10_CLASSES)


@register("cifar10", "CIFAR-10 python batches under --root (ROOT/cifar-10-batches-py); splits train/test",
          _cifar_classes)
def _cifar10(split: str = "test", root: str | None = None, indices=None):
    """The CIFAR-10 python version, read batch by batch; only the batches that hold the selected
    indices are read, only the selected images are converted. Returns ``[N,3,32,32]``."""
    r = _need_root(root, "cifar10")
    folder = r / "cifar-10-batches-py"
    train = _split_is_train(split, "cifar10")
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    files = [folder / n for n in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SemsmoothError(f"CIFAR-10 not found under {r}: missing {folder}/{', '.join(missing)} "
                             "(the python version, cifar-10-python.tar.gz, extracted)")
    # Selection positions are global over the concatenated batches. Open batches in order until the
    # largest asked position is covered; an open-ended selection needs all of them.
    need_all = indices is None or (isinstance(indices, slice) and (
        indices.stop is None or indices.stop < 0 or (indices.start or 0) < 0 or (indices.step or 1) < 0))
    if not need_all and not isinstance(indices, slice):
        pos = np.asarray(list(indices), dtype=np.int64)
        if len(pos) and pos.min() < 0:
            raise SemsmoothError("indices out of range: negative")
        max_pos = int(pos.max()) if len(pos) else -1
    elif not need_all:
        max_pos = int(indices.stop) - 1
    datas, labels, total = [], [], 0
    for f in files:
        if not need_all and total > max_pos:
            break
        d, lab = _read_cifar_batch(f)
        datas.append(d)
        labels.extend(lab)
        total += len(d)
    data = np.concatenate(datas) if len(datas) > 1 else datas[0]
    if not need_all and isinstance(indices, slice):
        indices = slice(indices.start, min(indices.stop, total), indices.step)
    idx = select_indices(indices, total)
    x = torch.from_numpy(data[idx].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    return x, torch.as_tensor(np.asarray(labels, dtype=np.int64)[idx])


def _folder_for(root, split) -> Path:
    r = _need_root(root, "imagefolder")
    if split and (r / split).is_dir():
        return r / split
    return r


IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""File endings an image folder reads (torchvision's list)."""


def max_folder_files() -> int:
    """Most folder entries an image-folder scan visits (``$SEMSMOOTH_MAX_FOLDER_FILES``, default
    2,000,000: ImageNet's training set is 1.28 M)."""
    try:
        return max(1, int(os.environ.get("SEMSMOOTH_MAX_FOLDER_FILES", 2_000_000)))
    except ValueError:
        return 2_000_000


def scan_image_folder(folder: str | os.PathLike, max_files: int | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(path, label), ...])`` of a class-per-folder tree, in torchvision
    ``ImageFolder``'s order (classes sorted; within a class, folders by path, files by name).

    Unlike ``os.walk(followlinks=True)`` it cannot hang: every folder is visited once (a set of
    ``(device, inode)``, so a link loop ends), and at most ``max_files`` entries are looked at
    (one-line SemsmoothError beyond: a folder that is not a dataset)."""
    folder = Path(folder)
    cap = max_files or max_folder_files()
    seen = 0
    visited: set[tuple[int, int]] = set()

    def key(p) -> tuple[int, int] | None:
        try:
            st = os.stat(p)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def entries(d):
        nonlocal seen
        try:
            with os.scandir(d) as it:
                out = []
                for e in it:
                    seen += 1
                    if seen > cap:
                        raise SemsmoothError(f"{folder} holds more than {cap:,} files and folders; point "
                                             "to a dataset folder (or raise SEMSMOOTH_MAX_FOLDER_FILES)")
                    out.append(e)
                return out
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            return []

    root_key = key(folder)
    if root_key is None:
        raise SemsmoothError(f"no ImageFolder tree under {folder}: the folder does not exist")
    visited.add(root_key)
    classes = sorted(e.name for e in entries(folder) if _is_dir(e))
    if not classes:
        raise SemsmoothError(f"no ImageFolder tree under {folder}: no class folders (ROOT/CLASS/image.png)")
    samples: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        groups = []  # (folder path, [file names])
        stack = [os.path.join(str(folder), cls)]
        while stack:
            d = stack.pop()
            k = key(d)
            if k is None or k in visited:
                continue  # a link back to a folder already seen (a loop, or a duplicate)
            visited.add(k)
            files = []
            for e in entries(d):
                if _is_dir(e):
                    stack.append(e.path)
                elif e.name.lower().endswith(IMG_EXTENSIONS):
                    files.append(e.name)
            groups.append((d, sorted(files)))
        for d, files in sorted(groups):
            samples.extend((os.path.join(d, f), label) for f in files)
    if not samples:
        raise SemsmoothError(f"no ImageFolder tree under {folder}: no image files "
                             f"({', '.join(IMG_EXTENSIONS)}) in the class folders")
    return classes, samples


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()  # follows a link; the visited set stops loops
    except OSError:
        return False


def _imagefolder_classes(split=None, root=None) -> list[str]:
    return scan_image_folder(_folder_for(root, split))[0]


class SemsmoothNotice(UserWarning):
    """A change made to the user's data while loading it (alpha dropped, bits reduced, ...)."""


def _notify(notes: list[str]) -> None:
    import warnings
    from collections import Counter

    for msg, k in Counter(notes).items():
        warnings.warn(f"{k} image(s): {msg}" if k > 1 else msg, SemsmoothNotice, stacklevel=3)


def _resize_crop_pil(im, size: int):
    from PIL import Image

    w, h = im.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def _check_size(size) -> int | None:
    if size is None:
        return None
    try:
        ok = int(size) == float(size) and int(size) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SemsmoothError(f"image size must be a positive number of pixels, got {size!r}")
    if int(size) > 4096:
        raise SemsmoothError(f"image size must be at most 4096 pixels, got {size!r}")
    return int(size)


@register("imagefolder", "an ImageFolder tree ROOT/[SPLIT/]CLASS/image (ImageNet val layout); option size=N",
          _imagefolder_classes)
def _imagefolder(split: str = "heldout", root: str | None = None, indices=None, size: int | None = None,
                 grayscale: bool = False, channels: str | None = None):
    """Images in class folders, scanned by :func:`scan_image_folder` (file names only, no link
    loops, a file-count cap); only the selected files are decoded, each with
    :func:`semsmooth_core.data.uploads.decode_pil` (16-bit/float scaled, alpha dropped with a
    notice, decompression bombs refused). ``size=N``: resize the shorter side to N (bilinear,
    antialiased) and centre-crop N x N; without ``size`` all selected images must share one
    size. ``channels``: ``"grey"`` or ``"rgb"`` (``grayscale=True`` is ``"grey"``); default: RGB.
    Returns ``[N,3,H,W]`` (``[N,1,H,W]`` with grey)."""
    from PIL import Image

    from semsmooth_core.data.uploads import decode_pil, open_image_checked

    folder = _folder_for(root, split)
    size = _check_size(size)
    ch = "grey" if grayscale else (channels or "rgb")
    _, samples = scan_image_folder(folder)
    idx = select_indices(indices, len(samples))
    xs, ys, notes = [], [], []
    for i in idx:  # decoding files is inherently per file
        path, label = samples[int(i)]
        name = os.path.basename(path)
        im = open_image_checked(path, name)
        try:
            arr, n = decode_pil(im, ch, name)
        finally:
            im.close()
        notes.extend(m.split(": ", 1)[-1] for m in n)
        if size is not None:
            pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
            arr = np.asarray(_resize_crop_pil(pil, size), dtype=np.uint8)
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        xs.append(arr)
        ys.append(label)
    _notify(notes)
    if not xs:
        c = 1 if ch == "grey" else 3
        return torch.zeros(0, c, size or 0, size or 0), torch.zeros(0, dtype=torch.long)
    shapes = {a.shape for a in xs}
    if len(shapes) > 1:
        raise SemsmoothError(f"images under {folder} differ in size ({len(shapes)} sizes); pass --image-size N "
                             "(the sidebar's 'Image size' in the app) to resize and centre-crop them to N x N")
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255.0)
    return x, torch.as_tensor(ys, dtype=torch.long)


# --------------------------------------------------------------------------- generic options
def convert_channels(x: torch.Tensor, channels: str | None) -> torch.Tensor:
    """``[N,C,H,W]`` images to ``"grey"`` (ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B, rounded to
    k/255) or ``"rgb"`` (grey repeated); None leaves them."""
    if channels is None:
        return x
    if channels not in ("grey", "rgb"):
        raise SemsmoothError(f"channels must be grey or rgb, got {channels!r}")
    if x.ndim != 4:
        raise SemsmoothError("channels applies to images only")
    c = x.shape[1]
    if channels == "grey" and c == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return torch.round((x * w).sum(1, keepdim=True) * 255.0) / 255.0
    if channels == "rgb" and c == 1:
        return x.repeat(1, 3, 1, 1)
    if c not in (1, 3):
        raise SemsmoothError(f"cannot convert {c}-channel images to {channels}")
    return x


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[N,C,H,W]`` -> ``[N,C,size,size]``: shorter side to ``size`` (bilinear, antialiased),
    centre crop, rounded to k/255 (what ``imagefolder``'s ``size`` does per file)."""
    if x.ndim != 4:
        raise SemsmoothError("image size applies to images only")
    h, w = x.shape[-2:]
    if (h, w) == (size, size) or len(x) == 0:
        return x
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    y = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    y = y[..., top:top + size, left:left + size]
    return torch.round(y.clamp(0, 1) * 255.0) / 255.0
