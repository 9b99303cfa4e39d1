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

Extraction is done member by member with ``O_EXCL|O_NOFOLLOW``; archive ownership is
ignored and setuid/setgid/sticky bits are dropped.
"""

import os
import shutil
import stat
import tarfile
import time
import zipfile

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError

MAX_LINK_DEPTH = 40

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


def _tar_entries(tar):
    for info in tar.getmembers():
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
        yield info.name, kind, info.mode, target, info.mtime, info


# --- zip -------------------------------------------------------------------------------------------


def _zip_unix_mode(info):
    if info.create_system == 3:  # Unix
        return (info.external_attr >> 16) & 0xFFFF
    return 0


def _zip_entries(zf):
    for info in zf.infolist():
        if info.flag_bits & 0x1:
            yield info.filename, ("refuse", "encrypted member"), None, None, None, info
            continue
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
        yield info.filename, kind, mode, target, mtime, info


# --- public entry points ---------------------------------------------------------------------------


class OpenArchive:
    """An opened tar or zip archive plus its checked member list. Use as a context manager."""

    def __init__(self, fileobj, fmt):
        self.fmt = fmt
        self._handle = None
        try:
            if fmt == "tar":
                self._handle = tarfile.open(fileobj=fileobj, mode="r:*")  # noqa: SIM115 (closed by close())
                entries = list(_tar_entries(self._handle))
            elif fmt == "zip":
                self._handle = zipfile.ZipFile(fileobj)
                entries = list(_zip_entries(self._handle))
            else:
                raise UnsupportedArchiveError("unsupported archive format %r" % fmt)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            self.close()
            raise UnsupportedArchiveError("cannot read the %s archive: %s" % (fmt, exc)) from None
        except Exception:
            self.close()
            raise
        try:
            self.members = check_members(entries)
        except Exception:
            self.close()
            raise

    def data_size(self):
        """Bytes the regular files of the archive hold once unpacked (from the member headers, which the
        extraction does not exceed)."""
        total = 0
        for member in self.members:
            if member.kind == KIND_FILE:
                info = member.source
                total += info.size if self.fmt == "tar" else info.file_size
        return total

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _open_member(self, member):
        if self.fmt == "tar":
            stream = self._handle.extractfile(member.source)
            if stream is None:
                raise UnsupportedArchiveError("member %r has no data" % member.name)
            return stream
        return self._handle.open(member.source)

    def extract(self, dest):
        """Extract the checked members into the existing, empty directory ``dest``."""
        dir_modes = []
        later_links = []
        for member in self.members:
            path = os.path.join(dest, *_split(member.name))
            if member.kind == KIND_DIR:
                _makedirs(dest, member.name)
                dir_modes.append((path, member.mode, member.mtime))
            elif member.kind == KIND_FILE:
                _makedirs(dest, os.path.dirname(member.name))
                mode = stat.S_IMODE(member.mode) & 0o777 if member.mode else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(path, flags, 0o600)
                with os.fdopen(fd, "wb") as out:
                    stream = self._open_member(member)
                    try:
                        shutil.copyfileobj(stream, out, 1024 * 1024)
                    finally:
                        stream.close()
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
                os.chmod(path, stat.S_IMODE(mode) & 0o777)
            if mtime is not None:
                os.utime(path, (mtime, mtime))


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
