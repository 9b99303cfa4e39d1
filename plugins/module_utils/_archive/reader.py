# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Safe inspection and extraction of release archives (tar, tar.gz, zip): :class:`OpenArchive`, the entry point.

Opening an archive reads and checks every member (:mod:`.members`) within the member limit (:mod:`.limits`), before
anything is written. :meth:`OpenArchive.extract` refuses to start when the filesystem of the destination has fewer
free blocks or inodes than the release needs, then writes the members (:mod:`.extract`).

A damaged archive (bad compressed data, bad CRC, truncated stream, damaged header) raises
:class:`~.errors.CorruptArchiveError` naming the archive and, where known, the member; whatever :meth:`extract`
had written is removed again, so the destination is left empty.
"""

import tarfile
import zipfile

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import (
    READ_ERRORS,
    ArchiveError,
    CorruptArchiveError,
    UnsupportedArchiveError,
    describe_error,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.extract import empty_dir, write_members
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.formats import (
    tar_entry,
    zip_declared_members,
    zip_entry,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.limits import (
    DEFAULT_BLOCK_SIZE,
    check_count,
    check_fits,
    max_members_for,
    space_needed,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.members import KIND_FILE, check_members

_COPY_CHUNK = 1024 * 1024
# Bytes after a tar archive's end-of-archive marker that are read to check the compressed stream's trailer
# (CRC and length): tar writers pad to 10 KiB records; far more is refused rather than decompressed.
_MAX_TAR_TRAILER = 16 * 1024 * 1024


def _label(fileobj):
    name = getattr(fileobj, "name", None)  # an int for a file opened from a descriptor
    return name if isinstance(name, str) and name else None


class OpenArchive:
    """An opened tar or zip archive plus its checked member list. Use as a context manager.

    ``max_members`` (default: the one set by :func:`~.limits.archive_limits`, else
    :data:`~.limits.DEFAULT_MAX_MEMBERS`) bounds the member count; ``name`` is how messages call the archive
    (default: the file's name).
    """

    def __init__(self, fileobj, fmt, max_members=None, name=None):
        self.fmt = fmt
        self.name = name or _label(fileobj)
        self.what = "the %s archive %s" % (fmt, self.name) if self.name else "the %s archive" % fmt
        self.max_members = max_members_for(max_members)
        self._handle = None
        self._last = None  # the last member whose header was read, for messages
        try:
            if fmt == "tar":
                self._handle = tarfile.open(fileobj=fileobj, mode="r:*")  # noqa: SIM115 (closed by close())
                entries = self._tar_entries()
            elif fmt == "zip":
                declared = zip_declared_members(fileobj)
                if declared is not None:
                    self._check_count(declared)
                self._handle = zipfile.ZipFile(fileobj)
                entries = self._zip_entries()
            else:
                raise UnsupportedArchiveError("unsupported archive format %r" % fmt)
            self.members = check_members(entries)
        except ArchiveError:
            self.close()
            raise
        except READ_ERRORS as exc:
            self.close()
            raise CorruptArchiveError(
                "cannot read %s%s: %s. It is damaged, truncated or not a %s archive; nothing was unpacked. "
                "Rebuild or download it again." % (self.what, self._near(), describe_error(exc), fmt),
                archive=self.name,
                member=self._last,
            ) from None
        except BaseException:
            self.close()
            raise

    def _near(self):
        return " (at or after member %r)" % self._last if self._last is not None else ""

    def _check_count(self, count):
        check_count(count, self.max_members, self.fmt, self.what, self.name)

    def _tar_entries(self):
        tar = self._handle
        entries = []
        for info in tar:
            self._check_count(len(entries) + 1)
            self._last = info.name
            entries.append(tar_entry(info))
        self._check_tar_end()
        return entries

    def _check_tar_end(self):
        """tarfile takes a damaged header for the end of the archive and does not read a gzip/xz trailer:
        make sure the end-of-archive marker (or the end of the file) follows the last member, then read on
        to the end of the stream, which verifies the CRC and length of a compressed archive."""
        tar = self._handle
        stream = tar.fileobj
        stream.seek(tar.offset)
        block = stream.read(tarfile.BLOCKSIZE)
        if block.strip(b"\0"):
            raise CorruptArchiveError(
                "cannot read %s: a damaged header follows member %r, so the rest of the archive cannot be read. "
                "Nothing was unpacked. Rebuild or download it again." % (self.what, self._last),
                archive=self.name,
                member=self._last,
            )
        self._last = None  # what follows is the stream's end, not a member
        read = 0
        while True:
            try:
                chunk = stream.read(_COPY_CHUNK)
            except OSError as exc:
                # Bytes after the end of a gzip stream (its CRC and length already checked by then) are ignored,
                # as gzip -d ignores them; anything else (a CRC or length mismatch) is damage.
                if "Not a gzipped file" in str(exc):
                    break
                raise
            if not chunk:
                break
            read += len(chunk)
            if read > _MAX_TAR_TRAILER:
                raise CorruptArchiveError(
                    "cannot read %s: more than %d MiB of data follow its end-of-archive marker. Nothing was "
                    "unpacked. Rebuild it with a standard tar tool." % (self.what, _MAX_TAR_TRAILER >> 20),
                    archive=self.name,
                )

    def _zip_entries(self):
        zf = self._handle
        infos = zf.infolist()
        self._check_count(len(infos))
        entries = []
        for info in infos:
            self._last = info.filename
            entries.append(zip_entry(zf, info))
        return entries

    def _sized(self):
        """``(name, data bytes)`` of every member, as :func:`~.limits.space_needed` takes them."""
        size = "size" if self.fmt == "tar" else "file_size"
        return [(m.name, getattr(m.source, size) if m.kind == KIND_FILE else 0) for m in self.members]

    def space_needed(self, block_size=DEFAULT_BLOCK_SIZE):
        """``(bytes, inodes)`` the release takes once unpacked, for a filesystem of ``block_size`` blocks.

        One block and one inode per member, parent directories the archive does not list included, plus
        the bytes of each regular file rounded up to whole blocks (the extraction never writes more than
        the member headers say).
        """
        return space_needed(self._sized(), block_size)

    def data_size(self):
        """Bytes the release takes once unpacked, as :meth:`space_needed` counts them with
        :data:`~.limits.DEFAULT_BLOCK_SIZE` blocks (the size the ``min_free_space`` rule is checked against)."""
        return self.space_needed()[0]

    def check_fits(self, path, reserve=0):
        """Refuse (ArchiveLimitError) when the release would not fit in the filesystem of ``path`` while
        leaving ``reserve`` bytes free, or when that filesystem has fewer free inodes than it needs."""
        check_fits(path, self._sized(), self.what, reserve)

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _corrupt(self, member, exc):
        return CorruptArchiveError(
            "cannot unpack member %r of %s: %s. The archive is damaged or truncated; nothing was unpacked. "
            "Rebuild or download it again." % (member.name, self.what, describe_error(exc)),
            archive=self.name,
            member=member.name,
        )

    def _open_member(self, member):
        opener = self._handle.extractfile if self.fmt == "tar" else self._handle.open
        try:
            stream = opener(member.source)
        except READ_ERRORS as exc:
            raise self._corrupt(member, exc) from None
        if stream is None:
            raise UnsupportedArchiveError("member %r of %s has no data" % (member.name, self.what))
        return stream

    def _copy(self, member, out):
        """Copy a member's data to ``out``: read errors are the archive's, write errors (OSError) the disk's."""
        stream = self._open_member(member)
        try:
            while True:
                try:
                    chunk = stream.read(_COPY_CHUNK)
                except READ_ERRORS as exc:
                    raise self._corrupt(member, exc) from None
                if not chunk:
                    break
                out.write(chunk)
        finally:
            stream.close()

    def extract(self, dest):
        """Extract the checked members into the existing, empty directory ``dest``.

        Refuses before the first write when ``dest``'s filesystem lacks the blocks or inodes the release
        needs (:meth:`check_fits`). On any failure, what was written is removed and ``dest`` is left empty.
        """
        self.check_fits(dest)
        try:
            write_members(dest, self.members, self._copy)
        except BaseException:
            empty_dir(dest)
            raise
