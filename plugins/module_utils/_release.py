# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Capistrano-style release layout on the target host.

::

    PATH/releases/<version>/    one unpacked archive per release, contents as stored in the archive
    PATH/shared/                files and directories shared by all releases (linked in via shared_paths)
    PATH/current                relative symlink -> releases/<version>
    PATH/.rollout-state.json    current, previous, activation history, per-release checksum (atomic writes)
    PATH/.rollout-tmp/          staging area for downloads, unpacking, symlink swaps and deletions
    PATH/.rollout.lock          flock(2) lock serialising concurrent runs on one PATH

Ownership and links (the module usually runs as root, the app as another user):

* ``path``, ``releases/``, ``shared/``, ``.rollout-tmp/``, the state file and the lock belong to the user the
  module runs as; only the releases' contents and the entries under ``shared/`` get ``owner``/``group``;
* none of those entries is followed when it is a symbolic link: the state file and the lock are opened with
  ``O_NOFOLLOW``, and directories are listed, emptied and pruned from descriptors opened with
  ``O_NOFOLLOW | O_DIRECTORY`` (:func:`_remove_at`), one component at a time, so a link planted in place of a
  directory is removed or refused, never entered;
* a layout made by earlier versions, which gave ``path``, ``releases/`` and ``shared/`` to ``owner``, is taken
  back (chowned to the running user, with a warning); any other link or entry of another user among them is
  refused before anything changes.

Rules that keep readers of ``current/...`` safe:

* a release is unpacked into ``.rollout-tmp/`` (same filesystem) and renamed into ``releases/``
  only once complete, then recorded in the state file; a directory in ``releases/`` without a
  record is incomplete (an interrupted run) and is redone before use;
* ``current`` is switched by creating a new symlink under a temporary name and ``os.replace``-ing
  it over the old one, so ``current`` always resolves to the old or to the new release;
* the ``current`` symlink is the truth about the current release; the state file adds what a
  symlink cannot tell (previous release, history, checksums). Directory mtimes are never used.

Nothing here knows about AnsibleModule: :func:`manage_release` takes plain arguments (and a
``fetch(url, fileobj)`` callable for downloads), returns a result dict, and raises
:class:`~._errors.RolloutError` subclasses.
"""

import contextlib
import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import stat
import tempfile
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive import (
    OpenArchive,
    UnsupportedArchiveError,
    archive_format,
    sniff_format,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import (  # noqa: F401 (redact_url re-exported)
    redact_text,
    redact_url,
)

STATE_FILE = ".rollout-state.json"
LOCK_FILE = ".rollout.lock"
TMP_DIR = ".rollout-tmp"
STATE_FORMAT = 1
STATE_FILE_MAX = 32 * 1024 * 1024
HISTORY_LIMIT = 100
STATES = ("present", "active", "rollback", "absent")

# Always used with fullmatch: ``$`` would also match before a final newline ("v1\n").
_VERSION_RE = re.compile(r"[A-Za-z0-9._+-]+")
_CHECKSUM_RE = re.compile(r"sha256:([0-9a-fA-F]{64})")


class ReleaseError(RolloutError):
    """A release operation could not be carried out (the layout was left as it was)."""


class ChecksumMismatchError(ReleaseError):
    """The archive does not have the expected checksum; nothing was unpacked."""


class StateFileError(ReleaseError):
    """The state file cannot be read or does not hold what this collection writes."""


class LayoutError(ReleaseError):
    """The directory layout is not one this module can manage safely (e.g. ``current`` is a directory)."""


class FetchError(ReleaseError):
    """Downloading the archive failed."""


# --- validation ------------------------------------------------------------------------------------


def validate_version(version, what="version"):
    """Return ``version`` if it is a safe release name, else raise ValidationError."""
    if not isinstance(version, str) or not version:
        raise ValidationError("%s must be a non-empty string, got %r." % (what, version))
    if len(version) > 200:
        raise ValidationError("%s %r is longer than 200 characters." % (what, version))
    if not _VERSION_RE.fullmatch(version):
        raise ValidationError(
            "%s %r may only contain letters, digits, '.', '_', '-' and '+' (no '/' or spaces)." % (what, version)
        )
    if version.startswith(".") or ".." in version:
        raise ValidationError("%s %r must not start with '.' or contain '..'." % (what, version))
    return version


def validate_relative_path(path, what="path"):
    """Normalise a relative path (``a/b``); refuse absolute paths, ``..`` and empty paths."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationError("%s must be a non-empty relative path, got %r." % (what, path))
    if path.startswith("/"):
        raise ValidationError("%s %r must be relative to the release directory." % (what, path))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise ValidationError("%s %r does not name anything inside the release." % (what, path))
    if ".." in parts:
        raise ValidationError("%s %r must not contain '..'." % (what, path))
    return "/".join(parts)


def validate_shared_paths(paths):
    """Normalise ``shared_paths``; refuse duplicates and paths nested inside one another."""
    result = []
    for raw in paths or ():
        norm = validate_relative_path(raw, "shared_paths entry")
        if norm in result:
            continue
        for other in result:
            if norm.startswith(other + "/") or other.startswith(norm + "/"):
                raise ValidationError("shared_paths entries %r and %r are nested; keep only one." % (other, norm))
        result.append(norm)
    return result


def parse_checksum(value):
    """Return ``'sha256:<lowercase hex>'`` or None; raise ValidationError on any other form."""
    if value is None or value == "":
        return None
    match = _CHECKSUM_RE.fullmatch(str(value).strip())
    if not match:
        raise ValidationError("checksum must look like 'sha256:<64 hex digits>', got %r." % (value,))
    return "sha256:" + match.group(1).lower()


def parse_mode(value):
    """Return an octal mode as int (``'0755'``, ``'755'``, ``0o755``) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError("mode must be an octal number such as '0755', got %r." % (value,))
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value).strip(), 8)
        except ValueError:
            raise ValidationError("mode must be an octal number such as '0755', got %r." % (value,)) from None
    if not 0 <= mode <= 0o7777:
        raise ValidationError("mode %r is out of range." % (value,))
    return mode


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_FREE_SPACE_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:(%)|([KMGT])(?:I?B)?)?")


def parse_free_space(value):
    """``min_free_space`` -> ``("bytes", n)`` or ``("percent", p)``; ``0``/``None``/``""`` -> ``("bytes", 0)``.

    Bytes may carry a binary suffix (``512M``, ``2G``; ``K``, ``M``, ``G``, ``T``, optionally followed by ``B``
    or ``iB``); a percentage (``5%``) is of the whole filesystem.
    """
    if value is None or value == "":
        return ("bytes", 0)
    match = None if isinstance(value, bool) else _FREE_SPACE_RE.fullmatch(str(value).strip().upper())
    if match is None:
        raise ValidationError(
            "min_free_space must be a size such as 2G, 512M or 1048576, or a percentage such as 5%%, got %r." % (value,)
        )
    amount, percent, unit = float(match.group(1)), match.group(2), match.group(3) or ""
    if percent:
        if amount >= 100:
            raise ValidationError("min_free_space must be a percentage from 0 up to 100 (excluded), got %r." % value)
        return ("percent", amount)
    return ("bytes", int(amount * _SIZE_UNITS[unit]))


def format_bytes(n):
    """``1536`` -> ``1.5 KiB``; bytes below 1 KiB as a whole number, GiB the largest unit."""
    if n < 1024:
        return "%d B" % n
    n /= 1024.0
    for unit in ("KiB", "MiB"):
        if n < 1024:
            return "%.1f %s" % (n, unit)
        n /= 1024.0
    return "%.1f GiB" % n


def resolve_uid(owner):
    """User name or numeric id -> uid; None -> -1 (leave unchanged)."""
    if owner is None or owner == "":
        return -1
    text = str(owner)
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ValidationError("owner %r does not exist on the target host." % (owner,)) from None


def resolve_gid(group):
    """Group name or numeric id -> gid; None -> -1 (leave unchanged)."""
    if group is None or group == "":
        return -1
    text = str(group)
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValidationError("group %r does not exist on the target host." % (group,)) from None


def is_url(src):
    return isinstance(src, str) and src.lower().startswith(("http://", "https://"))


def _url_path(url):
    rest = url.partition("://")[2]
    path = rest.partition("/")[2]
    return path.partition("?")[0].partition("#")[0]


def natural_key(name):
    """Sort key that orders ``v2`` before ``v10`` and is total over all strings."""
    key = []
    for chunk in re.split(r"(\d+)", name):
        if not chunk:
            continue
        key.append((0, int(chunk), chunk) if chunk.isdigit() else (1, 0, chunk))
    return tuple(key), name


# --- state file ------------------------------------------------------------------------------------


class ReleaseState:
    """What the state file records. ``releases`` maps a name to ``{checksum, installed_seq, ...}``."""

    def __init__(self):
        self.current = None
        self.previous = None
        self.seq = 0
        self.history = []
        self.releases = {}

    @classmethod
    def load(cls, path):
        """Read the state file; None when it does not exist; StateFileError when it is unusable."""
        hint = (
            "The 'current' symlink is authoritative: repair the file, or remove it to re-adopt the layout "
            "(the previous release, history and checksums are then forgotten)."
        )
        try:
            fd = os.open(path, _FILE_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _link_refused(path) from None
            raise StateFileError("cannot read the state file %s: %s." % (path, exc)) from None
        try:
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise StateFileError("the state file %s is not a regular file. %s" % (path, hint))
                raw = handle.read(STATE_FILE_MAX + 1)
        except OSError as exc:
            raise StateFileError("cannot read the state file %s: %s." % (path, exc)) from None
        if len(raw) > STATE_FILE_MAX:
            raise StateFileError("the state file %s is larger than %s. %s" % (path, format_bytes(STATE_FILE_MAX), hint))
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise StateFileError("the state file %s is not valid JSON (%s). %s" % (path, exc, hint)) from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError, KeyError, ValidationError) as exc:
            raise StateFileError("the state file %s is corrupt: %s. %s" % (path, exc, hint)) from None

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise TypeError("top level is not an object")
        fmt = data.get("format")
        if fmt != STATE_FORMAT:
            if isinstance(fmt, int) and fmt > STATE_FORMAT:
                raise ValueError("format %d was written by a newer version of the collection" % fmt)
            raise ValueError("unknown format %r" % (fmt,))
        state = cls()
        for key in ("current", "previous"):
            value = data.get(key)
            if value is not None:
                validate_version(value, key)
            setattr(state, key, value)
        seq = data.get("seq", 0)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError("seq is not a non-negative integer")
        state.seq = seq
        history = data.get("history", [])
        if not isinstance(history, list):
            raise TypeError("history is not a list")
        for entry in history:
            if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                raise TypeError("history entry %r is malformed" % (entry,))
            validate_version(entry.get("release"), "history release")
        state.history = history
        releases = data.get("releases", {})
        if not isinstance(releases, dict):
            raise TypeError("releases is not an object")
        for name, record in releases.items():
            validate_version(name, "release name")
            if not isinstance(record, dict):
                raise TypeError("record of release %r is not an object" % name)
            if record.get("checksum") is not None:
                parse_checksum(record["checksum"])
            if not isinstance(record.get("rolled_back_at", ""), str):
                raise TypeError("rolled_back_at of release %r is not a string" % name)
        state.releases = releases
        return state

    def to_dict(self):
        return {
            "format": STATE_FORMAT,
            "current": self.current,
            "previous": self.previous,
            "seq": self.seq,
            "history": self.history[-HISTORY_LIMIT:],
            "releases": self.releases,
        }

    def _next_seq(self):
        self.seq += 1
        return self.seq

    def record_install(self, version, checksum, when):
        self.releases[version] = {"checksum": checksum, "installed_seq": self._next_seq(), "installed_at": when}

    def record_adopted(self, version):
        self.releases.setdefault(version, {"checksum": None, "adopted": True})

    def record_activation(self, version, previous, when):
        self.history.append({"release": version, "seq": self._next_seq(), "at": when})
        self.history = self.history[-HISTORY_LIMIT:]
        self.previous = previous
        self.current = version
        # Running again: whatever rolled it back before is history.
        self.releases.get(version, {}).pop("rolled_back_at", None)

    def record_rollback(self, left, when):
        """``left`` was current until a rollback switched away from it."""
        if left in self.releases:
            self.releases[left]["rolled_back_at"] = when

    def forget(self, version):
        self.releases.pop(version, None)
        if self.previous == version:
            self.previous = None

    def rank(self, version):
        """Recency of a release: the later of its recorded install and last activation.

        -1 for an adopted release (found on disk, never recorded), -2 for a directory without a record
        (incomplete), so those go first when pruning.
        """
        record = self.releases.get(version)
        if record is None:
            return -2
        rank = record.get("installed_seq", -1)
        for entry in self.history:
            if entry.get("release") == version:
                rank = max(rank, entry["seq"])
        return rank


def choose_prune(releases, protected, keep, rank):
    """Names to delete so that at most ``keep`` releases remain (0 = keep everything).

    Oldest first by ``rank(name)`` (recorded install/activation order), ties broken by natural
    name order; names in ``protected`` (current, previous, the release just installed) are never chosen.
    """
    if not keep or len(releases) <= keep:
        return []
    excess = len(releases) - keep
    chosen = []
    for name in sorted(releases, key=lambda n: (rank(n), natural_key(n))):
        if excess <= 0:
            break
        if name in protected:
            continue
        chosen.append(name)
        excess -= 1
    return chosen


# --- filesystem helpers ----------------------------------------------------------------------------


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# A directory, never through a link in its last component (ELOOP or ENOTDIR when it is one).
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | _O_CLOEXEC
# A file to read, never through a link, without blocking on a FIFO.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _O_CLOEXEC
_NOT_A_DIR = (errno.ELOOP, errno.ENOTDIR)
_LINK_RULE = (
    "the release module follows no link in place of releases/, shared/, .rollout-tmp/, the state file or the "
    "lock, since another user may have planted it"
)


def _trusted(uid):
    """Root and the user the module runs as may own what the module keeps for itself."""
    return uid == 0 or uid == os.geteuid()


def _trusted_users():
    """``root`` and the user the module runs as, for messages."""
    if os.geteuid() == 0:
        return "root (the user the module runs as)"
    return "root or %s (the user the module runs as)" % _user(os.geteuid())


def _user(uid):
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _link_refused(path, link=None, done="Nothing was changed."):
    """LayoutError for a symbolic link found where the module keeps a directory or file of its own."""
    if link is None:
        try:
            link = os.readlink(path)
        except OSError:
            link = None
    shown = "%s is a symbolic link%s" % (path, " (to %s)" % link if link is not None else "")
    return LayoutError(
        "%s: refused, %s.%s Remove the link, find out who made it, then run again."
        % (shown, _LINK_RULE, " " + done if done else "")
    )


def _not_a_dir_refused(path, done="Nothing was changed."):
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        return _link_refused(path, done=done)
    return LayoutError(
        "%s is not a directory: refused.%s Move it away, then run again." % (path, " " + done if done else "")
    )


def _open_dir(path, done="Nothing was changed."):
    """Descriptor of the directory ``path``, its last component never followed; None when it does not exist."""
    try:
        return os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_A_DIR:
            raise _not_a_dir_refused(path, done) from None
        raise


def _list_at(fd):
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
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in _NOT_A_DIR:
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        return None
    try:
        return fd, _list_at(fd)
    except BaseException:
        os.close(fd)
        raise


def _remove_at(dir_fd, name):
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


def write_json_atomic(path, data, tmp_dir):
    """Write ``data`` as JSON to ``path`` via a temporary file in ``tmp_dir`` and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="state.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.dirname(path))


class _Lock:
    """``flock`` on ``PATH/.rollout.lock``: never through a link, created with mode 0600 whatever the umask, and
    refused unless it is a regular file of root or of the running user."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def _open(self):
        flags = os.O_RDWR | os.O_NOFOLLOW | _O_CLOEXEC
        for _attempt in range(10):
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                try:
                    os.fchmod(fd, 0o600)
                except BaseException:
                    os.close(fd)
                    raise
                return fd
            try:
                return os.open(self.path, flags)
            except FileNotFoundError:
                continue  # removed meanwhile: create it
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _link_refused(self.path) from None
                raise
        raise LayoutError("cannot create the lock file %s: it keeps disappearing." % self.path)

    def __enter__(self):
        fd = self._open()
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or not _trusted(info.st_uid):
                raise LayoutError(
                    "the lock file %s is not a regular file with a single link that belongs to %s: refused. Nothing "
                    "was changed. Remove it (no run may be in progress), then run again."
                    % (self.path, _trusted_users())
                )
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = None
        return False


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Layout:
    """Paths of one release layout, and the read-only questions asked about it."""

    def __init__(self, path):
        self.path = path
        self.releases_dir = os.path.join(path, "releases")
        self.shared_dir = os.path.join(path, "shared")
        self.current_link = os.path.join(path, "current")
        self.state_file = os.path.join(path, STATE_FILE)
        self.lock_file = os.path.join(path, LOCK_FILE)
        self.tmp_dir = os.path.join(path, TMP_DIR)

    def release_path(self, version):
        return os.path.join(self.releases_dir, version)

    def read_current(self):
        """Name of the release ``current`` points to, or None when there is no ``current``."""
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise LayoutError(
                    "%s exists but is not a symbolic link; move it away so that it can be managed as a "
                    "link to releases/<version>." % self.current_link
                ) from None
            raise LayoutError("cannot read %s: %s." % (self.current_link, exc)) from None
        absolute = os.path.normpath(os.path.join(self.path, target))
        name = os.path.basename(absolute)
        parent = os.path.dirname(absolute)
        same_parent = parent == os.path.normpath(self.releases_dir) or (
            os.path.realpath(parent) == os.path.realpath(self.releases_dir)
        )
        if not same_parent or not name:
            raise LayoutError(
                "%s points to %r, which is not a release under %s/; fix or remove the link."
                % (self.current_link, target, self.releases_dir)
            )
        try:
            validate_version(name, "the release named by %s" % self.current_link)
        except ValidationError as exc:
            raise LayoutError(str(exc)) from None
        return name

    def list_release_dirs(self):
        """Names of the directories in ``releases/`` (hidden entries and non-directories ignored)."""
        fd = _open_dir(self.releases_dir)
        if fd is None:
            return []
        try:
            with os.scandir(fd) as entries:
                result = [e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        finally:
            os.close(fd)
        return sorted(result, key=natural_key)


# --- the manager -----------------------------------------------------------------------------------


class ReleaseManager:
    """Carries out one ``state`` on one layout. Build it with validated arguments and call :meth:`run`."""

    def __init__(
        self,
        path,
        keep=5,
        shared_paths=(),
        uid=-1,
        gid=-1,
        mode=None,
        fetch=None,
        check_mode=False,
        now=None,
        min_free_space=("bytes", 0),
    ):
        self.layout = Layout(path)
        self.min_free_space = min_free_space
        self.keep = keep
        self.shared_paths = list(shared_paths)
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.fetch = fetch
        self.check_mode = check_mode
        self.now = now or time.time
        self.actions = []
        self.warnings = []
        self.taken_back = False

    # -- snapshot of what is on disk

    def _read(self):
        layout = self.layout
        current = layout.read_current()
        loaded = ReleaseState.load(layout.state_file)
        dirs = layout.list_release_dirs()
        adopted = loaded is None
        state = loaded if loaded is not None else ReleaseState()
        if adopted:
            # First run on a layout made by someone else: what is there is taken as complete.
            for name in dirs:
                state.record_adopted(name)
            state.current = current
        # When the link was moved outside this module (or a run died between the switch and the state
        # write), the release the state file calls current is the one that was active before.
        previous = state.previous if state.current == current else state.current
        if previous == current or previous not in dirs:
            previous = None
        if current is not None and current in dirs:
            state.record_adopted(current)  # the live release is complete by definition
        state.current = current
        state.previous = previous
        self.state = state
        self.adopted = adopted
        self.current = current
        self.previous = previous
        self.dirs = list(dirs)

    def _save(self):
        """Write the state file now (after every step that changed the layout, so a later failure keeps it)."""
        for name in list(self.state.releases):
            if name not in self.dirs:
                del self.state.releases[name]
        write_json_atomic(self.layout.state_file, self.state.to_dict(), self._tmp())

    def _is_complete(self, version):
        return version in self.dirs and version in self.state.releases

    def _when(self):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now()))

    # -- public entry

    def run(self, state, version=None, src=None, checksum=None):
        layout = self.layout
        if state in ("present", "active") and not self.check_mode:
            self._make_root()
        self._secure_layout()
        locked = not self.check_mode and os.path.isdir(layout.path)
        with _Lock(layout.lock_file) if locked else _NoLock():
            self._read()
            before = (self.current, list(self.dirs))
            if locked:
                self._clean_tmp()
            changed = False
            pruned = []
            release_path = None
            if state == "present":
                changed = self._ensure_release(version, src, checksum)
                pruned = self._prune({self.current, self.previous, version})
                release_path = layout.release_path(version)
            elif state == "active":
                changed = self._ensure_release(version, src, checksum)
                changed = self._activate(version) or changed
                pruned = self._prune({self.current, self.previous})
                release_path = layout.release_path(version)
            elif state == "rollback":
                changed = self._rollback(version)
                release_path = layout.release_path(self.current) if self.current else None
            elif state == "absent":
                changed = self._absent(version)
                release_path = layout.release_path(version)
            else:
                raise ValidationError("state must be one of %s, got %r." % (", ".join(STATES), state))
            changed = changed or bool(pruned) or self.taken_back
        after = (self.current, list(self.dirs))
        if not self.actions:
            msg = "nothing to do: current release is %s" % (self.current or "(none)")
        elif self.check_mode:
            msg = "check mode, would have: " + "; ".join(self.actions)
        else:
            msg = "; ".join(self.actions)
        result = {
            "changed": changed,
            "current": self.current,
            "previous": self.previous,
            "releases": sorted(self.dirs, key=natural_key),
            "release_path": release_path,
            "pruned": pruned,
            "msg": msg,
            "diff": {
                "before_header": layout.current_link,
                "after_header": layout.current_link,
                "before": _describe(*before),
                "after": _describe(*after),
            },
        }
        if self.warnings:
            result["warnings"] = list(self.warnings)
        return result

    # -- ownership and links of what the module keeps in path

    _OWN_ENTRIES = (("releases", True), ("shared", True), (TMP_DIR, True), (STATE_FILE, False), (LOCK_FILE, False))

    def _secure_layout(self):
        """Check ``path`` and the entries the module keeps there before anything changes; take back a layout made
        by earlier versions (its directories given to ``owner``); refuse any link and any other user's entry.

        Everything is checked first, so a refusal changes nothing. Then each entry taken back is opened again
        without following it, compared with what was checked, and chowned through its descriptor.
        """
        path = self.layout.path
        try:
            top = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(top.st_mode) and not _trusted(top.st_uid):
            raise LayoutError(
                "path %s is a symbolic link that belongs to %s, not to %s: refused, another user may have planted "
                "it. Nothing was changed. Point path at the real directory."
                % (path, _user(top.st_uid), _trusted_users())
            )
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise LayoutError("path %s is not a directory: refused. Nothing was changed." % path) from None
            raise
        try:
            found = [(None, path, os.fstat(fd), True)]
            for name, is_dir in self._OWN_ENTRIES:
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                found.append((name, os.path.join(path, name), info, is_dir))
            legacy = []
            for name, shown, info, is_dir in found:
                if stat.S_ISLNK(info.st_mode):
                    raise _link_refused(shown, link=os.readlink(name, dir_fd=fd))
                if is_dir and not stat.S_ISDIR(info.st_mode):
                    raise LayoutError("%s is not a directory: refused. Nothing was changed. Move it away." % shown)
                if not is_dir and (not stat.S_ISREG(info.st_mode) or info.st_nlink != 1):
                    raise LayoutError(
                        "%s is not a regular file with a single link: refused. Nothing was changed. Move it away "
                        "(no run may be in progress)." % shown
                    )
                if _trusted(info.st_uid):
                    continue
                if self.uid == -1 or info.st_uid != self.uid:
                    raise self._foreign(shown, info.st_uid)
                legacy.append((name, shown, info, is_dir))
            if legacy:
                self._take_back(fd, legacy)
            self._warn_exposed(path, found[0][2])
        finally:
            os.close(fd)

    def _foreign(self, shown, uid):
        return LayoutError(
            "%s belongs to %s, not to %s, so that user could put a link in its place or in it: refused. Nothing was "
            "changed. If an earlier version of this collection made it for owner %s, run the release module once "
            "with owner set to that user to take it back; otherwise find out who changed it, then chown it to %s."
            % (shown, _user(uid), _trusted_users(), _user(uid), _user(os.geteuid()))
        )

    def _take_back(self, fd, legacy):
        names = ", ".join(shown for _name, shown, _info, _is_dir in legacy)
        who = _user(legacy[0][2].st_uid)
        me = _user(os.geteuid())
        if self.check_mode:
            self.warnings.append(
                "Would take back %s from %s (an earlier version of this collection gave them to owner): they would "
                "belong to %s, not writable by group or others." % (names, who, me)
            )
            self.actions.append("take back %s from %s" % (names, who))
            self.taken_back = True
            return
        for name, shown, info, is_dir in legacy:
            if name is None:
                entry = os.dup(fd)
            else:
                try:
                    entry = os.open(name, _DIR_FLAGS if is_dir else _FILE_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in _NOT_A_DIR:
                        raise _link_refused(
                            shown, done="Entries listed before it may have been taken back already."
                        ) from None
                    raise
            try:
                now = os.fstat(entry)
                if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                    raise LayoutError("%s changed while it was being checked: refused. Run again." % shown)
                os.fchown(entry, os.geteuid(), os.getegid())
                os.fchmod(entry, stat.S_IMODE(now.st_mode) & ~0o022)
            finally:
                os.close(entry)
        self.taken_back = True
        self.actions.append("took back %s from %s" % (names, who))
        self.warnings.append(
            "Took back %s from %s: an earlier version of this collection gave them to owner, who could have put a "
            "link in their place. They now belong to %s and are not writable by group or others; only the releases' "
            "contents and the entries under shared/ belong to owner." % (names, who, me)
        )

    def _warn_exposed(self, path, info):
        """Warn when another user could still replace ``path`` itself (its parent is theirs or writable by all)."""
        parent = os.path.dirname(path)
        try:
            up = os.stat(parent)
        except OSError:
            return
        for shown, st, check_owner in ((parent, up, True), (path, info, False)):
            if check_owner and not _trusted(st.st_uid):
                why = "belongs to %s" % _user(st.st_uid)
            elif st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
                why = "is writable by every user"
            else:
                continue
            self.warnings.append(
                "%s %s, so another user could replace or fill %s: give it to %s, writable only by its owner, or "
                "move the layout elsewhere." % (shown, why, path, _trusted_users())
            )
            return

    # -- steps

    def _ensure_release(self, version, src, checksum):
        """Make sure ``releases/<version>`` is complete; returns True when it (would be) unpacked."""
        if self._is_complete(version):
            recorded = self.state.releases[version].get("checksum")
            if checksum and recorded and checksum != recorded:
                raise ReleaseError(
                    "release %s is already installed from an archive with %s, but checksum %s was requested. "
                    "Releases are immutable: use a new version name, or remove this one (state=absent) first."
                    % (version, recorded, checksum)
                )
            return False
        if src is None:
            what = "is incomplete (an interrupted run?)" if version in self.dirs else "is not installed"
            raise ValidationError("release %s %s; src is required to unpack it." % (version, what))
        if self.check_mode:
            if not is_url(src):
                self._verify_local(src, checksum)
            self.actions.append("%s %s" % ("redo incomplete release" if version in self.dirs else "unpack", version))
            if version not in self.dirs:
                self.dirs.append(version)
            return True
        self._install(version, src, checksum)
        return True

    def _verify_local(self, src, checksum):
        """Check mode: hash and inspect a local archive without writing anything."""
        with self._open_local(src) as handle:
            actual = _sha256(handle)
            _compare_checksum(src, checksum, actual)
            with self._open_archive(handle, src):
                pass

    def _open_local(self, src):
        try:
            return open(src, "rb")
        except FileNotFoundError:
            raise ValidationError("src %s does not exist on the target host." % src) from None
        except OSError as exc:
            raise ValidationError("cannot open src %s: %s." % (src, exc)) from None

    def _open_archive(self, handle, src):
        name = _url_path(src) if is_url(src) else src
        fmt = archive_format(name) or sniff_format(handle)
        if fmt is None:
            raise UnsupportedArchiveError(
                "%s is not a .tar.gz, .tgz, .tar or .zip archive." % (redact_url(src) if is_url(src) else src)
            )
        handle.seek(0)
        return OpenArchive(handle, fmt)

    def _download(self, url):
        if self.fetch is None:
            raise FetchError("no downloader is available for %s." % redact_url(url))
        fd, tmp = tempfile.mkstemp(dir=self._tmp(), prefix="download.")
        handle = os.fdopen(fd, "w+b")
        try:
            self.fetch(url, handle)
            handle.flush()
            handle.seek(0)
        except BaseException as exc:
            handle.close()
            os.unlink(tmp)
            if isinstance(exc, (RolloutError, KeyboardInterrupt, SystemExit)):
                raise
            raise FetchError("downloading %s failed: %s" % (redact_url(url), redact_text(str(exc)))) from None
        return handle, tmp

    def _install(self, version, src, checksum):
        layout = self.layout
        tmp_file = None
        if is_url(src):
            handle, tmp_file = self._download(src)
        else:
            handle = self._open_local(src)
        staging = None
        try:
            actual = _sha256(handle)
            _compare_checksum(redact_url(src) if is_url(src) else src, checksum, actual)
            with self._open_archive(handle, src) as archive:
                # Every member is checked by now; the first write happens below.
                self._check_space(version, archive.data_size())
                self._ensure_dir(layout.releases_dir, 0o755)
                self._ensure_dir(layout.shared_dir, 0o755)
                staging = tempfile.mkdtemp(dir=self._tmp(), prefix="release.")
                archive.extract(staging)
            self._link_shared(version, staging)
            self._apply_ownership(staging)
            os.chmod(staging, self.mode if self.mode is not None else 0o755)
            redo = version in self.dirs
            if redo:
                self._discard(version)
            os.rename(staging, layout.release_path(version))
            staging = None
            _fsync_dir(layout.releases_dir)
        finally:
            handle.close()
            if tmp_file and os.path.lexists(tmp_file):
                os.unlink(tmp_file)
            if staging is not None:
                self._remove_in_tmp(os.path.basename(staging))
        self.state.record_install(version, actual, self._when())
        if version not in self.dirs:
            self.dirs.append(version)
        self._save()
        self.actions.append("%s %s (%s)" % ("redid incomplete release" if redo else "unpacked", version, actual))

    def _check_space(self, version, needed):
        """Refuse to unpack when the release would not fit, keeping ``min_free_space`` free."""
        st = os.statvfs(self.layout.path)
        free = st.f_bavail * st.f_frsize
        kind, amount = self.min_free_space
        reserve = int(st.f_blocks * st.f_frsize * amount / 100.0) if kind == "percent" else amount
        if needed + reserve <= free:
            return
        kept = (
            (
                " and keep %s free (min_free_space %s)"
                % (format_bytes(reserve), ("%g%%" % amount) if kind == "percent" else format_bytes(amount))
            )
            if reserve
            else ""
        )
        raise ReleaseError(
            "not enough disk space to unpack %s in %s: its files need %s%s, and the filesystem has %s free. "
            "Nothing was written. Free space there, for example by removing old releases (state=absent)."
            % (version, self.layout.path, format_bytes(needed), kept, format_bytes(free)),
            needed=needed,
            free=free,
            reserve=reserve,
        )

    def _link_shared(self, version, staging):
        final = self.layout.release_path(version)
        for rel in self.shared_paths:
            target = os.path.join(self.layout.shared_dir, rel)
            if not os.path.lexists(target):
                self._make_shared(rel)
            parts = rel.split("/")
            current = staging
            for depth, part in enumerate(parts[:-1]):
                current = os.path.join(current, part)
                if not os.path.lexists(current):
                    os.mkdir(current, 0o755)
                elif not stat.S_ISDIR(os.lstat(current).st_mode):
                    raise ReleaseError(
                        "shared path %s: %s in the release is not a directory (a link in the archive?)."
                        % (rel, "/".join(parts[: depth + 1]))
                    )
            link = os.path.join(staging, rel)
            if os.path.lexists(link):
                # In the staging directory, which is still root's and 0700; removed without following anything.
                parent_fd = os.open(os.path.dirname(link), _DIR_FLAGS)
                try:
                    _remove_at(parent_fd, os.path.basename(link))
                finally:
                    os.close(parent_fd)
            os.symlink(os.path.relpath(target, os.path.dirname(os.path.join(final, rel))), link)

    def _activate(self, version):
        if self.current == version:
            return False
        old = self.current
        if not self.check_mode:
            self._switch(version)
            self.state.record_activation(version, old, self._when())
            self._save()
        self.actions.append("activated %s (previous: %s)" % (version, old or "none"))
        self.current = version
        self.previous = old
        return True

    def _rollback(self, version):
        target = version or self.previous
        if target is None:
            if not self.dirs:
                why = "there are no releases"
            elif self.adopted:
                why = "there is no state file (the layout was adopted)"
            elif self.state.previous and self.state.previous not in self.dirs:
                why = "the previous release %s no longer exists" % self.state.previous
            else:
                why = "the state file records no previous release"
            raise ReleaseError(
                "cannot roll back %s: %s. Pass version to name the release to roll back to." % (self.layout.path, why)
            )
        if target == self.current:
            return False
        if target not in self.dirs:
            raise ReleaseError(
                "cannot roll back to %s: %s does not exist." % (target, self.layout.release_path(target))
            )
        if not self._is_complete(target):
            raise ReleaseError(
                "cannot roll back to %s: the release is incomplete (an interrupted run); activate it with src "
                "to unpack it again." % target
            )
        old = self.current
        if not self.check_mode:
            self._switch(target)
            when = self._when()
            self.state.record_activation(target, old, when)
            if old is not None:
                self.state.record_rollback(old, when)
            self._save()
        self.actions.append("rolled back from %s to %s" % (old or "none", target))
        self.current = target
        self.previous = old
        return True

    def _absent(self, version):
        if version == self.current:
            raise ReleaseError(
                "refusing to remove release %s: it is the current release. Activate another one first." % version
            )
        if version not in self.dirs:
            return False
        self.dirs.remove(version)
        if self.previous == version:
            self.previous = None
        if not self.check_mode:
            self._discard(version)
            self.state.forget(version)
            self._save()
        self.actions.append("removed %s" % version)
        return True

    def _prune(self, protected):
        chosen = choose_prune(self.dirs, protected, self.keep, self.state.rank)
        for name in chosen:
            self.dirs.remove(name)
            if not self.check_mode:
                self._discard(name)
                self.state.forget(name)
        if chosen and not self.check_mode:
            self._save()
        if chosen:
            self.actions.append("pruned %s" % ", ".join(chosen))
        return chosen

    # -- primitives

    def _tmp(self):
        self._ensure_dir(self.layout.tmp_dir, 0o700)
        return self.layout.tmp_dir

    def _clean_tmp(self):
        """Remove what an interrupted run left in the staging area (we hold the lock), from its descriptor."""
        fd = _open_dir(self.layout.tmp_dir)
        if fd is None:
            return
        try:
            for name in _list_at(fd):
                with contextlib.suppress(OSError):  # best effort, as before: the next run tries again
                    _remove_at(fd, name)
        finally:
            os.close(fd)

    def _remove_in_tmp(self, name):
        """Remove ``.rollout-tmp/<name>`` (best effort), never following a link."""
        fd = _open_dir(self.layout.tmp_dir)
        if fd is None:
            return
        try:
            _remove_at(fd, name)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _switch(self, version):
        """Point ``current`` at ``releases/<version>`` atomically (new link, then rename over the old one)."""
        tmp_link = os.path.join(self._tmp(), "current.%d.%s" % (os.getpid(), os.urandom(4).hex()))
        os.symlink(os.path.join("releases", version), tmp_link)
        try:
            os.replace(tmp_link, self.layout.current_link)
        except BaseException:
            if os.path.lexists(tmp_link):
                os.unlink(tmp_link)
            raise
        _fsync_dir(self.layout.path)

    def _discard(self, version):
        """Move ``releases/<version>`` to ``.rollout-tmp/`` in one rename, then delete it; both relative to
        descriptors of those directories, opened without following a link."""
        self._tmp()
        done = "The release was not removed."
        releases_fd = _open_dir(self.layout.releases_dir, done)
        if releases_fd is None:
            return
        try:
            tmp_fd = _open_dir(self.layout.tmp_dir, done)
            if tmp_fd is None:
                raise LayoutError("%s disappeared during the run. %s" % (self.layout.tmp_dir, done))
            try:
                trash = "trash.%d.%s" % (os.getpid(), os.urandom(6).hex())
                os.rename(version, trash, src_dir_fd=releases_fd, dst_dir_fd=tmp_fd)
                with contextlib.suppress(OSError):  # out of releases/ already; the next run empties .rollout-tmp/
                    _remove_at(tmp_fd, trash)
            finally:
                os.close(tmp_fd)
        finally:
            os.close(releases_fd)

    def _make_root(self):
        """Create ``path`` and its missing parents as the running user, mode 0755 whatever the umask."""
        missing = []
        current = self.layout.path
        while not os.path.lexists(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for path in reversed(missing):
            self._ensure_dir(path, 0o755)

    def _ensure_dir(self, path, mode):
        """Make the directory ``path`` (as the running user, exactly ``mode``) unless it is there; never a link."""
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise _not_a_dir_refused(path, done="") from None
            return
        fd = _open_dir(path, done="")
        if fd is not None:
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)

    def _make_shared(self, rel):
        """Create ``shared/<rel>`` as directories of owner/group, one component at a time from descriptors opened
        without following a link: a link planted in ``shared/`` is refused, never created through."""
        done = "The release was not installed and current is unchanged."
        fd = _open_dir(self.layout.shared_dir, done)
        if fd is None:
            raise LayoutError("%s disappeared during the run. %s" % (self.layout.shared_dir, done))
        shown = self.layout.shared_dir
        try:
            for part in rel.split("/"):
                shown = os.path.join(shown, part)
                sub = self._open_or_make_at(fd, part, shown, done)
                os.close(fd)
                fd = sub
        finally:
            os.close(fd)

    def _open_or_make_at(self, dir_fd, name, shown, done):
        made = False
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            try:
                os.mkdir(name, 0o755, dir_fd=dir_fd)
                made = True
            except FileExistsError:
                pass
            fd = None
        except OSError as exc:
            if exc.errno not in _NOT_A_DIR:
                raise
            raise _not_a_dir_refused(shown, done) from None
        if fd is None:
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno not in _NOT_A_DIR:
                    raise
                raise _not_a_dir_refused(shown, done) from None
        if made:
            try:
                os.fchmod(fd, 0o755)
                if self.uid != -1 or self.gid != -1:
                    os.fchown(fd, self.uid, self.gid)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _apply_ownership(self, root):
        if self.uid == -1 and self.gid == -1:
            return
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)
        # Last: until now the staging directory is root's and 0700, so nobody else could reach into it.
        os.lchown(root, self.uid, self.gid)


def _describe(current, dirs):
    return "current: %s\nreleases: %s\n" % (
        "releases/%s" % current if current else "(none)",
        ", ".join(sorted(dirs, key=natural_key)) or "(none)",
    )


def _sha256(handle):
    digest = hashlib.sha256()
    handle.seek(0)
    for chunk in iter(lambda: handle.read(1024 * 1024), b""):
        digest.update(chunk)
    handle.seek(0)
    return "sha256:" + digest.hexdigest()


def _compare_checksum(src, expected, actual):
    if expected and expected != actual:
        raise ChecksumMismatchError(
            "checksum mismatch for %s: expected %s, got %s. Nothing was unpacked and current is unchanged."
            % (src, expected, actual)
        )


def describe_releases(path):
    """What is deployed under ``path``, read without the lock and without changing anything.

    The state file is replaced atomically, so a concurrent run is seen before or after its change.
    Returns ``exists``, ``current``, ``previous``, ``releases`` (oldest first, one dict per directory in
    ``releases/``), ``rolled_back`` (names of the releases a rollback switched away from and that have not run
    since) and ``history`` (activations, oldest first). Raises RolloutError subclasses.
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ValidationError("path must be an absolute path, got %r." % (path,))
    path = os.path.normpath(path)
    if not os.path.isdir(path):
        return {
            "exists": False,
            "current": None,
            "previous": None,
            "releases": [],
            "rolled_back": [],
            "history": [],
        }
    manager = ReleaseManager(path)
    manager._read()
    state = manager.state
    releases = []
    for name in sorted(manager.dirs, key=lambda n: (state.rank(n), natural_key(n))):
        record = state.releases.get(name, {})
        releases.append(
            {
                "name": name,
                "complete": manager._is_complete(name),
                "checksum": record.get("checksum"),
                "installed_at": record.get("installed_at"),
                "adopted": bool(record.get("adopted")),
                "rolled_back_at": record.get("rolled_back_at"),
            }
        )
    return {
        "exists": True,
        "current": manager.current,
        "previous": manager.previous,
        "releases": releases,
        "rolled_back": [r["name"] for r in releases if r["rolled_back_at"]],
        "history": list(state.history),
    }


def manage_release(
    path,
    state="present",
    version=None,
    src=None,
    checksum=None,
    allow_unverified=False,
    keep=5,
    min_free_space=None,
    shared_paths=None,
    owner=None,
    group=None,
    mode=None,
    fetch=None,
    check_mode=False,
    diff=False,
    now=None,
):
    """Validate the arguments, then bring ``path`` to ``state``. Returns the module result.

    With ``diff=True`` the result carries a ``diff`` of ``current`` and the release list, before and after.

    ``fetch(url, fileobj)`` must write the body of ``url`` to the binary file object; any exception it
    raises becomes a :class:`FetchError`. Raises RolloutError subclasses; never leaves a half release.
    """
    if state not in STATES:
        raise ValidationError("state must be one of %s, got %r." % (", ".join(STATES), state))
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ValidationError("path must be an absolute path, got %r." % (path,))
    path = os.path.normpath(path)
    if path == "/":
        raise ValidationError("path must not be the root directory.")
    if version is not None or state != "rollback":
        validate_version(version)
    checksum = parse_checksum(checksum)
    if src is not None and not isinstance(src, str):
        raise ValidationError("src must be a string, got %r." % (src,))
    if src == "":
        src = None
    if state in ("present", "active") and is_url(src) and checksum is None and not allow_unverified:
        raise ValidationError(
            "src %s is a URL: set checksum (sha256:<hex>) so the download is verified, or set "
            "allow_unverified=true to accept it unverified." % redact_url(src)
        )
    if src is not None and not is_url(src) and not os.path.isabs(src):
        raise ValidationError("src %r must be an absolute path on the target host or an http(s) URL." % src)
    if keep is None:
        keep = 0
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValidationError("keep must be 0 (never prune) or a positive integer, got %r." % (keep,))
    free_space = parse_free_space(min_free_space)
    manager = ReleaseManager(
        path,
        keep=keep,
        min_free_space=free_space,
        shared_paths=validate_shared_paths(shared_paths),
        uid=resolve_uid(owner),
        gid=resolve_gid(group),
        mode=parse_mode(mode),
        fetch=fetch,
        check_mode=check_mode,
        now=now,
    )
    try:
        result = manager.run(state, version=version, src=src, checksum=checksum)
    except OSError as exc:
        raise ReleaseError("state=%s on %s failed: %s" % (state, path, exc)) from None
    if not diff:
        result.pop("diff", None)
    return result
