# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Filesystem primitives for files that a root run keeps where other local users may also be.

Everything here works from directory descriptors, one path component at a time, and never follows a
link that another user could have planted:

- :func:`open_dir` walks an absolute path from ``/`` with ``openat(O_NOFOLLOW | O_DIRECTORY)``. Every
  directory on the way must belong to root or to the running user, and must not be writable by group or
  others unless it has the sticky bit (``/tmp``, ``/var/tmp``). A symlink on the way is followed only
  when it belongs to root or to the running user (``/var/run -> /run``, ``/tmp -> /private/tmp``), and
  the last ``strict`` components are never followed at all. With ``create``, missing directories are
  made with an explicit mode (0700 by default, whatever the umask), owned by the running user.
- :func:`read_file` reads a regular file of the running user without following a link, with a size cap,
  without blocking on a FIFO.
- :func:`write_file` writes a file atomically: a new file made like ``mkstemp`` (random name,
  ``O_CREAT | O_EXCL | O_NOFOLLOW``) in the target directory itself, ``fchmod`` to an explicit mode,
  ``fsync``, then renamed over the name (a rename replaces a link, it never follows it).
- :func:`remove_entry` removes a name without following it.

Problems are raised as :class:`FsError` with a ``reason`` callers can turn into their own message.

The flags, ``fsync_dir`` and the trust rule for owners are :mod:`._dirfd`'s, which the release layout uses too.
"""

import contextlib
import errno
import os
import stat

from ansible_collections.zerodowntime.rollout.plugins.module_utils._dirfd import (
    DIR_FLAGS,
    FILE_FLAGS,
    O_CLOEXEC,
    fsync_dir,
    trusted_uid,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError

# On the way down only search permission is needed (like a path lookup): O_PATH where there is one (Linux).
_WALK_FLAGS = (DIR_FLAGS & ~os.O_RDONLY) | os.O_PATH if hasattr(os, "O_PATH") else DIR_FLAGS
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)
MAX_LINKS = 40


class FsError(RolloutError):
    """A path cannot be used safely.

    ``reason`` is one of ``symlink``, ``not_dir``, ``not_file``, ``foreign``, ``links``, ``writable``,
    ``permission``, ``too_large``, ``loop``; ``path`` the offending path; ``uid`` the owner found, when it matters.
    """

    def __init__(self, msg, path, reason, uid=None):
        super().__init__(msg)
        self.path = path
        self.reason = reason
        self.uid = uid


def _foreign(path, uid, owners):
    """The refusal of ``path``, owned by ``uid`` instead of ``owners`` (words for the owners allowed)."""
    return FsError(
        "%s belongs to uid %d, not to %s (uid %d): refused." % (path, uid, owners, os.geteuid()),
        path,
        "foreign",
        uid=uid,
    )


def check_dir_stat(info, path):
    """Raise :class:`FsError` unless ``info`` (an ``lstat``/``fstat`` result) is a directory that may be trusted:
    owned by root or the running user, and not writable by group or others unless it has the sticky bit."""
    if stat.S_ISLNK(info.st_mode):
        raise FsError("%s is a symlink, not a directory: refused (it is not followed)." % path, path, "symlink")
    if not stat.S_ISDIR(info.st_mode):
        raise FsError("%s is not a directory: refused." % path, path, "not_dir")
    if not trusted_uid(info.st_uid):
        raise _foreign(path, info.st_uid, "root or the user running the rollout")
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise FsError(
            "%s is writable by other users (mode %04o, no sticky bit): refused." % (path, stat.S_IMODE(info.st_mode)),
            path,
            "writable",
        )


def _split(path):
    return [part for part in path.split("/") if part not in ("", ".")]


def _join(parent, name):
    return os.path.normpath(os.path.join(parent, name))


def _open_root():
    fd = os.open("/", _WALK_FLAGS)
    try:
        check_dir_stat(os.fstat(fd), "/")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_subdir(dir_fd, name, shown, create=False, mode=0o700, flags=DIR_FLAGS):
    """Open the directory ``name`` inside ``dir_fd`` without following it, creating it with ``mode`` if asked.

    Returns a descriptor (the caller closes it). Raises FileNotFoundError when it is missing and not
    created, :class:`FsError` when it is a link, not a directory, or not trusted (see
    :func:`check_dir_stat`). ``shown`` is the path used in messages.
    """
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
        except FileExistsError:
            # Made by someone else meanwhile: checked like any directory that was already there.
            return open_subdir(dir_fd, name, shown, create=False, mode=mode, flags=flags)
        except PermissionError:
            raise FsError("Cannot create %s (permission denied)." % shown, shown, "permission") from None
        return _fix_made(dir_fd, name, shown, mode, flags)
    except PermissionError:
        raise FsError("Cannot open %s (permission denied)." % shown, shown, "permission") from None
    except OSError as exc:
        if exc.errno not in _LINK_ERRNOS:
            raise
        # A link or something that is not a directory: say which (a directory here means it changed meanwhile).
        check_dir_stat(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), shown)
        raise
    try:
        check_dir_stat(os.fstat(fd), shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fix_made(dir_fd, name, shown, mode, flags):
    """A directory this process just made: open it without following, check it is ours, set its mode exactly.
    (Opened for reading to ``fchmod`` it, then, for the walk, reopened with ``flags``.)"""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        raise FsError("Cannot open %s after creating it (permission denied)." % shown, shown, "permission") from None
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise FsError("%s was replaced while being created: refused." % shown, shown, "symlink") from None
        raise
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            raise FsError(
                "%s was replaced while being created (it belongs to uid %d): refused." % (shown, info.st_uid),
                shown,
                "foreign",
                uid=info.st_uid,
            )
        os.fchmod(fd, mode)
        check_dir_stat(os.fstat(fd), shown)
        if flags != DIR_FLAGS:
            walk = os.open(".", flags, dir_fd=fd)
            os.close(fd)
            fd = walk
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(path, create=False, mode=0o700, strict=1):
    """Open the directory ``path`` (absolute) without trusting anything on the way; return a descriptor.

    Every directory from ``/`` down must pass :func:`check_dir_stat`. A symlink on the way is followed only
    when it belongs to root or the running user; the last ``strict`` components of ``path`` are never
    followed. With ``create``, missing directories are made with ``mode`` (set with ``fchmod``, so the umask
    does not matter), owned by the running user. Raises FileNotFoundError (without ``create``) when a
    component is missing, and :class:`FsError` when one is unsafe. The caller closes the descriptor.
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ValueError("an absolute path is needed, got %r" % (path,))
    parts = _split(path)
    # (name, never follow) pairs still to walk; components that come from a link target may be followed.
    pending = [(name, index >= len(parts) - strict) for index, name in enumerate(parts)]
    fd = _open_root()
    current = "/"
    links = 0
    try:
        while pending:
            name, never_follow = pending.pop(0)
            shown = _join(current, name)
            try:
                child = open_subdir(fd, name, shown, create=create, mode=mode, flags=_WALK_FLAGS)
            except FsError as exc:
                if exc.reason != "symlink" or never_follow:
                    raise
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(info.st_mode):
                    raise  # swapped meanwhile; report what was seen
                if not trusted_uid(info.st_uid):
                    raise FsError(
                        "%s is a symlink that belongs to uid %d, not to root or the user running the rollout "
                        "(uid %d): refused, it is not followed." % (shown, info.st_uid, os.geteuid()),
                        shown,
                        "symlink",
                        uid=info.st_uid,
                    ) from None
                links += 1
                if links > MAX_LINKS:
                    raise FsError("%s: too many levels of symlinks." % path, path, "loop") from None
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = -1
                    fd = _open_root()
                    current = "/"
                pending[:0] = [(part, False) for part in _split(target)]
                continue
            os.close(fd)
            fd = child
            current = shown
        if _WALK_FLAGS != DIR_FLAGS:
            # The directory itself, open for reading (its descriptor can be fsynced); "." of it is no new lookup.
            try:
                opened = os.open(".", DIR_FLAGS, dir_fd=fd)
            except PermissionError:
                raise FsError("Cannot open %s (permission denied)." % current, current, "permission") from None
            os.close(fd)
            fd = opened
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def make_dirs(path, mode=0o700, strict=1):
    """Make sure the directory ``path`` exists and can be trusted (see :func:`open_dir`); create what is missing."""
    os.close(open_dir(path, create=True, mode=mode, strict=strict))


def read_file(dir_fd, name, max_bytes, shown):
    """Read the regular file ``name`` of the running user in ``dir_fd``, never following a link.

    Returns ``(data, stat)``. Raises FileNotFoundError when it is missing, :class:`FsError` when it is a link
    (``symlink``), not a regular file (``not_file``), another user's (``foreign``), unreadable
    (``permission``), hard-linked elsewhere (``links``) or larger than ``max_bytes`` (``too_large``). A FIFO
    does not block.
    """
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise exc from None
        _check_file_stat(info, shown)
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise FsError("Cannot read %s (permission denied)." % shown, shown, "permission") from None
        raise
    try:
        info = os.fstat(fd)
        _check_file_stat(info, shown)
        chunks = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_bytes:
        raise FsError("%s is larger than %d bytes: refused." % (shown, max_bytes), shown, "too_large")
    return b"".join(chunks), info


def _check_file_stat(info, shown):
    if stat.S_ISLNK(info.st_mode):
        raise FsError("%s is a symlink: refused (it is not followed)." % shown, shown, "symlink", uid=info.st_uid)
    if not stat.S_ISREG(info.st_mode):
        raise FsError("%s is not a regular file: refused." % shown, shown, "not_file", uid=info.st_uid)
    if info.st_uid != os.geteuid():
        raise _foreign(shown, info.st_uid, "the user running the rollout")
    if info.st_nlink != 1:
        # A hard link to some other file of the same user (made where hard links are not protected).
        raise FsError("%s has %d hard links: refused." % (shown, info.st_nlink), shown, "links", uid=info.st_uid)


def mkstemp_at(dir_fd, prefix, suffix=".tmp", mode=0o600):
    """``mkstemp`` in a directory descriptor: a new file with a random name, ``O_EXCL | O_NOFOLLOW``.

    Returns ``(fd, name)``; the file's mode is set to ``mode`` explicitly, whatever the umask."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC
    for _attempt in range(100):
        name = "%s%s%s" % (prefix, os.urandom(8).hex(), suffix)
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
            raise
        return fd, name
    raise FileExistsError(errno.EEXIST, "no free temporary file name", prefix)


def write_file(dir_fd, name, data, mode=0o600):
    """Atomically put ``data`` (bytes) at ``name`` in ``dir_fd`` with exactly ``mode``; a link there is replaced,
    never followed. Temporary files are named ``.<name>.<random>.tmp`` and never left behind."""
    fd, tmp = mkstemp_at(dir_fd, ".%s." % name, ".tmp", mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    fsync_dir(dir_fd)


def remove_entry(dir_fd, name):
    """Remove ``name`` from ``dir_fd`` without following it. A file, link, FIFO or socket is unlinked; a directory
    is never descended into: it is renamed aside to ``.<name>.removed-<random>`` and that new name is returned.
    Returns None otherwise (also when ``name`` is already gone)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.EPERM):
            raise
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise
    aside = ".%s.removed-%s" % (name, os.urandom(6).hex())
    os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    fsync_dir(dir_fd)
    return aside
