# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The errors of the archive code, and what the tar, gzip, bz2, xz and zip readers raise on damaged input."""

import struct
import tarfile
import zipfile
import zlib

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError

try:
    import lzma

    _LZMA_ERRORS = (lzma.LZMAError,)
except ImportError:  # a Python built without lzma cannot open .tar.xz archives either
    _LZMA_ERRORS = ()

# What the readers raise on damaged input (OSError covers gzip.BadGzipFile and read errors of the archive file
# itself, ValueError a damaged zip64 or unicode name, NotImplementedError an unknown zip compression method,
# RuntimeError an unexpected zip encryption).
READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    zlib.error,
    struct.error,
    ValueError,
    NotImplementedError,
    RuntimeError,
) + _LZMA_ERRORS


class ArchiveError(RolloutError):
    """Base of the archive errors."""


class UnsupportedArchiveError(ArchiveError):
    """The archive format is not one of tar, tar.gz or zip, or the file is not readable as one."""


class UnsafeArchiveError(ArchiveError):
    """A member of the archive would write or point outside the release, or has a refused type."""


class CorruptArchiveError(UnsupportedArchiveError):
    """The archive is damaged or truncated (bad compressed data, bad CRC, damaged header)."""


class ArchiveLimitError(ArchiveError):
    """The archive has more members than allowed, or would not fit (blocks or inodes) where it goes."""


def describe_error(exc):
    """One line naming a reader's error: ``zlib.error: invalid distance``."""
    text = " ".join(str(exc).split())  # one line (tarfile lists every method it tried on lines of their own)
    name = type(exc).__name__
    if name == "error":  # zlib.error
        name = "%s.error" % type(exc).__module__
    return "%s: %s" % (name, text) if text else name
