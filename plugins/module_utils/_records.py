# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Resume records: what a rollout took out of rotation, kept where the load balancer is driven from.

One JSON file per (provider, load balancer identity, member) in ``<state_dir>/rotation/``. The drain
writes it before its first command goes out and keeps a record an interrupted run left (it knows where
the member was); putting the member back removes it. The next run reads it to tell "drained by us"
from "taken out by someone else".

The directory is created with mode 0700 and must belong to the current user and not be a symlink;
files are written through ``mkstemp`` in that directory and renamed into place, and are read with
``O_NOFOLLOW`` and a size cap, so another local user can neither redirect nor plant a record.
"""

import errno
import hashlib
import json
import os
import stat
import tempfile
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError

SCHEMA = 1
MAX_RECORD_BYTES = 64 * 1024
DEFAULT_STATE_DIR = "/var/lib/zerodowntime-rollout"


class RecordError(RolloutError):
    """The record directory or a record file cannot be used safely."""


def record_key(provider, identity, member):
    """A file name for ``member`` of the load balancer(s) named by ``identity`` (a list of strings).

    ``member`` is a validated name; the identity (socket paths, ARNs) is hashed so that fleets sharing
    backend and server names but not sockets keep apart."""
    digest = hashlib.sha256("\n".join(sorted(str(i) for i in identity)).encode("utf-8")).hexdigest()[:16]
    return "%s-%s-%s.json" % (provider, member.replace("/", "_"), digest)


class RecordStore:
    """Records under ``<state_dir>/rotation``; every method raises :class:`RecordError` on unsafe paths."""

    def __init__(self, state_dir, now=None):
        if not isinstance(state_dir, str) or not os.path.isabs(state_dir):
            raise ValidationError("state_dir must be an absolute path, got %r." % (state_dir,))
        self.state_dir = os.path.normpath(state_dir)
        self.dir = os.path.join(self.state_dir, "rotation")
        self.now = now or time.time

    def _check_dir(self, path):
        """``path`` is a real directory of ours, not writable by others; raises otherwise."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise RecordError(
                "%s is not a directory (a symlink or a file is refused): remove it, or point state_dir elsewhere."
                % path
            )
        if info.st_uid != os.geteuid():
            raise RecordError(
                "%s belongs to uid %d, not to the user running the rollout (uid %d): refused. Run with become, "
                "or point state_dir (rolling_update_state_dir) at a directory of that user."
                % (
                    path,
                    info.st_uid,
                    os.geteuid(),
                )
            )
        if info.st_mode & 0o022:
            raise RecordError("%s is writable by other users (mode %o): refused." % (path, stat.S_IMODE(info.st_mode)))
        return True

    def _ensure_dirs(self):
        for path in (self.state_dir, self.dir):
            if self._check_dir(path):
                continue
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                # Made by someone else in the meantime: only accepted if it passes the same checks.
                self._check_dir(path)
                continue
            except PermissionError:
                raise RecordError(
                    "Cannot create %s (permission denied): the rollout keeps its resume records there. Run the "
                    "load balancer tasks with become, or set state_dir (rolling_update_state_dir) to a directory "
                    "this user owns." % path
                ) from None
            # Ours now; fix the mode whatever the umask, through a descriptor that cannot follow a link.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW)
            try:
                os.fchmod(fd, 0o700)
            finally:
                os.close(fd)
            self._check_dir(path)

    def path(self, key):
        if os.sep in key or key.startswith("."):
            raise ValidationError("invalid record key %r" % key)
        return os.path.join(self.dir, key)

    def read(self, key):
        """The record, or None when there is none. A record that cannot be parsed is reported, not trusted."""
        if not self._check_dir(self.state_dir) or not self._check_dir(self.dir):
            return None
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RecordError("%s is a symlink: refused. Remove it." % path) from None
            raise RecordError("Cannot read %s: %s" % (path, exc.strerror)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise RecordError("%s is not a regular file of the rollout's user: refused. Remove it." % path)
            data = os.read(fd, MAX_RECORD_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_RECORD_BYTES:
            raise RecordError("%s is larger than %d bytes: refused. Remove it." % (path, MAX_RECORD_BYTES))
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            record = None
        if not isinstance(record, dict):
            # Still a sign that this collection drained the member; keep what can be said.
            return {"schema": None, "corrupt": True}
        return record

    def write(self, key, record):
        self._ensure_dirs()
        record = dict(record, schema=SCHEMA)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp.", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path(key))
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        return self.path(key)

    def remove(self, key):
        """Remove the record; True when there was one."""
        if not self._check_dir(self.state_dir) or not self._check_dir(self.dir):
            return False
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            return False
        return True
