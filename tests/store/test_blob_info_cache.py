"""BlobInfoCache: hits, misses, and the memory bound (least recently used out first)."""
from __future__ import annotations

from postoffice.store.blob_info_cache import BlobInfoCache
from postoffice.store.interface import BlobInfo


def info(n: int, structure: str = "{}") -> BlobInfo:
    return BlobInfo(f"{n:064x}", 100, structure, f"subject {n}", "", "", "", "", None, None, None, "", "")


def test_held_infos_are_found_and_the_rest_named_in_order() -> None:
    cache = BlobInfoCache()
    cache.add({info(1).sha256: info(1), info(2).sha256: info(2)})
    found, missing = cache.lookup([info(2).sha256, info(3).sha256, info(1).sha256, info(4).sha256])
    assert found == {info(2).sha256: info(2), info(1).sha256: info(1)}
    assert missing == [info(3).sha256, info(4).sha256]


def test_the_least_recently_used_go_first_when_memory_runs_out() -> None:
    cache = BlobInfoCache(max_bytes=10_000)
    big = "x" * 2_000
    for n in range(1, 4):
        cache.add({info(n, big).sha256: info(n, big)})
    cache.lookup([info(1).sha256])  # 1 is used again: 2 is now the oldest
    cache.add({info(4, big).sha256: info(4, big)})
    cache.add({info(5, big).sha256: info(5, big)})
    found, missing = cache.lookup([info(n).sha256 for n in range(1, 6)])
    assert missing == [info(2).sha256] and set(found) == {info(n).sha256 for n in (1, 3, 4, 5)}
    assert cache.bytes <= 10_000 and len(cache) == 4


def test_an_entry_larger_than_the_whole_cache_is_not_kept() -> None:
    cache = BlobInfoCache(max_bytes=1_000)
    cache.add({info(1).sha256: info(1)})
    cache.add({info(2, "y" * 5_000).sha256: info(2, "y" * 5_000)})
    assert cache.lookup([info(1).sha256, info(2).sha256]) == ({info(1).sha256: info(1)}, [info(2).sha256])
    assert cache.bytes <= 1_000
