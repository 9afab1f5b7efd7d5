"""The embedded (no Redis) cache: bounded per owner, so one user cannot evict another's entries.

MCP sessions, REST rate-limit counters, the reply cache and reply remainders share
Django's cache. Django's local-memory cache, once full, evicts a third of *all* entries:
a few hundred `initialize` requests by one user threw out everyone's MCP sessions and
reset the login throttle. Here every key names its owner (`owned_key`: a user, or an
address for anonymous callers); an owner holds at most MAX_PER_OWNER entries (its own
oldest go first), and when the whole cache is full the entry evicted is the oldest of
the owner holding the most. With Redis (cluster mode) entries are never evicted for room
(they expire), and the same keys keep owners apart.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

SHARED = ""  # keys that name no owner (health checks)
_partitions: dict[str, dict[str, OrderedDict[str, None]]] = {}


def owned_key(owner: str, key: str) -> str:
    """`key` as a cache key held by `owner` (e.g. "u42" for a user, "ip:10.0.0.1" for an address)."""
    return f"{owner}|{key}"


def _owner(made_key: str) -> str:
    raw = made_key.split(":", 2)[-1]  # made keys are "<prefix>:<version>:<key>"
    owner, bar, _ = raw.partition("|")
    return owner if bar else SHARED


class FairLocMemCache(LocMemCache):
    # LocMemCache's own state (the stubs leave it out).
    _cache: OrderedDict[str, Any]
    _expire_info: dict[str, float | None]
    _lock: Lock
    _max_entries: int

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        super().__init__(name, params)
        self._max_per_owner = int(params.get("OPTIONS", {}).get("MAX_PER_OWNER", 1000))
        self._owners = _partitions.setdefault(name, {})

    def _set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        owner = _owner(key)
        keys = self._owners.setdefault(owner, OrderedDict())
        if key not in keys:
            if len(keys) >= self._max_per_owner:
                self._delete(next(iter(keys)))  # the owner's own oldest entry makes room
            elif len(self._cache) >= self._max_entries:
                self._cull()
            keys = self._owners.setdefault(owner, OrderedDict())
            keys[key] = None
        self._cache[key] = value
        self._cache.move_to_end(key, last=False)
        self._expire_info[key] = self.get_backend_timeout(timeout)

    def _cull(self) -> None:
        """Make room for one entry at the expense of whoever holds the most."""
        if not self._owners:
            return
        largest = max(self._owners.values(), key=len)
        if largest:
            self._delete(next(iter(largest)))

    def _delete(self, key: str) -> bool:
        keys = self._owners.get(_owner(key))
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._owners[_owner(key)]
        return bool(super()._delete(key))  # type: ignore[misc]  # LocMemCache's, absent from the stubs

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._expire_info.clear()
            self._owners.clear()
