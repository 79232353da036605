"""Progress bars that a supervisor can listen to: tqdm for the terminal, plus the counts for the Overview page.

Stages make their bars with :func:`bar` instead of ``tqdm(...)``. On its own that is a plain tqdm bar. When the
demo's background runner (pipeline/demo_runner.py) runs the stages, it registers a listener with :func:`listening`
and learns each bar's description, count and total as they move, even with the terminal bar turned off
(``--quiet``; a disabled tqdm keeps no count, so this class counts for itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm


@dataclass(frozen=True)
class Tick:
    """Where one bar stands: ``done`` of ``total`` (None when unknown) ``unit``s of ``desc``."""

    desc: str
    done: int
    total: int | None
    unit: str


Listener = Callable[[Tick], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener`` with every bar's :class:`Tick` (on the thread that moved the bar) while the block runs."""
    with _listeners_lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _listeners_lock:
            _listeners.remove(listener)


def _tell(tick: Tick) -> None:
    for listener in list(_listeners):
        listener(tick)


class StageBar(tqdm):
    """A tqdm bar that also reports its count to the listeners, whether or not the terminal bar is shown."""

    def __init__(self, iterable: Iterable | None = None, *args: Any, desc: str = "", unit: str = "it",
                 **kwargs: Any) -> None:
        super().__init__(iterable, *args, desc=desc, unit=unit, **kwargs)
        self.stage_desc, self.stage_unit, self.counted = desc, unit, 0
        _tell(Tick(desc, 0, self.total, unit))

    def _count(self, n: float) -> None:
        self.counted += int(n)
        _tell(Tick(self.stage_desc, self.counted, self.total, self.stage_unit))

    def update(self, n: float | None = 1) -> bool | None:
        self._count(1 if n is None else n)
        return super().update(n)

    def __iter__(self) -> Iterator:
        # tqdm's own iteration counts inline without calling update(), so count here.
        for item in super().__iter__():
            yield item
            self._count(1)


def bar(iterable: Iterable | None = None, **kwargs: Any) -> StageBar:
    """``tqdm(iterable, **kwargs)`` whose progress the runner also sees."""
    return StageBar(iterable, **kwargs)
