"""Every in-memory cache a request can grow is bounded by size as well as by count."""

from __future__ import annotations

from mirror.bounded_cache import BoundedCache
from mirror.policy.pypi import _parse_version, parse_version


def test_memory_caches_are_bounded_by_size_as_well_as_count():
    cache: BoundedCache[str, bytes] = BoundedCache(max_entries=1000, max_weight=100, weigh=len)
    for n in range(10):
        cache.put(f"k{n}", b"x" * 30)
    assert len(cache) == 3 and cache.weight == 90 and cache.get("k9") is not None and cache.get("k0") is None
    cache.put("huge", b"x" * 101)  # larger than the whole budget: never kept
    assert cache.get("huge") is None and cache.weight == 90
    before = _parse_version.cache_info().currsize
    for n in range(100):
        parse_version(f"1.0+{'a' * 60}{n}")  # a version only a request path would spell
    assert _parse_version.cache_info().currsize == before
