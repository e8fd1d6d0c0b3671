"""The ``mesh`` command line: generate source data, build the mesh in order, show its status."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from . import instance_config
from .kitchens.cli import kitchen_app
from .scaffold import new_domain_command
from .settings import CANARY, KITCHEN_VAR, default_dagster_home, mesh_env, mesh_paths
from .workers import start_workers

app = typer.Typer(
    help="Data Mesh Factory: build and run a data mesh on Dagster.",
    no_args_is_help=True,
    add_completion=False,
)


def _width() -> int | None:
    """The terminal's width; COLUMNS or 120 when output goes to a file or a pipe."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return None if sys.stdout.isatty() else 120


console = Console(width=_width())
DEFAULT_SCALE = 0.2
DEFAULT_SEED = 42


INSTANCE_TEMPLATE = instance_config.TEMPLATE


def prepare_instance_home() -> Path:
    """Create DAGSTER_HOME (default ``.dagster``) with the mesh's instance config, rendered
    from the template and the environment (:mod:`.instance_config`: SQLite, or PostgreSQL when
    MESH_INSTANCE_POSTGRES_URL is set)."""
    home = default_dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    environ = dict(os.environ)
    if environ.get(KITCHEN_VAR) or mesh_env() == CANARY:
        # a kitchen's and the canary's runs stay apart, in their own folder (SQLite)
        environ.pop(instance_config.POSTGRES_URL_VAR, None)
    instance_config.write(home, environ)
    return home


def _instance():
    """The project's Dagster instance: the one the Dagster UI opens too."""
    import dagster as dg

    prepare_instance_home()
    return dg.DagsterInstance.get()


@app.command()
def generate(
    scale: Annotated[
        float, typer.Option(help="Size factor: 1.0 ≈ 5,000 physicians, 200 ≈ 10M weekly Rx rows.")
    ] = DEFAULT_SCALE,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = DEFAULT_SEED,
    months: Annotated[int, typer.Option(help="Monthly partitions (AMA, formulary).")] = 3,
    days: Annotated[int, typer.Option(help="Daily partitions (CRM, calls, NPP).")] = 14,
    weeks: Annotated[int, typer.Option(help="Weekly partitions (Rx, claims).")] = 8,
    quarters: Annotated[int, typer.Option(help="Quarterly partitions (rebates, alignment).")] = 2,
) -> None:
    """Write the example's landing zone (data/landing/<source>/<partition>/...): ten sources."""
    from pharma_example import generate_landing

    run = generate_landing(
        mesh_paths().landing, scale, seed, months=months, days=days, weeks=weeks, quarters=quarters
    )
    table = Table(title=f"landing zone: scale {scale}, seed {seed}")
    for col in ("source", "deliveries", "rows", "seconds", "rows/s"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source, files in run.files.items():
        rows, seconds = run.rows[source], run.seconds[source]
        table.add_row(
            source, str(len(files)), f"{rows:,}", f"{seconds:.2f}", f"{rows / seconds:,.0f}"
        )
    table.add_row(
        "all",
        str(sum(len(f) for f in run.files.values())),
        f"{run.total_rows:,}",
        f"{run.elapsed:.2f}",
        f"{run.total_rows / run.elapsed:,.0f}",
    )
    console.print(table)
    console.print(
        f"[green]landing zone written[/] to {mesh_paths().landing} in {run.elapsed:.1f}s "
        f"({run.total_rows:,} rows, {run.total_rows / run.elapsed:,.0f} rows/s)"
    )


def _status_table(rows, title: str) -> Table:
    table = Table(title=title)
    for col in ("domain", "port", "state", "rows", "version", "checks", "duration"):
        table.add_column(col, justify="right" if col in {"rows", "version", "duration"} else "left")
    for r in rows:
        state = {
            "published": "[green]published[/]",
            "failed": "[red]failed[/]",
            "skipped": "[yellow]skipped[/]",
        }.get(r.state, r.state)
        table.add_row(
            r.domain,
            r.port,
            state,
            "-" if r.rows is None else f"{r.rows:,}",
            "-" if r.version is None else str(r.version),
            r.checks,
            "-" if r.duration_s is None else f"{r.duration_s:.1f}s",
        )
    return table


def _print_metrics(rows) -> None:
    """The figures each domain's build reported (e.g. physician mastering's match rate), once
    per domain: ports published together report the same figures."""
    seen: set[tuple[str, str]] = set()
    for r in rows:
        if not r.metrics:
            continue
        figures = ", ".join(
            f"{k} {v:.1%}" if "rate" in k and isinstance(v, float) else f"{k} {v:,}"
            for k, v in r.metrics.items()
            if isinstance(v, int | float)
        )
        if figures and (r.domain, figures) not in seen:
            seen.add((r.domain, figures))
            console.print(f"[bold]{r.domain}[/]: {figures}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="A workspace of gRPC code servers (mesh serve-locations writes one): also say "
            "whether each domain's code server answers."
        ),
    ] = None,
) -> None:
    """Print every domain's ports from the Dagster instance, without building."""
    from .descriptor import discover_domains
    from .status import mesh_status

    rows = mesh_status(_instance(), discover_domains())
    servers = None
    if workspace is not None:
        from .serve import location_states

        if not workspace.exists():
            raise typer.BadParameter(f"no workspace file {workspace}")
        servers = location_states(workspace)
    if as_json:
        out = [r.as_dict() for r in rows]
        if servers is not None:
            for row in out:
                state = servers.get(row["domain"])
                row["code_location"] = (
                    None if state is None else "serving" if state.serving else "unreachable"
                )
        print(json.dumps(out, indent=2, default=str))
        return
    console.print(_status_table(rows, "mesh status"))
    _print_metrics(rows)
    if servers is not None:
        _print_code_servers(servers)


def _print_code_servers(servers) -> None:
    """One line per code location of the workspace: serving, or unreachable and why."""
    for name, state in servers.items():
        if state.serving:
            console.print(f"[green]●[/] {name}: code server {state.host}:{state.port} serving")
        else:
            console.print(
                f"[red]✘ {name}: code location unreachable[/] (code server "
                f"{state.host}:{state.port}: {state.error}) — its sensors and runs wait",
                soft_wrap=True,
            )


@app.command()
def build(
    domain: Annotated[list[str] | None, typer.Option(help="Only these domains.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A run parameter, key=value (declared under `parameters:` in domain.yaml); "
            "repeatable.",
        ),
    ] = None,
) -> None:
    """Build every domain in the order of the domain graph; exit 1 if any fails.

    Partitioned ports are built for every period the landing zone holds, as one run.
    """
    if not domain or len(domain) > 1:
        start_workers()  # loads while this process imports and opens the instance
    from .build import BuildOptions

    _build_and_report(domain, BuildOptions(params=_parameters(set_ or [], domain)))


@app.command()
def backfill(
    domain: Annotated[str, typer.Argument(help="The domain to rebuild.")],
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD.")],
    downstream: Annotated[
        bool, typer.Option(help="Also rebuild the domains that read it (same periods).")
    ] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="A run parameter.")] = None,
) -> None:
    """Rebuild the partitions of DOMAIN (and, by default, of every domain downstream of it)
    whose periods overlap --from..--to, each domain as one run over that range."""
    from datetime import date

    from .build import BuildOptions, downstream_of
    from .descriptor import discover_domains

    domains = discover_domains()
    if domain not in domains:
        raise typer.BadParameter(f"unknown domain {domain!r} (known: {', '.join(domains)})")
    try:
        window = (date.fromisoformat(start), date.fromisoformat(end))
    except ValueError as exc:
        raise typer.BadParameter(f"--from/--to must be dates YYYY-MM-DD: {exc}") from exc
    if window[0] > window[1]:
        raise typer.BadParameter(f"--from {start} is after --to {end}")
    chosen = [domain, *(sorted(downstream_of(domain, domains)) if downstream else [])]
    if len(chosen) > 1:
        start_workers()
    options = BuildOptions(window=window, params=_parameters(set_ or [], chosen))
    _build_and_report(chosen, options, title=f"mesh backfill {start}..{end}")


def _parameters(pairs: list[str], domains: list[str] | None) -> dict:
    """``key=value`` pairs, typed by the domains' declared parameters."""
    from .descriptor import discover_domains

    declared = {
        p.name: p
        for d in discover_domains().values()
        if not domains or d.name in domains
        for p in d.parameters
    }
    casts = {"int64": int, "float64": float, "boolean": lambda v: v.lower() in ("1", "true", "yes")}
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in declared:
            known = ", ".join(sorted(declared)) or "none declared"
            raise typer.BadParameter(f"--set {pair!r}: expected key=value with key one of: {known}")
        try:
            params[key] = casts.get(declared[key].type, str)(value)
        except ValueError as exc:
            raise typer.BadParameter(f"--set {pair!r}: not a {declared[key].type}") from exc
    return params


def _build_and_report(domain, options, title: str = "mesh build") -> None:
    from .build import build_mesh
    from .descriptor import discover_domains
    from .status import mesh_status

    instance = _instance()
    domains = discover_domains()
    started = time.monotonic()

    in_flight: dict[str, float] = {}
    spinner = console.status("")

    def progress(name, phase, result):
        if phase == "start":
            in_flight[name] = time.monotonic()
        else:
            in_flight.pop(name, None)
            if result.state == "built":
                console.print(f"[green]✔[/] {name} built in {result.seconds:.1f}s")
            elif result.state == "skipped":
                console.print(f"[yellow]⏭[/] {name} skipped: {result.error}")
            else:
                console.print(
                    f"[red]✘ {name} failed[/] after {result.seconds:.1f}s:\n{result.error}"
                )
        if in_flight:
            names = ", ".join(f"[bold]{n}[/]" for n in in_flight)
            spinner.update(f"building {names} … (logs in {mesh_paths().data / 'logs'})")
            spinner.start()
        else:
            spinner.stop()

    what = f"{len(domains)} domains" if not domain else ", ".join(domain)
    console.print(f"building the mesh ({what}) on {instance.root_directory}")
    try:
        report = build_mesh(instance, only=domain, on_event=progress, options=options)
    finally:
        spinner.stop()
    for run_id in report.recovered:
        console.print(f"[yellow]recovered[/] run {run_id}: its process had died; marked failed")
    failed = {r.domain: r.state for r in report.results if r.state != "built"}
    rows = [r for r in mesh_status(instance, domains) if not domain or r.domain in domain]
    for row in rows:
        if row.domain in failed:
            row.state = failed[row.domain]
    console.print(_status_table(rows, f"{title} — {time.monotonic() - started:.1f}s"))
    _print_metrics(rows)
    if not report.ok:
        console.print(
            "[red]the mesh build failed[/]: ports of failed or skipped domains keep "
            "serving their previous versions."
        )
        raise typer.Exit(1)


@app.command()
def demo(
    scale: Annotated[float, typer.Option(help="Size factor for generated data.")] = DEFAULT_SCALE,
    seed: Annotated[int, typer.Option()] = DEFAULT_SEED,
) -> None:
    """Generate the landing zone, then build the whole mesh and print its status."""
    start_workers()  # the build's worker server loads while the data is generated
    generate(scale=scale, seed=seed)
    build(domain=None, set_=None)


@app.command()
def paths() -> None:
    """Where the mesh keeps its data and its Dagster instance."""
    p = mesh_paths()
    for name, value in (
        ("data", p.data),
        ("landing", p.landing),
        ("lakes", p.data / "lake"),
        ("quarantine", p.quarantine),
        ("dagster home", default_dagster_home()),
    ):
        console.print(f"{name:>13}: {value}")


def _reader(port_ref: str):
    """A connection for reading ``<domain>/<port>``, the port's domain, and the port name."""
    from . import lake
    from .descriptor import discover_domains

    domain_name, _, port = port_ref.partition("/")
    domains = discover_domains()
    if domain_name not in domains or not port:
        raise typer.BadParameter(
            f"{port_ref!r}: expected <domain>/<port>, e.g. physician_master/physicians"
        )
    domain = domains[domain_name]
    try:
        domain.output_port(port)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from exc
    return lake.connect(), domain, port


@app.command()
def versions(port: Annotated[str, typer.Argument(help="<domain>/<port>")]) -> None:
    """List every published version of a port, with what it was built from."""
    from . import lake

    con, domain, name = _reader(port)
    lake.attach_port_reader(con, domain.name, domain, [name])
    domain = domain.name
    table = Table(title=f"versions of {port}")
    for col in ("version", "published", "rows", "input versions", "code", "run"):
        table.add_column(col)
    for v in lake.port_versions(con, domain, name):
        table.add_row(
            str(v.version),
            v.published_at.isoformat(timespec="seconds"),
            f"{v.info['ports'][name]['rows']:,}",
            json.dumps(v.info.get("input_versions", {})),
            str(v.info.get("code_version", "")),
            str(v.info.get("run_id", ""))[:8],
        )
    console.print(table)


@app.command()
def show(
    port: Annotated[str, typer.Argument(help="<domain>/<port>")],
    version: Annotated[
        int | None, typer.Option(help="A published version (default: current).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 10,
) -> None:
    """Print rows of a port, at its current or any earlier published version."""
    from . import lake

    con, domain, name = _reader(port)
    view, pinned = lake.open_port(con, domain.name, domain, name, version)
    relation = con.sql(f"select * from {view} limit {int(limit)}")
    table = Table(title=f"{port} @ version {pinned}")
    for col in relation.columns:
        table.add_column(col)
    for row in relation.fetchall():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def quarantine() -> None:
    """List the deliveries kept aside, with why they were rejected."""
    reasons = sorted(mesh_paths().quarantine.glob("*/*/*.reason.json"))
    if not reasons:
        console.print("no quarantined deliveries")
        return
    table = Table(title="quarantined deliveries")
    for col in ("source", "partition", "domain", "quarantined", "why"):
        table.add_column(col)
    for path in reasons:
        reason = json.loads(path.read_text())
        why = "; ".join(f"{f['column']}: {f['rule']}" for f in reason.get("failures", []))
        table.add_row(
            reason.get("source", path.parent.parent.name),
            reason.get("partition", ""),
            reason.get("domain", ""),
            str(reason.get("quarantined_at", ""))[:19],
            why,
        )
    console.print(table)


@app.command()
def instance() -> None:
    """Write the Dagster home that `mesh build`, `dagster dev` and the code servers share:
    dagster.yaml from the template; PostgreSQL storage when MESH_INSTANCE_POSTGRES_URL is set."""
    home = prepare_instance_home()
    written = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
    storage = (
        f"PostgreSQL (the URL in ${instance_config.POSTGRES_URL_VAR})"
        if "postgres" in (written.get("storage") or {})
        else "SQLite files in DAGSTER_HOME"
    )
    console.print(f"DAGSTER_HOME={home}")
    console.print(f"storage: {storage}; runs queued, one per domain at a time", soft_wrap=True)
    problem = instance_config.url_problem()
    if problem:
        console.print(f"[yellow]warning:[/] {problem}", soft_wrap=True)


@app.command("serve-locations")
def serve_locations_command(
    host: Annotated[str, typer.Option(help="Interface the code servers listen on.")] = "127.0.0.1",
    base_port: Annotated[
        int, typer.Option(help="The first domain's port; the others follow workspace.yaml.")
    ] = 4266,
    only: Annotated[
        list[str] | None, typer.Option(help="Serve only this domain (repeatable).")
    ] = None,
    workspace_out: Annotated[
        Path | None,
        typer.Option(help="Workspace file to write (default: <data>/code_servers/workspace.yaml)."),
    ] = None,
) -> None:
    """One gRPC code server per domain, in the foreground until Ctrl-C; writes the workspace
    file for `dagster-webserver -w` and `dagster-daemon run -w`."""
    from .serve import serve_locations

    # open the instance once: its storage (tables on a fresh PostgreSQL database) is created
    # here, not by seven servers racing each other
    _instance().dispose()
    try:
        code = serve_locations(
            host,
            base_port,
            only,
            workspace_out,
            say=lambda line: console.print(line, soft_wrap=True),
        )
    except (KeyError, OSError) as exc:
        raise typer.BadParameter(str(exc.args[0] if exc.args else exc)) from exc
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface; reads are open on loopback.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the domain query (four W's and an H, events, lineage, contracts) over HTTP."""
    from .query.api import serve as run

    prepare_instance_home()
    console.print(f"domain query on http://{host}:{port} (OpenAPI: /docs, /openapi.json)")
    run(host=host, port=port, workers=workers)


app.command("new-domain")(new_domain_command)

app.add_typer(kitchen_app, name="kitchen")
contract_app = typer.Typer(help="Output port contracts (Open Data Contract Standard).")
app.add_typer(contract_app, name="contract")


@contract_app.command("export")
def contract_export(
    out: Annotated[Path | None, typer.Option(help="Folder (default: <data>/contracts).")] = None,
) -> None:
    """Write every output port's contract as ODCS v3 YAML: <out>/<domain>/<port>.odcs.yaml."""
    from .descriptor import discover_domains
    from .query.odcs import export_contracts

    written = export_contracts(discover_domains(), out or mesh_paths().data / "contracts")
    for path in written:
        console.print(f"  {path}")
    console.print(f"[green]{len(written)} contract(s) written[/] (ODCS v3)")


deploy_app = typer.Typer(help="The mesh beyond one machine: Dagster's Helm chart on Kubernetes.")
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("render")
def deploy_render(
    out: Annotated[Path | None, typer.Option(help="Folder (default: <data>/deploy).")] = None,
    image: Annotated[
        str | None, typer.Option(help="NAME:TAG of the project's image (default: its version).")
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="Registry prefix, e.g. ghcr.io/acme.")
    ] = None,
    postgres_host: Annotated[
        str, typer.Option(help="The instance's external PostgreSQL host.")
    ] = "postgresql",
) -> None:
    """Write Helm values (one user-code deployment per domain), workspace.yaml and Dockerfile."""
    from .deploy import DATA_CLAIM, DeployError, helm_command, project_image, render, secrets

    try:
        rendered = render(
            out or mesh_paths().data / "deploy", project_image(image, registry), postgres_host
        )
    except DeployError as exc:
        raise typer.BadParameter(str(exc)) from exc
    table = Table(title=f"user-code deployments ({rendered.image.ref})")
    for col in ("deployment", "port", "requests", "limits"):
        table.add_column(col)
    for d in rendered.deployments:
        res = d["resources"]
        table.add_row(
            d["name"],
            str(d["port"]),
            *(f"{res[k]['cpu']} CPU, {res[k]['memory']}" for k in ("requests", "limits")),
        )
    console.print(table)
    for path in rendered.files:
        console.print(f"  {path}")
    needed = ", ".join(
        f"{name} ({', '.join(keys)})" for name, keys in secrets(rendered.deployments).items()
    )
    console.print(f"secrets to create: {needed}; volume claim: {DATA_CLAIM}", soft_wrap=True)
    console.print(f"build: docker build -f {rendered.out / 'Dockerfile'} -t {rendered.image.ref} .")
    console.print(f"apply: {helm_command(rendered.out / 'values.yaml')}", soft_wrap=True)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
