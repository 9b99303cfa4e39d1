# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The guard file next to the lock (``<lock>.guard``): ``flock`` on it is held while the lock is read again,
checked and written, so whenever the lock changes hands exactly one contender wins.

The guard is created 0600, opened with ``O_NOFOLLOW``, and never replaced or removed, but with ``force`` when
it is hostile (a link, not a regular file, another user's or hard-linked elsewhere).
"""

import contextlib
import errno
import fcntl
import os
import stat
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _fs
from ansible_collections.zerodowntime.rollout.plugins.module_utils._lock.errors import (
    HINT,
    LockHeldError,
    LockPathError,
    permission_error,
)

# How long to wait for the guard: the others hold it only while they read and write a small file.
GUARD_WAIT = 30.0
GUARD_SUFFIX = ".guard"


@contextlib.contextmanager
def guard(dir_fd, name, path, force, wait=GUARD_WAIT):
    """Hold ``flock`` on ``<lock>.guard`` (0600, never followed, never replaced) for the read-decide-write.

    The guard is created with ``O_EXCL`` (then ``fchmod`` 0600) or opened read-only without following it; nothing
    is ever changed on a guard that was there. One that is a link, not a regular file, another user's or
    hard-linked elsewhere is refused, or removed with ``force``. After the flock is granted, the name must still
    be the file that was locked (else it is tried again)."""
    gname = name + GUARD_SUFFIX
    gpath = path + GUARD_SUFFIX
    deadline = time.monotonic() + wait
    common = os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    for _attempt in range(100):
        try:
            fd = os.open(gname, os.O_RDONLY | os.O_CREAT | os.O_EXCL | common, 0o600, dir_fd=dir_fd)
            os.fchmod(fd, 0o600)
        except FileExistsError:
            try:
                fd = os.open(gname, os.O_RDONLY | common, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.EMLINK, errno.EACCES, errno.EPERM, errno.ENXIO):
                    raise
                try:
                    info = os.stat(gname, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if info.st_uid == os.geteuid() and stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    raise permission_error(gpath, "open the guard of") from None
                _hostile_guard(dir_fd, gname, gpath, path, info, force)
                continue
        except PermissionError:
            raise permission_error(gpath, "create the guard of") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
                os.close(fd)
                fd = -1
                _hostile_guard(dir_fd, gname, gpath, path, info, force)
                continue
            _flock(fd, gpath, deadline)
            try:
                now_there = os.stat(gname, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                now_there = None
            if now_there is None or (now_there.st_dev, now_there.st_ino) != (info.st_dev, info.st_ino):
                os.close(fd)
                fd = -1
                continue
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        try:
            yield
        finally:
            os.close(fd)
        return
    raise LockPathError("The guard %s of the rollout lock keeps changing: refused. %s" % (gpath, HINT))


def _hostile_guard(dir_fd, gname, gpath, path, info, force):
    if stat.S_ISLNK(info.st_mode):
        what = "a symlink"
    elif not stat.S_ISREG(info.st_mode):
        what = "not a regular file"
    elif info.st_uid != os.geteuid():
        what = "owned by uid %d, not by the user running the rollout (uid %d)" % (info.st_uid, os.geteuid())
    else:
        what = "a file with %d hard links" % info.st_nlink
    if not force:
        raise LockHeldError(
            "The guard file %s of the rollout lock %s is refused: it is %s (another local user may have planted it; "
            "nothing was followed). Remove it, or use the break-glass option (force, rollout_lock_force), which "
            "replaces it. %s" % (gpath, path, what, HINT)
        )
    try:
        again = os.stat(gname, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (again.st_dev, again.st_ino) == (info.st_dev, info.st_ino):
        try:
            _fs.remove_entry(dir_fd, gname)
        except PermissionError:
            raise permission_error(gpath, "remove the guard of") from None


def _flock(fd, gpath, deadline):
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockPathError(
                    "Waited %.0f s for the guard %s of the rollout lock: another process keeps it locked. Find it "
                    "(fuser %s) and stop it, then try again." % (GUARD_WAIT, gpath, gpath)
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
