# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Directory-descriptor primitives that never follow a link, shared by the release layout and :mod:`._fs`.

- :data:`DIR_FLAGS` opens a directory, never through a link in its last component (``ELOOP`` or ``ENOTDIR``
  when it is one, see :data:`NOT_A_DIR`); :data:`FILE_FLAGS` opens a file to read the same way, without
  blocking on a FIFO.
- :func:`remove_at` removes a tree relative to a directory descriptor, one component at a time: a link put in
  place of any directory is unlinked, and what it points to is never reached.
- :func:`fsync_dir` and :func:`fsync_path` make a rename or a new entry durable (best effort).
"""

import contextlib
import errno
import os
import stat

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# A directory, never through a link in its last component (ELOOP or ENOTDIR when it is one).
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | O_CLOEXEC
# A file to read, never through a link, without blocking on a FIFO.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | O_CLOEXEC
NOT_A_DIR = (errno.ELOOP, errno.ENOTDIR)


def trusted_uid(uid):
    """Root and the user the module runs as may own what the module keeps for itself."""
    return uid == 0 or uid == os.geteuid()


def fsync_dir(dir_fd):
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)


def fsync_path(path):
    """``fsync`` the directory ``path`` (best effort: nothing is raised)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fsync_dir(fd)
    finally:
        os.close(fd)


def list_at(fd):
    """Names in the directory ``fd`` (made readable and writable first when it is ours, as rmtree would need)."""
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and info.st_mode & 0o700 != 0o700:
        os.fchmod(fd, stat.S_IMODE(info.st_mode) | 0o700)
    with os.scandir(fd) as entries:
        return [entry.name for entry in entries]


def _enter_at(dir_fd, name):
    """Open ``name`` in ``dir_fd`` to empty it when it is a directory; anything else (a link, a file) is unlinked
    itself, never followed. Returns ``(fd, names)`` or None."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in NOT_A_DIR:
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        return None
    try:
        return fd, list_at(fd)
    except BaseException:
        os.close(fd)
        raise


def remove_at(dir_fd, name):
    """Remove ``name`` from the directory ``dir_fd`` and everything below it, never following a link.

    Each directory is opened relative to its parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY`` and emptied
    through that descriptor, so a link put in place of any directory (the top one included) is unlinked, and
    whatever it points to is never reached. Iterative: deep trees do not hit the recursion limit.
    """
    top = _enter_at(dir_fd, name)
    if top is None:
        return
    stack = [(dir_fd, name, top[0], top[1])]
    try:
        while stack:
            parent_fd, dname, fd, names = stack[-1]
            if names:
                child_name = names.pop()
                child = _enter_at(fd, child_name)
                if child is not None:
                    stack.append((fd, child_name, child[0], child[1]))
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(dname, dir_fd=parent_fd)
    finally:
        for entry in stack:
            os.close(entry[2])
