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


def data_root() -> Path:
    """The folder the app accepts dataset folders under: ``$SEMSMOOTH_DATA_ROOT`` or
    :func:`data_home`. (The CLI's ``--root`` is not limited: whoever runs a command already has
    the machine's shell.)"""
    if os.environ.get("SEMSMOOTH_DATA_ROOT"):
        return Path(os.environ["SEMSMOOTH_DATA_ROOT"]).expanduser().resolve()
    return data_home().resolve()


def any_data_folder_allowed() -> bool:
    """``$SEMSMOOTH_ALLOW_ANY_DATA_FOLDER=1``: the app may read dataset folders anywhere (a
    single-user machine where the browser user owns every file the server can read)."""
    return os.environ.get("SEMSMOOTH_ALLOW_ANY_DATA_FOLDER", "").strip().lower() in ("1", "true", "yes")


def check_data_folder(folder: str | os.PathLike) -> Path:
    """A dataset folder typed into the app, resolved (links followed) and refused with a one-line
    :class:`~semsmooth_core.validation.SemsmoothError` when it lies outside :func:`data_root`
    (unless :func:`any_data_folder_allowed`). Returns the resolved folder."""
    from semsmooth_core.validation import SemsmoothError

    p = Path(folder).expanduser()
    try:
        resolved = p.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        raise SemsmoothError(f"dataset folder {str(folder)[:200]!r} cannot be resolved (a link loop?)") from None
    if any_data_folder_allowed():
        return resolved
    root = data_root()
    if resolved != root and root not in resolved.parents:
        raise SemsmoothError(f"dataset folder {str(folder)[:200]!r} is outside the data root {root}; put the "
                             "data there, or start the app with SEMSMOOTH_DATA_ROOT=<folder> "
                             "(or SEMSMOOTH_ALLOW_ANY_DATA_FOLDER=1)")
    return resolved


def log_dir() -> Path:
    """Where the app writes details of unexpected errors: ``data_home()/logs``."""
    p = data_home() / "logs"
    p.mkdir(parents=True, exist_ok=True)
    return p
