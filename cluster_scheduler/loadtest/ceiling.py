"""The ceiling: a "scheduler" that makes no decision at all.

It watches nodes and the pods that name it, and binds each new pod to the next node, round robin,
with `--concurrency` threads under the same client rate limit (qps/burst) as the real schedulers.
What it measures is how fast the apiserver takes bindings and delivers watch events: the upper
bound for any scheduler on this machine. It runs as its own process, like the schedulers, so it
does not share an interpreter lock with the load generator and its CPU is measured the same way.

    python -m cluster_scheduler.loadtest.ceiling --kubeconfig K --scheduler-name N

Prints `ready` on stdout once both watches are synced; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
import time
from typing import Any

from cluster_scheduler.api.rest import TokenBucket
from cluster_scheduler.api.rest import api_client
from cluster_scheduler.loadtest.kube import CallError, call, warm_up
from cluster_scheduler.loadtest.runner import PROBE_NAMESPACE, ListWatcher

READY = "ready"


class RoundRobinBinder:
    """Binds pods to nodes in turn with a pool of threads. A pod that arrives before any node
    waits for one, as it would in a scheduler's queue."""

    def __init__(self, api: Any, *, concurrency: int, qps: float, burst: int) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.nodes: list[str] = []
        self.bucket = TokenBucket(qps, burst)
        self.queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.bound = 0
        self.errors: dict[str, str] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"bind-{i}", daemon=True)
                         for i in range(concurrency)]

    def start(self) -> "RoundRobinBinder":
        for t in self._threads:
            t.start()
        return self

    def add_node(self, name: str) -> None:
        with self._lock:
            self.nodes.append(name)

    def submit(self, namespace: str, name: str) -> None:
        self.queue.put((namespace, name))

    def stop(self) -> None:
        for _ in self._threads:
            self.queue.put(None)
        for t in self._threads:
            t.join(timeout=5)

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            ns, name = item
            with self._lock:
                node = self.nodes[self._next % len(self.nodes)] if self.nodes else None
                self._next += node is not None
            if node is None:
                time.sleep(0.05)
                self.queue.put(item)
                continue
            body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            self.bucket.acquire()
            try:
                status = call(self.core.create_namespaced_pod_binding, name, ns, body, ok_statuses=(409,))
            except CallError as exc:
                with self._lock:
                    self.errors[f"{ns}/{name}"] = str(exc)
                continue
            if status < 300:
                with self._lock:
                    self.bound += 1


def serve(kubeconfig: str, scheduler_name: str, *, concurrency: int, qps: float, burst: int,
          stop: threading.Event) -> RoundRobinBinder:
    """Run until `stop` is set; returns the binder (for its counts)."""
    from kubernetes import client

    api = api_client(kubeconfig, concurrency + 4)
    core = client.CoreV1Api(api)
    warm_up(api, concurrency)
    binder = RoundRobinBinder(api, concurrency=concurrency, qps=qps, burst=burst).start()
    seen_nodes: set[str] = set()

    def on_node(kind: str, node: dict, _t: float) -> None:
        name = node["metadata"]["name"]
        if kind in ("LISTED", "ADDED") and name not in seen_nodes:
            seen_nodes.add(name)
            binder.add_node(name)

    gated: set[tuple[str, str]] = set()  # pods created gated: bound once an update lifts the gates

    def on_pod(kind: str, pod: dict, _t: float) -> None:
        meta = pod["metadata"]
        if pod["spec"].get("nodeName") or meta.get("namespace") == PROBE_NAMESPACE:
            return
        key = (meta["namespace"], meta["name"])
        if pod["spec"].get("schedulingGates"):
            gated.add(key)  # (the apiserver refuses to bind a gated pod)
        elif kind in ("LISTED", "ADDED") or (kind == "MODIFIED" and key in gated):
            gated.discard(key)
            binder.submit(*key)

    nodes = ListWatcher(core.list_node, on_node, name="node-watch").start()
    pods = ListWatcher(core.list_pod_for_all_namespaces, on_pod,
                       field_selector=f"spec.schedulerName={scheduler_name}", name="pod-watch").start()
    print(READY, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        pods.stop()
        nodes.stop()
        binder.stop()
        api.close()
    return binder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cluster_scheduler.loadtest.ceiling",
                                description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--scheduler-name", required=True)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--qps", type=float, default=5000.0)
    p.add_argument("--burst", type=int, default=10000)
    args = p.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    binder = serve(args.kubeconfig, args.scheduler_name, concurrency=args.concurrency, qps=args.qps,
                   burst=args.burst, stop=stop)
    print(f"bound {binder.bound}, errors {len(binder.errors)}", flush=True)
    for key, err in list(binder.errors.items())[:10]:
        print(f"  {key}: {err}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
