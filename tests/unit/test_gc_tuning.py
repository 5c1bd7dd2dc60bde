"""paused_gc: nested pauses restore the collector once, and only bulk loads freeze."""

from __future__ import annotations

import gc

from cluster_scheduler.gc_tuning import paused_gc


def _garbage() -> None:
    a: list = []
    a.append(a)  # a cycle: only the collector can free it


def test_batch_pause_does_not_freeze():
    gc.unfreeze()
    assert gc.isenabled()
    with paused_gc(freeze=False):
        assert not gc.isenabled()
        _garbage()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert gc.collect() >= 1  # the cycle made in the pause is still collectable


def test_bulk_load_inside_a_batch_pause_still_freezes():
    gc.unfreeze()
    with paused_gc(freeze=False):
        with paused_gc():  # a bulk load ends while the batch still holds the pause
            kept = [[i] for i in range(1000)]
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)
    gc.unfreeze()


def test_disabled_collector_stays_disabled():
    gc.disable()
    try:
        with paused_gc(freeze=False):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
