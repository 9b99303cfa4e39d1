# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The archive formats: which one a file is (by name or by its first bytes), and what a tar or zip member is,
as the raw entry that :func:`~.members.check_members` checks."""

import os
import stat
import struct
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.members import (
    KIND_DIR,
    KIND_FILE,
    KIND_HARDLINK,
    KIND_SYMLINK,
)

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_ZIP_SUFFIXES = (".zip",)

_ZIP_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def archive_format(name):
    """Return ``'tar'`` or ``'zip'`` from a file name or URL path, or None when the suffix is unknown."""
    lowered = name.lower()
    if lowered.endswith(_TAR_SUFFIXES):
        return "tar"
    if lowered.endswith(_ZIP_SUFFIXES):
        return "zip"
    return None


def sniff_format(fileobj):
    """Guess the format from the first bytes of an open binary file (position is restored)."""
    pos = fileobj.tell()
    try:
        head = fileobj.read(512)
    finally:
        fileobj.seek(pos)
    if head[:2] == b"\x1f\x8b":
        return "tar"
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def tar_entry(info):
    """The raw entry of a ``TarInfo``."""
    if info.isreg():
        kind = KIND_FILE
    elif info.isdir():
        kind = KIND_DIR
    elif info.issym():
        kind = KIND_SYMLINK
    elif info.islnk():
        kind = KIND_HARDLINK
    elif info.ischr() or info.isblk():
        kind = ("refuse", "device file")
    elif info.isfifo():
        kind = ("refuse", "FIFO")
    else:
        kind = ("refuse", "member type %r" % info.type)
    target = info.linkname if kind in (KIND_SYMLINK, KIND_HARDLINK) else None
    return info.name, kind, info.mode, target, info.mtime, info


def _zip_unix_mode(info):
    if info.create_system == 3:  # Unix
        return (info.external_attr >> 16) & 0xFFFF
    return 0


def zip_entry(zf, info):
    """The raw entry of a ``ZipInfo`` of ``zf`` (a symbolic link's target is read from the archive)."""
    if info.flag_bits & 0x1:
        return info.filename, ("refuse", "encrypted member"), None, None, None, info
    unix_mode = _zip_unix_mode(info)
    fmt = stat.S_IFMT(unix_mode)
    target = None
    if info.filename.endswith("/") or fmt == stat.S_IFDIR:
        kind = KIND_DIR
    elif fmt == stat.S_IFLNK:
        kind = KIND_SYMLINK
        if info.file_size > 4096:
            kind = ("refuse", "symbolic link with an oversized target")
        else:
            target = zf.read(info).decode("utf-8", "surrogateescape")
    elif fmt in (0, stat.S_IFREG):
        kind = KIND_FILE
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind = ("refuse", "device file")
    elif fmt == stat.S_IFIFO:
        kind = ("refuse", "FIFO")
    else:
        kind = ("refuse", "special file")
    mode = stat.S_IMODE(unix_mode) if unix_mode else None
    try:
        mtime = time.mktime(info.date_time + (0, 0, -1))
    except (TypeError, ValueError, OverflowError):
        mtime = None
    return info.filename, kind, mode, target, mtime, info


def zip_declared_members(fileobj):
    """The member count a zip archive's end record declares, read without parsing its member list.

    Returns None when no end record is found (ZipFile then refuses the file). The position is restored.
    """
    pos = fileobj.tell()
    try:
        fileobj.seek(0, os.SEEK_END)
        size = fileobj.tell()
        tail_len = min(size, _ZIP_EOCD.size + 0xFFFF)  # the record, then a comment of up to 64 KiB
        fileobj.seek(size - tail_len)
        tail = fileobj.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _ZIP_EOCD.size:
            return None
        total = _ZIP_EOCD.unpack(tail[at : at + _ZIP_EOCD.size])[4]
        if total != 0xFFFF or at < _ZIP64_LOCATOR.size:
            return total
        locator = _ZIP64_LOCATOR.unpack(tail[at - _ZIP64_LOCATOR.size : at])
        if locator[0] != b"PK\x06\x07":
            return total
        fileobj.seek(locator[2])
        record = fileobj.read(_ZIP64_EOCD.size)
        if len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
            return total
        return _ZIP64_EOCD.unpack(record)[6]
    finally:
        fileobj.seek(pos)
