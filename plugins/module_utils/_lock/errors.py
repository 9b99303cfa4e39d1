# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The errors of the rollout lock, and the messages they share."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError

HINT = (
    "Keep the lock where only root (or the user running the rollout) can write, such as the default under "
    "/var/lib/zerodowntime-rollout/locks, and take it with become."
)


class LockHeldError(RolloutError):
    """Another rollout holds the lock."""


class LockPathError(RolloutError):
    """The lock's directory, the lock file or its guard cannot be used safely."""


def permission_error(path, doing):
    """The error for a lock file or guard this user may not ``doing`` (open, create, write, remove)."""
    return LockPathError(
        "Cannot %s the rollout lock %s (permission denied). Run the lock task with become (root), or set "
        "rollout_lock_path to a file in a directory this user owns." % (doing, path)
    )
