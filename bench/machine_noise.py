"""What the machine did to a timed stretch of work, beside what the work did.

The development and CI machines are small shared VMs: a tick's wall time can grow because the
code did more, because another process had the CPU (the kernel's run queue), or because the
virtual CPU itself was not running (the host ran something else, or the thread was blocked on
I/O). These helpers let a bench tell the three apart per stretch of work:

* :func:`run_queue_wait_ns`: how long this thread has been runnable but waiting for a CPU, from
  the kernel's scheduler statistics (``/proc/thread-self/schedstat``, the second field);
* :func:`steal_s`: the machine's stolen time so far, all CPUs (``/proc/stat``; a hypervisor that
  does not report it leaves it at 0);
* :func:`probe_ms`: the wall time of a fixed piece of pure-Python work (about 0.2 ms on the
  development machine), run just before and after each timed stretch: when it comes out several
  times its median, the machine was slow then, whatever the code under test did;
* :func:`thread_counts`: this thread's major page faults (a page read back from disk: the
  thread blocked, neither running nor runnable) and voluntary and involuntary context switches
  so far, from ``getrusage(RUSAGE_THREAD)``;
* :func:`slow_ticks`: the slow stretches' medians of these against the others'.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

PROBE_LOOPS = 5_000


def run_queue_wait_ns() -> int:
    """This thread's time waiting, runnable, for a CPU so far, ns (0 where the kernel does not say)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def thread_counts() -> tuple[int, int, int]:
    """This thread's major page faults, voluntary and involuntary context switches so far."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_majflt, usage.ru_nvcsw, usage.ru_nivcsw


def steal_s() -> float:
    """Seconds of CPU the hypervisor took from this machine so far, all CPUs (0 where not reported)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def probe_ms() -> float:
    """The wall time of the same few thousand additions and multiplications, ms."""
    t = time.perf_counter_ns()
    acc = 0
    for i in range(PROBE_LOOPS):
        acc += i * i
    return (time.perf_counter_ns() - t) / 1e6


def slow_ticks(
    slow: np.ndarray,
    total: np.ndarray,
    cpu: np.ndarray,
    queue: np.ndarray,
    waiting: np.ndarray,
    probe: np.ndarray,
    counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """Where the slow ticks' wall time went (medians over them, ms), against the other ticks.

    ``cpu``: the worker's thread ran; ``run_queue_wait``: it was runnable and another thread or
    process had the CPU; ``waiting_for_answer``: it was idle, its venue work done, waiting for the
    service; ``other``: the rest (blocked on I/O, or the virtual CPU not running at all).
    ``probe_ratio``: the slower of :func:`probe_ms` just before and after the tick,
    over its median in the run (1: the machine ran as usual around that tick). ``counts``: per
    tick, the :func:`thread_counts` differences; their means over each group, and the share of
    ticks with a major fault.
    """
    other = total - cpu - queue - waiting
    ratio = probe.max(axis=1) / np.median(probe)

    def med(values: np.ndarray, where: np.ndarray) -> float:
        return float(np.median(values[where])) if where.any() else float("nan")

    out: dict[str, Any] = {"count": int(slow.sum())}
    for name, where in (("slow", slow), ("others", ~slow)):
        out[name] = {
            "total": med(total, where),
            "cpu": med(cpu, where),
            "run_queue_wait": med(queue, where),
            "waiting_for_answer": med(waiting, where),
            "other": med(other, where),
            "probe_ratio": med(ratio, where),
        }
        if counts is not None and where.any():
            major, voluntary, involuntary = counts[where].mean(axis=0)
            out[name] |= {
                "major_faults_mean": float(major),
                "share_with_major_fault": float((counts[where, 0] > 0).mean()),
                "voluntary_switches_mean": float(voluntary),
                "involuntary_switches_mean": float(involuntary),
            }
    out["slow_with_probe_over_2x"] = int((slow & (ratio > 2)).sum())
    return out
