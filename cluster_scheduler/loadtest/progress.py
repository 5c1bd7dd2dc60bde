"""Live progress on stderr: a `rich` status line on a terminal, a plain line every few seconds
otherwise (CI logs, pipes), so a long run is never silent and never floods a log."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Callable, TextIO

# (created, bound, unschedulable, create errors)
Counts = Callable[[], tuple[int, int, int, int]]


class Progress:
    def __init__(self, label: str, total_pods: int, counts: Counts, *,
                 stream: TextIO | None = None, plain_every: float = 5.0) -> None:
        self.label = label
        self.total = total_pods
        self.counts = counts
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.plain_every = plain_every
        self.phase = "starting"
        self._t0 = time.monotonic()
        # the rate is taken over the last few samples: ~3 s on a terminal, one interval otherwise
        self._hist: deque[tuple[float, int]] = deque(maxlen=12 if self.tty else 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    def line(self) -> str:
        created, bound, unsched, errors = self.counts()
        now = time.monotonic()
        self._hist.append((now, bound))
        old_t, old_bound = self._hist[0]
        rate = (bound - old_bound) / (now - old_t) if now > old_t else 0.0
        err = f"  errors {errors}" if errors else ""
        return (f"[{self.label}] {self.phase:<10} created {created}/{self.total}  bound {bound}  "
                f"unschedulable {unsched}{err}  {rate:,.0f}/s  {now - self._t0:,.0f}s")

    def _render(self) -> object:
        return self._text(self.line(), no_wrap=True, overflow="ellipsis")

    def start(self) -> "Progress":
        if self.tty:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(self._render(), console=Console(file=self.stream),
                              refresh_per_second=4, transient=False)
            self._live.start()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = 0.25 if self.tty else self.plain_every
        while not self._stop.wait(interval):
            self._emit()

    def _emit(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
        else:
            print(self.line(), file=self.stream, flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.phase = "done"
        self._emit()
        if self._live is not None:
            self._live.stop()
