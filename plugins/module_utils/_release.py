# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The release module's entry point: :func:`manage_release` validates its arguments and brings a release
layout (see :mod:`._layout`) to one ``state``, unpacking the release when it is missing.

Nothing here knows about AnsibleModule: :func:`manage_release` takes plain arguments (and a
``fetch(url, fileobj)`` callable for downloads), returns a result dict, and raises
:class:`~._errors.RolloutError` subclasses.
"""

import os

from ansible_collections.zerodowntime.rollout.plugins.module_utils._activate import STATES
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import ReleaseError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._unpack import UnpackingManager
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import (
    is_url,
    parse_checksum,
    parse_free_space,
    parse_mode,
    resolve_gid,
    resolve_uid,
    validate_shared_paths,
    validate_version,
)


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
    raises becomes a :class:`~._release_errors.FetchError`. Raises RolloutError subclasses; never leaves a half release.
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
    manager = UnpackingManager(
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
