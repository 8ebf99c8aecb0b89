"""User uploads: decode bytes to tensors with one-line errors for anything that is not valid."""

from __future__ import annotations

import io

import numpy as np
import torch

from semsmooth_core.validation import SemsmoothError

MAX_PIXELS = 4096 * 4096


def decode_image(data: bytes, grayscale: bool = False, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an uploaded image (PNG, JPEG, ...) to ``[C,H,W]`` float32 in [0,1] (multiples of
    1/255). ``grayscale`` converts to one channel; ``size=(H, W)`` resizes (bilinear)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise SemsmoothError("the uploaded file is empty")
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise SemsmoothError(f"image too large ({img.width}x{img.height}); at most {MAX_PIXELS} pixels")
        img.load()
    except SemsmoothError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise SemsmoothError("the file is not an image that can be read (PNG, JPEG, BMP, ...)") from None
    img = img.convert("L" if grayscale else "RGB")
    if size is not None:
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.astype(np.float32) / 255.0)
