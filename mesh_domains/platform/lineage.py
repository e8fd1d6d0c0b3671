"""Data linkage without drift (decision 6): what every port version derives from, and the check
that a consumer never combines ports built from different versions of a shared upstream port.

Every commit records its *lineage*: the versions of the input ports it pinned and, transitively,
everything those versions derive from (``producer/port`` -> version). When a consumer pins its
inputs, the platform merges their lineages; if one upstream port shows up at two versions (e.g.
``physician_dw/dim_physician`` built from ``physician_master/physicians`` v3 and
``payer_dw/dim_physician`` from v5), the inputs have drifted apart. The consumer's descriptor
chooses what happens: ``on_drift: refuse`` (the default) stops the build with a message naming
both paths, ``on_drift: pin_consistent`` pins the newest set of input versions that agree. A
variation may choose differently (``variations: {dev: {on_drift: pin_consistent}}``: a
developer's build reads the newest versions that agree while CI and production refuse).

Partitioned ports: a fact accumulates periods built at different times, each from the upstream
versions current then, so it mixes upstream versions by design (a new physician master must not
force every week of every fact to be rebuilt). Its versions record their lineage like any other
(the commit's, with the partitions it replaced) and pass it on, but the comparison is made
between the whole-table ports a consumer reads — dimensions and marts, rebuilt whole, whose
lineage holds for every row — which is where shared entities are described.

Versions in lineages are *content versions*: a version published with exactly the rows of its
predecessor (a rebuild from the same inputs, e.g. a master rebuilt because a new week of Rx
arrived with no new prescriber) stands for the earliest version with that content. Consumers
built on the older version have not drifted, and process linkage does not rebuild them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .descriptor import Domain
from .errors import MeshError


class DriftError(MeshError):
    """Two input ports derive from different versions of a shared upstream port."""


@dataclass
class Pin:
    """An input port pinned at a version, and what that version derives from."""

    ref: str
    version: int | None
    lineage: dict[str, int] = field(default_factory=dict)
    compared: bool = True  # False for a partitioned port (see the module's docstring)
    content: int | None = None  # the version with the same content (lake.content_version)

    def derives(self) -> dict[str, int]:
        """The upstream (content) versions this pin stands for, itself included."""
        own = self.content if self.content is not None else self.version
        return {**self.lineage, **({self.ref: own} if own is not None else {})}


def merged_lineage(pins: dict[str, Pin]) -> dict[str, int]:
    """What a build from ``pins`` derives from: every pinned input and its lineage."""
    out: dict[str, int] = {}
    # whole-table ports last: where a fact's periods were built from an older upstream
    # version, the version recorded is the one the dimensions agree on
    for pin in sorted(pins.values(), key=lambda p: p.compared):
        out.update(pin.derives())
    return dict(sorted(out.items()))


def conflicts(pins: dict[str, Pin]) -> dict[str, dict[str, int]]:
    """Upstream ports seen at more than one version: upstream -> {input ref: its version}."""
    seen: dict[str, dict[str, int]] = {}
    for ref, pin in pins.items():
        if not pin.compared:
            continue
        for upstream, version in pin.derives().items():
            seen.setdefault(upstream, {})[ref] = version
    return {up: by for up, by in sorted(seen.items()) if len(set(by.values())) > 1}


def drift_message(domain: Domain, pins: dict[str, Pin], found: dict[str, dict[str, int]]) -> str:
    lines = [
        f"{domain.name}: input ports derive from different versions of a shared upstream port "
        "(data drift); nothing was built or published:"
    ]
    lagging: set[str] = set()
    for upstream, by in found.items():
        newest = max(by.values())
        for ref, version in sorted(by.items(), key=lambda kv: (kv[1], kv[0])):
            path = (
                f"{upstream} v{version}"
                if ref == upstream
                else f"{upstream} v{version} -> {ref} v{pins[ref].version}"
            )
            lines.append(f"  - {path}")
            if version < newest:
                lagging.add(ref.split("/")[0])
        lines.append(f"  ({upstream}: newest v{newest})")
    commands = ", ".join(f"mesh build --domain {d}" for d in sorted(lagging))
    lines.append(
        f"Build the lagging domain(s) first ({commands}), or set `on_drift: pin_consistent` "
        f"in {domain.path} (for the domain or one environment's variation) to read the newest "
        "versions that agree."
    )
    return "\n".join(lines)


def consistent_pins(
    pins: dict[str, Pin], history: Callable[[str], list[tuple]]
) -> dict[str, Pin] | None:
    """The newest set of input versions that agree, or None if no published set does.

    For each drifted upstream port, tries its versions newest first: every input that derives
    from it falls back to its newest version (never newer than the pinned one) built from that
    upstream version. ``history(ref)`` lists an input's versions newest first, each as
    ``(version, lineage)`` or ``(version, lineage, content version)``.
    """
    current = dict(pins)
    for _ in range(8):  # each round settles one upstream port; mesh chains are short
        found = conflicts(current)
        if not found:
            return current
        upstream, by = next(iter(found.items()))
        for target in sorted(set(by.values()), reverse=True):
            chosen = {}
            for ref in by:
                pin = current[ref]
                match = next(
                    (
                        candidate
                        for version, lineage, *content in history(ref)
                        if pin.version is None or version <= pin.version
                        for candidate in [Pin(ref, version, lineage, pin.compared, *content[:1])]
                        if candidate.derives().get(upstream) == target
                    ),
                    None,
                )
                if match is None:
                    break
                chosen[ref] = match
            else:
                current.update(chosen)
                break
        else:
            return None
    return None if conflicts(current) else current
