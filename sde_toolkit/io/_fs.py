"""File-system safety shared by the writers: the writer's lock file, publishing without clobbering, a space
check before every flush, and a clean stop when the disk is full or a file-size limit is hit.

* :class:`WriterLock`: ``<out>.partial.lock``, ``fcntl.flock`` exclusive and non-blocking, held for the life of
  a writer and removed when it closes. It works when HDF5's own locking is off (``HDF5_USE_FILE_LOCKING=FALSE``),
  so a second writer (even with ``overwrite``) fails fast instead of deleting the live ``.partial``.
* :func:`publish`: rename ``src`` to ``dst`` without ever replacing an existing ``dst`` (``renameat2`` with
  ``RENAME_NOREPLACE`` where the kernel and file system have it, else ``link`` + ``unlink``, else a check under
  the writer's lock), or replace it explicitly with ``overwrite=True``.
* :class:`SpaceGuard`: before a flush, the bytes HDF5 is about to allocate (new chunks, plus a margin for
  metadata) are checked against the file-size limit (``RLIMIT_FSIZE``) and the free space of the file system.
  A flush that fails half way writes HDF5's superblock with an end-of-file address past the real end of the
  file, which makes the file unreadable; refusing the flush *before* it starts keeps the file exactly as its
  last durable commit left it.
* :func:`fuse_and_close`: after a failed write, the HDF5 file's descriptor is pointed at ``/dev/null`` before the
  file is closed, so nothing HDF5 still has in its caches can reach (and break) the file on disk, and no HDF5
  object is left half-closed for the interpreter's exit (no segfault).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock files
    fcntl = None  # type: ignore[assignment]
try:
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]

LOCK_SUFFIX = ".lock"
METADATA_MARGIN = 256 << 10  # bytes kept free for HDF5 metadata (B-tree nodes, headers) at every flush


def lock_path(part: os.PathLike | str) -> Path:
    part = Path(part)
    return part.with_name(part.name + LOCK_SUFFIX)


class WriterLock:
    """An exclusive ``flock`` on ``<out>.partial.lock`` (see the module docstring)."""

    def __init__(self, part: os.PathLike | str):
        self.path = lock_path(part)
        self.part = Path(part)
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        if fcntl is None:  # pragma: no cover
            return self
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise FileExistsError(
                        f"{self.part} is being written by another process{holder} (lock file {self.path} is "
                        "held); wait for it to finish or choose another output") from None
                raise
            # the holder before us may have removed the name after we opened it: lock the file that has the name
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode())
                return self
            os.close(fd)
        raise FileExistsError(f"could not take the lock file {self.path} (it keeps changing)")  # pragma: no cover

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file (while still holding it) and let go."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.close(fd)

    def __del__(self):  # a writer dropped without closing must not keep the lock forever
        with contextlib.suppress(Exception):
            self.release()


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
        if text:
            return f" (pid {int(text[0])} on {text[1]})"
    return ""


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_renameat2 = None
_renameat2_checked = False


def _get_renameat2():
    global _renameat2, _renameat2_checked
    if not _renameat2_checked:
        _renameat2_checked = True
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
    return _renameat2


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """``renameat2(RENAME_NOREPLACE)``; True when done, False when not supported here."""
    fn = _get_renameat2()
    if fn is None:
        return False
    r = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if r == 0:
        return True
    e = ctypes.get_errno()
    if e == errno.EEXIST:
        raise FileExistsError(e, os.strerror(e), str(dst))
    if e in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(e, os.strerror(e), str(src))


def publish(src: os.PathLike | str, dst: os.PathLike | str, overwrite: bool = False) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` is replaced only with ``overwrite=True``, otherwise
    ``FileExistsError`` (and ``src`` is left where it is)."""
    src, dst = Path(src), Path(dst)
    if overwrite:
        os.replace(src, dst)
        return
    if _rename_noreplace(src, dst):
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:  # no hard links here: check, then rename (the writer's lock keeps other writers out)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def ignore_sigxfsz() -> None:
    """Make a write past ``ulimit -f`` fail with ``EFBIG`` instead of killing the process with ``SIGXFSZ``
    (only when nobody installed a handler, and only from the main thread)."""
    sig = getattr(signal, "SIGXFSZ", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, signal.SIG_IGN)


def errno_of(exc: BaseException) -> int | None:
    e = getattr(exc, "errno", None)
    if isinstance(e, int):
        return e
    m = re.search(r"errno = (\d+)", str(exc))
    return int(m.group(1)) if m else None


def is_space_error(exc: BaseException) -> bool:
    return errno_of(exc) in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1))


def describe_failure(exc: BaseException) -> str:
    """A one-line cause for a failed write (``[Errno 27] File too large``), without HDF5's multi-line dump."""
    e = errno_of(exc)
    if e is not None:
        return f"{os.strerror(e)}, errno {e}"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class SpaceGuard:
    """Checks, before each flush, that the file may grow by what HDF5 is about to allocate.

    Writers report the rows they write (:meth:`touch`, dataset and row range along the first axis); the guard
    knows each dataset's chunk shape, so it counts the chunks not yet on disk. :meth:`check` raises an
    ``OSError`` (``EFBIG`` past ``RLIMIT_FSIZE``, ``ENOSPC`` past the free space) before anything is written;
    :meth:`flushed` marks the touched chunks as allocated after a successful flush.
    """

    def __init__(self, file, path: os.PathLike | str):
        self._f = file
        self.path = Path(path)
        self._alloc: dict[str, list] = {}  # name -> [hi, extra rows]: rows < hi or in extra are on disk
        self._pending: dict[str, set] = {}
        self._row_bytes: dict[str, int] = {}

    def known(self, ds, rows_on_disk: int = 0, extra=()) -> None:
        """Declare ``ds`` (chunked) with its first ``rows_on_disk`` chunk rows (and ``extra`` ones) allocated."""
        name = ds.name
        if name in self._alloc or ds.chunks is None:
            return
        ch = ds.chunks
        per_row = 1
        for n, c in zip(ds.shape[1:], ch[1:]):
            per_row *= max(1, math.ceil(n / c))
        chunk_bytes = ds.dtype.itemsize
        for c in ch:
            chunk_bytes *= c
        self._row_bytes[name] = per_row * (int(chunk_bytes * 1.01) + 64)  # checksum, filter overhead
        self._alloc[name] = [int(rows_on_disk), set(int(r) for r in extra)]
        self._pending[name] = set()

    def touch(self, ds, i0: int, i1: int) -> None:
        """Rows ``i0:i1`` of ``ds`` were written."""
        if i1 <= i0 or ds.chunks is None:
            return
        if ds.name not in self._alloc:
            self.known(ds)
        c = ds.chunks[0]
        hi, extra = self._alloc[ds.name]
        pend = self._pending[ds.name]
        for r in range(i0 // c, (i1 - 1) // c + 1):
            if r >= hi and r not in extra:
                pend.add(r)

    def needed(self) -> int:
        return sum(len(p) * self._row_bytes[n] for n, p in self._pending.items()) + METADATA_MARGIN

    def check(self) -> None:
        need = self.needed()
        try:
            size = int(self._f.id.get_filesize())
        except Exception:  # noqa: BLE001 - no estimate: let the flush try
            return
        projected = size + need
        if resource is not None:
            soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            if soft != resource.RLIM_INFINITY and projected > soft:
                raise OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)}: the next commit would make {self.path} "
                                           f"about {projected} bytes; the file-size limit (ulimit -f) is {soft}")
        try:
            st = os.statvfs(self.path.parent if str(self.path.parent) else ".")
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        try:
            physical = os.stat(self.path).st_size
        except OSError:
            physical = size
        grow = projected - physical
        if grow > free:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: the next commit needs about {grow} more "
                                        f"bytes for {self.path}; {free} bytes are free on its file system")

    def flushed(self) -> None:
        for name, pend in self._pending.items():
            if not pend:
                continue
            hi, extra = self._alloc[name]
            extra |= pend
            while hi in extra:
                extra.discard(hi)
                hi += 1
            self._alloc[name][0] = hi
            pend.clear()


def fuse(f) -> None:
    """Point a failed h5py file's descriptor at ``/dev/null``: whatever HDF5 still writes (dirty chunks when a
    dataset is released, metadata when the file closes) goes nowhere, so the file on disk keeps its last
    complete flush. Do this *before* dropping the file's datasets: releasing one flushes its chunk cache."""
    if f is None:
        return
    fd = None
    with contextlib.suppress(Exception):
        fd = int(f.id.get_vfd_handle())
    if fd is not None and fd >= 0:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)


def fuse_and_close(f) -> None:
    """:func:`fuse`, then close (errors of the close itself are ignored: nothing reaches the file any more)."""
    if f is None:
        return
    fuse(f)
    with contextlib.suppress(Exception):
        f.close()
