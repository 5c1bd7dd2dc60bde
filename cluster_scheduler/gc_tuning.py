"""Keep CPython's cyclic garbage collector off the scheduler's long-lived state.

The scheduler's cache (100,000 pods, 10,000 nodes) is millions of long-lived objects. While it is
being built (an informer's full list, a partition loading a snapshot) every generational pass
walks the young objects again and again: decoding and loading a 100k-pod list took 2-3x longer
with the collector running than with it paused (measured on fleet-10k's objects). Once built, a
full collection would walk all of it for nothing (about a quarter of the engine's placement time).
So bulk loads pause the collector, and what they built is then moved out of its view
(`gc.freeze`, CPython >= 3.7); objects made later (per-batch results, new pods) are collected as
usual. The collector is process-wide, so the pause is reference-counted across threads.

There is no collection before the freeze: it would walk every object just built (about a second
for 100k pods, on the start-up path), to find the little cyclic garbage a load makes (decoded JSON
is acyclic and goes by reference counting); that little stays frozen.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator


class _Pause:
    """Reference count of the bulk loads (and engine batches) in progress in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = True
        self.freeze_pending = False  # a bulk load finished while others were still paused


_PAUSE = _Pause()  # the collector is process state; so is the count of who paused it


def freeze_loaded_state() -> None:
    """Call after a bulk load (initial list, full resync, a simulated workload's objects)."""
    gc.freeze()


@contextmanager
def paused_gc(freeze: bool = True) -> Iterator[None]:
    """Pause the cyclic collector for a bulk load (or, with freeze=False, one engine batch: its
    short-lived results would otherwise trigger a few full passes over everything unfrozen). The
    last one out freezes what the bulk loads built, if any did, and restores the collector."""
    with _PAUSE.lock:
        if _PAUSE.depth == 0:
            _PAUSE.was_enabled = gc.isenabled()
            gc.disable()
        _PAUSE.depth += 1
    try:
        yield
    finally:
        with _PAUSE.lock:
            _PAUSE.depth -= 1
            _PAUSE.freeze_pending |= freeze
            if _PAUSE.depth == 0:
                if _PAUSE.freeze_pending:
                    freeze_loaded_state()
                    _PAUSE.freeze_pending = False
                if _PAUSE.was_enabled:
                    gc.enable()
