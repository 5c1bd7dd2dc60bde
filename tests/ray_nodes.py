"""Ray nodes a test starts as separate processes (`ray start --block`), as an operator would: a
head, or a worker that joins one. Every port is free-picked, every node gets an explicit CPU count
and a small object store, and `stop` takes down exactly this node's processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from cluster_scheduler.controlplane.cluster import free_ports

RAY = str(Path(sys.executable).parent / "ray")


class RayNode:
    """One `ray start --block` in a process session of its own. `temp` must be short (Ray's unix
    socket paths have a length limit) and is this node's alone, so the processes that carry it on
    their command line are this node's."""

    def __init__(self, log_path: Path, temp: Path, env: dict, *, num_cpus: int,
                 object_store_mb: int = 200, head_address: str | None = None, extra: tuple[str, ...] = ()):
        self.log_path, self.temp, self.env = log_path, temp, env
        self.args = [f"--num-cpus={num_cpus}", f"--object-store-memory={object_store_mb * 1024 * 1024}",
                     f"--temp-dir={temp}", "--disable-usage-stats", *extra]
        self.head_address = head_address
        self.proc: subprocess.Popen | None = None
        self.address = head_address or ""

    def start(self, attempts: int = 3, timeout: float = 120) -> "RayNode":
        """A node that exits before it is up is started again on fresh ports: Ray gives a raylet a
        fixed 30 s to register with the GCS, sometimes too short on a loaded 2-core machine ("The
        current node timed out during startup"), and a free-picked port may be taken by another
        process before Ray binds it. A real mistake fails the same way every time, with its log."""
        for attempt in range(attempts):
            self._spawn()
            deadline = time.monotonic() + timeout
            while "Ray runtime started" not in self.log_path.read_text():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            else:
                return self
            text = self.log_path.read_text()
            self.stop()
            assert attempt < attempts - 1, text
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        picked = free_ports(7)
        flags = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
                 "runtime-env-agent-port", "node-manager-port", "object-manager-port")
        ports = [f"--{flag}={port}" for flag, port in zip(flags, picked)]
        if self.head_address is None:
            gcs = picked[-1]
            role = ["--head", f"--port={gcs}"]
            self.address = f"127.0.0.1:{gcs}"
        else:
            role = [f"--address={self.head_address}"]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen([RAY, "start", "--block", *role, *ports, *self.args], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        """Kill this node's session, then anything else still carrying its temp dir (job drivers
        and workers Ray started in sessions of their own)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for pid in self._stragglers():
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + wait
            while self._stragglers() and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.temp, ignore_errors=True)

    def raylet(self) -> tuple[int, str]:
        """(PID, Ray node id) of this node's raylet."""
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    argv = (d / "cmdline").read_bytes().decode().split("\0")
                except OSError:
                    continue
                if argv[0].endswith("/raylet") and any(str(self.temp) in a for a in argv):
                    node = next(a.split("=", 1)[1] for a in argv if a.startswith("--node_id="))
                    return int(d.name), node
        raise AssertionError(f"no raylet of {self.temp} runs")

    def _stragglers(self) -> list[int]:
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                try:
                    if str(self.temp).encode() in (d / "cmdline").read_bytes():
                        pids.append(int(d.name))
                except OSError:
                    pass
        return pids
