# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Where a release archive comes from, and the rules a copy from the controller follows.

``artifact_from`` says who reads ``src``:

* ``host``: the app host reads it (a path on the host, or an http(s) URL the host downloads);
* ``controller``: the controller reads it (a path on the controller, an http(s) URL the controller
  downloads, or ``s3://bucket/key`` fetched with boto3), verifies it and copies it to each host that will
  unpack it; the host verifies the copy again before unpacking;
* ``auto`` (the default): ``controller`` for ``s3://``, ``host`` for anything else.

A copy follows the rules of a URL download on the host: the archive must fit under ``max_size`` and in the
free space of the filesystem that receives it while keeping ``min_free_space`` free (checked before the copy
starts), and the copy must finish within ``download_timeout``.
"""

import hashlib
import os
import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import (
    format_bytes,
    is_s3,
    is_url,
    parse_checksum,
    parse_free_space,
)

ARTIFACT_FROM = ("auto", "host", "controller")

# S3 bucket names (the relaxed legacy rules: letters, digits, '.', '-', '_'), then a non-empty key.
_S3_RE = re.compile(r"[sS]3://([A-Za-z0-9][A-Za-z0-9._-]{1,254})/(.+)", re.S)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ArtifactSourceError(RolloutError):
    """The artifact could not be obtained, verified or copied. Nothing was unpacked."""


def parse_s3_url(src):
    """``s3://bucket/key`` -> ``(bucket, key)``; ValidationError for anything else."""
    match = _S3_RE.fullmatch(src) if isinstance(src, str) else None
    if match is None or "?" in src or "#" in src or "\n" in src:
        raise ValidationError(
            "src %r is not a valid s3://bucket/key URL (no query string or fragment). Fix rolling_update_artifact."
            % (redact_url(src) if isinstance(src, str) else src,)
        )
    return match.group(1), match.group(2)


def shown(src):
    """``src`` as it may appear in a message or a result."""
    return redact_url(src) if isinstance(src, str) and "://" in src else src


def resolve(src, artifact_from="auto"):
    """Who reads ``src`` and what it is: ``(side, kind)`` with side ``host``/``controller`` and kind
    ``path``/``url``/``s3``. Raises ValidationError for a combination that cannot work."""
    if artifact_from in (None, ""):
        artifact_from = "auto"
    if artifact_from not in ARTIFACT_FROM:
        raise ValidationError("artifact_from must be one of %s, got %r." % (", ".join(ARTIFACT_FROM), artifact_from))
    if not isinstance(src, str) or not src:
        raise ValidationError("src must be a non-empty string.")
    kind = "s3" if is_s3(src) else "url" if is_url(src) else "path"
    if kind == "s3":
        parse_s3_url(src)
    elif kind == "path" and not os.path.isabs(src):
        raise ValidationError("src %r must be an absolute path, an http(s) URL or s3://bucket/key." % (shown(src),))
    side = artifact_from if artifact_from != "auto" else ("controller" if kind == "s3" else "host")
    if side == "host" and kind == "s3":
        raise ValidationError(
            "src %s is an S3 object, which is fetched on the controller (with boto3), not on the host: set "
            "artifact_from (rolling_update_artifact_from) to auto or controller. Nothing was changed." % shown(src)
        )
    return side, kind


def require_checksum(src, kind, checksum, allow_unverified):
    """A URL or S3 source needs a checksum unless ``allow_unverified``. Returns the parsed checksum or None."""
    parsed = parse_checksum(checksum)
    if kind in ("url", "s3") and parsed is None and not allow_unverified:
        raise ValidationError(
            "src %s is %s: set checksum (rolling_update_artifact_checksum, sha256:<hex>) so it is verified, or set "
            "allow_unverified (rolling_update_allow_unverified) to accept it unverified. Nothing was changed."
            % (shown(src), "an S3 object" if kind == "s3" else "a URL")
        )
    return parsed


def file_name(src, kind):
    """A safe file name for the copy on the host that keeps the archive's extension (.tar.gz, .zip...)."""
    if kind == "s3":
        base = parse_s3_url(src)[1].rsplit("/", 1)[-1]
    elif kind == "url":
        base = redact_url(src).partition("?")[0].rstrip("/").rsplit("/", 1)[-1]
    else:
        base = os.path.basename(src)
    base = _SAFE_NAME.sub("_", base).lstrip(".") or "archive"
    return "artifact-" + base[-100:]


def sha256_file(path, chunk=1024 * 1024):
    """``sha256:<hex>`` of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def stat_controller_file(path):
    """Size of a regular file on the controller; ArtifactSourceError when it is missing or not a file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactSourceError(
            "src %s does not exist on the controller (artifact_from=controller). Nothing was copied or changed. "
            "Fix rolling_update_artifact, or set rolling_update_artifact_from=host if the file is on the hosts." % path
        ) from None
    except OSError as exc:
        raise ArtifactSourceError(
            "cannot read src %s on the controller: %s. Nothing was copied or changed." % (path, exc.strerror)
        ) from None
    if not os.path.isfile(path):
        raise ArtifactSourceError("src %s on the controller is not a regular file. Nothing was copied." % path)
    return st.st_size


def verify_controller_file(path, checksum, what):
    """Hash ``path`` and compare it with ``checksum`` (when given). Returns the actual checksum."""
    actual = sha256_file(path)
    if checksum and checksum != actual:
        raise ArtifactSourceError(
            "checksum mismatch for %s on the controller: expected %s, got %s. Nothing was copied, unpacked or "
            "drained. Fix rolling_update_artifact_checksum or the artifact." % (what, checksum, actual),
            expected=checksum,
            actual=actual,
        )
    return actual


def _existing(directory):
    """``directory`` or its nearest existing ancestor."""
    directory = os.path.abspath(directory)
    while not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return directory


def copy_room(directory, min_free_space=None, statvfs=None):
    """Bytes the filesystem of ``directory`` (or of its nearest existing ancestor) can take while keeping
    ``min_free_space`` free (the module option syntax); None when it cannot be read."""
    statvfs = statvfs or os.statvfs
    kind, amount = parse_free_space(min_free_space)
    directory = _existing(directory)
    while True:
        try:
            st = statvfs(directory)
            break
        except OSError:
            parent = os.path.dirname(directory)
            if parent == directory:
                return None
            directory = parent
    block = getattr(st, "f_frsize", 0) or getattr(st, "f_bsize", 0) or 4096
    free = st.f_bavail * block
    reserve = int(st.f_blocks * block * amount / 100.0) if kind == "percent" else amount
    return free - reserve


def check_copy_fits(src, size, max_size=None, room=None, min_free_space=None):
    """Refuse, before the copy starts, an archive above ``max_size`` (bytes or None) or one that the host's
    filesystem cannot take (``room`` from :func:`copy_room`, None: unknown)."""
    if max_size is not None and size > max_size:
        raise ArtifactSourceError(
            "refused to copy %s to the host: it is %s, above max_size (%s). Nothing was copied or unpacked. Check "
            "the artifact, or raise max_size (rolling_update_artifact_max_size)."
            % (shown(src), format_bytes(size), format_bytes(max_size)),
            size=size,
            max_size=max_size,
        )
    if room is not None and size > room:
        keeping = ""
        if min_free_space not in (None, "", "0", 0):
            keeping = " while keeping %s free (min_free_space)" % min_free_space
        raise ArtifactSourceError(
            "refused to copy %s to the host: it is %s, and the filesystem that receives the copy can take only "
            "%s%s. Nothing was copied or unpacked. Free space there, for example by removing old releases."
            % (shown(src), format_bytes(size), format_bytes(max(room, 0)), keeping),
            size=size,
            room=room,
        )
