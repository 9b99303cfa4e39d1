# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""What a rollout needs to know about one app host before it changes anything, in one read.

The releases on the host (current, rolled back), whether the artifact is there and intact (a local
file is hashed; a URL must answer a HEAD request), and, only when the host already runs the target
release, whether the app answers its readiness probe once. Changes nothing.
"""

import os
import stat

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text, redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_state import describe_releases
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import (
    is_url,
    parse_checksum,
    sha256_file,
    validate_version,
)


class ArtifactError(RolloutError):
    """The artifact is missing, unreadable, corrupt or does not answer."""


def check_artifact(artifact, checksum, head=None):
    """``{"source", "exists", "checksum"}`` for a local file (hashed when ``checksum`` is set) or a URL.

    ``head(timeout) -> (status, body)`` asks a URL; raises ArtifactError with a message that says nothing
    was changed."""
    expected = parse_checksum(checksum)
    if is_url(artifact):
        shown = redact_url(artifact)
        try:
            status, _body = head(10.0)
        except Exception as exc:  # transport errors of any kind
            raise ArtifactError(
                "The artifact URL %s does not answer: %s. Nothing was changed." % (shown, redact_text(str(exc)))
            ) from None
        if status != 200:
            raise ArtifactError("The artifact URL %s answers %s, not 200. Nothing was changed." % (shown, status))
        return {"source": shown, "exists": True, "checksum": None, "url": True}
    if not isinstance(artifact, str) or not os.path.isabs(artifact):
        raise ValidationError("artifact must be an absolute path or an http(s) URL, got %r." % (redact_text(artifact),))
    try:
        # O_NONBLOCK: a FIFO at the path must not hang the open; it is refused below (not S_ISREG).
        fd = os.open(artifact, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ArtifactError("The artifact %s does not exist on this host. Nothing was changed." % artifact) from None
    except OSError as exc:
        raise ArtifactError(
            "Cannot read the artifact %s: %s. Nothing was changed." % (artifact, exc.strerror)
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError("The artifact %s is not a regular file. Nothing was changed." % artifact)
    with os.fdopen(fd, "rb") as handle:
        actual = sha256_file(handle) if expected else None
    if expected and actual != expected:
        raise ArtifactError(
            "The artifact %s has sha256 %s, expected %s. Nothing was drained or changed."
            % (artifact, actual.split(":", 1)[1], expected)
        )
    return {"source": artifact, "exists": True, "checksum": actual, "url": False}


def read_app(path, version, artifact=None, checksum=None, quick_probe=None, head=None):
    """The host's releases, the artifact check and (on the target release) one readiness probe."""
    validate_version(version)
    releases = describe_releases(path)
    current = releases["current"]
    on_target = current == version
    ready = None
    probe_error = None
    if on_target and quick_probe is not None:
        try:
            quick_probe.run()
            ready = True
        except RolloutError as exc:
            ready, probe_error = False, exc.msg
    found = None
    if artifact:
        found = check_artifact(artifact, checksum, head=head)
    complete = [r["name"] for r in releases["releases"] if r["complete"]]
    rolled_back_at = {r["name"]: r["rolled_back_at"] for r in releases["releases"] if r["rolled_back_at"]}
    if on_target:
        state = "ready" if ready else "not ready (%s)" % probe_error if ready is False else "not probed"
        msg = "%s runs %s, %s." % (path, version, state)
    else:
        msg = "%s runs %s; %s is %s." % (
            path,
            current or "no release",
            version,
            "unpacked" if version in complete else "not unpacked yet",
        )
    return {
        "changed": False,
        "exists": releases["exists"],
        "current": current,
        "previous": releases["previous"],
        "version": version,
        "on_target": on_target,
        "unpacked": version in complete,
        "ready": ready,
        "probe_error": probe_error,
        "rolled_back": releases["rolled_back"],
        "rolled_back_at": rolled_back_at.get(version),
        "artifact": found,
        "msg": msg,
    }
