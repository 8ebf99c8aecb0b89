"""User uploads: where they are kept, how large they may be, and how images decode.

- :class:`UploadArea`: a private folder per app session (``tempfile.mkdtemp``: mode 0700, an
  unpredictable name), files content-addressed by their full SHA-256, written with
  ``O_CREAT|O_EXCL|O_NOFOLLOW`` (mode 0600); a file already there is reused only after its
  checksum is verified. The folder is removed when the area is garbage-collected (the session
  ends), on :meth:`UploadArea.cleanup`, or at interpreter exit.
- :data:`UPLOAD_LIMITS`: size limits per kind (images, audio, models, logs), checked by
  :func:`check_upload_size` and stated on the pages.
- :func:`decode_pil`: every PIL image mode decoded explicitly (16-bit and 32-bit integer and
  float images scaled to [0,1], alpha dropped with a notice, palettes expanded, CMYK/YCbCr
  converted), then rounded to 8 bits (multiples of 1/255, DESIGN principle 3).
  :func:`open_image_checked` refuses decompression bombs with one line.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch

from semsmooth_core.validation import SemsmoothError

MAX_PIXELS = 4096 * 4096
"""Largest image (width × height) decoded from an upload or an image folder."""

MIB = 2**20
UPLOAD_LIMITS: dict[str, int] = {"image": 20 * MIB, "audio": 20 * MIB, "model": 200 * MIB, "log": 50 * MIB}
"""Bytes per upload, by kind. The server-wide cap (``server.maxUploadSize``) is the largest."""


def limit_text(kind: str) -> str:
    """``"at most 20 MiB"`` for a page caption."""
    return f"at most {UPLOAD_LIMITS[kind] // MIB} MiB"


def check_upload_size(kind: str, data: bytes | int, name: str = "the file") -> None:
    """One-line SemsmoothError when an upload of ``kind`` is empty or over its limit."""
    n = data if isinstance(data, int) else len(data)
    if n == 0:
        raise SemsmoothError(f"{name} is empty (0 bytes)")
    if n > UPLOAD_LIMITS[kind]:
        raise SemsmoothError(f"{name} is {n / MIB:.1f} MiB; {kind} uploads are limited to {UPLOAD_LIMITS[kind] // MIB} MiB")


# --------------------------------------------------------------------------- private upload folder
def _safe_name(name: str, default: str = "upload.bin") -> str:
    s = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(str(name or "")))[-80:].lstrip(".")
    return s or default


def _sha256_fd(fd: int) -> str:
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return h.hexdigest()
        h.update(b)


class UploadArea:
    """A private folder for one session's uploads (see the module docstring).

    ``store(name, data)`` returns the path of a file whose content is ``data``: ``<area>/<sha256>/
    <name>``. Nothing outside the area is ever written, links are never followed."""

    def __init__(self, parent: str | os.PathLike | None = None):
        self.path = Path(tempfile.mkdtemp(prefix="semsmooth-up-", dir=parent))  # 0700, random name
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def store(self, name: str, data: bytes, kind: str = "model") -> Path:
        check_upload_size(kind, data, name)
        digest = hashlib.sha256(data).hexdigest()
        if not self.path.is_dir() or self.path.is_symlink():
            raise SemsmoothError("the upload folder of this session is gone; reload the page")
        sub = self.path / digest
        try:
            os.mkdir(sub, 0o700)
        except FileExistsError:
            pass
        if sub.is_symlink() or not sub.is_dir():
            raise SemsmoothError("the upload folder was tampered with (a link where a folder was expected)")
        path = sub / _safe_name(name)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            # Reuse only a regular file (not a link) whose content is what was uploaded.
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                fd = None
            if fd is not None:
                try:
                    import stat

                    if stat.S_ISREG(os.fstat(fd).st_mode) and _sha256_fd(fd) == digest:
                        return path
                finally:
                    os.close(fd)
            os.unlink(path)  # wrong content or a link: replace it (unlink removes the link itself)
            fd = os.open(path, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return path

    def cleanup(self) -> None:
        self._finalizer()

    @property
    def alive(self) -> bool:
        return self._finalizer.alive


# --------------------------------------------------------------------------- images
def open_image_checked(src, label: str = "the file", max_pixels: int = MAX_PIXELS):
    """``PIL.Image.open`` with one-line errors: not an image, or larger than ``max_pixels``
    (decompression bombs are refused from the header, before any pixel is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(src)
    except Image.DecompressionBombError:
        raise SemsmoothError(f"{label}: image too large (a decompression bomb?); at most {max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise SemsmoothError(f"{label} is not a readable image (PNG, JPEG, BMP, ...)") from None
    if img.width * img.height > max_pixels:
        img.close()
        raise SemsmoothError(f"{label}: image too large ({img.width}x{img.height}); at most {max_pixels} pixels")
    return img


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # ITU-R 601-2, what PIL's convert('L') uses


def decode_pil(img, channels: str | None = None, label: str = "image") -> tuple[np.ndarray, list[str]]:
    """A PIL image -> ``(uint8 array [C,H,W], notices)``; every mode is decoded explicitly.

    Grey modes (``1``, ``L``, ``I;16*``, ``I``, ``F``) give one channel, colour modes three.
    16-bit (``I;16``, ``I`` of a 16-bit PNG: 0..65535) and float (``F``: values in [0,1]) are
    scaled to [0,1]; more than 8 bits are then rounded to 8 (with a notice). Alpha is dropped
    with a notice; palettes are expanded. ``channels`` = ``"grey"`` or ``"rgb"`` converts
    (grey: ITU-R 601 luma, as PIL's ``convert('L')``). Anything else -> one-line SemsmoothError."""
    from PIL import Image

    notices: list[str] = []
    try:
        img.load()
    except Image.DecompressionBombError:
        raise SemsmoothError(f"{label}: image too large (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise SemsmoothError(f"{label} is not a readable image ({str(e)[:100]})") from None
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        a = np.asarray(img.getchannel("A"))
        if a.min() < 255:
            notices.append(f"{label}: transparency (alpha channel) dropped")
        img = img.convert("L" if mode in ("LA", "La") else "RGB")
        mode = img.mode
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
        mode = "RGB"
    if mode == "1":
        arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    elif mode in ("L", "RGB"):
        if mode == "RGB" and channels in ("grey", "gray", "L", 1):
            img = img.convert("L")  # PIL's own integer luma: the same pixels as before
        arr = np.asarray(img, dtype=np.float64) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        raw = np.asarray(img).astype(np.float64)
        if raw.size and (raw.min() < 0 or raw.max() > 65535):
            raise SemsmoothError(f"{label}: 32-bit integer image with values outside 0..65535; save it as 8 or 16 bit")
        arr = raw / 65535.0
        notices.append(f"{label}: 16-bit image scaled to [0,1] and rounded to 8 bits")
    elif mode == "F":
        raw = np.asarray(img).astype(np.float64)
        if not np.isfinite(raw).all() or (raw.size and (raw.min() < 0 or raw.max() > 1)):
            raise SemsmoothError(f"{label}: float image with values outside [0,1] (or NaN); scale it to [0,1]")
        arr = raw
        notices.append(f"{label}: float image rounded to 8 bits")
    else:
        raise SemsmoothError(f"{label}: image mode {mode!r} is not supported; save it as 8-bit RGB or grey")
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if channels in ("grey", "gray", "L", 1) and arr.shape[0] == 3:
        arr = np.tensordot(_LUMA, arr, axes=1)[None]
    elif channels in ("rgb", "RGB", 3) and arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    elif channels not in (None, "grey", "gray", "L", 1, "rgb", "RGB", 3):
        raise SemsmoothError(f"channels must be grey or rgb, got {channels!r}")
    return np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8), notices


def decode_image(data: bytes, grayscale: bool = False, size: tuple[int, int] | None = None,
                 notices: list[str] | None = None) -> torch.Tensor:
    """Decode an uploaded image (PNG, JPEG, TIFF, ...) to ``[C,H,W]`` float32 in [0,1] (multiples
    of 1/255) with :func:`decode_pil` (16-bit and float images scaled, not clipped to white).
    ``grayscale`` converts to one channel, else three; ``size=(H, W)`` resizes (bilinear).
    Notices (alpha dropped, bits reduced) are appended to ``notices`` when given."""
    from PIL import Image

    if not data:
        raise SemsmoothError("the uploaded file is empty")
    check_upload_size("image", data, "the image")
    try:
        img = open_image_checked(io.BytesIO(data), "the file")
        arr, notes = decode_pil(img, "grey" if grayscale else "rgb", "the image")
    except SemsmoothError as e:
        if "not a readable image" in str(e):
            raise SemsmoothError("the file is not an image that can be read (PNG, JPEG, BMP, ...)") from None
        raise
    if size is not None:
        pil = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
        arr = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if notices is not None:
        notices.extend(notes)
    return torch.from_numpy(arr.astype(np.float32) / 255.0)
