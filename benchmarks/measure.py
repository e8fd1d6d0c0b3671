"""Timed subprocesses for the benchmarks: wall time, output, and peak memory.

Each command runs in a session of its own, so everything it starts (a dbt subprocess, a pool
of domain builders, a code server) belongs to it, even when it is not waited for. Every
``sample_s`` the session's live processes are read from ``/proc``:

- ``peak_tree_mb``: the memory of all of them at once, as the sum of their proportional set
  sizes (PSS: a page shared by forked workers is counted once, not once per process), i.e. what
  the machine must hold; ``peak_tree_rss_mb`` is the plain RSS sum (counts shared pages twice);
- ``peak_process_mb``: the largest single process: the larger of the sampled RSS and the
  kernel's exact max RSS of the command and the children it waited for (``wait4``'s
  ``ru_maxrss``, what ``getrusage(RUSAGE_CHILDREN)`` reports).

A spike shorter than ``sample_s`` can be missed by the sums.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


@dataclass
class Timed:
    """One finished command: how long it took, what it printed, and its peak memory."""

    args: list[str]
    returncode: int | None = None
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # first line containing a mark → t
    peak_tree_mb: float = 0.0
    peak_tree_rss_mb: float = 0.0
    peak_process_mb: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def tail(self, lines: int = 30) -> str:
        return "".join(self.lines[-lines:])

    def as_dict(self) -> dict:
        return {
            "command": " ".join(self.args),
            "returncode": self.returncode,
            "seconds": round(self.seconds, 3),
            "peak_tree_mb": round(self.peak_tree_mb, 1),
            "peak_tree_rss_mb": round(self.peak_tree_rss_mb, 1),
            "peak_process_mb": round(self.peak_process_mb, 1),
            "timed_out": self.timed_out,
        }


def session_members(sid: int) -> dict[int, int]:
    """Every live process of session ``sid`` and its resident bytes."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        # fields[0] is field 3 of proc(5) (state): session is field 6, rss (pages) field 24
        if int(fields[3]) == sid:
            members[int(entry)] = int(fields[21]) * PAGE
    return members


def pss(pid: int, rss: int) -> int:
    """The process's proportional set size (its RSS if smaps_rollup is not readable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss


def run_timed(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 3600.0,
    marks: tuple[str, ...] = (),
    sample_s: float = 0.2,
) -> Timed:
    """Run ``args`` to its end (or kill its whole session after ``timeout`` s) and measure it.

    ``marks`` are substrings of output lines: the time each first appears is recorded (e.g.
    the line a command prints once its imports are done), relative to the start.
    """
    result = Timed([str(a) for a in args])
    started = time.perf_counter()
    proc = subprocess.Popen(
        result.args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            result.lines.append(line)
            for mark in marks:
                if mark in line and mark not in result.marks:
                    result.marks[mark] = time.perf_counter() - started

    def sample() -> None:
        while not done.is_set():
            members = session_members(proc.pid)
            if members:
                total = sum(pss(pid, rss) for pid, rss in members.items())
                result.peak_tree_mb = max(result.peak_tree_mb, total / MB)
                result.peak_tree_rss_mb = max(result.peak_tree_rss_mb, sum(members.values()) / MB)
                result.peak_process_mb = max(result.peak_process_mb, max(members.values()) / MB)
            done.wait(sample_s)

    def kill() -> None:
        result.timed_out = True
        _kill_session(proc.pid)

    threads = [threading.Thread(target=read, daemon=True), threading.Thread(target=sample)]
    for t in threads:
        t.start()
    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    result.seconds = time.perf_counter() - started
    proc.returncode = result.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    _kill_session(proc.pid)  # anything the command left running (it should leave nothing)
    for t in threads:
        t.join(timeout=10)
    result.peak_process_mb = max(result.peak_process_mb, usage.ru_maxrss / 1024)  # KiB
    return result


def _kill_session(sid: int) -> None:
    """SIGKILL the processes still alive in the session this module started."""
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
