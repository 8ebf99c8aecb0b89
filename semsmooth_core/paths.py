"""Where shipped assets and user data live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """The shipped assets: ``$SEMSMOOTH_ASSETS`` or ``<repo>/assets``."""
    return Path(os.environ.get("SEMSMOOTH_ASSETS", REPO_ROOT / "assets"))


def models_dir() -> Path:
    return assets_dir() / "models"


def data_home() -> Path:
    """Per-user data directory (results store, caches): ``$SEMSMOOTH_HOME`` or
    ``$XDG_DATA_HOME/semsmooth`` (``~/.local/share/semsmooth``)."""
    if os.environ.get("SEMSMOOTH_HOME"):
        p = Path(os.environ["SEMSMOOTH_HOME"])
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
        p = base / "semsmooth"
    p.mkdir(parents=True, exist_ok=True)
    return p
