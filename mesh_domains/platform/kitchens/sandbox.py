"""Making, building and removing kitchens; what a kitchen records about itself (kitchen.json).

Creating a kitchen writes a few small files: its ``kitchen.json``, its Dagster instance config,
and the served-version pointer of every domain it does not build, copied from production's
lakes. Those pointers are the pins: the kitchen reads the same immutable files production
served at creation, whatever production publishes afterwards. Nothing else is copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .. import lake
from ..descriptor import Domain, discover_domains, domain_levels, load_domain
from ..errors import MeshError
from ..settings import CANARY, KITCHEN, KITCHEN_VAR, PROJECT_ROOT, MeshPaths, mesh_env, mesh_paths
from ..versioning import folder_hash

INSTANCE_TEMPLATE = Path(__file__).resolve().parents[1] / "instance" / "dagster.yaml"
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
STATE = "kitchen.json"


class KitchenError(MeshError):
    """A kitchen command that cannot be carried out; the message says why and what to do."""


@dataclass
class Kitchen:
    """One kitchen: its domains, the code it runs and the production versions it reads."""

    name: str
    folder: Path
    domains: list[str]
    code: Path  # the working tree, or the kitchen's own worktree of ``ref``
    ref: str | None  # the git ref it was made from (None: the working tree)
    branch: str | None
    commit: str
    dirty: bool  # the working tree had uncommitted changes at creation
    pinned: dict[str, dict[str, int]] = field(default_factory=dict)  # domain -> port -> version
    created: str = ""
    built: dict = field(default_factory=dict)  # what its last good build read (build_state)

    @property
    def paths(self) -> MeshPaths:
        """The kitchen's namespace: its own data root, production upstream."""
        return MeshPaths(self.folder, KITCHEN, upstream=production_paths().data)

    @property
    def dagster_home(self) -> Path:
        return self.folder / "dagster"

    def describe_ref(self) -> str:
        where = self.ref or (f"working tree ({self.branch})" if self.branch else "working tree")
        return f"{where} @ {self.commit[:10]}{' +changes' if self.dirty else ''}"

    def provenance(self) -> dict:
        """What a promoted version records about where it comes from."""
        return {
            "kitchen": self.name,
            "ref": self.ref or self.branch or "working tree",
            "commit": self.commit,
            "dirty": self.dirty or _dirty(self.code),
        }

    def descriptors(self) -> dict[str, Domain]:
        """The kitchen code's descriptors of its domains (their contracts may have changed)."""
        root = self.code / "mesh_domains"
        return {d: load_domain(root / d / "domain.yaml") for d in self.domains}

    def environment(self, folder: Path | None = None, env: str | None = None) -> dict[str, str]:
        """The environment of a process that runs the kitchen's code in its namespace (or in
        ``folder``, a namespace of the kitchen's, for a promotion)."""
        environ = dict(os.environ)
        environ.pop("DAGSTER_HOME", None)
        python_path = [str(self.code), *filter(None, [environ.get("PYTHONPATH")])]
        environ.update(
            {
                KITCHEN_VAR: str(folder or self.folder),
                "MESH_DATA_DIR": str(production_paths().data),
                "PYTHONPATH": os.pathsep.join(python_path),
                "MESH_ENV": env or ("dev" if mesh_env() == CANARY else mesh_env()),
            }
        )
        environ["DAGSTER_HOME"] = str((folder or self.folder) / "dagster")
        if len(self.domains) == 1:  # nothing to build side by side: no worker processes
            environ.setdefault("MESH_BUILD_PARALLEL", "1")
        return environ

    def save(self) -> None:
        state = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        tmp = self.folder / f".{STATE}.{os.getpid()}"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.folder / STATE)


def production_paths() -> MeshPaths:
    """Production's layout (kitchen commands run outside any kitchen)."""
    paths = mesh_paths()
    if os.environ.get(KITCHEN_VAR):
        raise KitchenError(f"kitchen commands run outside a kitchen: unset {KITCHEN_VAR}")
    return paths.production()


def kitchens_root() -> Path:
    return production_paths().data / "kitchens"


def load(name: str) -> Kitchen:
    folder = kitchens_root() / name
    try:
        state = json.loads((folder / STATE).read_text())
    except FileNotFoundError:
        known = ", ".join(k.name for k in all_kitchens()) or "none"
        raise KitchenError(
            f"no kitchen {name!r} in {kitchens_root()} (kitchens: {known}); "
            f"make one with `mesh kitchen create {name} --domains ...`"
        ) from None
    state["folder"], state["code"] = Path(state["folder"]), Path(state["code"])
    return Kitchen(**state)


def all_kitchens() -> list[Kitchen]:
    root = kitchens_root()
    names = sorted(p.parent.name for p in root.glob(f"*/{STATE}")) if root.exists() else []
    return [load(n) for n in names]


def _git(*args: str, cwd: Path = PROJECT_ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise KitchenError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _dirty(code: Path) -> bool:
    try:
        return bool(_git("status", "--porcelain", "--untracked-files=no", cwd=code))
    except KitchenError:
        return False


def create(name: str, domains: list[str], ref: str | None = None) -> Kitchen:
    """Make kitchen ``name`` for ``domains``: pin every other domain's served versions, give it
    a Dagster instance, and check ``ref`` out into its own worktree when one is given."""
    if not NAME.match(name):
        raise KitchenError(
            f"kitchen name {name!r}: lowercase letters, digits, '-' and '_', starting with a letter"
        )
    production = production_paths()
    known = discover_domains()
    unknown = [d for d in domains if d not in known]
    if not domains or unknown:
        raise KitchenError(
            f"--domains: unknown domain(s) {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(known)})"
        )
    folder = kitchens_root() / name
    if folder.exists():
        raise KitchenError(f"kitchen {name!r} exists ({folder}); destroy it first")
    folder.mkdir(parents=True)
    try:
        kitchen = _make(name, folder, domains, ref, production, known)
    except BaseException:
        _remove(folder)
        raise
    return kitchen


def _make(name, folder: Path, domains, ref, production: MeshPaths, known) -> Kitchen:
    if ref is None:
        code, commit = PROJECT_ROOT, _git("rev-parse", "HEAD")
        branch, dirty = _git("rev-parse", "--abbrev-ref", "HEAD"), _dirty(PROJECT_ROOT)
    else:
        commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
        code = folder / "code"
        _git("worktree", "add", "--detach", "--quiet", str(code), commit)
        branch = ref if _git("branch", "--list", ref) else None
        dirty = False
        settings = (code / "mesh_domains" / "platform" / "settings.py").read_text()
        if KITCHEN_VAR not in settings:
            raise KitchenError(
                f"ref {ref!r} ({commit[:10]}) predates kitchens: its builds would not stay in "
                "the kitchen's storage. Make the kitchen from a newer ref."
            )
        missing = [d for d in domains if not (code / "mesh_domains" / d / "domain.yaml").exists()]
        if missing:
            raise KitchenError(f"ref {ref!r} has no domain(s) {', '.join(missing)}")
    pinned = {}
    for other in known:
        pointer = production.lake_dir(other) / "current.json"
        if other in domains or not pointer.exists():
            continue
        target = folder / "lake" / other / "current.json"
        target.parent.mkdir(parents=True)
        lake.pin_pointer(pointer, target)
        pinned[other] = {port: s.version for port, s in lake.read_pointer(target).items()}
    home = folder / "dagster"
    home.mkdir()
    shutil.copyfile(INSTANCE_TEMPLATE, home / "dagster.yaml")
    order = [n for level in domain_levels(known) for n in level if n in domains]
    kitchen = Kitchen(
        name=name,
        folder=folder,
        domains=order,
        code=code,
        ref=ref,
        branch=branch,
        commit=commit,
        dirty=dirty,
        pinned=pinned,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    kitchen.save()
    return kitchen


def build_state(kitchen: Kitchen, upstream: dict[str, dict[str, int]], env: str) -> dict:
    """What a build of the kitchen's domains depends on: its code (a content hash), the
    variation, the versions of the other domains' ports it reads, and the landing files of its
    sources (path, size, modification time). Two builds with the same state read the same."""
    ours = kitchen.descriptors()
    reads = sorted({u for d in ours.values() for u in d.upstream_domains} - set(kitchen.domains))
    folders = [kitchen.code / "mesh_domains"]
    folders += [kitchen.code / "dbt_projects" / d for d in kitchen.domains]
    code = folder_hash.__wrapped__(*[f for f in folders if f.exists()])
    landing = production_paths().landing
    stamp = hashlib.sha256()
    for source in sorted({s.name for d in ours.values() for s in d.sources}):
        for path in sorted((landing / source).rglob("*")) if (landing / source).exists() else ():
            info = path.stat()
            stamp.update(f"{path.relative_to(landing)}:{info.st_size}:{info.st_mtime_ns};".encode())
    return {
        "code": code,
        "env": env,
        "upstream": {d: upstream.get(d, {}) for d in reads},
        "landing": stamp.hexdigest()[:16],
    }


def production_versions() -> dict[str, dict[str, int]]:
    """The versions production serves now, per domain and port."""
    out = {}
    for pointer in sorted((production_paths().data / "lake").glob("*/current.json")):
        ports = json.loads(pointer.read_text())["ports"]
        out[pointer.parent.name] = {port: entry["version"] for port, entry in ports.items()}
    return out


def build(
    kitchen: Kitchen,
    folder: Path | None = None,
    env: str | None = None,
    capture: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """``mesh build`` of the kitchen's domains, by the kitchen's code, in its namespace (or in
    ``folder``): a process of its own, so that the code of a worktree is the code that runs."""
    args = [sys.executable, "-m", "mesh_domains.platform.cli", "build"]
    for domain in kitchen.domains:
        args += ["--domain", domain]
    environ = kitchen.environment(folder, env)
    state = build_state(kitchen, kitchen.pinned, environ["MESH_ENV"]) if folder is None else None
    done = subprocess.run(
        args, cwd=kitchen.code, env=environ, capture_output=capture, text=True, timeout=timeout
    )
    if state is not None:
        kitchen.built = state if done.returncode == 0 else {}
        kitchen.save()
    return done


def destroy(kitchen: Kitchen) -> None:
    """Remove the kitchen, its worktree and everything it wrote."""
    _remove(kitchen.folder)


def _remove(folder: Path) -> None:
    code = folder / "code"
    if (code / ".git").exists():
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(code)],
            cwd=PROJECT_ROOT,
            capture_output=True,
        )
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=PROJECT_ROOT, capture_output=True)
    with suppress(OSError):  # the last kitchen gone: no empty folder left either
        folder.parent.rmdir()


def disk_usage(folder: Path, skip: tuple[str, ...] = ()) -> int:
    """Bytes of the files under ``folder`` (symlinks not followed), except ``skip`` subfolders."""
    total = 0
    for root, dirs, files in os.walk(folder):
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if d not in skip]
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    return total


def age(kitchen: Kitchen) -> str:
    seconds = time.time() - datetime.fromisoformat(kitchen.created).timestamp()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def ui_command(kitchen: Kitchen, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """``dagster dev`` on the kitchen's instance, with the code locations of its domains only
    (the other domains are pinned: their sensors must not rebuild them in the kitchen)."""
    import yaml

    workspace = yaml.safe_load((kitchen.code / "workspace.yaml").read_text())
    workspace["load_from"] = [
        entry
        for entry in workspace.get("load_from") or []
        if next(iter(entry.values())).get("location_name") in kitchen.domains
    ]
    for entry in workspace["load_from"]:
        next(iter(entry.values()))["working_directory"] = str(kitchen.code)
    path = kitchen.folder / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace, sort_keys=False))
    dagster = str(Path(sys.executable).parent / "dagster")
    return (
        [dagster, "dev", "-w", str(path), "-h", host, "-p", str(port)],
        kitchen.environment(),
    )
