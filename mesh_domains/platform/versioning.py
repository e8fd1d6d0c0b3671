"""Code versions: what a port version was built with ("How"), cheap and without git."""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import cache
from pathlib import Path

from .settings import PROJECT_ROOT

_SKIP_PARTS = {"target", "dbt_packages", "logs", "__pycache__", ".pytest_cache"}


@cache
def folder_hash(*folders: Path) -> str:
    """A short content hash of the source files under ``folders`` (build output excluded)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in _source_files(folder):
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _source_files(folder: Path) -> list[Path]:
    """The files under ``folder``, sorted, never descending into build output (a concurrent
    dbt run creates and removes its scratch folders under ``target/`` meanwhile)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIP_PARTS]
        found += [Path(root) / f for f in files if not f.endswith(".pyc")]
    return sorted(found)


@cache
def git_sha() -> str | None:
    """The project's commit, when it is a git checkout with git installed."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
