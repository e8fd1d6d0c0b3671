"""`mesh build`'s scheduler: domains start when their upstream domains are done, and a slot no
ready domain needs checks the deliveries of a dbt domain still waiting; the checks themselves
run for real on a tiny landing zone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mesh_domains.platform.build import (
    BuildReport,
    DomainResult,
    _own_sources,
    _schedule,
    precheck_sources,
)
from mesh_domains.platform.descriptor import discover_domains
from mesh_domains.platform.sources import deliveries, passed_before, typed_file

DOMAINS = discover_domains()


def test_only_a_dbt_domain_sources_no_other_unfinished_domain_ingests_are_checked_ahead():
    assert _own_sources("payer_dw", DOMAINS, ["physician_master", "payer_dw"]) == [
        "claims",
        "rebates",
    ]
    # rx_weekly is the master's to check while it builds: not checked twice at once
    assert _own_sources("physician_dw", DOMAINS, ["physician_master", "physician_dw"]) == [
        "field_calls"
    ]
    assert _own_sources("physician_dw", DOMAINS, ["physician_dw"]) == ["rx_weekly", "field_calls"]
    # a Python builder may read part of a source (the latest AMA file): not guessed
    assert _own_sources("physician_master", DOMAINS, ["physician_master"]) == []


def test_an_idle_slot_checks_a_waiting_domain_which_starts_after_both():
    """Two slots: the master (slow) and npp (quick) start; when npp ends, the free slot checks
    payer_dw's deliveries while payer_dw still waits for the master; payer_dw starts once the
    master is done and its check has ended, and nothing starts while both slots are busy."""
    events: list[tuple[str, str]] = []
    busy, most = [0], [0]
    lock = threading.Lock()

    def work(label: str, seconds: float):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(seconds)
        with lock:
            busy[0] -= 1
            events.append((label, "done"))

    durations = {"physician_master": 0.6, "npp": 0.05, "payer_dw": 0.05}
    with ThreadPoolExecutor(max_workers=4) as pool:

        def submit(name):
            return pool.submit(
                lambda: (work(name, durations[name]), DomainResult(name, "built", 0.1))[1]
            )

        def check(name, sources):
            events.append((f"check {name}", ",".join(sources)))
            return pool.submit(work, f"check {name}", 0.3)

        order = ["physician_master", "npp", "payer_dw"]
        report = BuildReport()
        _schedule(
            order,
            DOMAINS,
            report,
            lambda name, phase, result: events.append((name, phase)),
            None,
            submit,
            2,
            check,
        )
    assert report.ok and {r.domain for r in report.results} == set(order)
    assert most[0] <= 2
    at = {event: i for i, event in enumerate(events)}
    assert ("check payer_dw", "claims,rebates") in at
    assert at[("npp", "end")] < at[("payer_dw", "check")] < at[("physician_master", "end")]
    assert at[("payer_dw", "checked")] < at[("payer_dw", "start")]
    assert at[("physician_master", "end")] < at[("payer_dw", "start")]


@pytest.mark.slow
def test_deliveries_checked_ahead_are_kept_for_the_build_and_a_bad_one_is_left_to_it(mesh):
    """The check ahead writes each good delivery's verdict and typed rows (what the build
    reloads instead of checking again); a bad delivery gets no verdict and raises nothing
    there: the domain's own build rejects it and says why."""
    source = DOMAINS["payer_dw"].source("claims")
    found = deliveries(source)
    bad = found[-1].path
    text = bad.read_text().splitlines()
    bad.write_text("\n".join([text[0], *(line + ",surplus" for line in text[1:])]) + "\n")
    precheck_sources("payer_dw", ["claims", "rebates"])
    for delivery in found[:-1]:
        sha = passed_before(source, delivery)
        assert sha is not None and typed_file(delivery, sha).exists(), delivery.display
    assert passed_before(source, found[-1]) is None
    rebates = DOMAINS["payer_dw"].source("rebates")
    assert all(passed_before(rebates, d) for d in deliveries(rebates))
