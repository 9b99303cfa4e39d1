# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Capistrano-style release layout on the target host: where each part lives, and how it is opened safely.

::

    PATH/releases/<version>/    one unpacked archive per release, contents as stored in the archive
    PATH/shared/                files and directories shared by all releases (linked in via shared_paths)
    PATH/current                relative symlink -> releases/<version>
    PATH/.rollout-state.json    current, previous, activation history, per-release checksum (atomic writes)
    PATH/.rollout-tmp/          staging area for downloads, unpacking, symlink swaps and deletions
    PATH/.rollout.lock          flock(2) lock serialising concurrent runs on one PATH

The parts of the release code, one job each:

* here: the paths, reading ``current`` and ``releases/``, the lock, and the refusals of links;
* :mod:`._layout_owner`: who owns ``path`` and the entries the module keeps there (checked before any change);
* :mod:`._release_state`: the state file, and what is deployed (:func:`~._release_state.describe_releases`);
* :mod:`._activate`: :class:`~._activate.ReleaseManager`, which switches ``current``, rolls back, removes
  and prunes releases that are already unpacked;
* :mod:`._unpack`: installing a release from an archive (a local file or a download);
* :mod:`._release`: the release module's entry point, :func:`~._release.manage_release`.

None of the entries the module keeps for itself is followed when it is a symbolic link: the state file and
the lock are opened with ``O_NOFOLLOW``, and directories are listed, emptied and pruned from descriptors opened
with ``O_NOFOLLOW | O_DIRECTORY`` (:func:`~._dirfd.remove_at`), one component at a time, so a link planted in
place of a directory is removed or refused, never entered.

Rules that keep readers of ``current/...`` safe:

* a release is unpacked into ``.rollout-tmp/`` (same filesystem) and renamed into ``releases/``
  only once complete, then recorded in the state file; a directory in ``releases/`` without a
  record is incomplete (an interrupted run) and is redone before use;
* ``current`` is switched by creating a new symlink under a temporary name and ``os.replace``-ing
  it over the old one, so ``current`` always resolves to the old or to the new release;
* the ``current`` symlink is the truth about the current release; the state file adds what a
  symlink cannot tell (previous release, history, checksums). Directory mtimes are never used.

Nothing in these files knows about AnsibleModule: they take plain arguments, return data, and raise
:class:`~._errors.RolloutError` subclasses.
"""

import contextlib
import errno
import fcntl
import os
import pwd
import stat

from ansible_collections.zerodowntime.rollout.plugins.module_utils._dirfd import (
    DIR_FLAGS,
    NOT_A_DIR,
    O_CLOEXEC,
    list_at,
    remove_at,
    trusted_uid,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._fd_lock import FdLock
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import LayoutError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import natural_key, validate_version

STATE_FILE = ".rollout-state.json"
LOCK_FILE = ".rollout.lock"
TMP_DIR = ".rollout-tmp"

_LINK_RULE = (
    "the release module follows no link in place of releases/, shared/, .rollout-tmp/, the state file or the "
    "lock, since another user may have planted it"
)


# --- messages --------------------------------------------------------------------------------------


def trusted_users():
    """``root`` and the user the module runs as, for messages."""
    if os.geteuid() == 0:
        return "root (the user the module runs as)"
    return "root or %s (the user the module runs as)" % user_name(os.geteuid())


def user_name(uid):
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def link_refused(path, link=None, done="Nothing was changed."):
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


def not_a_dir_refused(path, done="Nothing was changed."):
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        return link_refused(path, done=done)
    return LayoutError(
        "%s is not a directory: refused.%s Move it away, then run again." % (path, " " + done if done else "")
    )


# --- directories -----------------------------------------------------------------------------------


def open_dir(path, done="Nothing was changed."):
    """Descriptor of the directory ``path``, its last component never followed; None when it does not exist."""
    try:
        return os.open(path, DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in NOT_A_DIR:
            raise not_a_dir_refused(path, done) from None
        raise


def ensure_dir(path, mode):
    """Make the directory ``path`` (as the running user, exactly ``mode``) unless it is there; never a link."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise not_a_dir_refused(path, done="") from None
        return
    fd = open_dir(path, done="")
    if fd is not None:
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def make_root(path):
    """Create ``path`` and its missing parents as the running user, mode 0755 whatever the umask."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for made in reversed(missing):
        ensure_dir(made, 0o755)


class Layout:
    """Paths of one release layout, the read-only questions asked about it, and its staging area."""

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
        fd = open_dir(self.releases_dir)
        if fd is None:
            return []
        try:
            with os.scandir(fd) as entries:
                result = [e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        finally:
            os.close(fd)
        return sorted(result, key=natural_key)

    def tmp(self):
        """The staging directory ``.rollout-tmp/``, made (0700) when missing."""
        ensure_dir(self.tmp_dir, 0o700)
        return self.tmp_dir

    def clean_tmp(self):
        """Remove what an interrupted run left in the staging area (the caller holds the lock), from its
        descriptor."""
        fd = open_dir(self.tmp_dir)
        if fd is None:
            return
        try:
            for name in list_at(fd):
                with contextlib.suppress(OSError):  # best effort, as before: the next run tries again
                    remove_at(fd, name)
        finally:
            os.close(fd)

    def remove_in_tmp(self, name):
        """Remove ``.rollout-tmp/<name>`` (best effort), never following a link."""
        fd = open_dir(self.tmp_dir)
        if fd is None:
            return
        try:
            remove_at(fd, name)
        except OSError:
            pass
        finally:
            os.close(fd)


# --- the lock --------------------------------------------------------------------------------------


class Lock(FdLock):
    """``flock`` on ``PATH/.rollout.lock``: never through a link, created with mode 0600 whatever the umask, and
    refused unless it is a regular file of root or of the running user."""

    def __init__(self, path):
        self.path = path

    def open_fd(self):
        flags = os.O_RDWR | os.O_NOFOLLOW | O_CLOEXEC
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
                    raise link_refused(self.path) from None
                raise
        raise LayoutError("cannot create the lock file %s: it keeps disappearing." % self.path)

    def lock_fd(self, fd):
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or not trusted_uid(info.st_uid):
            raise LayoutError(
                "the lock file %s is not a regular file with a single link that belongs to %s: refused. Nothing "
                "was changed. Remove it (no run may be in progress), then run again." % (self.path, trusted_users())
            )
        fcntl.flock(fd, fcntl.LOCK_EX)
        return False


class NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
