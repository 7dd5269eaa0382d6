"""Read a file on the event loop only when the kernel can answer without waiting for the disk.

Handing every small read to a worker thread costs more than the read: the worker's open, read
and close each give up the GIL, and every hand-back to a busy event loop is a futex wake and a
context switch (a POP3 download spent about a third of its CPU there). Linux can say up front
whether a read would wait for the disk: `openat2(2)` with RESOLVE_CACHED fails with EAGAIN
unless the path resolves from the dentry cache, and `preadv2(2)` with RWF_NOWAIT fails (or
returns short) unless the data is in the page cache. A read that passes both never blocks, so
the loop may do it; anything else returns None and the caller goes to a thread as before.

Elsewhere (not Linux, kernels before 5.12, a sandbox that forbids the syscall) `read_if_cached`
always returns None.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

__all__ = ["PageCacheReader"]

_SYS_OPENAT2 = 437  # the same number on every Linux architecture (added after the unified table)
_RESOLVE_CACHED = 0x20


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_syscall() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux") or not hasattr(os, "preadv") or not hasattr(os, "RWF_NOWAIT"):
        return None
    try:
        # PyDLL: a syscall that cannot block needs no GIL release (no hand-over to other threads).
        libc = ctypes.PyDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    return syscall


class PageCacheReader:
    """Non-blocking reads of whole files below one directory (paths relative to it)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = root
        self._syscall = _load_syscall()
        self._how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
        self._how_ref = ctypes.byref(self._how)
        self._how_size = ctypes.sizeof(self._how)
        self._root_fd = -1  # opened at the first read: most users of a BlobStore never read

    def _root_descriptor(self) -> int:
        if self._root_fd < 0:
            self._root_fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._root_fd

    def read_if_cached(self, relative: str | bytes, limit: int = 1 << 20) -> bytes | None:
        """The whole file if every step is served from the kernel's caches and it is at most
        `limit` octets (copying more would hold up the loop), else None; also None when the
        file does not exist: the caller's ordinary read reports that."""
        syscall = self._syscall
        if syscall is None:
            return None
        try:
            root_fd = self._root_descriptor()
        except OSError:
            self._syscall = None
            return None
        fd = syscall(_SYS_OPENAT2, root_fd, os.fsencode(relative), self._how_ref, self._how_size)
        if fd < 0:
            if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                self._syscall = None  # no openat2 here (old kernel, seccomp): stop trying
            return None
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                return None
            buffer = bytearray(size)
            if size and os.preadv(fd, [buffer], 0, os.RWF_NOWAIT) != size:
                return None
            return bytes(buffer)
        except OSError:  # EAGAIN: not all in the page cache; EOPNOTSUPP: file system cannot say
            return None
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release the directory descriptor; a later read opens it again."""
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
