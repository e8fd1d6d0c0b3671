"""Reliability: crash safety. A ``kill -9`` of a domain run never leaves a torn port version
visible to consumers, and re-running converges to the same result.

One tiny mesh with every domain built fault-free (a copy of the test session's tiny build) is
the reference: its port contents. Each test then kills a real ``mesh build --domain <d>``
subprocess against that existing lake, either at a named crash point (``MESH_CRASH_AT``:
SIGKILL inside the process) or with a SIGKILL sent after a seeded random delay, and checks with
a READ-ONLY reader that:

(a) no version is torn: every committed snapshot that records ports has every one of them
    readable at that version with exactly the recorded row count (both ports of a
    physician_master commit; the ports of each of physician_dw's build steps, its descriptor's
    five ports over the commits of its two runs), and no snapshot changed a port without
    recording it;
(b) a good state is still served: every earlier version is still there with the same content,
    the current version is not older than before; the lake's served-version pointer serves one
    committed state of the domain (every port at the version that published it there, with
    exactly its files), not older than the state served before the kill and at most the one
    commit behind that the kill may have left without its pointer. A kill between two commits
    of a build, or between physician_dw's two runs, leaves the ports committed so far at their
    new versions and the others at their old ones: one state of the domain, not a torn one.
    A consumer reading through the platform's port reader (``lake.open_port``: grant check,
    version pinned) reads exactly the served state's content;
(c) a fault-free re-run publishes a new version whose content equals the reference
    (convergence), still with no torn version, and its pointer serves the current version of
    every port (a commit left without its pointer is caught up).

A first test holds the auditor to finding torn states (on a tampered copy of a lake), so that
these checks can fail. ``benchmarks/crash_safety.py`` runs the same harness for many kills,
mixing both domains.
"""

from __future__ import annotations

import json
import random
import shutil

import pytest
from reliability_helpers import (
    BuildRun,
    LakeAudit,
    MeshRoot,
    audit_lake,
    audit_mesh,
    built_mesh_root,
    kill_problems,
    pointer_file,
    ports,
    producers,
    recovery_problems,
    run_build,
    served_to_consumer,
)

from mesh_domains.platform import lake
from mesh_domains.platform.build import domain_runs
from mesh_domains.platform.faults import CRASH_POINTS
from mesh_domains.platform.settings import MeshPaths

pytestmark = pytest.mark.slow

SEED = 20250607
BEFORE_COMMIT = {"build.after_stage", "build.after_audit", "publish.before_commit"}


class Lakes:
    """The mesh under test, its reference contents and the fault-free build times (of the
    re-runs so far)."""

    def __init__(self, mesh: MeshRoot) -> None:
        self.mesh = mesh
        self.reference: dict[str, dict[str, str]] = {}
        self.build_seconds: dict[str, float] = {}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> Lakes:
    """A tiny mesh with every domain built fault-free (a copy of the test session's tiny
    build): the reference contents."""
    lakes = Lakes(built_mesh_root(tmp_path_factory))
    for domain, audit in audit_mesh(lakes.mesh.paths).items():
        assert not audit.torn and audit.current is not None, audit
        assert recovery_problems(audit) == [], audit
        assert set(audit.current.digests) == set(ports(domain)), audit.current
        lakes.reference[domain] = audit.current.digests
    return lakes


def consumer_view(lakes: Lakes, domain: str, audit: LakeAudit) -> tuple[int, dict[str, str]]:
    """The state of ``domain`` a consumer is served now (``lake.open_port`` for every port:
    each port at the version that published it, the newest of them naming the state) and the
    content digests it reads: every port that state holds, each pinned at the version that
    published it there (ports published by one commit are pinned together). ``audit``: the
    lake as it is now."""
    served = served_to_consumer(lakes.mesh.paths, domain)
    state = max(v for v, _ in served.values())
    made_by = audit.state(state).made_by
    pinned = {port: version for port, (version, _) in served.items()}
    assert pinned == made_by, f"{domain}: not one state: {served}, state {state}: {made_by}"
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
    pinned, content = consumer_view(lakes, domain, after)
    assert pinned == after.served_version, f"{what}: consumers read another state"
    assert content == after.digests_at(pinned), f"{what}: consumers read other content"
    if after.current_version == before.current_version:
        assert (pinned, content) == (before.current_version, before.current.digests), (
            f"{what}: the last good version is not served"
        )

    rerun = run_build(lakes.mesh, domain)
    assert rerun.built(domain), f"re-run after {what} failed:\n{rerun.tail()}"
    lakes.build_seconds[domain] = rerun.build_seconds or rerun.seconds
    final = audit_lake(paths, domain)
    assert final.torn == [], f"after the re-run of {what}: torn versions {final.torn}"
    assert recovery_problems(final) == [], f"after the re-run of {what}"
    assert final.current_version > after.current_version, "the re-run published nothing"
    assert final.differing_ports(reference) == [], (
        f"the re-run after {what} did not converge to the reference content"
    )
    assert consumer_view(lakes, domain, final) == (final.current_version, reference)
    return killed, before, after


def test_auditor_finds_torn_states(lakes, tmp_path, monkeypatch):
    """The auditor fails on what a kill must never leave (so the tests below can fail), on a
    copy of physician_dw's lake: a pointer that serves a port without the others of its
    commit, a port with another port's files, a port at a version that did not publish it; a
    commit whose port has other rows than it recorded; a snapshot that writes a port table
    without recording it; a pointer two commits behind after a kill, or behind at all after
    a fault-free run, or older than before the kill. One commit behind after a kill is legal."""
    domain = "physician_dw"
    paths = MeshPaths(tmp_path / "data")
    shutil.copytree(
        lakes.mesh.paths.lake_dir(domain), paths.lake_dir(domain), copy_function=shutil.copyfile
    )
    pointer = pointer_file(paths, domain)
    good = audit_lake(paths, domain)
    assert good.torn == [] and recovery_problems(good) == [] and good.served_version
    last = good.current
    together = sorted(p for p, v in last.made_by.items() if v == last.version)
    older = sorted(p for p, v in last.made_by.items() if v != last.version)
    assert len(together) > 1 and older, last.made_by  # one step publishes two of its ports

    def served_as(change) -> LakeAudit:
        kept = pointer.read_text()
        data = json.loads(kept)
        change(data["ports"])
        pointer.write_text(json.dumps(data))
        try:
            return audit_lake(paths, domain)
        finally:
            pointer.write_text(kept)

    torn = served_as(lambda served: served.pop(together[0]))
    assert torn.torn and torn.served_version is None, torn.served
    assert kill_problems(good, torn) and recovery_problems(torn)
    torn = served_as(lambda served: served[older[0]].update(files=served[together[0]]["files"]))
    assert any("other files" in t for t in torn.torn), torn.torn
    torn = served_as(lambda served: served[older[0]].update(version=last.version))
    assert any("no such committed version" in t for t in torn.torn), torn.torn

    monkeypatch.setenv("MESH_DATA_DIR", str(paths.data))
    con = lake.connect()
    try:
        alias = lake.attach_own_lake(con, domain)
        port = together[0]
        con.execute(f"create table staged as select * from {alias}.main.{port}")
        rows = con.execute("select count(*) from staged").fetchall()[0][0]

        def commit(recorded: int) -> None:
            staged, info = {port: "memory.main.staged"}, {"ports": {port: {"rows": recorded}}}
            lake.publish(con, domain, staged, info)

        served_before = pointer.read_text()
        commit(rows)
        one_behind = pointer.read_text()
        commit(rows)
        current = audit_lake(paths, domain)
        assert current.torn == [] and recovery_problems(current) == []
        pointer.write_text(one_behind)  # a kill between the second commit and its pointer
        lagging = audit_lake(paths, domain)
        assert lagging.torn == [] and kill_problems(good, lagging) == []
        assert recovery_problems(lagging), "a pointer behind after a fault-free run"
        pointer.write_text(served_before)
        behind = audit_lake(paths, domain)
        assert kill_problems(good, behind), "two commits without their pointer"
        assert kill_problems(current, behind), "the served state went back"

        commit(rows + 1)
        assert any("the commit recorded" in t for t in audit_lake(paths, domain).torn)
        con.execute(f"create table {alias}.main.unrecorded as select 1 as x")
        assert any("without recording" in t for t in audit_lake(paths, domain).torn)
    finally:
        con.close()


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


def test_kill_between_dbt_domain_runs(lakes):
    """A SIGKILL of a physician_dw build right after its first commit (its first run's, before
    the commit's pointer: ``publish.after_commit``), before its second run: the first run's
    ports are committed at their new version, complete, the others stay at their old ones,
    and the pointer still serves the last good state, one commit behind, which is legal; the
    re-run catches the pointer up and converges to the reference content."""
    domain = "physician_dw"
    (_, first_run), *later = domain_runs(producers()[domain])
    assert later, f"{domain} builds in one run"
    first = {key.path[-1] for assets in first_run for key in assets.keys}
    _, before, after = crash_and_recover(lakes, domain, crash_at="publish.after_commit")
    assert after.current_version == before.current_version + 1
    new = {p for p, v in after.current.made_by.items() if v == after.current_version}
    assert new and new <= first, f"the first commit published {new}, not ports of {first}"
    assert {p: v for p, v in after.current.made_by.items() if p not in new} == {
        p: v for p, v in before.current.made_by.items() if p not in new
    }
    assert after.served_version == before.current_version and after.commits_behind() == 1


def test_random_kill_during_dbt_domain_build(lakes):
    """A SIGKILL of the whole physician_dw build (the dbt domain: the mesh process and its dbt
    subprocess) after a seeded random delay into it leaves no torn version among its five
    ports, wherever it lands in its two runs: the pointer serves one committed state (the
    ports committed before the kill at their new versions, the others at their old ones), and
    a re-run converges to the reference content (the dbt build is idempotent)."""
    if "physician_dw" not in lakes.build_seconds:  # how long a fault-free build takes
        warm = run_build(lakes.mesh, "physician_dw")
        assert warm.built("physician_dw"), warm.tail()
        lakes.build_seconds["physician_dw"] = warm.build_seconds or warm.seconds
    rng = random.Random(SEED)
    delay = rng.uniform(0.2, 0.7) * lakes.build_seconds["physician_dw"]
    killed, _, _ = crash_and_recover(lakes, "physician_dw", kill_after=delay)
    assert killed.killed_by_harness, f"the run ended before the kill at {delay:.2f}s"
