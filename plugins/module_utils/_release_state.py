# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""What is deployed in a release layout: the state file, read together with ``current`` and ``releases/``.

The ``current`` symlink is the truth about the current release; the state file (``.rollout-state.json``,
replaced atomically) adds what a symlink cannot tell: the previous release, the activation history, and
per release its checksum, when it was installed and whether a rollback switched away from it.
:func:`read_snapshot` merges the three; :func:`describe_releases` is the read-only view of it that the
release_info and app_info modules return.
"""

import errno
import json
import os
import stat
import tempfile

from ansible_collections.zerodowntime.rollout.plugins.module_utils._dirfd import FILE_FLAGS, fsync_path
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._layout import Layout, link_refused
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import StateFileError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import (
    format_bytes,
    natural_key,
    parse_checksum,
    validate_version,
)

STATE_FORMAT = 1
STATE_FILE_MAX = 32 * 1024 * 1024
HISTORY_LIMIT = 100


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
            fd = os.open(path, FILE_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise link_refused(path) from None
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
    fsync_path(os.path.dirname(path))


class Snapshot:
    """What is on disk, read once: ``current`` (the link), ``previous``, ``dirs`` (the names in ``releases/``),
    ``state`` (a :class:`ReleaseState` that agrees with them) and ``adopted`` (there was no state file)."""

    def __init__(self, state, adopted, current, previous, dirs):
        self.state = state
        self.adopted = adopted
        self.current = current
        self.previous = previous
        self.dirs = dirs

    def is_complete(self, version):
        """Unpacked and recorded: a directory without a record is what an interrupted run left."""
        return version in self.dirs and version in self.state.releases


def read_snapshot(layout):
    """Read ``current``, the state file and ``releases/`` of ``layout`` (a :class:`~._layout.Layout`)."""
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
    return Snapshot(state, adopted, current, previous, list(dirs))


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
    snapshot = read_snapshot(Layout(path))
    state = snapshot.state
    releases = []
    for name in sorted(snapshot.dirs, key=lambda n: (state.rank(n), natural_key(n))):
        record = state.releases.get(name, {})
        releases.append(
            {
                "name": name,
                "complete": snapshot.is_complete(name),
                "checksum": record.get("checksum"),
                "installed_at": record.get("installed_at"),
                "adopted": bool(record.get("adopted")),
                "rolled_back_at": record.get("rolled_back_at"),
            }
        )
    return {
        "exists": True,
        "current": snapshot.current,
        "previous": snapshot.previous,
        "releases": releases,
        "rolled_back": [r["name"] for r in releases if r["rolled_back_at"]],
        "history": list(state.history),
    }
