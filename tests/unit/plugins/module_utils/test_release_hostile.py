# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release layout against a hostile app user (issue #13, items 3 and 4).

The module runs as root (``become``); the app user, played here by ``nobody`` through ``setpriv``, owned ``path``,
``releases/`` and ``shared/`` in layouts made by earlier versions of the collection (``owner: nobody``). From there
it can put a symbolic link in place of any entry of ``path``. Each test plants one and checks that root neither
follows it nor changes anything, or that such a layout is taken back.
"""

import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elb_classic import ClassicELBInstance
from ansible_collections.zerodowntime.rollout.plugins.module_utils._aws.elbv2_health import (
    check_target_type as _check_target_type,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import LayoutError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import validate_version

NOBODY = 65534
NOGROUP = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to play the app user"
)


def as_nobody(script, cwd, check=True):
    """Run a shell script as the app user (nobody:nogroup, no supplementary groups) in ``cwd``."""
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-ec", script]
    return subprocess.run(argv, cwd=cwd, check=check, timeout=30, capture_output=True, text=True)


def archive(folder, version):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("VERSION", version.encode() + b"\n"), ("lib/code.py", b"print(1)\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    path = os.path.join(folder, "%s.tar.gz" % version)
    with open(path, "wb") as handle:
        handle.write(buf.getvalue())
    return path


def snapshot(root):
    """Every entry under ``root`` (and ``root`` itself): type, mode, owner, and content or link target."""
    result = {}
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    for path in paths:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                what = handle.read()
        else:
            what = "dir"
        result[path] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
    return result


class Arena:
    """A layout made the way earlier versions made it for ``owner: nobody``, and a root-only victim directory.

    ``base`` is root's, 0755, under /tmp, so nobody reaches the layout; ``victim`` lies in pytest's 0700 tmp_path,
    which nobody cannot reach (it can only name it in a link).
    """

    def __init__(self, base, victim):
        self.base = base
        self.root = os.path.join(base, "app")
        self.victim = victim

    def run(self, **kwargs):
        kwargs.setdefault("path", self.root)
        kwargs.setdefault("owner", "nobody")
        kwargs.setdefault("group", "nogroup")
        return manage_release(**kwargs)

    def deploy(self, version, **kwargs):
        return self.run(version=version, src=archive(self.base, version), state="active", **kwargs)

    def make_legacy_layout(self, versions=("v1",)):
        """Releases activated with owner=nobody, then ``path``, ``releases/``, ``shared/`` and ``current`` given to
        nobody, as the code before issue #13 left them (it chowned every directory it created to ``owner``)."""
        for version in versions:
            self.deploy(version, shared_paths=["log"], keep=0)
        for name in ("", "releases", "shared"):
            os.chown(os.path.join(self.root, name), NOBODY, NOGROUP)
        os.lchown(os.path.join(self.root, "current"), NOBODY, NOGROUP)

    def path(self, *names):
        return os.path.join(self.root, *names)


@pytest.fixture
def arena(tmp_path):
    base = tempfile.mkdtemp(prefix="zdt-hostile-", dir="/tmp")
    os.chmod(base, 0o755)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    os.chmod(str(victim), 0o700)
    for index in range(1, 4):
        (victim / ("file%d" % index)).write_text("precious %d\n" % index)
    for index in range(1, 7):  # six unrelated directories, named like releases would be
        sub = victim / ("v0.%d" % index)
        sub.mkdir()
        (sub / "data").write_text("unrelated %d\n" % index)
    os.chmod(str(tmp_path), 0o700)
    try:
        yield Arena(base, str(victim))
    finally:
        shutil.rmtree(base)


# --- links planted by the app user -----------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("entry", [".rollout-tmp", "releases", "shared"])
def test_a_directory_replaced_by_a_link_is_refused_and_its_target_untouched(arena, entry):
    arena.make_legacy_layout(versions=("v1", "v2", "v3"))
    as_nobody("mv %s planted-away && ln -s %s %s" % (entry, arena.victim, entry), cwd=arena.root)
    victim_before, layout_before = snapshot(arena.victim), snapshot(arena.root)
    with pytest.raises(LayoutError) as info:
        # keep=2: today's code prunes the victim's six directories as unknown releases.
        arena.deploy("v4", shared_paths=["log"], keep=2)
    msg = info.value.msg
    assert "%s is a symbolic link" % arena.path(entry) in msg
    assert "Nothing was changed" in msg
    assert snapshot(arena.victim) == victim_before
    assert snapshot(arena.root) == layout_before
    assert os.readlink(arena.path("current")) == "releases/v3"


@needs_root
def test_pruning_with_keep_2_never_deletes_through_a_planted_releases_link(arena):
    arena.make_legacy_layout(versions=("v1",))
    as_nobody("mv releases releases.real && ln -s %s releases" % arena.victim, cwd=arena.root)
    before = snapshot(arena.victim)
    for state in ("present", "active"):
        with pytest.raises(LayoutError, match="releases is a symbolic link"):
            arena.run(version="v2", src=archive(arena.base, "v2"), state=state, keep=2)
    with pytest.raises(LayoutError, match="releases is a symbolic link"):
        arena.run(version="v0.1", state="absent")
    assert snapshot(arena.victim) == before
    assert sorted(os.listdir(arena.victim)) == ["file1", "file2", "file3"] + ["v0.%d" % i for i in range(1, 7)]


@needs_root
def test_emptying_a_planted_tmp_link_never_reaches_its_target(arena):
    arena.make_legacy_layout()
    as_nobody("rmdir .rollout-tmp && ln -s %s .rollout-tmp" % arena.victim, cwd=arena.root)
    before = snapshot(arena.victim)
    for kwargs in ({"state": "rollback", "version": "v1"}, {"state": "absent", "version": "v9"}):
        with pytest.raises(LayoutError, match=r"\.rollout-tmp is a symbolic link"):
            arena.run(**kwargs)
    assert snapshot(arena.victim) == before


@needs_root
@pytest.mark.parametrize("entry", [".rollout-state.json", ".rollout.lock"])
def test_a_state_file_or_lock_replaced_by_a_link_is_refused(arena, entry):
    arena.make_legacy_layout()
    # A dangling link into root's directory: today's code creates the lock file there.
    target = os.path.join(arena.victim, "created-through-the-link")
    as_nobody("rm -f %s && ln -s %s %s" % (entry, target, entry), cwd=arena.root)
    victim_before, layout_before = snapshot(arena.victim), snapshot(arena.root)
    with pytest.raises(LayoutError) as info:
        arena.deploy("v2")
    assert "%s is a symbolic link" % arena.path(entry) in info.value.msg
    assert "Nothing was changed" in info.value.msg
    assert not os.path.lexists(target)
    assert snapshot(arena.victim) == victim_before and snapshot(arena.root) == layout_before


@needs_root
def test_a_link_planted_inside_shared_is_never_created_through(arena):
    arena.make_legacy_layout()
    # shared/config is an entry of shared/ and belongs to the app user; a link inside it must not lead root on.
    os.makedirs(arena.path("shared", "config"))
    os.chown(arena.path("shared", "config"), NOBODY, NOGROUP)
    as_nobody("ln -s %s shared/config/app" % arena.victim, cwd=arena.root)
    before = snapshot(arena.victim)
    with pytest.raises(LayoutError, match=r"shared/config/app is a symbolic link"):
        arena.deploy("v2", shared_paths=["config/app/cache"])
    assert snapshot(arena.victim) == before and not os.path.exists(os.path.join(arena.victim, "cache"))
    assert sorted(os.listdir(arena.path("releases"))) == ["v1"]


# --- ownership: taken back, or refused ---------------------------------------------------------------


@needs_root
def test_a_layout_of_an_earlier_version_is_taken_back_with_a_warning(arena):
    arena.make_legacy_layout()
    result = arena.deploy("v2", shared_paths=["log"])
    assert result["changed"] and result["current"] == "v2"
    (warning,) = result["warnings"]
    for name in ("", "releases", "shared"):
        st = os.lstat(arena.path(name))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode) & 0o022) == (0, 0, 0), name
        assert os.path.normpath(arena.path(name)) in warning
    assert "nobody" in warning and "took back" in warning.lower()
    # what the module keeps to itself is root's
    for name in (".rollout-tmp", ".rollout-state.json", ".rollout.lock", "current"):
        assert os.lstat(arena.path(name)).st_uid == 0, name
    assert stat.S_IMODE(os.lstat(arena.path(".rollout.lock")).st_mode) == 0o600
    # the releases' contents and the entries of shared/ stay the app user's
    for rel in (("releases", "v1"), ("releases", "v2"), ("releases", "v2", "VERSION"), ("shared", "log")):
        st = os.lstat(arena.path(*rel))
        assert (st.st_uid, st.st_gid) == (NOBODY, NOGROUP), rel
    # and the app user can no longer swap an entry of path
    assert as_nobody("mv .rollout-tmp x", cwd=arena.root, check=False).returncode != 0
    assert as_nobody("ln -s /tmp current.planted", cwd=arena.root, check=False).returncode != 0
    again = arena.deploy("v2", shared_paths=["log"])
    assert not again["changed"] and "warnings" not in again


@needs_root
def test_a_fresh_layout_gives_owner_only_the_contents(arena):
    result = arena.deploy("v1", shared_paths=["log"])
    assert "warnings" not in result
    for name in ("", "releases", "shared", ".rollout-tmp", ".rollout-state.json", ".rollout.lock", "current"):
        assert os.lstat(arena.path(name)).st_uid == 0, name
    assert stat.S_IMODE(os.lstat(arena.path(".rollout.lock")).st_mode) == 0o600
    assert os.lstat(arena.path("releases", "v1", "VERSION")).st_uid == NOBODY
    assert os.lstat(arena.path("shared", "log")).st_uid == NOBODY


@needs_root
def test_an_entry_of_another_user_is_refused_and_nothing_changes(arena):
    arena.make_legacy_layout()
    os.chown(arena.path("releases"), 4242, 4242)  # neither root nor the owner of this run
    before = snapshot(arena.root)
    with pytest.raises(LayoutError) as info:
        arena.deploy("v2")
    msg = info.value.msg
    assert "%s belongs to uid 4242" % arena.path("releases") in msg and "Nothing was changed" in msg
    assert snapshot(arena.root) == before  # not even path was taken back


@needs_root
def test_a_legacy_layout_is_refused_without_owner(arena):
    arena.make_legacy_layout()
    before = snapshot(arena.root)
    with pytest.raises(LayoutError) as info:
        arena.run(owner=None, group=None, state="rollback", version="v1")
    msg = info.value.msg
    assert "%s belongs to nobody (uid 65534)" % arena.root in msg
    assert "owner" in msg and "Nothing was changed" in msg
    assert snapshot(arena.root) == before


@needs_root
def test_a_parent_directory_of_the_app_user_is_reported(arena):
    home = os.path.join(arena.base, "home")
    os.mkdir(home, 0o755)
    os.chown(home, NOBODY, NOGROUP)  # e.g. made and chowned by an earlier version, or the app user's home
    path = os.path.join(home, "app")
    result = arena.run(path=path, version="v1", src=archive(arena.base, "v1"), state="active")
    (warning,) = result["warnings"]
    assert warning.startswith("%s belongs to nobody (uid 65534), so another user could replace" % home)
    assert path in warning and os.lstat(path).st_uid == 0


# --- names and versions: the whole string must match ---------------------------------------------------


@pytest.mark.parametrize("version", ["v1\n", "1.0\n"])
def test_a_version_with_a_trailing_newline_is_refused_and_nothing_is_created(tmp_path, version):
    root = str(tmp_path / "app")
    with pytest.raises(ValidationError, match="may only contain"):
        manage_release(root, state="active", version=version, src=archive(str(tmp_path), "v1"))
    with pytest.raises(ValidationError):
        validate_version(version)
    assert not os.path.exists(root)


def test_instance_ids_with_a_trailing_newline_are_refused():
    problem = _check_target_type("i-0123456789abcdef0\n", {"name": "tg", "target_type": "instance"})
    assert problem and "needs an EC2 instance id" in problem
    assert _check_target_type("i-0123456789abcdef0", {"name": "tg", "target_type": "instance"}) is None
    with pytest.raises(ValidationError, match="instance_id must be an EC2 instance id"):
        ClassicELBInstance(object()).ensure("i-0123456789abcdef0\n", "registered")
