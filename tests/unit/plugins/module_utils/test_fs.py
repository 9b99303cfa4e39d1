# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safe filesystem primitives (module_utils/_fs.py) on real directories, with ``nobody`` as the other user."""

import os
import shutil
import stat

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils import _fs
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.hostile import as_nobody, shared_dir

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="plays another local user with setpriv, as root"
)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask0():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def shared():
    """A sticky world-writable directory like /var/tmp, that nobody can reach."""
    with shared_dir("zdr-fs-test-") as path:
        yield path


@pytest.fixture
def dirfd(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


# --- open_dir ------------------------------------------------------------------------------------------


def test_open_dir_creates_a_private_chain_whatever_the_umask(tmp_path, umask0):
    target = str(tmp_path / "a" / "b" / "c")
    with pytest.raises(FileNotFoundError):
        _fs.open_dir(target)
    assert not os.path.exists(str(tmp_path / "a"))
    fd = _fs.open_dir(target, create=True)
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(target))
    finally:
        os.close(fd)
    for sub in ("a", "a/b", "a/b/c"):
        assert mode(str(tmp_path / sub)) == 0o700 and os.lstat(str(tmp_path / sub)).st_uid == os.geteuid()
    _fs.make_dirs(target)  # existing: fine, unchanged
    assert mode(target) == 0o700


def test_open_dir_never_follows_the_last_component(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    with pytest.raises(_fs.FsError, match="symlink, not a directory") as e:
        _fs.open_dir(str(tmp_path / "link"), create=True)
    assert e.value.reason == "symlink"
    with pytest.raises(_fs.FsError) as e:
        _fs.open_dir(str(tmp_path / "link" / "x"), strict=2)
    assert e.value.reason == "symlink"


def test_open_dir_follows_a_link_of_the_running_user_on_the_way(tmp_path):
    (tmp_path / "real" / "deep").mkdir(parents=True)
    os.symlink("real/../real", str(tmp_path / "rel"))
    os.symlink(str(tmp_path / "real"), str(tmp_path / "abs"))
    for via in ("rel", "abs"):
        _fs.make_dirs(str(tmp_path / via / "deep" / "new"))
    assert sorted(os.listdir(str(tmp_path / "real" / "deep"))) == ["new"]


def test_open_dir_stops_on_a_symlink_loop(tmp_path):
    os.symlink("b", str(tmp_path / "a"))
    os.symlink("a", str(tmp_path / "b"))
    with pytest.raises(_fs.FsError) as e:
        _fs.open_dir(str(tmp_path / "a" / "x"))
    assert e.value.reason == "loop"


def test_open_dir_refuses_a_file_on_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(_fs.FsError, match="not a directory") as e:
        _fs.open_dir(str(tmp_path / "f" / "x"), create=True)
    assert e.value.reason == "not_dir"


@pytest.mark.parametrize("bits", [0o777, 0o770, 0o707])
def test_open_dir_refuses_a_folder_others_may_write_without_sticky_bit(tmp_path, bits):
    (tmp_path / "open").mkdir()
    os.chmod(str(tmp_path / "open"), bits)
    with pytest.raises(_fs.FsError, match="writable by other users") as e:
        _fs.open_dir(str(tmp_path / "open" / "x"), create=True)
    assert e.value.reason == "writable" and os.listdir(str(tmp_path / "open")) == []


def test_open_dir_accepts_a_sticky_shared_folder(tmp_path):
    (tmp_path / "tmp").mkdir()
    os.chmod(str(tmp_path / "tmp"), 0o1777)
    _fs.make_dirs(str(tmp_path / "tmp" / "mine"))
    assert mode(str(tmp_path / "tmp" / "mine")) == 0o700


@needs_root
def test_open_dir_refuses_a_folder_of_another_user(tmp_path):
    (tmp_path / "theirs").mkdir()
    os.chown(str(tmp_path / "theirs"), NOBODY, -1)
    with pytest.raises(_fs.FsError, match="belongs to uid %d" % NOBODY) as e:
        _fs.open_dir(str(tmp_path / "theirs" / "x"), create=True)
    assert e.value.reason == "foreign" and e.value.uid == NOBODY
    assert os.listdir(str(tmp_path / "theirs")) == []


@needs_setpriv
def test_open_dir_refuses_a_link_another_user_planted(shared, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    as_nobody("ln", "-s", str(target), os.path.join(shared, "evil"))
    with pytest.raises(_fs.FsError, match="symlink that belongs to uid %d" % NOBODY):
        _fs.open_dir(os.path.join(shared, "evil", "x"), create=True)
    assert os.listdir(str(target)) == []


@needs_setpriv
def test_open_dir_refuses_a_folder_another_user_made_first(shared):
    as_nobody("mkdir", os.path.join(shared, "mine"))
    with pytest.raises(_fs.FsError, match="belongs to uid %d" % NOBODY):
        _fs.open_dir(os.path.join(shared, "mine"), create=True)


@pytest.mark.parametrize("path", ["relative/x", "", None])
def test_open_dir_needs_an_absolute_path(path):
    with pytest.raises(ValueError):
        _fs.open_dir(path)


# --- read_file ----------------------------------------------------------------------------------------


def test_read_file_reads_up_to_the_cap(tmp_path, dirfd):
    (tmp_path / "f").write_bytes(b"x" * 10)
    data, info = _fs.read_file(dirfd, "f", 10, "f")
    assert data == b"x" * 10 and stat.S_ISREG(info.st_mode)
    with pytest.raises(_fs.FsError) as e:
        _fs.read_file(dirfd, "f", 9, "f")
    assert e.value.reason == "too_large"
    with pytest.raises(FileNotFoundError):
        _fs.read_file(dirfd, "missing", 10, "missing")


def test_read_file_never_follows_a_link(tmp_path, dirfd):
    (tmp_path / "secret").write_text("secret")
    os.symlink(str(tmp_path / "secret"), str(tmp_path / "f"))
    with pytest.raises(_fs.FsError, match="symlink") as e:
        _fs.read_file(dirfd, "f", 100, "f")
    assert e.value.reason == "symlink" and "secret" not in e.value.msg.replace(str(tmp_path), "")


def test_read_file_refuses_a_fifo_without_blocking(tmp_path, dirfd):
    os.mkfifo(str(tmp_path / "f"))
    with pytest.raises(_fs.FsError) as e:
        _fs.read_file(dirfd, "f", 100, "f")
    assert e.value.reason == "not_file"


@needs_root
def test_read_file_refuses_a_file_of_another_user(tmp_path, dirfd):
    (tmp_path / "f").write_text("x")
    os.chown(str(tmp_path / "f"), NOBODY, -1)
    with pytest.raises(_fs.FsError, match="uid %d" % NOBODY) as e:
        _fs.read_file(dirfd, "f", 100, "f")
    assert e.value.reason == "foreign"


# --- write_file, mkstemp_at, remove_entry --------------------------------------------------------------


@pytest.mark.parametrize("wanted", [0o600, 0o644])
def test_write_file_sets_the_mode_exactly_and_leaves_no_temporary_file(tmp_path, dirfd, umask0, wanted):
    _fs.write_file(dirfd, "f", b"one", mode=wanted)
    _fs.write_file(dirfd, "f", b"two", mode=wanted)
    assert (tmp_path / "f").read_bytes() == b"two" and mode(str(tmp_path / "f")) == wanted
    assert os.listdir(str(tmp_path)) == ["f"]


def test_write_file_replaces_a_link_and_leaves_its_target_alone(tmp_path, dirfd):
    (tmp_path / "victim").write_text("precious")
    os.symlink(str(tmp_path / "victim"), str(tmp_path / "f"))
    _fs.write_file(dirfd, "f", b"lock")
    assert not os.path.islink(str(tmp_path / "f")) and (tmp_path / "f").read_bytes() == b"lock"
    assert (tmp_path / "victim").read_text() == "precious"


def test_mkstemp_at_makes_new_private_files(tmp_path, dirfd, umask0):
    fd1, name1 = _fs.mkstemp_at(dirfd, ".x.")
    fd2, name2 = _fs.mkstemp_at(dirfd, ".x.")
    os.close(fd1)
    os.close(fd2)
    assert name1 != name2 and name1.startswith(".x.") and name1.endswith(".tmp")
    assert mode(str(tmp_path / name1)) == 0o600


def test_remove_entry_unlinks_a_link_not_its_target_and_moves_a_folder_aside(tmp_path, dirfd):
    (tmp_path / "victim").write_text("precious")
    os.symlink(str(tmp_path / "victim"), str(tmp_path / "link"))
    assert _fs.remove_entry(dirfd, "link") is None
    assert not os.path.lexists(str(tmp_path / "link")) and (tmp_path / "victim").read_text() == "precious"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    aside = _fs.remove_entry(dirfd, "d")
    assert aside.startswith(".d.removed-") and os.listdir(str(tmp_path / aside)) == ["keep"]
    assert _fs.remove_entry(dirfd, "gone") is None
