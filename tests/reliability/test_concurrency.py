"""Reliability: concurrency. All domains build at once while many consumers read their ports.

A tiny mesh is built once (a copy of the test session's tiny build of every domain); then the
landing zone gets one more week of Rx deliveries (so the next versions have other row counts
than the first ones) and both domains build at the same time as separate
``mesh build --domain <d>`` processes — physician_dw (two runs, five ports) reading the
physician_master lake that is being published to — while 20 reader threads, each with its own
DuckDB connection, query every port of both domains again and again: 10 through the consumers'
read path (``lake.open_port``: served version pinned, no catalog), 10 through the live catalog
(``lake.attach_port_reader``, READ_ONLY, each read under the platform's ``lake.retrying``: the
process's catalog reads take turns, so that between two of them a waiting commit gets the
catalog). The tests below prove that:

- both builds succeed and publish a new version, and the pointer serves it;
- neither kind of reader gets an error (in particular no SQLite "database is locked");
- every read sees one committed version: a served read of a port has the row count recorded for
  the version it pinned; a catalog read of all ports of a domain (one statement) equals the
  counts one commit recorded; reads of version 1 keep returning its recorded counts;
- the readers really read across the publishes: they saw the old and the new version of both
  domains.

``benchmarks/concurrency.py`` runs the same with more readers and more rounds.
"""

from __future__ import annotations

import pytest
from reliability_helpers import (
    CATALOG,
    DOMAINS,
    SERVED,
    BuildProcess,
    ReaderPool,
    audit_mesh,
    built_mesh_root,
    recovery_problems,
)

pytestmark = pytest.mark.slow

READERS = 20
PAUSE = 0.05  # between one reader's reads: leaves the 2-core CI machine to the builds too


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """A built mesh, new landing data, then both domains built concurrently under ``READERS``
    reader threads; returns (initial audit, builds, reader stats, final audit)."""
    mesh = built_mesh_root(tmp_path_factory)
    initial = audit_mesh(mesh.paths)
    for audit in initial.values():
        assert audit.torn == [] and recovery_problems(audit) == [], audit
    mesh.generate(weeks=4)  # one more Rx week: the next versions have other row counts

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MESH_DATA_DIR", str(mesh.data))
        with ReaderPool(READERS, pause=PAUSE) as pool:
            procs = [BuildProcess(mesh, (d,)) for d in DOMAINS]
            builds = {d: p.wait(timeout=600) for d, p in zip(DOMAINS, procs, strict=True)}
    return initial, builds, pool.stats, audit_mesh(mesh.paths)


def test_concurrent_builds_succeed_and_publish(scenario):
    """Both domains, built at the same time while being read, publish a new complete version
    (no torn version in either lake) and serve it: 20 readers do not hold a publish off."""
    initial, builds, _, final = scenario
    for domain in DOMAINS:
        assert builds[domain].built(domain), builds[domain].tail()
        assert final[domain].torn == []
        assert final[domain].current_version > initial[domain].current_version
        assert recovery_problems(final[domain]) == []
        assert final[domain].current.rows != initial[domain].current.rows


def test_served_readers_get_no_errors(scenario):
    """The consumers' read path (``lake.open_port`` per port: the served version pinned as a
    view over its files) gets 0 errors from 10 concurrent readers during both publishes, and
    every one of them read repeatedly."""
    _, _, stats, _ = scenario
    assert stats.errors[SERVED] == {}, stats.errors[SERVED]
    served = [n for i, n in enumerate(stats.reads_per_reader) if i % 2 == 0]
    assert len(served) == READERS // 2 and min(served) >= 10, served


def test_catalog_readers_get_no_errors(scenario):
    """Readers that query the live catalog (``lake.attach_port_reader``, READ_ONLY: all ports
    in one statement, the committed versions, time travel) get 0 errors from 10 concurrent
    readers during both publishes — in particular no SQLite "database is locked"."""
    _, _, stats, _ = scenario
    assert stats.errors[CATALOG] == {}, stats.errors[CATALOG]
    catalog = [n for i, n in enumerate(stats.reads_per_reader) if i % 2 == 1]
    assert len(catalog) == READERS // 2 and min(catalog) >= 10, catalog


def test_every_read_sees_a_committed_version(scenario):
    """Every read returns exactly the row counts recorded by one committed version: a catalog
    read of all ports of a domain (one statement, so one snapshot) equals one commit's counts;
    a served read of a port equals the counts recorded for the version it pinned; reads of
    version 1 (time travel) keep returning its counts while new versions are committed."""
    _, _, stats, _ = scenario
    assert stats.bad_reads == [], stats.bad_reads[:10]
    assert stats.time_travel_reads > 0


def test_readers_saw_versions_change_under_them(scenario):
    """The reads straddled the publishes: for both domains the readers saw the version current
    before the builds and the one they published."""
    initial, _, stats, final = scenario
    for domain in DOMAINS:
        seen = stats.seen[domain]
        assert seen.get(initial[domain].current_version), (domain, seen)
        assert seen.get(final[domain].current_version), (domain, seen)
