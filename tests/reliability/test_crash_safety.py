"""Reliability: crash safety. A ``kill -9`` of a domain run never leaves a torn port version
visible to consumers, and re-running converges to the same result.

One tiny mesh is built once, fault-free, by ``mesh build`` subprocesses; its port contents are
the reference. Each test then kills a real ``mesh build --domain <d>`` subprocess against that
existing lake, either at a named crash point (``MESH_CRASH_AT``: SIGKILL inside the process) or
with a SIGKILL sent after a seeded random delay, and checks with a READ-ONLY reader that:

(a) no version is torn: every committed snapshot that records ports has every one of them
    readable at that version with exactly the recorded row count (both ports of a
    physician_master commit, all three of a physician_dw commit), and no snapshot wrote a port
    without recording it;
(b) the last good version is still served: every earlier version is still there with the same
    content, the current version is the previous one (or, for a kill after the commit, the new
    complete one), the lake's served-version pointer names one committed version for all ports
    with exactly its files, and a consumer reading through the platform's port reader
    (``lake.open_port``: grant check, version pinned) reads exactly that version's content;
(c) a fault-free re-run publishes a new version whose content equals the reference
    (convergence), still with no torn version.

``benchmarks/crash_safety.py`` runs the same harness for many kills, mixing both domains.
"""

from __future__ import annotations

import random

import pytest
from reliability_helpers import (
    DOMAINS,
    BuildRun,
    LakeAudit,
    MeshRoot,
    audit_lake,
    audit_mesh,
    kill_problems,
    new_mesh_root,
    run_build,
    served_to_consumer,
)

from mesh_domains.platform.faults import CRASH_POINTS

pytestmark = pytest.mark.slow

SEED = 20250607
BEFORE_COMMIT = {"build.after_stage", "build.after_audit", "publish.before_commit"}


class Lakes:
    """The mesh under test, its reference contents and the fault-free build times."""

    def __init__(self, mesh: MeshRoot) -> None:
        self.mesh = mesh
        self.reference: dict[str, dict[str, str]] = {}
        self.build_seconds: dict[str, float] = {}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> Lakes:
    """A tiny mesh built fault-free, one domain per ``mesh build`` (the reference)."""
    lakes = Lakes(new_mesh_root(tmp_path_factory.mktemp("crash")))
    prepared = run_build(lakes.mesh, "reference")  # physician_dw also reads it (not audited)
    assert prepared.built("reference"), prepared.tail()
    for domain in DOMAINS:
        run = run_build(lakes.mesh, domain)
        assert run.built(domain), run.tail()
        lakes.build_seconds[domain] = run.build_seconds or run.seconds
    for domain, audit in audit_mesh(lakes.mesh.paths).items():
        assert not audit.torn and audit.current is not None, audit
        lakes.reference[domain] = audit.current.digests
    return lakes


def consumer_view(lakes: Lakes, domain: str) -> tuple[int, dict[str, str]]:
    """The state of ``domain`` a consumer is served now (``lake.open_port`` for every port:
    each port at the version that published it, the newest of them naming the state) and the
    content digests it reads; ports published by one commit must be pinned together."""
    served = served_to_consumer(lakes.mesh.paths, domain)
    state = max(v for v, _ in served.values())
    audit = audit_lake(lakes.mesh.paths, domain)
    made_by = next(v.made_by for v in audit.versions if v.version == state)
    pinned = {port: version for port, (version, _) in served.items()}
    assert pinned == {p: made_by[p] for p in pinned}, f"{domain}: not one state: {served}"
    return state, {port: digest for port, (_, digest) in served.items()}


def crash_and_recover(
    lakes: Lakes, domain: str, *, crash_at: str | None = None, kill_after: float | None = None
) -> tuple[BuildRun, LakeAudit, LakeAudit]:
    """Kill one build of ``domain``, check (a) and (b), re-run it and check (c).

    Returns the killed run and the audits before and right after the kill.
    """
    paths, reference = lakes.mesh.paths, lakes.reference[domain]
    before = audit_lake(paths, domain)
    assert before.current is not None and before.torn == []
    assert before.served_version == before.current_version

    killed = run_build(lakes.mesh, domain, crash_at=crash_at, kill_after=kill_after)
    what = f"{domain} killed at {crash_at or f'{kill_after:.2f}s into its build'}"
    assert killed.died_of_sigkill, f"{what}: the run was not killed:\n{killed.tail()}"

    after = audit_lake(paths, domain)
    assert after.torn == [], f"{what}: torn versions {after.torn}"
    assert kill_problems(before, after) == [], what
    pinned, content = consumer_view(lakes, domain)
    assert pinned in (before.current_version, after.current_version), what
    assert content == after.digests_at(pinned), f"{what}: consumers read other content"
    if after.current_version == before.current_version:
        assert (pinned, content) == (before.current_version, before.current.digests), (
            f"{what}: the last good version is not served"
        )

    rerun = run_build(lakes.mesh, domain)
    assert rerun.built(domain), f"re-run after {what} failed:\n{rerun.tail()}"
    final = audit_lake(paths, domain)
    assert final.torn == [], f"after the re-run of {what}: torn versions {final.torn}"
    assert final.current_version > after.current_version, "the re-run published nothing"
    assert final.differing_ports(reference) == [], (
        f"the re-run after {what} did not converge to the reference content"
    )
    assert consumer_view(lakes, domain) == (final.current_version, reference)
    return killed, before, after


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_kill_at_crash_point_leaves_no_torn_version(lakes, crash_at):
    """A SIGKILL of a physician_master build at each named crash point (after staging, after
    the audit, inside the publish transaction before its commit, right after the commit)
    leaves no torn version: before the commit the previous version stays current and served;
    after it the new version is complete (both ports, recorded row counts). The consumer's
    lake (physician_dw) is untouched, and the re-run converges to the reference content."""
    consumer = audit_lake(lakes.mesh.paths, "physician_dw")
    _, before, after = crash_and_recover(lakes, "physician_master", crash_at=crash_at)
    if crash_at in BEFORE_COMMIT:
        assert after.current_version == before.current_version, (
            f"{crash_at}: a killed run published a version"
        )
    else:  # the first commit of the build (physician_master publishes one step)
        assert after.current_version == before.current_version + 1, (
            f"{crash_at}: the version committed before the kill is not visible"
        )
    assert audit_lake(lakes.mesh.paths, "physician_dw") == consumer


@pytest.mark.xfail(
    reason="physician_dw now builds in two runs (weekly and daily partitionings); the auditor "
    "tracks three of its five ports and misjudges a kill between the runs (open defect)",
    strict=False,
)
def test_random_kill_during_dbt_domain_build(lakes):
    """A SIGKILL of the whole physician_dw run (the dbt domain: the mesh process and its dbt
    subprocess) after a seeded random delay into its build leaves no torn version among its
    three ports, keeps the last good version served, and a re-run converges to the reference
    content (the dbt build is idempotent)."""
    rng = random.Random(SEED)
    delay = rng.uniform(0.2, 0.7) * lakes.build_seconds["physician_dw"]
    killed, _, _ = crash_and_recover(lakes, "physician_dw", kill_after=delay)
    assert killed.killed_by_harness, f"the run ended before the kill at {delay:.2f}s"
