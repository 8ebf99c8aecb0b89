"""``python -m semsmooth_core <command> ... [--json]``.

Each command lives in its own module under ``semsmooth_core/commands/`` and defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args, progress) -> dict``. Contract (DESIGN.md):
with ``--json`` exactly one JSON object goes to stdout; progress goes to stderr; exit code 0 on
success, 2 on a usage error with a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import pkgutil
import sqlite3
import sys
import warnings
from typing import Callable

from semsmooth_core.validation import SemsmoothError


def _commands():
    import semsmooth_core.commands as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"semsmooth_core.commands.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: getattr(m, "ORDER", 50))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def stderr_progress(desc: str, unit: str = "it") -> Callable[[int, int], None]:
    """A tqdm progress bar on stderr, as a ``progress(done, total)`` callback counting ``unit``
    (a command module's ``PROGRESS_UNIT``: inputs, samples, steps)."""
    from tqdm import tqdm

    state = {"bar": None}

    def cb(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, desc=desc, file=sys.stderr, unit=f" {unit}",
                                dynamic_ncols=True, leave=False)
        bar = state["bar"]
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            state["bar"] = None

    return cb


def _json_default(o):
    try:
        import numpy as np
        import torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def _clean(o):
    """JSON has no inf/nan: write them as strings so the output stays valid JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _print_human(result: dict, indent: str = "") -> None:
    for k, v in result.items():
        if isinstance(v, dict):
            print(f"{indent}{k}:")
            _print_human(v, indent + "  ")
        elif isinstance(v, list) and len(v) > 12:
            print(f"{indent}{k}: [{len(v)} items; use --json for all]")
        elif isinstance(v, list) and v and all(isinstance(t, str) for t in v):
            print(f"{indent}{k}:")
            for t in v:
                print(f"{indent}  - {t}")
        else:
            print(f"{indent}{k}: {v}")


_show_warning = warnings.showwarning


def _show_notice(message, category, filename, lineno, file=None, line=None):
    if category.__name__ == "SemsmoothNotice":
        print(f"notice: {message}", file=sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m semsmooth_core",
                     description="Certify robustness to semantic perturbations by randomized smoothing.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
        p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    mod = args._module
    progress = None if args.quiet else stderr_progress(mod.NAME, getattr(mod, "PROGRESS_UNIT", "it"))
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_notice  # changes made to the user's data: one line each
            result = mod.run(args, progress)
    except SemsmoothError as e:
        print(f"{parser.prog} {mod.NAME}: error: {str(e).strip().splitlines()[0] if str(e).strip() else e}",
              file=sys.stderr)
        return 2
    except sqlite3.Error as e:  # a store error the store did not word itself
        print(f"{parser.prog} {mod.NAME}: error: results database: {type(e).__name__}: "
              f"{str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read or written (full disk, permissions)
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"{parser.prog} {mod.NAME}: error:{where} {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {mod.NAME}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        sys.stdout.write(json.dumps(_clean(result), default=_json_default) + "\n")
    else:
        _print_human(result)
    return 0
