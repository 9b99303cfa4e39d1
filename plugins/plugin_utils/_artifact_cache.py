# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The controller's copy of a remote artifact (``s3://`` or an http(s) URL with ``artifact_from=controller``).

With a checksum, the artifact is fetched once per run: into ``<root>/<sha256 hex>`` where ``root`` is a private
directory (0700, owned by the controller's user, not a symlink; anything else is refused). A lock file per
checksum (``fcntl.flock``) makes the parallel forks of one run wait for the one that fetches, instead of fetching
the same object again. The fetch goes into a temporary file next to it, is verified against the checksum, and
only then renamed into place, so a cached file is always a verified one.

Without a checksum (``allow_unverified``), every host gets its own fetch into a private temporary file that the
caller removes, and its checksum is computed for the host to verify the copy against.

By default ``root`` lives in Ansible's per-run local temporary directory, which ansible-playbook removes when it
exits, whether the run failed or not.
"""

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._artifact_source import (
    ArtifactSourceError,
    sha256_file,
    shown,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._fd_lock import FdLock

LOCK_POLL = 0.05


def default_root():
    from ansible import constants as C

    return os.path.join(C.DEFAULT_LOCAL_TMP, "zerodowntime-rollout-artifacts")


def private_dir(path):
    """Create ``path`` (0700) if needed and check it is a directory of ours that nobody else may enter."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise ArtifactSourceError(
            "refusing the controller's artifact cache %s: it must be a directory owned by uid %d with mode 0700 "
            "(it is %s, uid %d, mode %04o). Remove it and run again."
            % (
                path,
                os.geteuid(),
                "a symlink" if stat.S_ISLNK(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode) else "a file",
                st.st_uid,
                stat.S_IMODE(st.st_mode),
            )
        )
    return path


class _FileLock(FdLock):
    """An exclusive ``flock`` on ``path``, waited for until ``deadline`` (a ``clock()`` value)."""

    def __init__(self, path, deadline, clock, sleep, what):
        self.path, self.deadline, self.clock, self.sleep, self.what = path, deadline, clock, sleep, what

    def open_fd(self):
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)

    def lock_fd(self, fd):
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if self.clock() >= self.deadline:
                raise ArtifactSourceError(
                    "waited too long for another fork of this run fetching %s on the controller "
                    "(download_timeout). Nothing was copied or unpacked; try again." % self.what
                )
            self.sleep(LOCK_POLL)


class ArtifactCache:
    """``obtain(src, checksum, fetch)`` -> ``(path, checksum, fetched, temporary)``.

    ``fetch(src, fileobj)`` writes the artifact into the open binary file (bounded by its own deadline and size
    cap); ``path`` is the verified local file. When ``temporary`` is true, the caller removes ``path``
    (:meth:`discard`)."""

    def __init__(self, root=None, timeout=300, clock=None, sleep=None):
        self.root = root or default_root()
        self.timeout = timeout
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep

    def _fetch_into(self, src, fetch, prefix):
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=prefix)
        try:
            with os.fdopen(fd, "w+b") as handle:
                fetch(src, handle)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def obtain(self, src, checksum, fetch):
        private_dir(self.root)
        if not checksum:
            tmp = self._fetch_into(src, fetch, "unverified.")
            try:
                actual = sha256_file(tmp)
            except BaseException:
                os.unlink(tmp)
                raise
            return tmp, actual, True, True
        hexdigest = checksum.split(":", 1)[1]
        final = os.path.join(self.root, hexdigest)
        deadline = self.clock() + self.timeout
        with _FileLock(final + ".lock", deadline, self.clock, self.sleep, shown(src)):
            if os.path.isfile(final) and not os.path.islink(final):
                return final, checksum, False, False
            tmp = self._fetch_into(src, fetch, hexdigest + ".part.")
            try:
                actual = sha256_file(tmp)
                if actual != checksum:
                    raise ArtifactSourceError(
                        "checksum mismatch for %s fetched on the controller: expected %s, got %s. Nothing was "
                        "copied, unpacked or drained. Fix rolling_update_artifact_checksum or the artifact."
                        % (shown(src), checksum, actual),
                        expected=checksum,
                        actual=actual,
                    )
                os.rename(tmp, final)
            except BaseException:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                raise
        return final, checksum, True, False

    @staticmethod
    def discard(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
