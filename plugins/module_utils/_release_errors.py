# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The errors of the release operations (the release, app_prepare, app_replace, app_info and release_info modules)."""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError


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
