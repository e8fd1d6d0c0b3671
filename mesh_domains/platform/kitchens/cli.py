"""``mesh kitchen``: create, list, build, diff, promote, open and destroy kitchens."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

kitchen_app = typer.Typer(
    help="Kitchens: development sandboxes of domains that read production without copying it.",
    no_args_is_help=True,
)
WIDTH = os.environ.get("COLUMNS", "")
console = Console(width=int(WIDTH) if WIDTH.isdigit() else 120)


def _load(name: str):
    from .sandbox import KitchenError, load

    try:
        return load(name)
    except KitchenError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@kitchen_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="The kitchen's name.")],
    domains: Annotated[str, typer.Option(help="Its domains, comma-separated: d1,d2.")],
    ref: Annotated[
        str | None,
        typer.Option(help="A git branch or commit, checked out into the kitchen's own worktree."),
    ] = None,
) -> None:
    """Make a kitchen: its own storage for DOMAINS, every other domain pinned at the versions
    production serves now (pointers only: no data is copied)."""
    from .sandbox import KitchenError, create, disk_usage

    started = time.monotonic()
    try:
        kitchen = create(name, [d.strip() for d in domains.split(",") if d.strip()], ref)
    except KitchenError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    elapsed = time.monotonic() - started
    written = disk_usage(kitchen.folder, skip=("code",))
    console.print(
        f"[green]kitchen {kitchen.name}[/] made in {elapsed:.2f}s: {', '.join(kitchen.domains)} "
        f"from {kitchen.describe_ref()}\n  folder: {kitchen.folder} "
        f"({written:,} bytes besides the code)\n  code: {kitchen.code}"
    )
    for domain, ports in kitchen.pinned.items():
        pins = ", ".join(f"{p} v{v}" for p, v in ports.items())
        console.print(f"  pinned {domain}: {pins}")
    console.print(f"next: mesh kitchen build {kitchen.name}")


@kitchen_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every kitchen: domains, ref, pinned upstream versions, age, disk used."""
    from .sandbox import age, all_kitchens, disk_usage

    rows = []
    for k in all_kitchens():
        rows.append(
            {
                "name": k.name,
                "domains": k.domains,
                "ref": k.describe_ref(),
                "pinned": k.pinned,
                "age": age(k),
                "created": k.created,
                "disk_bytes": disk_usage(k.folder, skip=("code",)),
                "code_bytes": disk_usage(k.folder / "code") if k.ref else 0,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="kitchens")
    for col in ("name", "domains", "ref", "pinned upstream", "age", "disk"):
        table.add_column(col, justify="right" if col in ("age", "disk") else "left")
    for r in rows:
        pinned = "; ".join(
            f"{d} " + ",".join(f"{p}@{v}" for p, v in ports.items())
            for d, ports in r["pinned"].items()
        )
        disk = _size(r["disk_bytes"])
        if r["code_bytes"]:
            disk += f" (+{_size(r['code_bytes'])} code)"
        table.add_row(r["name"], ", ".join(r["domains"]), r["ref"], pinned, r["age"], disk)
    console.print(table)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


@kitchen_app.command("build")
def build_command(name: Annotated[str, typer.Argument(help="The kitchen.")]) -> None:
    """Build the kitchen's domains in order, with its code, into its own storage."""
    from .sandbox import build

    kitchen = _load(name)
    console.print(f"kitchen {name}: {kitchen.describe_ref()} in {kitchen.folder}")
    raise typer.Exit(build(kitchen).returncode)


@kitchen_app.command("diff")
def diff_command(
    name: Annotated[str, typer.Argument(help="The kitchen.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each kitchen port against production: schema, contract, rows, keys; compatible or
    breaking for the port's consumers."""
    from .diff import diff_kitchen

    diffs = diff_kitchen(_load(name))
    if as_json:
        print(json.dumps([d.as_dict() for d in diffs], indent=2, default=str))
        return
    print_diffs(diffs, f"kitchen {name} against production")


def print_diffs(diffs, title: str) -> None:
    table = Table(title=title)
    for col in ("port", "versions", "rows", "keys +/-/~", "columns", "verdict"):
        table.add_column(col)
    for d in diffs:
        prod, mine = d.rows
        cols = [f"+{c}" for c in d.columns_added] + [f"-{c}" for c in d.columns_removed]
        cols += [f"~{c}" for c in d.columns_retyped]
        colour = {"breaking": "red", "compatible": "yellow", "unchanged": "green"}.get(d.verdict)
        table.add_row(
            f"{d.domain}/{d.port}",
            f"{d.production_version or '-'} → {d.kitchen_version or '-'}",
            f"{prod if prod is not None else '-'} → {mine if mine is not None else '-'}",
            f"+{d.keys_added} -{d.keys_removed} ~{d.keys_changed}" if d.key else "-",
            " ".join(cols) or "-",
            f"[{colour}]{d.verdict}[/]" if colour else d.verdict,
        )
    console.print(table)
    for d in diffs:
        lines = [f"[red]breaking[/]: {b}" for b in d.breaking]
        lines += [f"compatible: {c}" for c in d.compatible]
        for kind, sample in d.samples.items():
            lines.append(f"{kind} (sample): {json.dumps(sample, default=str)}")
        if d.breaking:
            lines.append(f"read by: {', '.join(d.consumers) or 'no domain'}")
        if lines:
            console.print(f"[bold]{d.domain}/{d.port}[/]")
            for line in lines:
                console.print(f"  {line}")


@kitchen_app.command("promote")
def promote_command(name: Annotated[str, typer.Argument(help="The kitchen.")]) -> None:
    """Run the kitchen's code on production's current inputs, audit with the production
    contracts, and publish to production as new port versions (breaking changes only with a
    raised contract version)."""
    from ..cli import _instance
    from .promote import promote

    kitchen = _load(name)
    console.print(f"promoting kitchen {name} ({kitchen.describe_ref()}) …")
    result = promote(kitchen, _instance())
    if result.diffs:
        print_diffs(result.diffs, f"kitchen {name} on production's inputs")
    if not result.ok:
        for reason in result.refused:
            console.print(f"[red]refused[/]: {reason}")
        raise typer.Exit(1)
    for ref, version in result.published.items():
        console.print(f"[green]published[/] {ref} version {version} (promoted from {name})")
    for ref, readers in result.consumers.items():
        console.print(
            f"[yellow]contract version raised[/] for {ref}: tell its consumers: "
            f"{', '.join(readers) or 'none'}"
        )


@kitchen_app.command("destroy")
def destroy_command(name: Annotated[str, typer.Argument(help="The kitchen.")]) -> None:
    """Remove the kitchen: its storage, its Dagster instance and its worktree."""
    from .sandbox import destroy

    kitchen = _load(name)
    destroy(kitchen)
    console.print(f"kitchen {name} destroyed ({kitchen.folder} removed)")


@kitchen_app.command("ui")
def ui_command(
    name: Annotated[str, typer.Argument(help="The kitchen.")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 3001,
) -> None:
    """The Dagster UI (dagster dev) on the kitchen's instance, code and namespace."""
    from .sandbox import ui_command as command

    kitchen = _load(name)
    args, env = command(kitchen, host, port)
    console.print(f"kitchen {name}: http://{host}:{port} (DAGSTER_HOME={env['DAGSTER_HOME']})")
    raise typer.Exit(subprocess.run(args, cwd=kitchen.code, env=env).returncode)
