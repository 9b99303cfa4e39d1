# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Install a release from an archive: a path on the host, or an http(s) URL fetched into ``.rollout-tmp/``.

The archive is hashed and compared with ``checksum``, every member is checked (:mod:`._archive.members`), and the
free-space rule is applied before the first write. It is unpacked into ``.rollout-tmp/`` (same filesystem),
``shared_paths`` are linked into it, ownership and mode are set, and only then is it renamed into
``releases/`` and recorded in the state file; nothing changes in ``current``. The archive code (tarfile,
zipfile, lzma) is loaded only when an archive is opened.
"""

import os
import stat
import tempfile

from ansible_collections.zerodowntime.rollout.plugins.module_utils._activate import ReleaseManager
from ansible_collections.zerodowntime.rollout.plugins.module_utils._dirfd import (
    DIR_FLAGS,
    NOT_A_DIR,
    fsync_path,
    remove_at,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._layout import (
    ensure_dir,
    not_a_dir_refused,
    open_dir,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_text, redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import (
    ChecksumMismatchError,
    FetchError,
    LayoutError,
    ReleaseError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import (
    format_bytes,
    is_url,
    sha256_file,
    url_path,
)


class UnpackingManager(ReleaseManager):
    """A :class:`~._activate.ReleaseManager` that also unpacks a missing release from ``src``.

    ``shared_paths`` are linked into each new release, ``uid``/``gid``/``mode`` applied to its contents,
    ``fetch(url, fileobj)`` downloads a URL, and ``min_free_space`` (``("bytes", n)`` or ``("percent", p)``) is
    kept free on the filesystem.
    """

    def __init__(
        self,
        path,
        keep=5,
        shared_paths=(),
        uid=-1,
        gid=-1,
        mode=None,
        fetch=None,
        check_mode=False,
        now=None,
        min_free_space=("bytes", 0),
    ):
        super().__init__(path, keep=keep, uid=uid, check_mode=check_mode, now=now)
        self.min_free_space = min_free_space
        self.shared_paths = list(shared_paths)
        self.gid = gid
        self.mode = mode
        self.fetch = fetch

    def _unpack(self, version, src, checksum):
        """Unpack ``src`` (a path on the host or an http(s) URL) as ``releases/<version>``; returns True."""
        if self.check_mode:
            if not is_url(src):
                self._verify_local(src, checksum)
            self.actions.append("%s %s" % ("redo incomplete release" if version in self.dirs else "unpack", version))
            if version not in self.dirs:
                self.dirs.append(version)
            return True
        self._install(version, src, checksum)
        return True

    def _verify_local(self, src, checksum):
        """Check mode: hash and inspect a local archive without writing anything."""
        with self._open_local(src) as handle:
            actual = sha256_file(handle)
            _compare_checksum(src, checksum, actual)
            with self._open_archive(handle, src):
                pass

    def _open_local(self, src):
        try:
            return open(src, "rb")
        except FileNotFoundError:
            raise ValidationError("src %s does not exist on the target host." % src) from None
        except OSError as exc:
            raise ValidationError("cannot open src %s: %s." % (src, exc)) from None

    def _open_archive(self, handle, src):
        # Here, not at the top: tarfile, zipfile and lzma are loaded only by a run that opens an archive.
        from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import (
            UnsupportedArchiveError,
        )
        from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.formats import (
            archive_format,
            sniff_format,
        )
        from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.reader import OpenArchive

        name = url_path(src) if is_url(src) else src
        fmt = archive_format(name) or sniff_format(handle)
        if fmt is None:
            raise UnsupportedArchiveError(
                "%s is not a .tar.gz, .tgz, .tar or .zip archive." % (redact_url(src) if is_url(src) else src)
            )
        handle.seek(0)
        return OpenArchive(handle, fmt)

    def _download(self, url):
        if self.fetch is None:
            raise FetchError("no downloader is available for %s." % redact_url(url))
        fd, tmp = tempfile.mkstemp(dir=self.layout.tmp(), prefix="download.")
        handle = os.fdopen(fd, "w+b")
        try:
            self.fetch(url, handle)
            handle.flush()
            handle.seek(0)
        except BaseException as exc:
            handle.close()
            os.unlink(tmp)
            if isinstance(exc, (RolloutError, KeyboardInterrupt, SystemExit)):
                raise
            raise FetchError("downloading %s failed: %s" % (redact_url(url), redact_text(str(exc)))) from None
        return handle, tmp

    def _install(self, version, src, checksum):
        layout = self.layout
        tmp_file = None
        if is_url(src):
            handle, tmp_file = self._download(src)
        else:
            handle = self._open_local(src)
        staging = None
        try:
            actual = sha256_file(handle)
            _compare_checksum(redact_url(src) if is_url(src) else src, checksum, actual)
            with self._open_archive(handle, src) as archive:
                # Every member is checked by now; the first write happens below.
                self._check_space(version, archive.data_size())
                ensure_dir(layout.releases_dir, 0o755)
                ensure_dir(layout.shared_dir, 0o755)
                staging = tempfile.mkdtemp(dir=self.layout.tmp(), prefix="release.")
                archive.extract(staging)
            self._link_shared(version, staging)
            self._apply_ownership(staging)
            os.chmod(staging, self.mode if self.mode is not None else 0o755)
            redo = version in self.dirs
            if redo:
                self._discard(version)
            os.rename(staging, layout.release_path(version))
            staging = None
            fsync_path(layout.releases_dir)
        finally:
            handle.close()
            if tmp_file and os.path.lexists(tmp_file):
                os.unlink(tmp_file)
            if staging is not None:
                self.layout.remove_in_tmp(os.path.basename(staging))
        self.state.record_install(version, actual, self._when())
        if version not in self.dirs:
            self.dirs.append(version)
        self._save()
        self.actions.append("%s %s (%s)" % ("redid incomplete release" if redo else "unpacked", version, actual))

    def _check_space(self, version, needed):
        """Refuse to unpack when the release would not fit, keeping ``min_free_space`` free."""
        st = os.statvfs(self.layout.path)
        free = st.f_bavail * st.f_frsize
        kind, amount = self.min_free_space
        reserve = int(st.f_blocks * st.f_frsize * amount / 100.0) if kind == "percent" else amount
        if needed + reserve <= free:
            return
        kept = (
            (
                " and keep %s free (min_free_space %s)"
                % (format_bytes(reserve), ("%g%%" % amount) if kind == "percent" else format_bytes(amount))
            )
            if reserve
            else ""
        )
        raise ReleaseError(
            "not enough disk space to unpack %s in %s: its files need %s%s, and the filesystem has %s free. "
            "Nothing was written. Free space there, for example by removing old releases (state=absent)."
            % (version, self.layout.path, format_bytes(needed), kept, format_bytes(free)),
            needed=needed,
            free=free,
            reserve=reserve,
        )

    def _link_shared(self, version, staging):
        final = self.layout.release_path(version)
        for rel in self.shared_paths:
            target = os.path.join(self.layout.shared_dir, rel)
            if not os.path.lexists(target):
                self._make_shared(rel)
            parts = rel.split("/")
            current = staging
            for depth, part in enumerate(parts[:-1]):
                current = os.path.join(current, part)
                if not os.path.lexists(current):
                    os.mkdir(current, 0o755)
                elif not stat.S_ISDIR(os.lstat(current).st_mode):
                    raise ReleaseError(
                        "shared path %s: %s in the release is not a directory (a link in the archive?)."
                        % (rel, "/".join(parts[: depth + 1]))
                    )
            link = os.path.join(staging, rel)
            if os.path.lexists(link):
                # In the staging directory, which is still root's and 0700; removed without following anything.
                parent_fd = os.open(os.path.dirname(link), DIR_FLAGS)
                try:
                    remove_at(parent_fd, os.path.basename(link))
                finally:
                    os.close(parent_fd)
            os.symlink(os.path.relpath(target, os.path.dirname(os.path.join(final, rel))), link)

    def _make_shared(self, rel):
        """Create ``shared/<rel>`` as directories of owner/group, one component at a time from descriptors opened
        without following a link: a link planted in ``shared/`` is refused, never created through."""
        done = "The release was not installed and current is unchanged."
        fd = open_dir(self.layout.shared_dir, done)
        if fd is None:
            raise LayoutError("%s disappeared during the run. %s" % (self.layout.shared_dir, done))
        shown = self.layout.shared_dir
        try:
            for part in rel.split("/"):
                shown = os.path.join(shown, part)
                sub = self._open_or_make_at(fd, part, shown, done)
                os.close(fd)
                fd = sub
        finally:
            os.close(fd)

    def _open_or_make_at(self, dir_fd, name, shown, done):
        made = False
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            try:
                os.mkdir(name, 0o755, dir_fd=dir_fd)
                made = True
            except FileExistsError:
                pass
            fd = None
        except OSError as exc:
            if exc.errno not in NOT_A_DIR:
                raise
            raise not_a_dir_refused(shown, done) from None
        if fd is None:
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno not in NOT_A_DIR:
                    raise
                raise not_a_dir_refused(shown, done) from None
        if made:
            try:
                os.fchmod(fd, 0o755)
                if self.uid != -1 or self.gid != -1:
                    os.fchown(fd, self.uid, self.gid)
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _apply_ownership(self, root):
        if self.uid == -1 and self.gid == -1:
            return
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)
        # Last: until now the staging directory is root's and 0700, so nobody else could reach into it.
        os.lchown(root, self.uid, self.gid)


def _compare_checksum(src, expected, actual):
    if expected and expected != actual:
        raise ChecksumMismatchError(
            "checksum mismatch for %s: expected %s, got %s. Nothing was unpacked and current is unchanged."
            % (src, expected, actual)
        )
