"""Code versions: what a port version was built with ("How"), cheap and without git."""

from __future__ import annotations

import hashlib
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
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if _SKIP_PARTS & set(path.relative_to(folder).parts) or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


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
