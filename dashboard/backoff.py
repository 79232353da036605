"""Back-off after failed sign-ins, per user name and per client, without ever sleeping.

Why: a password form can be guessed at as fast as the server answers. After ``free`` failures within ``window``
seconds on one key (a user name, a client), that key is refused for a delay that doubles with every further
failure, up to ``max_delay``. A refused attempt is answered at once ("try again in N s") and checks no password:
sleeping instead would hold one of the server's threads per attempt, and the attacker would simply open more.
Keys are independent, so one name or client being guessed at never slows anyone else's sign-in. Plain Python
(no Streamlit) with an injectable clock, so the rules are tested directly; signin.py keeps one per process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

FREE_FAILURES = 5
WINDOW_SECONDS = 15 * 60.0
FIRST_DELAY_SECONDS = 30.0
MAX_DELAY_SECONDS = 15 * 60.0
TRACKED_KEYS = 10_000  # above this, keys with nothing left to remember are dropped


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class Backoff:
    """Failed attempts per key; thread-safe, shared by every session of the process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, free: int = FREE_FAILURES,
                 window: float = WINDOW_SECONDS, first_delay: float = FIRST_DELAY_SECONDS,
                 max_delay: float = MAX_DELAY_SECONDS) -> None:
        self.clock = clock
        self.free, self.window, self.first_delay, self.max_delay = free, window, first_delay, max_delay
        self._lock = threading.Lock()
        self._keys: dict[str, _Failures] = {}

    def wait_seconds(self, *keys: str) -> float:
        """How long the longest-blocked of ``keys`` is still refused; 0 when an attempt may go ahead."""
        now = self.clock()
        with self._lock:
            return max([0.0] + [self._keys[k].blocked_until - now for k in keys if k in self._keys])

    def failed(self, *keys: str) -> None:
        """Count a failed attempt against each key; block a key once it has more than ``free`` recent ones."""
        now = self.clock()
        with self._lock:
            if len(self._keys) > TRACKED_KEYS:
                self._forget_idle(now)
            for key in keys:
                record = self._keys.setdefault(key, _Failures())
                self._age(record, now)
                record.times.append(now)
                extra = len(record.times) - self.free
                if extra >= 0:
                    record.blocked_until = now + min(self.max_delay, self.first_delay * 2 ** extra)

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures: whoever signed in knew the password. (Call it for the name only: clearing
        the client too would let one valid account reset a client's count between guesses at others.)"""
        with self._lock:
            self._keys.pop(key, None)

    def _age(self, record: _Failures, now: float) -> None:
        while record.times and record.times[0] <= now - self.window:
            record.times.popleft()

    def _forget_idle(self, now: float) -> None:
        for key in list(self._keys):
            record = self._keys[key]
            self._age(record, now)
            if not record.times and record.blocked_until <= now:
                del self._keys[key]
