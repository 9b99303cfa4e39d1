# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""The checks every member of an archive passes before anything is written, whatever the format:

* names must be relative and free of ``..`` components;
* only regular files, directories, symbolic links and hard links are accepted
  (device files, FIFOs and sockets are refused);
* symbolic links must resolve inside the release, also when they point through
  other links of the same archive (link chains are followed);
* hard links must point at a regular file stored earlier in the same archive;
* no member may live beneath a symbolic link of the archive, and a name may appear
  only once (directories excepted), so extraction never writes through a link.
"""

from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import UnsafeArchiveError

MAX_LINK_DEPTH = 40

KIND_FILE = "file"
KIND_DIR = "dir"
KIND_SYMLINK = "symlink"
KIND_HARDLINK = "hardlink"


class Member:
    """One checked archive member: normalised relative name, kind, mode and (for links) target."""

    __slots__ = ("name", "kind", "mode", "target", "mtime", "source")

    def __init__(self, name, kind, mode=None, target=None, mtime=None, source=None):
        self.name = name
        self.kind = kind
        self.mode = mode
        self.target = target
        self.mtime = mtime
        self.source = source

    def __repr__(self):
        return "Member(%r, %r, target=%r)" % (self.name, self.kind, self.target)


def normalize_name(raw):
    """Normalise an archive member name to ``a/b/c``; ``''`` means the archive root.

    Raises UnsafeArchiveError for absolute names and ``..`` components.
    """
    if "\x00" in raw:
        raise UnsafeArchiveError("member %r: NUL byte in name" % raw)
    if raw.startswith("/"):
        raise UnsafeArchiveError("member %r: absolute path" % raw)
    parts = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeArchiveError("member %r: '..' component" % raw)
        parts.append(part)
    return "/".join(parts)


def split_name(name):
    """``'a/b/c'`` -> ``['a', 'b', 'c']``; ``''`` (the archive root) -> ``[]``."""
    return [p for p in name.split("/") if p] if name else []


def resolve_inside(start_parts, target, links, depth=0):
    """Resolve a relative link ``target`` seen from directory ``start_parts`` inside a virtual tree.

    ``links`` maps normalised names of symbolic links to their raw targets; links met on the way are
    followed (chains). Returns the resolved path as a list of components relative to the root, or
    raises UnsafeArchiveError when the path leaves the root at any step or the chain is too deep.
    """
    if depth > MAX_LINK_DEPTH:
        raise UnsafeArchiveError("link chain deeper than %d (loop?) at %r" % (MAX_LINK_DEPTH, target))
    if target.startswith("/"):
        raise UnsafeArchiveError("absolute link target %r" % target)
    stack = list(start_parts)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise UnsafeArchiveError("link target %r leaves the release" % target)
            stack.pop()
            continue
        stack.append(part)
        key = "/".join(stack)
        if key in links:
            stack = resolve_inside(stack[:-1], links[key], links, depth + 1)
    return stack


def check_members(entries):
    """Check a sequence of raw entries and return the list of Member objects to extract.

    ``entries`` holds ``(raw_name, kind, mode, target, mtime, source)`` tuples where ``kind`` is one of
    the KIND_* values or ``('refuse', reason)``. Raises UnsafeArchiveError on the first problem.
    """
    members = []
    seen = {}
    links = {}
    for raw_name, kind, mode, target, mtime, source in entries:
        if isinstance(kind, tuple):
            raise UnsafeArchiveError("member %r: %s not allowed" % (raw_name, kind[1]))
        name = normalize_name(raw_name)
        if not name:
            if kind == KIND_DIR:
                continue  # the archive root itself ('./')
            raise UnsafeArchiveError("member %r: empty name" % raw_name)
        previous = seen.get(name)
        if previous is not None and not (previous == KIND_DIR and kind == KIND_DIR):
            raise UnsafeArchiveError("member %r: appears more than once" % raw_name)
        seen[name] = kind
        if kind == KIND_SYMLINK:
            if not target:
                raise UnsafeArchiveError("member %r: symbolic link without a target" % raw_name)
            links[name] = target
        elif kind == KIND_HARDLINK:
            target = _hardlink_target(raw_name, target, seen)
        members.append(Member(name, kind, mode, target, mtime, source))
    _check_beneath_links(members, links)
    _check_links_inside(members, links)
    return members


def _hardlink_target(raw_name, target, seen):
    """The normalised target of a hard link, which must be a regular file stored earlier in the archive."""
    if not target:
        raise UnsafeArchiveError("member %r: hard link without a target" % raw_name)
    try:
        norm_target = normalize_name(target)
    except UnsafeArchiveError:
        raise UnsafeArchiveError("member %r: hard link to %r points outside the release" % (raw_name, target)) from None
    if seen.get(norm_target) != KIND_FILE:
        raise UnsafeArchiveError(
            "member %r: hard link to %r, which is not a regular file stored earlier in the archive" % (raw_name, target)
        )
    return norm_target


def _check_beneath_links(members, links):
    """No member may live beneath a symbolic link of the archive (extraction never writes through links), and
    hard links may not reach their target through one either."""
    for member in members:
        paths = [member.name]
        if member.kind == KIND_HARDLINK:
            paths.append(member.target)
        for path in paths:
            parts = split_name(path)
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                if prefix in links:
                    raise UnsafeArchiveError("member %r: lies beneath the symbolic link %r" % (member.name, prefix))


def _check_links_inside(members, links):
    """Symbolic links must stay inside the release, following chains through other links."""
    for member in members:
        if member.kind != KIND_SYMLINK:
            continue
        try:
            resolve_inside(split_name(member.name)[:-1], member.target, links)
        except UnsafeArchiveError as exc:
            raise UnsafeArchiveError(
                "member %r: symbolic link to %r points outside the release (%s)" % (member.name, member.target, exc)
            ) from None
