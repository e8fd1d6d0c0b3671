"""The domain query: four W's and an H for a domain, a port and a port version.

- **What**: description, owner team, lifecycle phase, glossary terms, schema and contract;
- **Where**: how to read it (lake, table, files, DuckDB snippets): only for a granted caller;
- **When**: last publish, last run and its status, duration, warnings, freshness against the SLA;
- **proof**: the check results of the version, with failure samples; the last failed attempt;
- **With**: the input port versions it was built from, each a link to that version's answer;
- **How**: code location, code version and git SHA, the code itself, variation and parameters.

Every answer is computed from the Dagster instance (:mod:`.records`) and the lakes
(:mod:`.lakes`) on request; what cannot change any more (a finished run, a published version)
is kept, and whole answers are reused until the event log or the lake's pointer moves.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dagster as dg

from ..descriptor import Domain, OutputPort, discover_domains
from ..errors import MeshError
from ..lake import check_grant
from ..settings import mesh_env
from . import code, lakes, records
from .events import RunDomains, latest_id
from .status import PortStatus, mesh_status

KEEP_AT_MOST = 5000  # finished runs remembered; the oldest are forgotten first
ANSWER_TTL_S = 30.0  # "When" ages with the clock: answers are recomputed this often
LOG_POLL_S = 0.5  # how often the event log's high-water mark is looked at


class NotFound(MeshError, KeyError):
    """A domain, port or version the mesh does not have; the message lists what it has."""

    def __str__(self) -> str:
        return str(self.args[0])


def _url(domain: str, port: str | None = None, version: int | None = None) -> str:
    url = f"/domains/{domain}"
    if port is not None:
        url += f"/ports/{port}"
    if version is not None:
        url += f"/versions/{version}"
    return url


def _schema(port: OutputPort) -> list[dict[str, Any]]:
    key = list(port.contract.primary_key)
    return [
        {
            "name": c.name,
            "type": c.type,
            "nullable": c.nullable,
            "unique": c.unique or key == [c.name],
            "primary_key": c.name in key,
            "description": c.description or None,
            "checks": c.checks,
        }
        for c in port.contract.columns
    ]


def _keep(kept: dict, key, value) -> None:
    """Remember ``value``; forget the oldest entry beyond ``KEEP_AT_MOST``."""
    kept[key] = value
    if len(kept) > KEEP_AT_MOST:
        kept.pop(next(iter(kept)))


class MeshQuery:
    """The domain query over one Dagster instance and the mesh's lakes; thread-safe."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        domains: dict[str, Domain] | None = None,
        compiler: code.DbtCompiler | None = None,
    ) -> None:
        self.instance = instance
        self.domains = domains if domains is not None else discover_domains()
        self.lakes = lakes.LakeReader()
        self.compiler = compiler
        self.run_domain = RunDomains(instance, set(self.domains))
        self._lock = threading.Lock()
        self._finished_runs: dict[str, records.RunSummary] = {}
        self._run_checks: dict[str, dict[str, list[records.CheckResult]]] = {}
        self._answers: dict[tuple, tuple[tuple, Any]] = {}
        self._log_mark = (-1.0, -1)  # (checked at, high-water id)

    # --- names ------------------------------------------------------------------------------------

    def domain(self, name: str) -> Domain:
        if name not in self.domains:
            known = ", ".join(sorted(self.domains))
            raise NotFound(f"no domain {name!r} in this mesh (domains: {known})")
        return self.domains[name]

    def port(self, domain: str, port: str) -> tuple[Domain, OutputPort]:
        d = self.domain(domain)
        try:
            return d, d.output_port(port)
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None

    # --- what changes, and when to recompute -----------------------------------------------------

    def log_mark(self) -> int:
        """The event log's newest id, looked at no more often than every ``LOG_POLL_S`` (a
        server keeps it fresh with :meth:`refresh_log_mark` off its request path)."""
        checked, mark = self._log_mark
        if time.monotonic() - checked > LOG_POLL_S:
            mark = self.refresh_log_mark()
        return mark

    def refresh_log_mark(self) -> int:
        mark = latest_id(self.instance)
        self._log_mark = (time.monotonic(), mark)
        return mark

    def token(self, *domains: str) -> tuple:
        """Everything an answer about ``domains`` depends on that can change."""
        return (
            self.log_mark(),
            tuple(self.lakes.pointer_stamp(d) for d in domains),
            self.compiler.generation if self.compiler else 0,
            int(time.time() // ANSWER_TTL_S),
        )

    def cached(self, key: tuple, token: tuple, make):
        """The answer kept under ``key`` if ``token`` still holds, else a fresh one."""
        hit = self._answers.get(key)
        if hit is not None and hit[0] == token:
            return hit[1]
        value = make()
        self._answers[key] = (token, value)
        return value

    # --- records, kept once they are final --------------------------------------------------------

    def run(self, run_id: str | None) -> records.RunSummary | None:
        if run_id is None:
            return None
        if run_id in self._finished_runs:
            return self._finished_runs[run_id]
        summary = records.run_summary(self.instance, run_id)
        if summary is not None and summary.finished:
            _keep(self._finished_runs, run_id, summary)
        return summary

    def checks(self, run_id: str | None, domain: str, port: str) -> list[records.CheckResult]:
        if run_id is None:
            return []
        if run_id in self._run_checks:
            return self._run_checks[run_id].get(f"{domain}/{port}", [])
        found = records.check_results(self.instance, run_id)
        run = self.run(run_id)
        if run is not None and run.finished:
            _keep(self._run_checks, run_id, found)
        return found.get(f"{domain}/{port}", [])

    # --- the four W's and an H of a port version -------------------------------------------

    def what(self, domain: Domain, port: OutputPort) -> dict[str, Any]:
        contract = port.contract
        return {
            "domain": domain.name,
            "port": port.name,
            "title": domain.title,
            "description": port.description,
            "domain_description": domain.description,
            "owner": {"team": domain.team, "id": domain.owner},
            "lifecycle_phase": domain.lifecycle_phase,
            "toolchain": domain.toolchain,
            "glossary": domain.glossary,
            "grants": list(port.grants),
            "schema": _schema(port),
            "contract": {
                "primary_key": list(contract.primary_key),
                "rules": [f"{r.name}: {r.left} {r.op} {r.right}" for r in contract.rules],
                "min_rows": contract.min_rows,
                "warn_rules": [r.name for r in port.warn_rules],
                "odcs": _url(domain.name, port.name) + "/contract",
            },
        }

    def where(
        self, domain: Domain, port: OutputPort, caller: str | None, version: int | None = None
    ) -> dict[str, Any]:
        """Where to read the port (its served version, or ``version``). Raises
        :class:`~mesh_domains.platform.lake.PortAccessError` for a caller without a grant."""
        if caller is None:
            raise PermissionError("no caller identity")
        check_grant(caller, domain, port.name)
        served = self.lakes.served_version(domain.name, port.name)
        wanted = served if version is None else version
        if wanted is None:
            raise NotFound(f"{port.ref} has no published version yet: build {domain.name} first")
        if version is not None and self.lakes.version(domain, port.name, version) is None:
            raise self._no_version(domain, port, version)
        files = self.lakes.files(domain, port.name, wanted)
        return {"granted_to": caller} | lakes.where(
            domain, port.name, wanted, files, wanted == served
        )

    def _where_or_reason(self, domain, port, caller, version=None) -> dict[str, Any]:
        link = _url(domain.name, port.name, version) + "/where"
        if caller is None:
            return {
                "granted": False,
                "url": link,
                "how_to_ask": "send X-Mesh-Domain: <your domain> and Authorization: Bearer "
                "<your domain's token>; your domain needs a grant in the producer's descriptor",
            }
        try:
            return {"granted": True} | self.where(domain, port, caller, version)
        except PermissionError as exc:
            return {"granted": False, "url": link, "reason": str(exc)}

    def _freshness(self, domain: Domain, key: dg.AssetKey, published: float | None) -> dict:
        sla = domain.sla_freshness_hours
        answer: dict[str, Any] = {"sla_hours": sla}
        if published is None:
            answer["state"] = "never published"
        else:
            age_h = (time.time() - published) / 3600
            answer["age_hours"] = round(age_h, 3)
            if sla is None:
                answer["state"] = "no SLA"
            else:
                answer["due_by"] = records.iso(published + sla * 3600)
                answer["state"] = "fresh" if age_h <= sla else "overdue"
        try:
            recorded = self.instance.event_log_storage.get_freshness_state_records([key])
        except Exception:  # noqa: BLE001 — storages without freshness records: nothing to add
            recorded = {}
        if key in recorded:
            rec = recorded[key]
            answer["dagster"] = {
                "state": rec.freshness_state.value,
                "updated_at": rec.updated_at.isoformat(timespec="seconds"),
            }
        return answer

    def when(self, domain: Domain, port: OutputPort) -> dict[str, Any]:
        key = dg.AssetKey(port.key)
        publish = records.latest_publish(self.instance, key)
        last_run = self.run(records.last_run_id(self.instance, key))
        answer: dict[str, Any] = {
            "last_publish": None,
            "last_run": last_run.as_dict() if last_run else None,
            "warnings": [],
            "freshness": self._freshness(domain, key, publish.timestamp if publish else None),
        }
        if publish is not None:
            answer["last_publish"] = {
                "version": publish.version,
                "published_at": publish.published_at,
                "run_id": publish.run_id,
                "rows": publish.metadata.get("dagster/row_count"),
                "duration_s": publish.metadata.get("duration_s"),
            }
            checks = self.checks(publish.run_id, domain.name, port.name)
            answer["warnings"] = records.warnings_of(checks)
        return answer

    def proof(
        self, domain: Domain, port: OutputPort, info: lakes.VersionInfo | None, latest: bool
    ) -> dict[str, Any]:
        """The checks that let ``info``'s version be published; for the served version also the
        last attempt that did not publish (its failed checks and contract failures, with
        samples), so "is your data good?" has both answers."""
        run_id = info.run_id if info else None
        checks = self.checks(run_id, domain.name, port.name)
        answer: dict[str, Any] = {
            "version": info.version if info else None,
            "run_id": run_id,
            "passed": bool(checks) and all(c.passed or c.severity == "WARN" for c in checks),
            "checks_passed": sum(c.passed for c in checks),
            "checks_total": len(checks),
            "checks": [c.as_dict() for c in checks],
        }
        if latest:
            answer["last_attempt"] = self._last_attempt(domain, port, run_id)
        return answer

    def _last_attempt(self, domain: Domain, port: OutputPort, published_by: str | None):
        run = self.run(records.last_run_id(self.instance, dg.AssetKey(port.key)))
        if run is None or run.run_id == published_by:
            return None
        failed = [c.as_dict() for c in self.checks(run.run_id, domain.name, port.name)]
        failure = records.run_failure(self.instance, run.run_id) if run.finished else None
        return {
            "run": run.as_dict(),
            "published": False,
            "failed_checks": [c for c in failed if not c["passed"]],
            "failure": failure,
            "served_version_unchanged": True,
        }

    def with_(self, domain: Domain, info: lakes.VersionInfo | None) -> dict[str, Any]:
        if info is None:
            return {
                "version": None,
                "input_ports": [{"port": r.ref, "version": None} for r in domain.input_ports],
                "sources": {s.name: None for s in domain.sources},
            }
        return {
            "version": info.version,
            "input_ports": [
                {
                    "port": ref,
                    "version": version,
                    "url": _url(*ref.split("/", 1), version) if version is not None else None,
                }
                for ref, version in sorted(info.input_versions.items())
            ],
            "sources": {
                s.name: {
                    "partitions": (info.info.get("deliveries") or {}).get(s.name),
                    "delivery_versions": (info.info.get("delivery_versions") or {}).get(s.name),
                }
                for s in domain.sources
            },
            "partitions": info.info.get("partitions"),
        }

    def how(
        self, domain: Domain, port: OutputPort, info: lakes.VersionInfo | None
    ) -> dict[str, Any]:
        run = self.run(info.run_id) if info else None
        current = code.current_code_version(domain)
        recorded = info.info.get("code_version") if info else None
        return {
            "code_location": domain.name,
            "module": f"mesh_domains.{domain.name}.definitions",
            "job": f"build_{domain.name}",
            "descriptor": code.relative(domain.path),
            "toolchain": domain.toolchain,
            "code_version": recorded,
            "current_code_version": current,
            "code_changed_since": recorded is not None and recorded != current,
            "git_sha": info.info.get("git_sha") if info else None,
            "variation": (info.info.get("variation") if info else None) or {"env": mesh_env()},
            "parameters": run.parameters if run else None,
            "run_id": info.run_id if info else None,
            "code": code.port_code(domain, port.name, self.compiler),
        }

    def _links(self, domain: Domain, port: OutputPort) -> dict[str, str]:
        base = _url(domain.name, port.name)
        return {
            "self": base,
            "domain": _url(domain.name),
            "versions": base + "/versions",
            "consumers": base + "/consumers",
            "contract": base + "/contract",
            "where": base + "/where",
            "events": f"/events?domain={domain.name}",
        }

    def port_answer(self, domain: str, port: str, caller: str | None = None) -> dict[str, Any]:
        """The four W's and an H of a port at its served version."""
        d, p = self.port(domain, port)
        base = self.cached(("port", domain, port), self.token(domain), lambda: self._port(d, p))
        return base | {"where": self._where_or_reason(d, p, caller)}

    def _port(self, domain: Domain, port: OutputPort) -> dict[str, Any]:
        served = self.lakes.served_version(domain.name, port.name)
        info = self.lakes.version(domain, port.name, served) if served is not None else None
        return {
            "port": port.ref,
            "served_version": served,
            "as_of": records.iso(time.time()),
            "links": self._links(domain, port),
            "what": self.what(domain, port),
            "when": self.when(domain, port),
            "proof": self.proof(domain, port, info, latest=True),
            "with": self.with_(domain, info),
            "how": self.how(domain, port, info),
        }

    def _no_version(self, domain: Domain, port: OutputPort, version: int) -> NotFound:
        known = [v.version for v in self.lakes.history(domain).get(port.name, [])]
        return NotFound(
            f"{port.ref} has no version {version} (published versions: "
            f"{', '.join(map(str, known)) or 'none yet'})"
        )

    def version_answer(
        self, domain: str, port: str, version: int, caller: str | None = None
    ) -> dict[str, Any]:
        """The four W's and an H of one published (immutable) port version."""
        d, p = self.port(domain, port)
        info = self.lakes.version(d, p.name, version)
        if info is None:
            raise self._no_version(d, p, version)
        base = self.cached(
            ("version", domain, port, version),
            self.token(domain),
            lambda: self._version(d, p, info),
        )
        return base | {"where": self._where_or_reason(d, p, caller, version)}

    def _version(self, domain: Domain, port: OutputPort, info: lakes.VersionInfo) -> dict:
        run = self.run(info.run_id)
        served = self.lakes.served_version(domain.name, port.name)
        return {
            "port": port.ref,
            "version": info.version,
            "served": info.version == served,
            "served_version": served,
            "links": self._links(domain, port)
            | {"self": _url(domain.name, port.name, info.version)},
            "what": self.what(domain, port),
            "when": {
                "published_at": info.published_at,
                "rows": info.rows,
                "run": run.as_dict() if run else None,
                "freshness": self._freshness(domain, dg.AssetKey(port.key), None)
                if info.version != served
                else self.when(domain, port)["freshness"],
            },
            "proof": self.proof(domain, port, info, latest=False),
            "with": self.with_(domain, info),
            "how": self.how(domain, port, info),
        }

    def versions_answer(self, domain: str, port: str) -> dict[str, Any]:
        d, p = self.port(domain, port)
        served = self.lakes.served_version(d.name, p.name)
        return {
            "port": p.ref,
            "served_version": served,
            "versions": [
                {
                    "version": v.version,
                    "published_at": v.published_at,
                    "rows": v.rows,
                    "run_id": v.run_id,
                    "code_version": v.info.get("code_version"),
                    "input_versions": v.input_versions,
                    "served": v.version == served,
                    "url": _url(d.name, p.name, v.version),
                }
                for v in self.lakes.history(d).get(p.name, [])
            ],
        }

    # --- a domain ------------------------------------------------------------------------------

    def domain_answer(self, name: str) -> dict[str, Any]:
        d = self.domain(name)
        return self.cached(("domain", name), self.token(name), lambda: self._domain(d))

    def _domain(self, domain: Domain) -> dict[str, Any]:
        ports = {p.name: self.port_answer(domain.name, p.name) for p in domain.output_ports}
        runs = [a["when"]["last_run"] for a in ports.values() if a["when"]["last_run"]]
        publishes = [a["when"]["last_publish"] for a in ports.values() if a["when"]["last_publish"]]
        overdue = [n for n, a in ports.items() if a["when"]["freshness"]["state"] == "overdue"]
        return {
            "domain": domain.name,
            "as_of": records.iso(time.time()),
            "links": {
                "self": _url(domain.name),
                "ports": [_url(domain.name, p) for p in ports],
                "events": f"/events?domain={domain.name}",
                "runs": _url(domain.name) + "/runs",
            },
            "management_ports": [
                {
                    "name": m.name,
                    "content": m.content,
                    "type": m.type,
                    "url": m.url,
                    "description": m.description or None,
                }
                for m in domain.management_ports
            ],
            "what": {
                "title": domain.title,
                "description": domain.description,
                "owner": {"team": domain.team, "id": domain.owner},
                "lifecycle_phase": domain.lifecycle_phase,
                "toolchain": domain.toolchain,
                "glossary": domain.glossary,
                "output_ports": [
                    {"port": p.name, "description": p.description, "url": _url(domain.name, p.name)}
                    for p in domain.output_ports
                ],
            },
            "where": {
                "granted": False,
                "ports": {p: _url(domain.name, p) + "/where" for p in ports},
                "how_to_ask": "per port, with X-Mesh-Domain and your domain's bearer token",
            },
            "when": {
                "last_run": max(runs, key=lambda r: r["started_at"] or "", default=None),
                "last_publish": max(publishes, key=lambda p: p["published_at"], default=None),
                "sla_hours": domain.sla_freshness_hours,
                "overdue_ports": overdue,
                "warnings": [
                    {"port": n} | w for n, a in ports.items() for w in a["when"]["warnings"]
                ],
            },
            "proof": {
                n: {
                    k: a["proof"][k]
                    for k in ("version", "passed", "checks_passed", "checks_total", "run_id")
                }
                | {
                    "failed_checks": [c["name"] for c in a["proof"]["checks"] if not c["passed"]],
                    "last_attempt_failed": a["proof"]["last_attempt"] is not None,
                }
                for n, a in ports.items()
            },
            "with": {
                "input_ports": [r.ref for r in domain.input_ports],
                "sources": [s.name for s in domain.sources],
                "served_versions_built_from": {
                    n: a["with"]["input_ports"] for n, a in ports.items()
                },
            },
            "how": {
                "code_location": domain.name,
                "module": f"mesh_domains.{domain.name}.definitions",
                "job": f"build_{domain.name}",
                "descriptor": code.relative(domain.path),
                "toolchain": domain.toolchain,
                "current_code_version": code.current_code_version(domain),
                "variation": {"env": mesh_env()},
                "code_versions_served": {n: a["how"]["code_version"] for n, a in ports.items()},
            },
            "ports": {
                n: {"served_version": a["served_version"], "url": a["links"]["self"]}
                for n, a in ports.items()
            },
        }

    def domains_answer(self) -> dict[str, Any]:
        return {"domains": [self.domain_answer(n) for n in sorted(self.domains)]}

    # --- data linkage: who reads which version ---------------------------------------------------

    def consumers_answer(self, domain: str, port: str) -> dict[str, Any]:
        d, p = self.port(domain, port)
        readers = [c for c in self.domains.values() if any(r.ref == p.ref for r in c.input_ports)]
        token = self.token(d.name, *(c.name for c in readers))
        return self.cached(("consumers", domain, port), token, lambda: self._consumers(d, p))

    def _consumers(self, domain: Domain, port: OutputPort) -> dict[str, Any]:
        served = self.lakes.served_version(domain.name, port.name)
        published = [v.version for v in self.lakes.history(domain).get(port.name, [])]
        consumers, by_version = [], {}
        for consumer in self.domains.values():
            if not any(r.ref == port.ref for r in consumer.input_ports):
                continue
            reads = {}
            for out in consumer.output_ports:
                version = self.lakes.served_version(consumer.name, out.name)
                info = self.lakes.version(consumer, out.name, version) if version else None
                reads[out.name] = info.input_versions.get(port.ref) if info else None
            versions = sorted({v for v in reads.values() if v is not None})
            for v in versions:
                by_version.setdefault(v, []).append(consumer.name)
            consumers.append(
                {
                    "domain": consumer.name,
                    "team": consumer.team,
                    "granted": consumer.name in port.grants,
                    "reads_versions": versions,
                    "by_port": reads,
                    "current": bool(versions) and versions == [served],
                    "versions_behind": len([v for v in published if v > min(versions)])
                    if versions
                    else None,
                    "url": _url(consumer.name),
                }
            )
        consuming = {c["domain"] for c in consumers}
        return {
            "port": port.ref,
            "served_version": served,
            "consumers": consumers,
            "versions_in_use": {str(v): names for v, names in sorted(by_version.items())},
            "consumers_disagree": len(by_version) > 1,
            "granted_not_consuming": [g for g in port.grants if g not in consuming],
        }

    # --- the status table -------------------------------------------------------------------------

    def status(self) -> list[PortStatus]:
        return mesh_status(self.instance, self.domains)
