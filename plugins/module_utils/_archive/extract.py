# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Writing checked members to disk, and removing them again when that fails.

Extraction is done member by member with ``O_EXCL|O_NOFOLLOW``; archive ownership is ignored. Modes keep the
owner's bits and the read/execute bits of group and others: group and other write, setuid, setgid and sticky
bits are dropped (:data:`MODE_MASK`), so no member comes out writable by another user.
"""

import contextlib
import os
import shutil
import stat

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import UnsafeArchiveError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.members import (
    KIND_DIR,
    KIND_FILE,
    KIND_HARDLINK,
    split_name,
)

MODE_MASK = 0o755
"""Mode bits kept from the archive: all of the owner's, read and execute for group and others."""


def write_members(dest, members, copy):
    """Write ``members`` (checked :class:`~.members.Member` objects) into the existing directory ``dest``;
    ``copy(member, out)`` writes a regular file's data to the open file ``out``."""
    dir_modes = []
    later_links = []
    for member in members:
        path = os.path.join(dest, *split_name(member.name))
        if member.kind == KIND_DIR:
            make_dirs(dest, member.name)
            dir_modes.append((path, member.mode, member.mtime))
        elif member.kind == KIND_FILE:
            make_dirs(dest, os.path.dirname(member.name))
            mode = stat.S_IMODE(member.mode) & MODE_MASK if member.mode else 0o644
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "wb") as out:
                copy(member, out)
            os.chmod(path, mode)
            if member.mtime is not None:
                os.utime(path, (member.mtime, member.mtime))
        else:
            later_links.append((path, member))
    for path, member in later_links:
        make_dirs(dest, os.path.dirname(member.name))
        if member.kind == KIND_HARDLINK:
            os.link(os.path.join(dest, *split_name(member.target)), path)
        else:
            os.symlink(member.target, path)
    # Directory modes last, deepest first, so read-only directories do not block extraction.
    for path, mode, mtime in sorted(dir_modes, key=lambda item: item[0].count(os.sep), reverse=True):
        if mode:
            os.chmod(path, stat.S_IMODE(mode) & MODE_MASK)
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def empty_dir(dest):
    """Remove everything inside ``dest`` (never following a link), leaving ``dest`` itself."""
    try:
        names = os.listdir(dest)
    except OSError:
        return
    for name in names:
        path = os.path.join(dest, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            # Directory modes from the archive may lack the owner's write bit: give it back first.
            for dirpath, dirnames, _files in os.walk(path):
                for sub in [dirpath] + [os.path.join(dirpath, d) for d in dirnames]:
                    with contextlib.suppress(OSError):
                        if stat.S_ISDIR(os.lstat(sub).st_mode):
                            os.chmod(sub, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def make_dirs(dest, rel):
    """Create ``dest/rel`` component by component, refusing to pass through anything but real directories."""
    current = dest
    for part in split_name(rel):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeArchiveError("member path %r crosses a non-directory" % rel)
