# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The values a release is described with: parsed, validated and formatted.

Release names, relative paths (``shared_paths``), checksums (``sha256:<hex>``, and the checksum of a file),
modes, sizes (``min_free_space``, shown sizes), owners and groups, URLs, and the natural order of release
names. Plain functions without side effects on the host (``resolve_uid``/``resolve_gid`` read the user
database); they raise :class:`~._errors.ValidationError`.
"""

import grp
import hashlib
import pwd
import re

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError

# Always used with fullmatch: ``$`` would also match before a final newline ("v1\n").
_VERSION_RE = re.compile(r"[A-Za-z0-9._+-]+")
_CHECKSUM_RE = re.compile(r"sha256:([0-9a-fA-F]{64})")


def validate_version(version, what="version"):
    """Return ``version`` if it is a safe release name, else raise ValidationError."""
    if not isinstance(version, str) or not version:
        raise ValidationError("%s must be a non-empty string, got %r." % (what, version))
    if len(version) > 200:
        raise ValidationError("%s %r is longer than 200 characters." % (what, version))
    if not _VERSION_RE.fullmatch(version):
        raise ValidationError(
            "%s %r may only contain letters, digits, '.', '_', '-' and '+' (no '/' or spaces)." % (what, version)
        )
    if version.startswith(".") or ".." in version:
        raise ValidationError("%s %r must not start with '.' or contain '..'." % (what, version))
    return version


def validate_relative_path(path, what="path"):
    """Normalise a relative path (``a/b``); refuse absolute paths, ``..`` and empty paths."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationError("%s must be a non-empty relative path, got %r." % (what, path))
    if path.startswith("/"):
        raise ValidationError("%s %r must be relative to the release directory." % (what, path))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise ValidationError("%s %r does not name anything inside the release." % (what, path))
    if ".." in parts:
        raise ValidationError("%s %r must not contain '..'." % (what, path))
    return "/".join(parts)


def validate_shared_paths(paths):
    """Normalise ``shared_paths``; refuse duplicates and paths nested inside one another."""
    result = []
    for raw in paths or ():
        norm = validate_relative_path(raw, "shared_paths entry")
        if norm in result:
            continue
        for other in result:
            if norm.startswith(other + "/") or other.startswith(norm + "/"):
                raise ValidationError("shared_paths entries %r and %r are nested; keep only one." % (other, norm))
        result.append(norm)
    return result


def parse_checksum(value):
    """Return ``'sha256:<lowercase hex>'`` or None; raise ValidationError on any other form."""
    if value is None or value == "":
        return None
    match = _CHECKSUM_RE.fullmatch(str(value).strip())
    if not match:
        raise ValidationError("checksum must look like 'sha256:<64 hex digits>', got %r." % (value,))
    return "sha256:" + match.group(1).lower()


def parse_mode(value):
    """Return an octal mode as int (``'0755'``, ``'755'``, ``0o755``) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError("mode must be an octal number such as '0755', got %r." % (value,))
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value).strip(), 8)
        except ValueError:
            raise ValidationError("mode must be an octal number such as '0755', got %r." % (value,)) from None
    if not 0 <= mode <= 0o7777:
        raise ValidationError("mode %r is out of range." % (value,))
    return mode


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_FREE_SPACE_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:(%)|([KMGT])(?:I?B)?)?")


def parse_free_space(value):
    """``min_free_space`` -> ``("bytes", n)`` or ``("percent", p)``; ``0``/``None``/``""`` -> ``("bytes", 0)``.

    Bytes may carry a binary suffix (``512M``, ``2G``; ``K``, ``M``, ``G``, ``T``, optionally followed by ``B``
    or ``iB``); a percentage (``5%``) is of the whole filesystem.
    """
    if value is None or value == "":
        return ("bytes", 0)
    match = None if isinstance(value, bool) else _FREE_SPACE_RE.fullmatch(str(value).strip().upper())
    if match is None:
        raise ValidationError(
            "min_free_space must be a size such as 2G, 512M or 1048576, or a percentage such as 5%%, got %r." % (value,)
        )
    amount, percent, unit = float(match.group(1)), match.group(2), match.group(3) or ""
    if percent:
        if amount >= 100:
            raise ValidationError("min_free_space must be a percentage from 0 up to 100 (excluded), got %r." % value)
        return ("percent", amount)
    return ("bytes", int(amount * _SIZE_UNITS[unit]))


def format_bytes(n):
    """``1536`` -> ``1.5 KiB``; bytes below 1 KiB as a whole number, GiB the largest unit."""
    if n < 1024:
        return "%d B" % n
    n /= 1024.0
    for unit in ("KiB", "MiB"):
        if n < 1024:
            return "%.1f %s" % (n, unit)
        n /= 1024.0
    return "%.1f GiB" % n


def resolve_uid(owner):
    """User name or numeric id -> uid; None -> -1 (leave unchanged)."""
    if owner is None or owner == "":
        return -1
    text = str(owner)
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ValidationError("owner %r does not exist on the target host." % (owner,)) from None


def resolve_gid(group):
    """Group name or numeric id -> gid; None -> -1 (leave unchanged)."""
    if group is None or group == "":
        return -1
    text = str(group)
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValidationError("group %r does not exist on the target host." % (group,)) from None


def is_url(src):
    return isinstance(src, str) and src.lower().startswith(("http://", "https://"))


def is_s3(src):
    return isinstance(src, str) and src[:5].lower() == "s3://"


def url_path(url):
    """The path of an http(s) URL, without its query and fragment (for the archive's file name)."""
    rest = url.partition("://")[2]
    path = rest.partition("/")[2]
    return path.partition("?")[0].partition("#")[0]


def natural_key(name):
    """Sort key that orders ``v2`` before ``v10`` and is total over all strings."""
    key = []
    for chunk in re.split(r"(\d+)", name):
        if not chunk:
            continue
        key.append((0, int(chunk), chunk) if chunk.isdigit() else (1, 0, chunk))
    return tuple(key), name


def sha256_file(handle):
    """``'sha256:<hex>'`` of a binary file object, read from its start; the handle is left at its start."""
    digest = hashlib.sha256()
    handle.seek(0)
    for chunk in iter(lambda: handle.read(1024 * 1024), b""):
        digest.update(chunk)
    handle.seek(0)
    return "sha256:" + digest.hexdigest()
