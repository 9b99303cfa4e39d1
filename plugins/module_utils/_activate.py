# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""What happens to releases that are already unpacked: activate (switch ``current``), roll back, remove, prune.

:class:`ReleaseManager` carries out one ``state`` on one layout under its lock, and records each change in
the state file as soon as it is made. It does not unpack: :class:`~._unpack.UnpackingManager` adds that, so
the modules that only switch or read (app_replace, app_info, release_info) do not load the archive code.
"""

import contextlib
import os
import time

from ansible_collections.zerodowntime.rollout.plugins.module_utils._dirfd import fsync_path, remove_at
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._layout import (
    Layout,
    Lock,
    NoLock,
    make_root,
    open_dir,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._layout_owner import secure_layout
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import LayoutError, ReleaseError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_state import (
    read_snapshot,
    write_json_atomic,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import natural_key

STATES = ("present", "active", "rollback", "absent")


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


class ReleaseManager:
    """Carries out one ``state`` on one layout. Build it with validated arguments and call :meth:`run`.

    ``present`` and ``active`` need the release unpacked and complete here; :meth:`_unpack` is where
    :class:`~._unpack.UnpackingManager` unpacks it from ``src``.
    """

    def __init__(self, path, keep=5, uid=-1, check_mode=False, now=None):
        self.layout = Layout(path)
        self.keep = keep
        self.uid = uid
        self.check_mode = check_mode
        self.now = now or time.time
        self.actions = []
        self.warnings = []
        self.taken_back = False

    # -- snapshot of what is on disk

    def _read(self):
        snapshot = read_snapshot(self.layout)
        self.state = snapshot.state
        self.adopted = snapshot.adopted
        self.current = snapshot.current
        self.previous = snapshot.previous
        self.dirs = snapshot.dirs

    def _save(self):
        """Write the state file now (after every step that changed the layout, so a later failure keeps it)."""
        for name in list(self.state.releases):
            if name not in self.dirs:
                del self.state.releases[name]
        write_json_atomic(self.layout.state_file, self.state.to_dict(), self.layout.tmp())

    def _is_complete(self, version):
        return version in self.dirs and version in self.state.releases

    def _when(self):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now()))

    # -- public entry

    def run(self, state, version=None, src=None, checksum=None):
        layout = self.layout
        if state in ("present", "active") and not self.check_mode:
            make_root(layout.path)
        self._secure_layout()
        locked = not self.check_mode and os.path.isdir(layout.path)
        with Lock(layout.lock_file) if locked else NoLock():
            self._read()
            before = (self.current, list(self.dirs))
            if locked:
                layout.clean_tmp()
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

    def _secure_layout(self):
        self.taken_back = secure_layout(self.layout.path, self.uid, self.check_mode, self.actions, self.warnings)

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
        return self._unpack(version, src, checksum)

    def _unpack(self, version, src, checksum):
        """Unpack ``src`` as ``releases/<version>``; this manager does not unpack (see UnpackingManager)."""
        raise ReleaseError("release %s is not unpacked here, and this module does not unpack releases." % version)

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

    def _switch(self, version):
        """Point ``current`` at ``releases/<version>`` atomically (new link, then rename over the old one)."""
        tmp_link = os.path.join(self.layout.tmp(), "current.%d.%s" % (os.getpid(), os.urandom(4).hex()))
        os.symlink(os.path.join("releases", version), tmp_link)
        try:
            os.replace(tmp_link, self.layout.current_link)
        except BaseException:
            if os.path.lexists(tmp_link):
                os.unlink(tmp_link)
            raise
        fsync_path(self.layout.path)

    def _discard(self, version):
        """Move ``releases/<version>`` to ``.rollout-tmp/`` in one rename, then delete it; both relative to
        descriptors of those directories, opened without following a link."""
        self.layout.tmp()
        done = "The release was not removed."
        releases_fd = open_dir(self.layout.releases_dir, done)
        if releases_fd is None:
            return
        try:
            tmp_fd = open_dir(self.layout.tmp_dir, done)
            if tmp_fd is None:
                raise LayoutError("%s disappeared during the run. %s" % (self.layout.tmp_dir, done))
            try:
                trash = "trash.%d.%s" % (os.getpid(), os.urandom(6).hex())
                os.rename(version, trash, src_dir_fd=releases_fd, dst_dir_fd=tmp_fd)
                with contextlib.suppress(OSError):  # out of releases/ already; the next run empties .rollout-tmp/
                    remove_at(tmp_fd, trash)
            finally:
                os.close(tmp_fd)
        finally:
            os.close(releases_fd)


def _describe(current, dirs):
    return "current: %s\nreleases: %s\n" % (
        "releases/%s" % current if current else "(none)",
        ", ".join(sorted(dirs, key=natural_key)) or "(none)",
    )
