# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Resume records: what a rollout took out of rotation, kept where the load balancer is driven from.

One JSON file per (provider, load balancer identity, member) in ``<state_dir>/rotation/``. The drain
writes it before its first command goes out and keeps a record an interrupted run left (it knows where
the member was); putting the member back removes it. The next run reads it to tell "drained by us"
from "taken out by someone else".

The directory is created with mode 0700 and must belong to the current user and not be a symlink. The
folders above it are walked from ``/`` without following a link another user could have planted, must
belong to root or the current user and not be writable by others (unless sticky), and are created 0700
when missing (``_fs.open_dir``). Files are written through ``mkstemp`` in that directory and renamed into
place, and are read with ``O_NOFOLLOW`` and a size cap, so another local user can neither redirect nor
plant a record.
"""

import errno
import hashlib
import json
import os
import stat
import tempfile
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _fs
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

    def _check_own(self, fd, path):
        """The directory open at ``fd`` is ours and not writable by others; raises otherwise."""
        info = os.fstat(fd)
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

    def _dirs(self, create):
        """Check ``state_dir`` and ``rotation`` (and, with ``create``, make what is missing, 0700); True when both
        exist. Every folder above them is walked without trusting it (see ``_fs.open_dir``): a symlink there is
        followed only when root or the running user made it, and a folder of another user, or one others may
        write to without a sticky bit, is refused. ``state_dir`` and ``rotation`` are never followed."""
        try:
            fd = _fs.open_dir(self.state_dir, create=create, mode=0o700)
        except FileNotFoundError:
            return False
        except _fs.FsError as exc:
            raise self._fs_error(exc) from None
        try:
            self._check_own(fd, self.state_dir)
            try:
                sub = _fs.open_subdir(fd, "rotation", self.dir, create=create, mode=0o700)
            except FileNotFoundError:
                return False
            except _fs.FsError as exc:
                raise self._fs_error(exc) from None
            try:
                self._check_own(sub, self.dir)
            finally:
                os.close(sub)
        finally:
            os.close(fd)
        return True

    def _fs_error(self, exc):
        if exc.reason == "permission":
            return RecordError(
                "%s The rollout keeps its resume records in %s. Run the load balancer tasks with become, or set "
                "state_dir (rolling_update_state_dir) to a directory this user owns." % (exc.msg, self.state_dir)
            )
        return RecordError(
            "%s Remove it, or point state_dir (rolling_update_state_dir) at a directory that only root or the user "
            "running the rollout can write." % exc.msg
        )

    def _ensure_dirs(self):
        self._dirs(create=True)

    def path(self, key):
        if os.sep in key or key.startswith("."):
            raise ValidationError("invalid record key %r" % key)
        return os.path.join(self.dir, key)

    def read(self, key):
        """The record, or None when there is none. A record that cannot be parsed is reported, not trusted."""
        if not self._dirs(create=False):
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
        if not self._dirs(create=False):
            return False
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            return False
        return True
