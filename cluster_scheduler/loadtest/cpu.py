"""CPU seconds used by a process tree, read from /proc.

A scheduler is more than one process: ours is the `run` process plus Ray's gcs_server, raylet and
workers (some of which Ray may re-parent or restart), kube-scheduler is one process. The sampler
walks /proc periodically, adopts every process whose parent is already in the tree (and keeps it
even if it is later re-parented to init), and keeps each process's largest utime+stime seen, so
time spent by a process that has since exited still counts up to its last sample. Children's
`cutime`/`cstime` are deliberately ignored: a reaped child's time would otherwise count twice.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    ppid: int
    start_ticks: int  # with pid, identifies a process across pid reuse
    cpu_ticks: int  # utime + stime
    comm: str


def read_proc_stat(pid: int) -> ProcStat | None:
    """One process's /proc/PID/stat, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    head, _, tail = data.rpartition(")")  # the command name may hold spaces and parentheses
    comm = head.partition("(")[2]
    f = tail.split()
    # after the comm: state(0) ppid(1) ... utime(11) stime(12) ... starttime(19)
    try:
        return ProcStat(pid, int(f[1]), int(f[19]), int(f[11]) + int(f[12]), comm)
    except (IndexError, ValueError):
        return None


def all_proc_stats() -> list[ProcStat]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = read_proc_stat(int(entry.name))
            if st is not None:
                out.append(st)
    return out


@dataclass
class TreeCPU:
    """Tracks the CPU time of the trees rooted at some PIDs. `sample()` is cheap (one /proc walk)."""

    roots: set[int] = field(default_factory=set)
    # (pid, start_ticks) -> max cpu ticks seen
    _ticks: dict[tuple[int, int], int] = field(default_factory=dict)
    _members: set[tuple[int, int]] = field(default_factory=set)
    _names: dict[tuple[int, int], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_root(self, pid: int) -> None:
        with self._lock:
            self.roots.add(pid)

    def sample(self, stats: list[ProcStat] | None = None) -> None:
        stats = all_proc_stats() if stats is None else stats
        with self._lock:
            by_key = {(s.pid, s.start_ticks): s for s in stats}
            # roots first, then adopt children until nothing new (a parent may be listed after its child)
            tree_pids: set[int] = set()
            for s in stats:
                key = (s.pid, s.start_ticks)
                if s.pid in self.roots or key in self._members:
                    tree_pids.add(s.pid)
                    self._members.add(key)
            changed = True
            while changed:
                changed = False
                for s in stats:
                    if s.pid not in tree_pids and s.ppid in tree_pids:
                        tree_pids.add(s.pid)
                        self._members.add((s.pid, s.start_ticks))
                        changed = True
            for key in self._members:
                s = by_key.get(key)
                if s is not None:
                    self._names[key] = s.comm
                    if s.cpu_ticks > self._ticks.get(key, 0):
                        self._ticks[key] = s.cpu_ticks

    def snapshot(self) -> dict[tuple[int, int], int]:
        """Per process, the CPU ticks seen so far (for windowed measurements: subtract two)."""
        with self._lock:
            return dict(self._ticks)

    def seconds(self, since: dict[tuple[int, int], int] | None = None) -> float:
        """CPU seconds of the whole tree, or only those used after the snapshot `since`."""
        with self._lock:
            base = since or {}
            return sum(max(t - base.get(k, 0), 0) for k, t in self._ticks.items()) / _TICKS

    def by_command(self, since: dict[tuple[int, int], int] | None = None) -> dict[str, float]:
        """CPU seconds per command name (raylet, gcs_server, python, ...), for the report; with
        `since`, only those used after that snapshot."""
        with self._lock:
            base = since or {}
            out: dict[str, float] = {}
            for key, t in self._ticks.items():
                name = self._names.get(key, "?")
                out[name] = out.get(name, 0.0) + max(t - base.get(key, 0), 0) / _TICKS
            return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}

    def live_pids(self) -> list[tuple[int, int]]:
        """Members still alive now, as (pid, start_ticks), newest first."""
        with self._lock:
            members = list(self._members)
        alive = []
        for pid, start in members:
            s = read_proc_stat(pid)
            if s is not None and s.start_ticks == start:
                alive.append((pid, start))
        return sorted(alive, key=lambda k: -k[1])


class CPUSampler:
    """Samples several named trees every `interval` seconds on a daemon thread (one /proc walk per
    tick for all of them)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.trees: dict[str, TreeCPU] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, name: str, pid: int) -> TreeCPU:
        tree = self.trees.setdefault(name, TreeCPU())
        tree.add_root(pid)
        tree.sample()
        return tree

    def sample_now(self) -> None:
        stats = all_proc_stats()
        for tree in list(self.trees.values()):
            tree.sample(stats)

    def start(self) -> "CPUSampler":
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample_now()


def speed_probe(seconds: float = 0.2, samples: int = 3) -> float:
    """This machine's single-core speed now, as rounds of a fixed pure-Python workload per second
    of this thread's CPU time (the median of `samples` windows: within about 5% from one probe to
    the next on an idle machine here, single windows about 10%). The VM this project runs on
    drifts by up to 40% within minutes (the same work costing that much more CPU); runs that are
    compared with each other (ours against the ceiling) should have been made at a similar speed."""
    rates = []
    for _ in range(samples):
        rounds = 0
        t0 = time.thread_time()
        while True:
            d = {}
            for i in range(1000):
                d[i] = str(i)
            rounds += 1
            elapsed = time.thread_time() - t0
            if elapsed >= seconds:
                rates.append(rounds / elapsed)
                break
    return round(sorted(rates)[len(rates) // 2], 1)


def settled_speed_probe(tolerance: float = 0.05, tries: int = 6, pause_s: float = 0.5) -> float:
    """`speed_probe` once two probes in a row agree within `tolerance`: a probe taken while the
    previous run's processes were still exiting read up to 30% slow here, and flagged a good run
    as unreliable. Gives the last probe after `tries`, however far apart they were."""
    last = speed_probe()
    for _ in range(tries - 1):
        time.sleep(pause_s)
        now = speed_probe()
        if abs(now - last) <= tolerance * max(last, 1e-9):
            return now
        last = now
    return last
