"""Extract a few photos bundled with scikit-image and scikit-learn into assets/photos/*.png
(downscaled so that the long side is at most --max-side pixels, Lanczos), plus
assets/photos/photos.json with the provenance and licence of each.

    python scripts/extract_photos.py            # --max-side 512

The photos are used for the image-size effect on the interpolation error E (Fischer et al.
Fig. 6). scikit-image and scikit-learn are build-time tools of this script; the app reads the PNGs.
Nothing is downloaded: every image below ships inside the installed packages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# name -> (loader, source, author/credit, licence, where it came from)
PHOTOS = {
    "astronaut": ("skimage:astronaut", "scikit-image skimage.data.astronaut()",
                  "NASA (Eileen Collins, NASA Great Images database, https://flic.kr/p/r9qvLn)",
                  "public domain (no known copyright restrictions)"),
    "coffee": ("skimage:coffee", "scikit-image skimage.data.coffee()",
               "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    "rocket": ("skimage:rocket", "scikit-image skimage.data.rocket()",
               "SpaceX (DSCOVR launch on Falcon 9, "
               "https://www.flickr.com/photos/spacexphotos/16511594820/)", "public domain"),
    "hubble_deep_field": ("skimage:hubble_deep_field", "scikit-image skimage.data.hubble_deep_field()",
                          "NASA (Hubble eXtreme Deep Field, HubbleSite release 2012-37)",
                          "public domain (NASA media guidelines)"),
    "china": ("sklearn:china.jpg", "scikit-learn sklearn.datasets.load_sample_image('china.jpg')",
              "danielbuechele (https://www.flickr.com/photos/danielbuechele/6061409035/)",
              "CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/)"),
    "flower": ("sklearn:flower.jpg", "scikit-learn sklearn.datasets.load_sample_image('flower.jpg')",
               "vultilion (https://www.flickr.com/photos/vultilion/6056698931/; scikit-learn's "
               "README names danielbuechele, its link is vultilion's)",
               "CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/)"),
}


def load(spec: str) -> np.ndarray:
    kind, name = spec.split(":", 1)
    if kind == "skimage":
        import skimage.data

        return np.asarray(getattr(skimage.data, name)())
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image(name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-side", type=int, default=512, help="long side of the saved PNGs, pixels")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "photos")
    args = ap.parse_args()

    import skimage
    import sklearn

    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, (spec, source, credit, licence) in PHOTOS.items():
        arr = load(spec)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, (name, arr.shape)
        h, w = arr.shape[:2]
        img = Image.fromarray(arr, "RGB")
        scale = min(1.0, args.max_side / max(h, w))
        if scale < 1.0:
            img = img.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
        path = args.out / f"{name}.png"
        img.save(path, optimize=True)
        manifest[name] = {"file": path.name, "source": source, "credit": credit, "licence": licence,
                          "original_size_hw": [h, w], "saved_size_hw": [img.height, img.width],
                          "bytes": path.stat().st_size,
                          "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        print(f"{path.name}: {h}x{w} -> {img.height}x{img.width}, {path.stat().st_size // 1024} KiB, {licence}")
    meta = {"made_by": f"python scripts/extract_photos.py --max-side {args.max_side}",
            "scikit-image": skimage.__version__, "scikit-learn": sklearn.__version__, "photos": manifest}
    (args.out / "photos.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
