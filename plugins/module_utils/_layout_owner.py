# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Who owns the release layout, checked before anything changes (the module usually runs as root, the app as
another user).

* ``path``, ``releases/``, ``shared/``, ``.rollout-tmp/``, the state file and the lock belong to the user the
  module runs as; only the releases' contents and the entries under ``shared/`` get ``owner``/``group``;
* a layout made by earlier versions, which gave ``path``, ``releases/`` and ``shared/`` to ``owner``, is taken
  back (chowned to the running user, with a warning); any other link or entry of another user among them is
  refused before anything changes;
* a warning says when another user could still replace ``path`` itself.
"""

import errno
import os
import stat

from ansible_collections.zerodowntime.rollout.plugins.module_utils._dirfd import (
    DIR_FLAGS,
    FILE_FLAGS,
    NOT_A_DIR,
    O_CLOEXEC,
    trusted_uid,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._layout import (
    LOCK_FILE,
    STATE_FILE,
    TMP_DIR,
    link_refused,
    trusted_users,
    user_name,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import LayoutError

# The entries the module keeps in path, and whether each is a directory.
OWN_ENTRIES = (("releases", True), ("shared", True), (TMP_DIR, True), (STATE_FILE, False), (LOCK_FILE, False))


def secure_layout(path, uid, check_mode, actions, warnings):
    """Check ``path`` and the entries the module keeps there before anything changes; take back a layout made
    by earlier versions (its directories given to ``owner``, the uid ``uid``); refuse any link and any other
    user's entry. Returns True when something is (or, in check mode, would be) taken back.

    Everything is checked first, so a refusal changes nothing. Then each entry taken back is opened again
    without following it, compared with what was checked, and chowned through its descriptor. What was done
    and what the user should know are appended to ``actions`` and ``warnings``.
    """
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(top.st_mode) and not trusted_uid(top.st_uid):
        raise LayoutError(
            "path %s is a symbolic link that belongs to %s, not to %s: refused, another user may have planted "
            "it. Nothing was changed. Point path at the real directory."
            % (path, user_name(top.st_uid), trusted_users())
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise LayoutError("path %s is not a directory: refused. Nothing was changed." % path) from None
        raise
    taken_back = False
    try:
        found = [(None, path, os.fstat(fd), True)]
        for name, is_dir in OWN_ENTRIES:
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            found.append((name, os.path.join(path, name), info, is_dir))
        legacy = []
        for name, shown, info, is_dir in found:
            if stat.S_ISLNK(info.st_mode):
                raise link_refused(shown, link=os.readlink(name, dir_fd=fd))
            if is_dir and not stat.S_ISDIR(info.st_mode):
                raise LayoutError("%s is not a directory: refused. Nothing was changed. Move it away." % shown)
            if not is_dir and (not stat.S_ISREG(info.st_mode) or info.st_nlink != 1):
                raise LayoutError(
                    "%s is not a regular file with a single link: refused. Nothing was changed. Move it away "
                    "(no run may be in progress)." % shown
                )
            if trusted_uid(info.st_uid):
                continue
            if uid == -1 or info.st_uid != uid:
                raise _foreign(shown, info.st_uid)
            legacy.append((name, shown, info, is_dir))
        if legacy:
            _take_back(fd, legacy, check_mode, actions, warnings)
            taken_back = True
        _warn_exposed(path, found[0][2], warnings)
    finally:
        os.close(fd)
    return taken_back


def _foreign(shown, uid):
    return LayoutError(
        "%s belongs to %s, not to %s, so that user could put a link in its place or in it: refused. Nothing was "
        "changed. If an earlier version of this collection made it for owner %s, run the release module once "
        "with owner set to that user to take it back; otherwise find out who changed it, then chown it to %s."
        % (shown, user_name(uid), trusted_users(), user_name(uid), user_name(os.geteuid()))
    )


def _take_back(fd, legacy, check_mode, actions, warnings):
    names = ", ".join(shown for _name, shown, _info, _is_dir in legacy)
    who = user_name(legacy[0][2].st_uid)
    me = user_name(os.geteuid())
    if check_mode:
        warnings.append(
            "Would take back %s from %s (an earlier version of this collection gave them to owner): they would "
            "belong to %s, not writable by group or others." % (names, who, me)
        )
        actions.append("take back %s from %s" % (names, who))
        return
    for name, shown, info, is_dir in legacy:
        if name is None:
            entry = os.dup(fd)
        else:
            try:
                entry = os.open(name, DIR_FLAGS if is_dir else FILE_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in NOT_A_DIR:
                    raise link_refused(
                        shown, done="Entries listed before it may have been taken back already."
                    ) from None
                raise
        try:
            now = os.fstat(entry)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise LayoutError("%s changed while it was being checked: refused. Run again." % shown)
            os.fchown(entry, os.geteuid(), os.getegid())
            os.fchmod(entry, stat.S_IMODE(now.st_mode) & ~0o022)
        finally:
            os.close(entry)
    actions.append("took back %s from %s" % (names, who))
    warnings.append(
        "Took back %s from %s: an earlier version of this collection gave them to owner, who could have put a "
        "link in their place. They now belong to %s and are not writable by group or others; only the releases' "
        "contents and the entries under shared/ belong to owner." % (names, who, me)
    )


def _warn_exposed(path, info, warnings):
    """Warn when another user could still replace ``path`` itself (its parent is theirs or writable by all)."""
    parent = os.path.dirname(path)
    try:
        up = os.stat(parent)
    except OSError:
        return
    for shown, st, check_owner in ((parent, up, True), (path, info, False)):
        if check_owner and not trusted_uid(st.st_uid):
            why = "belongs to %s" % user_name(st.st_uid)
        elif st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
            why = "is writable by every user"
        else:
            continue
        warnings.append(
            "%s %s, so another user could replace or fill %s: give it to %s, writable only by its owner, or "
            "move the layout elsewhere." % (shown, why, path, trusted_users())
        )
        return
