# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RecordStore and record_key on a real temporary directory."""

import json
import os
import shutil
import stat

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._records import (
    MAX_RECORD_BYTES,
    SCHEMA,
    RecordError,
    RecordStore,
    record_key,
)
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.hostile import as_nobody, shared_dir

KEY = record_key("haproxy", ["/run/haproxy/a.sock"], "be_app-web1")
OTHER_UID = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def store(tmp_path):
    return RecordStore(str(tmp_path / "state"))


@pytest.fixture(params=[0, 0o077, 0o277], ids=["umask000", "umask077", "umask277"])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


# --- record_key ------------------------------------------------------------------------------------


def test_record_key_is_stable_for_the_same_sockets_in_any_order():
    a = record_key("haproxy", ["/run/a.sock", "tcp://10.0.0.1:9999"], "be_app-web1")
    b = record_key("haproxy", ["tcp://10.0.0.1:9999", "/run/a.sock"], "be_app-web1")
    assert a == b
    assert a.startswith("haproxy-be_app-web1-") and a.endswith(".json")


def test_record_key_differs_for_different_sockets_and_members():
    base = record_key("haproxy", ["/run/a.sock"], "be_app-web1")
    assert base != record_key("haproxy", ["/run/b.sock"], "be_app-web1")
    assert base != record_key("haproxy", ["/run/a.sock", "/run/b.sock"], "be_app-web1")
    assert base != record_key("haproxy", ["/run/a.sock"], "be_app-web2")


def test_record_key_has_no_path_separator():
    key = record_key("haproxy", ["/run/a.sock"], "be/app")
    assert os.sep not in key


# --- write / read / remove ---------------------------------------------------------------------------


def test_write_then_read_round_trip(store):
    path = store.write(KEY, {"backend": "be_app", "server": "web1"})
    assert path == os.path.join(store.dir, KEY)
    assert store.read(KEY) == {"backend": "be_app", "server": "web1", "schema": SCHEMA}
    with open(path) as handle:
        assert json.load(handle)["schema"] == SCHEMA


def test_modes_are_private_regardless_of_umask(store, umask):
    path = store.write(KEY, {"a": 1})
    assert mode(store.state_dir) == 0o700
    assert mode(store.dir) == 0o700
    assert mode(path) == 0o600
    # No temporary file is left next to the record.
    assert os.listdir(store.dir) == [KEY]


def test_write_replaces_an_existing_record(store):
    store.write(KEY, {"n": 1})
    store.write(KEY, {"n": 2})
    assert store.read(KEY)["n"] == 2
    assert os.listdir(store.dir) == [KEY]


def test_read_without_directory_is_none_and_creates_nothing(store):
    assert store.read(KEY) is None
    assert not os.path.exists(store.state_dir)


def test_read_missing_record_is_none(store):
    store.write(record_key("haproxy", ["/x.sock"], "be-s"), {})
    assert store.read(KEY) is None


def test_remove_returns_true_then_false(store):
    assert store.remove(KEY) is False  # no directory yet
    store.write(KEY, {})
    assert store.remove(KEY) is True
    assert not os.path.exists(os.path.join(store.dir, KEY))
    assert store.remove(KEY) is False


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_corrupt_record_is_reported_not_trusted(store, data):
    store.write(KEY, {})
    with open(os.path.join(store.dir, KEY), "wb") as handle:
        handle.write(data)
    assert store.read(KEY) == {"schema": None, "corrupt": True}


def test_oversize_record_is_refused(store):
    store.write(KEY, {})
    with open(os.path.join(store.dir, KEY), "wb") as handle:
        handle.write(b" " * (MAX_RECORD_BYTES + 1))
    with pytest.raises(RecordError, match="larger than"):
        store.read(KEY)


def test_record_at_the_size_cap_is_read(store):
    store.write(KEY, {})
    body = b'{"a": 1}'
    with open(os.path.join(store.dir, KEY), "wb") as handle:
        handle.write(body + b" " * (MAX_RECORD_BYTES - len(body)))
    assert store.read(KEY) == {"a": 1}


# --- unsafe paths ------------------------------------------------------------------------------------


def test_symlinked_record_is_refused(store, tmp_path):
    store.write(KEY, {})
    target = tmp_path / "elsewhere.json"
    target.write_text('{"planted": true}')
    path = os.path.join(store.dir, KEY)
    os.unlink(path)
    os.symlink(str(target), path)
    with pytest.raises(RecordError, match="symlink"):
        store.read(KEY)


def test_symlinked_rotation_dir_is_refused(store, tmp_path):
    os.mkdir(store.state_dir, 0o700)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(str(real), store.dir)
    for call in (lambda: store.read(KEY), lambda: store.write(KEY, {}), lambda: store.remove(KEY)):
        with pytest.raises(RecordError, match="not a directory"):
            call()
    assert os.listdir(str(real)) == []


def test_symlinked_state_dir_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(str(real), str(tmp_path / "state"))
    store = RecordStore(str(tmp_path / "state"))
    with pytest.raises(RecordError):
        store.write(KEY, {})
    assert os.listdir(str(real)) == []


def test_rotation_path_that_is_a_file_is_refused(store):
    os.mkdir(store.state_dir, 0o700)
    with open(store.dir, "w") as handle:
        handle.write("x")
    with pytest.raises(RecordError, match="not a directory"):
        store.read(KEY)


@pytest.mark.parametrize("bits", [0o770, 0o707, 0o777])
def test_planted_writable_dir_is_refused(store, bits):
    os.mkdir(store.state_dir, 0o700)
    os.mkdir(store.dir, 0o700)
    os.chmod(store.dir, bits)
    with pytest.raises(RecordError, match="writable by other users"):
        store.read(KEY)
    with pytest.raises(RecordError, match="writable by other users"):
        store.write(KEY, {})
    assert os.listdir(store.dir) == []
    assert mode(store.dir) == bits  # not silently "fixed"


def test_group_writable_state_dir_is_refused(store):
    os.mkdir(store.state_dir, 0o700)
    os.chmod(store.state_dir, 0o775)
    with pytest.raises(RecordError, match="writable by other users"):
        store.write(KEY, {})
    assert not os.path.exists(store.dir)


@needs_root
def test_foreign_owned_dir_is_refused(store):
    store.write(KEY, {})
    os.chown(store.dir, OTHER_UID, -1)
    with pytest.raises(RecordError, match="belongs to uid %d" % OTHER_UID):
        store.read(KEY)


@needs_root
def test_foreign_owned_record_is_refused(store):
    path = store.write(KEY, {})
    os.chown(path, OTHER_UID, -1)
    with pytest.raises(RecordError, match="regular file of the rollout's user"):
        store.read(KEY)


def test_fifo_record_is_refused_without_blocking(store):
    store.write(KEY, {})
    path = os.path.join(store.dir, KEY)
    os.unlink(path)
    os.mkfifo(path, 0o600)
    with pytest.raises(RecordError, match="regular file"):
        store.read(KEY)


# --- arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state_dir", ["relative/dir", "", None, 3])
def test_state_dir_must_be_absolute(state_dir):
    with pytest.raises(ValidationError):
        RecordStore(state_dir)


@pytest.mark.parametrize("key", ["../escape.json", ".hidden.json", "a/b.json"])
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(ValidationError):
        store.path(key)


# --- the folders above state_dir -----------------------------------------------------------------------

needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="plays another local user with setpriv, as root"
)


@pytest.fixture
def shared():
    """A sticky world-writable directory like /var/tmp, that nobody can reach."""
    with shared_dir("zdr-records-test-") as path:
        yield path


def test_missing_parents_are_created_private_whatever_the_umask(tmp_path, umask):
    store = RecordStore(str(tmp_path / "a" / "b" / "state"))
    store.write(KEY, {"a": 1})
    for folder in ("a", "a/b", "a/b/state", "a/b/state/rotation"):
        info = os.lstat(str(tmp_path / folder))
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert store.read(KEY)["a"] == 1


def test_a_parent_symlink_of_the_running_user_is_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(str(real), str(tmp_path / "alias"))  # like /var/run -> /run: made by root, followed
    store = RecordStore(str(tmp_path / "alias" / "state"))
    store.write(KEY, {"a": 1})
    assert os.listdir(str(real / "state" / "rotation")) == [KEY]


@needs_setpriv
def test_a_parent_symlink_planted_by_another_user_is_not_followed(shared, tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    as_nobody("ln", "-s", str(target), os.path.join(shared, "evil"))
    store = RecordStore(os.path.join(shared, "evil", "state"))
    with pytest.raises(RecordError, match="symlink that belongs to uid %d" % OTHER_UID) as e:
        store.write(KEY, {})
    assert "state_dir" in e.value.msg
    with pytest.raises(RecordError, match="symlink"):
        store.read(KEY)
    assert os.listdir(str(target)) == []


@needs_setpriv
@pytest.mark.parametrize("depth", [0, 1])
def test_a_parent_of_another_user_is_refused(shared, depth):
    evil = os.path.join(shared, "evil")
    as_nobody("mkdir", evil)
    state_dir = os.path.join(evil, *(["deeper"] * depth), "state")
    with pytest.raises(RecordError, match="belongs to uid %d" % OTHER_UID):
        RecordStore(state_dir).write(KEY, {})
    assert os.listdir(evil) == []


@needs_setpriv
def test_state_dir_in_a_sticky_shared_directory_is_created_private(shared, umask):
    store = RecordStore(os.path.join(shared, "zdr", "state"))
    store.write(KEY, {"a": 1})
    for path in (os.path.join(shared, "zdr"), store.state_dir, store.dir):
        assert mode(path) == 0o700 and os.lstat(path).st_uid == os.geteuid()
    assert store.read(KEY)["a"] == 1
