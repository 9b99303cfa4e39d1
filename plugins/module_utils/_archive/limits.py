# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The limits an archive is held to before anything is written: its member count, and the blocks and inodes the
release takes on the filesystem it is unpacked to.

* at most ``max_members`` members (default :data:`DEFAULT_MAX_MEMBERS`, or the one :func:`archive_limits` sets);
* :func:`space_needed` estimates the space the release takes: one block and one inode per member (implied parent
  directories included), plus the bytes of each file rounded up to whole blocks; :func:`check_fits` refuses a
  filesystem with fewer free blocks or inodes than that.
"""

import contextlib
import os

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import ArchiveLimitError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.members import split_name
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import format_bytes

DEFAULT_MAX_MEMBERS = 100000
"""Members an archive may hold unless ``max_members`` says otherwise."""

DEFAULT_BLOCK_SIZE = 4096
"""Block size of the size estimate when the filesystem's own is not known."""

# The limits in force when an archive is not given them (see archive_limits).
_LIMITS = {"max_members": DEFAULT_MAX_MEMBERS}


def validate_max_members(value, what="max_members"):
    """Return ``value`` as a positive int, else raise ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("%s must be a positive integer, got %r." % (what, value))
    return value


@contextlib.contextmanager
def archive_limits(max_members=None):
    """Within the block, an OpenArchive that is not given ``max_members`` uses this one (None: the default).

    For a module whose option reaches the archive code through functions that do not pass it on; the
    previous limits are restored on exit. Not meant for concurrent use from several threads.
    """
    saved = dict(_LIMITS)
    if max_members is not None:
        _LIMITS["max_members"] = validate_max_members(max_members)
    try:
        yield
    finally:
        _LIMITS.clear()
        _LIMITS.update(saved)


def max_members_for(value):
    """``value`` checked, or the limit in force when it is None."""
    return validate_max_members(_LIMITS["max_members"] if value is None else value)


def check_count(count, max_members, fmt, what, archive):
    """Refuse more than ``max_members`` members (a tar archive is refused at the first one too many, so its
    count is not known)."""
    if count <= max_members:
        return
    counted = "more than %d" % max_members if fmt == "tar" else "%d" % count
    raise ArchiveLimitError(
        "%s has %s members, more than max_members allows (%d). Nothing was unpacked. Repack the release "
        "into fewer files, or raise max_members if that many are expected." % (what, counted, max_members),
        archive=archive,
        max_members=max_members,
    )


def space_needed(sized, block_size=DEFAULT_BLOCK_SIZE):
    """``(bytes, inodes)`` that ``sized`` (pairs of a member name and its data bytes, 0 but for regular files)
    takes on a filesystem of ``block_size`` blocks: one block and one inode per member, parent directories the
    archive does not list included, plus the data of each file rounded up to whole blocks."""
    block = block_size if isinstance(block_size, int) and block_size > 0 else DEFAULT_BLOCK_SIZE
    names = set()
    data = 0
    for name, size in sized:
        names.add(name)
        data += -(-size // block) * block
    parents = set()
    for name in names:
        parts = split_name(name)
        for i in range(1, len(parts)):
            parents.add("/".join(parts[:i]))
    inodes = len(names | parents)
    return inodes * block + data, inodes


def check_fits(path, sized, what, reserve=0):
    """Refuse (ArchiveLimitError) when ``sized`` (as :func:`space_needed` takes it) would not fit in the
    filesystem of ``path`` while leaving ``reserve`` bytes free, or when that filesystem has fewer free inodes
    than it needs. ``what`` names the archive in messages."""
    st = os.statvfs(path)
    block = getattr(st, "f_frsize", 0) or getattr(st, "f_bsize", 0) or DEFAULT_BLOCK_SIZE
    needed, inodes = space_needed(sized, block)
    free = st.f_bavail * block
    if needed + reserve > free:
        raise ArchiveLimitError(
            "not enough disk space to unpack %s on the filesystem of %s: its %d members need about %s (one "
            "%d-byte block each, plus their data in whole blocks)%s, and it has %s free. Nothing was unpacked. "
            "Free space there, for example by removing old releases (state=absent)."
            % (
                what,
                path,
                len(sized),
                format_bytes(needed),
                block,
                " and %s must stay free" % format_bytes(reserve) if reserve else "",
                format_bytes(free),
            ),
            needed=needed,
            free=free,
        )
    # A filesystem that reports no inode count (f_files == 0, as btrfs does) allocates them on demand.
    if getattr(st, "f_files", 0):
        avail = getattr(st, "f_favail", None)
        if avail is None:
            avail = getattr(st, "f_ffree", None)
        if avail is not None and inodes > avail:
            raise ArchiveLimitError(
                "not enough free inodes to unpack %s on the filesystem of %s: it needs %d (one per member and "
                "directory), and the filesystem has %d free. Nothing was unpacked. Free inodes there, for "
                "example by removing old releases (state=absent), or repack the release into fewer files."
                % (what, path, inodes, avail),
                inodes_needed=inodes,
                inodes_free=avail,
            )
