"""A least-recently-used map bounded by entry count and by total weight (an estimate of bytes):
every in-memory cache a request can grow is bounded both ways, so neither many small entries nor
a few huge ones can exhaust the server."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Thread-safe (a page may be stored from a worker thread while the event loop reads)."""

    def __init__(self, max_entries: int, max_weight: int, weigh: Callable[[V], int]) -> None:
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh
        self._entries: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.weight = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value)
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self.weight -= previous[0]
            if weight > self.max_weight:  # larger than the whole budget: not kept at all
                return
            self._entries[key] = (weight, value)
            self.weight += weight
            while len(self._entries) > self.max_entries or self.weight > self.max_weight:
                _, (evicted, _) = self._entries.popitem(last=False)
                self.weight -= evicted

    def pop(self, key: K) -> None:
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self.weight -= previous[0]

    def __len__(self) -> int:
        return len(self._entries)
