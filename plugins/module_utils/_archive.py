# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection: not a public API, may change without notice.
"""Safe inspection and extraction of release archives (tar, tar.gz, zip).

Every member of an archive is checked before anything is written:

* names must be relative and free of ``..`` components;
* only regular files, directories, symbolic links and hard links are accepted
  (device files, FIFOs and sockets are refused);
* symbolic links must resolve inside the release, also when they point through
  other links of the same archive (link chains are followed);
* hard links must point at a regular file stored earlier in the same archive;
* no member may live beneath a symbolic link of the archive, and a name may appear
  only once (directories excepted), so extraction never writes through a link.

Limits, checked before anything is written:

* at most ``max_members`` members (default :data:`DEFAULT_MAX_MEMBERS`); a zip archive is refused from
  its end record, before its member list is parsed, and a tar archive as soon as one header too many is read;
* :meth:`OpenArchive.space_needed` estimates the space the release takes: one block and one inode per
  member (implied parent directories included), plus the bytes of each file rounded up to whole blocks.
  :meth:`OpenArchive.extract` refuses to start when the filesystem of the destination has fewer free
  blocks or inodes than that.

Extraction is done member by member with ``O_EXCL|O_NOFOLLOW``; archive ownership is ignored. Modes
keep the owner's bits and the read/execute bits of group and others: group and other write, setuid,
setgid and sticky bits are dropped (:data:`MODE_MASK`), so no member comes out writable by another user.

A damaged archive (bad compressed data, bad CRC, truncated stream, damaged header) raises
:class:`CorruptArchiveError` naming the archive and, where known, the member; whatever :meth:`extract`
had written is removed again, so the destination is left empty.
"""

import contextlib
import os
import shutil
import stat
import struct
import tarfile
import time
import zipfile
import zlib

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError

try:
    import lzma

    _LZMA_ERRORS = (lzma.LZMAError,)
except ImportError:  # a Python built without lzma cannot open .tar.xz archives either
    _LZMA_ERRORS = ()

MAX_LINK_DEPTH = 40

DEFAULT_MAX_MEMBERS = 100000
"""Members an archive may hold unless ``max_members`` says otherwise."""

DEFAULT_BLOCK_SIZE = 4096
"""Block size of the size estimate when the filesystem's own is not known."""

MODE_MASK = 0o755
"""Mode bits kept from the archive: all of the owner's, read and execute for group and others."""

# What the tar, gzip, bz2, xz and zip readers raise on damaged input (OSError covers gzip.BadGzipFile
# and read errors of the archive file itself, ValueError a damaged zip64 or unicode name,
# NotImplementedError an unknown zip compression method, RuntimeError an unexpected zip encryption).
_READ_ERRORS = (
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

_COPY_CHUNK = 1024 * 1024
# Bytes after a tar archive's end-of-archive marker that are read to check the compressed stream's trailer
# (CRC and length): tar writers pad to 10 KiB records; far more is refused rather than decompressed.
_MAX_TAR_TRAILER = 16 * 1024 * 1024

# The limits in force when OpenArchive is not given them (see archive_limits).
_LIMITS = {"max_members": DEFAULT_MAX_MEMBERS}

KIND_FILE = "file"
KIND_DIR = "dir"
KIND_SYMLINK = "symlink"
KIND_HARDLINK = "hardlink"

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_ZIP_SUFFIXES = (".zip",)


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


class Member:
    """One checked archive member: normalised relative name, kind, mode and (for links) target."""

    __slots__ = ("name", "kind", "mode", "target", "mtime", "source")

    def __init__(self, name, kind, mode=None, target=None, mtime=None, source=None):
        self.name = name
        self.kind = kind
        self.mode = mode
        self.target = target
        self.mtime = mtime
        self.source = source

    def __repr__(self):
        return "Member(%r, %r, target=%r)" % (self.name, self.kind, self.target)


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


def normalize_name(raw):
    """Normalise an archive member name to ``a/b/c``; ``''`` means the archive root.

    Raises UnsafeArchiveError for absolute names and ``..`` components.
    """
    if "\x00" in raw:
        raise UnsafeArchiveError("member %r: NUL byte in name" % raw)
    if raw.startswith("/"):
        raise UnsafeArchiveError("member %r: absolute path" % raw)
    parts = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeArchiveError("member %r: '..' component" % raw)
        parts.append(part)
    return "/".join(parts)


def _split(name):
    return [p for p in name.split("/") if p] if name else []


def resolve_inside(start_parts, target, links, depth=0):
    """Resolve a relative link ``target`` seen from directory ``start_parts`` inside a virtual tree.

    ``links`` maps normalised names of symbolic links to their raw targets; links met on the way are
    followed (chains). Returns the resolved path as a list of components relative to the root, or
    raises UnsafeArchiveError when the path leaves the root at any step or the chain is too deep.
    """
    if depth > MAX_LINK_DEPTH:
        raise UnsafeArchiveError("link chain deeper than %d (loop?) at %r" % (MAX_LINK_DEPTH, target))
    if target.startswith("/"):
        raise UnsafeArchiveError("absolute link target %r" % target)
    stack = list(start_parts)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise UnsafeArchiveError("link target %r leaves the release" % target)
            stack.pop()
            continue
        stack.append(part)
        key = "/".join(stack)
        if key in links:
            stack = resolve_inside(stack[:-1], links[key], links, depth + 1)
    return stack


def check_members(entries):
    """Check a sequence of raw entries and return the list of Member objects to extract.

    ``entries`` holds ``(raw_name, kind, mode, target, mtime, source)`` tuples where ``kind`` is one of
    the KIND_* values or ``('refuse', reason)``. Raises UnsafeArchiveError on the first problem.
    """
    members = []
    seen = {}
    links = {}
    for raw_name, kind, mode, target, mtime, source in entries:
        if isinstance(kind, tuple):
            raise UnsafeArchiveError("member %r: %s not allowed" % (raw_name, kind[1]))
        name = normalize_name(raw_name)
        if not name:
            if kind == KIND_DIR:
                continue  # the archive root itself ('./')
            raise UnsafeArchiveError("member %r: empty name" % raw_name)
        previous = seen.get(name)
        if previous is not None and not (previous == KIND_DIR and kind == KIND_DIR):
            raise UnsafeArchiveError("member %r: appears more than once" % raw_name)
        seen[name] = kind
        if kind == KIND_SYMLINK:
            if not target:
                raise UnsafeArchiveError("member %r: symbolic link without a target" % raw_name)
            links[name] = target
        elif kind == KIND_HARDLINK:
            if not target:
                raise UnsafeArchiveError("member %r: hard link without a target" % raw_name)
            try:
                norm_target = normalize_name(target)
            except UnsafeArchiveError:
                raise UnsafeArchiveError(
                    "member %r: hard link to %r points outside the release" % (raw_name, target)
                ) from None
            if seen.get(norm_target) != KIND_FILE:
                raise UnsafeArchiveError(
                    "member %r: hard link to %r, which is not a regular file stored earlier in the archive"
                    % (raw_name, target)
                )
            target = norm_target
        members.append(Member(name, kind, mode, target, mtime, source))

    # No member may live beneath a symbolic link of the archive (extraction never writes through links),
    # and hard links may not reach their target through one either.
    for member in members:
        paths = [member.name]
        if member.kind == KIND_HARDLINK:
            paths.append(member.target)
        for path in paths:
            parts = _split(path)
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                if prefix in links:
                    raise UnsafeArchiveError("member %r: lies beneath the symbolic link %r" % (member.name, prefix))

    # Symbolic links must stay inside the release, following chains through other links.
    for member in members:
        if member.kind != KIND_SYMLINK:
            continue
        try:
            resolve_inside(_split(member.name)[:-1], member.target, links)
        except UnsafeArchiveError as exc:
            raise UnsafeArchiveError(
                "member %r: symbolic link to %r points outside the release (%s)" % (member.name, member.target, exc)
            ) from None
    return members


# --- tar -------------------------------------------------------------------------------------------


def _tar_entry(info):
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


# --- zip -------------------------------------------------------------------------------------------


def _zip_unix_mode(info):
    if info.create_system == 3:  # Unix
        return (info.external_attr >> 16) & 0xFFFF
    return 0


def _zip_entry(zf, info):
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


_ZIP_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


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


# --- public entry points ---------------------------------------------------------------------------


def _label(fileobj):
    name = getattr(fileobj, "name", None)  # an int for a file opened from a descriptor
    return name if isinstance(name, str) and name else None


class OpenArchive:
    """An opened tar or zip archive plus its checked member list. Use as a context manager.

    ``max_members`` (default: the one set by :func:`archive_limits`, else :data:`DEFAULT_MAX_MEMBERS`)
    bounds the member count; ``name`` is how messages call the archive (default: the file's name).
    """

    def __init__(self, fileobj, fmt, max_members=None, name=None):
        self.fmt = fmt
        self.name = name or _label(fileobj)
        self.what = "the %s archive %s" % (fmt, self.name) if self.name else "the %s archive" % fmt
        self.max_members = validate_max_members(_LIMITS["max_members"] if max_members is None else max_members)
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
        except _READ_ERRORS as exc:
            self.close()
            raise CorruptArchiveError(
                "cannot read %s%s: %s. It is damaged, truncated or not a %s archive; nothing was unpacked. "
                "Rebuild or download it again." % (self.what, self._near(), _describe_error(exc), fmt),
                archive=self.name,
                member=self._last,
            ) from None
        except BaseException:
            self.close()
            raise

    def _near(self):
        return " (at or after member %r)" % self._last if self._last is not None else ""

    def _check_count(self, count):
        """Refuse more than ``max_members`` members (a tar archive is refused at the first one too many)."""
        if count <= self.max_members:
            return
        counted = "more than %d" % self.max_members if self.fmt == "tar" else "%d" % count
        raise ArchiveLimitError(
            "%s has %s members, more than max_members allows (%d). Nothing was unpacked. Repack the release "
            "into fewer files, or raise max_members if that many are expected."
            % (self.what, counted, self.max_members),
            archive=self.name,
            max_members=self.max_members,
        )

    def _tar_entries(self):
        tar = self._handle
        entries = []
        for info in tar:
            self._check_count(len(entries) + 1)
            self._last = info.name
            entries.append(_tar_entry(info))
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
            entries.append(_zip_entry(zf, info))
        return entries

    def _file_size(self, member):
        info = member.source
        return info.size if self.fmt == "tar" else info.file_size

    def space_needed(self, block_size=DEFAULT_BLOCK_SIZE):
        """``(bytes, inodes)`` the release takes once unpacked, for a filesystem of ``block_size`` blocks.

        One block and one inode per member, parent directories the archive does not list included, plus
        the bytes of each regular file rounded up to whole blocks (the extraction never writes more than
        the member headers say).
        """
        block = block_size if isinstance(block_size, int) and block_size > 0 else DEFAULT_BLOCK_SIZE
        names = set()
        data = 0
        for member in self.members:
            names.add(member.name)
            if member.kind == KIND_FILE:
                data += -(-self._file_size(member) // block) * block
        parents = set()
        for name in names:
            parts = _split(name)
            for i in range(1, len(parts)):
                parents.add("/".join(parts[:i]))
        inodes = len(names | parents)
        return inodes * block + data, inodes

    def data_size(self):
        """Bytes the release takes once unpacked, as :meth:`space_needed` counts them with
        :data:`DEFAULT_BLOCK_SIZE` blocks (the size the ``min_free_space`` rule is checked against)."""
        return self.space_needed()[0]

    def check_fits(self, path, reserve=0):
        """Refuse (ArchiveLimitError) when the release would not fit in the filesystem of ``path`` while
        leaving ``reserve`` bytes free, or when that filesystem has fewer free inodes than it needs."""
        st = os.statvfs(path)
        block = getattr(st, "f_frsize", 0) or getattr(st, "f_bsize", 0) or DEFAULT_BLOCK_SIZE
        needed, inodes = self.space_needed(block)
        free = st.f_bavail * block
        if needed + reserve > free:
            raise ArchiveLimitError(
                "not enough disk space to unpack %s on the filesystem of %s: its %d members need about %s (one "
                "%d-byte block each, plus their data in whole blocks)%s, and it has %s free. Nothing was unpacked. "
                "Free space there, for example by removing old releases (state=absent)."
                % (
                    self.what,
                    path,
                    len(self.members),
                    _format_bytes(needed),
                    block,
                    " and %s must stay free" % _format_bytes(reserve) if reserve else "",
                    _format_bytes(free),
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
                    % (self.what, path, inodes, avail),
                    inodes_needed=inodes,
                    inodes_free=avail,
                )

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
            "Rebuild or download it again." % (member.name, self.what, _describe_error(exc)),
            archive=self.name,
            member=member.name,
        )

    def _open_member(self, member):
        opener = self._handle.extractfile if self.fmt == "tar" else self._handle.open
        try:
            stream = opener(member.source)
        except _READ_ERRORS as exc:
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
                except _READ_ERRORS as exc:
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
            self._extract(dest)
        except BaseException:
            _empty_dir(dest)
            raise

    def _extract(self, dest):
        dir_modes = []
        later_links = []
        for member in self.members:
            path = os.path.join(dest, *_split(member.name))
            if member.kind == KIND_DIR:
                _makedirs(dest, member.name)
                dir_modes.append((path, member.mode, member.mtime))
            elif member.kind == KIND_FILE:
                _makedirs(dest, os.path.dirname(member.name))
                mode = stat.S_IMODE(member.mode) & MODE_MASK if member.mode else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(path, flags, 0o600)
                with os.fdopen(fd, "wb") as out:
                    self._copy(member, out)
                os.chmod(path, mode)
                if member.mtime is not None:
                    os.utime(path, (member.mtime, member.mtime))
            else:
                later_links.append((path, member))
        for path, member in later_links:
            _makedirs(dest, os.path.dirname(member.name))
            if member.kind == KIND_HARDLINK:
                os.link(os.path.join(dest, *_split(member.target)), path)
            else:
                os.symlink(member.target, path)
        # Directory modes last, deepest first, so read-only directories do not block extraction.
        for path, mode, mtime in sorted(dir_modes, key=lambda item: item[0].count(os.sep), reverse=True):
            if mode:
                os.chmod(path, stat.S_IMODE(mode) & MODE_MASK)
            if mtime is not None:
                os.utime(path, (mtime, mtime))


def _format_bytes(n):
    """``1536`` -> ``1.5 KiB`` (as the release messages write sizes)."""
    if n < 1024:
        return "%d B" % n
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024.0
        if n < 1024 or unit == "GiB":
            return "%.1f %s" % (n, unit)
    return "%d B" % n  # not reached


def _describe_error(exc):
    text = " ".join(str(exc).split())  # one line (tarfile lists every method it tried on lines of their own)
    name = type(exc).__name__
    if name == "error":  # zlib.error
        name = "%s.error" % type(exc).__module__
    return "%s: %s" % (name, text) if text else name


def _empty_dir(dest):
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


def _makedirs(dest, rel):
    """Create ``dest/rel`` component by component, refusing to pass through anything but real directories."""
    current = dest
    for part in _split(rel):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeArchiveError("member path %r crosses a non-directory" % rel)
