"""The CLI contract of DESIGN.md: --help lists commands; --json prints exactly one JSON object
on stdout; usage errors exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "semsmooth_core", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("info",):
        assert cmd in r.stdout
    # every command module is listed
    import pkgutil

    import semsmooth_core.commands as pkg

    mods = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    import importlib

    names = [importlib.import_module(f"semsmooth_core.commands.{m}").NAME for m in mods]
    for name in names:
        assert name in r.stdout, name


def test_info_json_is_one_object():
    r = run_cli("info", "--json")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["semsmooth_core"] and "mnist" in obj["datasets"]


def test_unknown_command_exits_2():
    r = run_cli("no-such-command")
    assert r.returncode == 2
    assert "error" in r.stderr and len(r.stderr.strip().splitlines()) <= 3


def test_no_command_exits_2():
    assert run_cli().returncode == 2
