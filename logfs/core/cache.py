"""A bounded LRU of open resources (file descriptors, index mappings).

Objects that hold an fd or a mapping call :meth:`ResourceCache.touch` whenever they
use it; when more than ``capacity`` are held, the least recently used one is asked to
``release()`` (close its fd / unmap) and reopens lazily on its next use. This keeps a
store of 100,000 segments at a bounded number of descriptors and mappings.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol


class Releasable(Protocol):
    def release(self) -> None: ...


class ResourceCache:
    def __init__(self, capacity: int = 256) -> None:
        if capacity < 4:
            raise ValueError("capacity must be at least 4")
        self.capacity = capacity
        self._held: OrderedDict[int, Releasable] = OrderedDict()

    def touch(self, obj: Releasable) -> None:
        """Record a use of *obj* (which now holds a resource); may release others."""
        key = id(obj)
        held = self._held
        if key in held:
            held.move_to_end(key)
            return
        held[key] = obj
        while len(held) > self.capacity:
            _key, victim = held.popitem(last=False)
            victim.release()

    def forget(self, obj: Releasable) -> None:
        """*obj* released its resource by itself (closed, deleted)."""
        self._held.pop(id(obj), None)

    def __len__(self) -> int:
        return len(self._held)

    def release_all(self) -> None:
        while self._held:
            _key, victim = self._held.popitem(last=False)
            victim.release()
