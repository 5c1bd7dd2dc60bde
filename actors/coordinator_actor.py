"""The coordinator actor: the whole scheduler runtime inside one restartable Ray actor."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from cluster_scheduler.runtime import SchedulerRuntime

log = logging.getLogger(__name__)


class CoordinatorActor:
    """The coordinator as a Ray actor (`ray.remote(CoordinatorActor)`): inside its own worker
    process it builds and runs the whole in-process runtime (informer, binder, events, metrics
    server, the loop thread, the lease elector) and creates the partition actors, which it owns.

    Crash recovery is Ray's actor restart: the constructor runs again in a fresh process and
    rebuilds every piece of state from the API (the informer's list: bound pods from nodeName,
    pending pods queued again); assumptions in flight do not survive. A binding the dead process
    had sent either landed (the list shows the pod bound) or did not (the pod is pending again);
    binding a pod that is already bound is refused by the apiserver with 409, which the binder
    drops and the watch settles, so a pod is never bound twice. The partitions die with their
    owner and are created anew. A crashed scheduling loop ends the process, so it is restarted the
    same way."""

    def __init__(self, config: Any, kubeconfig: str | None, *, identity: str | None = None,
                 log_level: str = "INFO", reserved_cpus: float = 0.0) -> None:
        logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger().setLevel(log_level)
        self.rt = SchedulerRuntime(config, kubeconfig, identity=identity, reserved_cpus=reserved_cpus)
        try:
            self.rt.start()
        except Exception:
            self.rt.stop()
            raise
        log.info("coordinator actor started in pid %d", os.getpid())

        def watchdog() -> None:
            # a crashed loop leaves the process to Ray: exiting uncleanly makes it a restart
            while not self.rt.stopped:
                time.sleep(0.5)
            if self.rt.failed:
                log.error("scheduling loop crashed: exiting for a restart")
                self.rt.stop(timeout=10)
                os._exit(1)

        threading.Thread(target=watchdog, name="watchdog", daemon=True).start()

    def ready(self) -> tuple[bool, str]:
        return self.rt.ready()

    def stats(self) -> dict[str, Any]:
        return self.rt.stats()

    def resize(self, partitions: int) -> int:
        """Ask for `partitions` partition actors (applied between batches); returns the ask."""
        n = max(1, int(partitions))
        if self.rt.coordinator is not None:
            self.rt.coordinator.request_resize(n)
        return n

    def stop(self) -> str:
        """Stop gracefully (bindings in flight finish, the Lease is released); the final stats."""
        self.rt.stop()
        return self.rt.coordinator.stats.line() if self.rt.coordinator is not None else ""
