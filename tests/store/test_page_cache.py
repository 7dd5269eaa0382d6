"""PageCacheReader: files the kernel has cached are read without blocking; anything else is None."""

from __future__ import annotations

import os
from pathlib import Path

from postoffice.store.page_cache import PageCacheReader


def test_reads_a_cached_file_whole(tmp_path: Path) -> None:
    (tmp_path / "ab").mkdir()
    content = os.urandom(70_000)
    (tmp_path / "ab" / "blob").write_bytes(content)  # just written: in the page cache
    reader = PageCacheReader(tmp_path)
    try:
        assert reader.read_if_cached("ab/blob") == content
        (tmp_path / "ab" / "empty").write_bytes(b"")
        assert reader.read_if_cached("ab/empty") == b""
    finally:
        reader.close()


def test_missing_too_large_or_outside_give_none(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 5000)
    reader = PageCacheReader(tmp_path)
    try:
        assert reader.read_if_cached("missing") is None
        assert reader.read_if_cached("big", limit=4999) is None
        assert reader.read_if_cached("big", limit=5000) == b"x" * 5000
        assert reader.read_if_cached("nodir/blob") is None
    finally:
        reader.close()


def test_reopens_after_close_and_survives_a_missing_root(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    reader = PageCacheReader(tmp_path)
    assert reader.read_if_cached("f") == b"data"
    reader.close()
    assert reader.read_if_cached("f") == b"data"  # the directory is opened again
    reader.close()
    gone = PageCacheReader(tmp_path / "no-such-dir")
    assert gone.read_if_cached("f") is None
