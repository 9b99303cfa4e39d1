# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release layout logic on a real temporary filesystem, without Ansible."""

import hashlib
import io
import json
import os
import resource
import stat
import sys
import tarfile
import zipfile

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils import (
    _activate,
    _dirfd,
    _release_state,
    _unpack,
    _values,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._activate import choose_prune
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive import reader as _archive
from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.errors import UnsafeArchiveError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import redact_url
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_errors import (
    ChecksumMismatchError,
    FetchError,
    LayoutError,
    ReleaseError,
    StateFileError,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_state import ReleaseState
from ansible_collections.zerodowntime.rollout.plugins.module_utils._values import (
    natural_key,
    parse_checksum,
    parse_mode,
    validate_relative_path,
    validate_shared_paths,
    validate_version,
)

# --- helpers ---------------------------------------------------------------------------------------


def tar_bytes(files, links=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(tmp_path):
    """A layout root, a folder of archives v1..v9, and a fake fetch serving them by URL."""

    class Env:
        root = str(tmp_path / "app")
        archives = {}
        urls = {}
        fetched = []

        def archive(self, version, files=None, links=(), fmt="tar.gz"):
            files = files if files is not None else {"VERSION": version.encode() + b"\n"}
            if fmt == "zip":
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as zf:
                    for name, data in files.items():
                        zf.writestr(name, data)
                data = buf.getvalue()
            else:
                data = tar_bytes(files, links)
            path = str(tmp_path / ("%s.%s" % (version, fmt)))
            with open(path, "wb") as handle:
                handle.write(data)
            self.archives[version] = data
            self.urls["http://files.test/%s.%s" % (version, fmt)] = data
            return path

        def fetch(self, url, fileobj):
            self.fetched.append(url)
            if url not in self.urls:
                raise OSError("HTTP Error 404: Not Found")
            fileobj.write(self.urls[url])

        def run(self, **kwargs):
            kwargs.setdefault("path", self.root)
            kwargs.setdefault("fetch", self.fetch)
            return manage_release(**kwargs)

        def activate(self, version, **kwargs):
            if "src" not in kwargs:
                kwargs["src"] = self.archive(version)
            return self.run(version=version, state="active", **kwargs)

        def current(self):
            link = os.path.join(self.root, "current")
            return os.readlink(link) if os.path.lexists(link) else None

        def read_current(self, name="VERSION"):
            with open(os.path.join(self.root, "current", name)) as handle:
                return handle.read().strip()

        def releases(self):
            rel = os.path.join(self.root, "releases")
            return sorted(os.listdir(rel)) if os.path.isdir(rel) else []

        def state(self):
            with open(os.path.join(self.root, ".rollout-state.json")) as handle:
                return json.load(handle)

        def snapshot(self):
            """Every path under the root with its link target or content, to prove nothing changed."""
            result = {}
            for dirpath, dirnames, filenames in os.walk(self.root):
                for name in dirnames + filenames:
                    path = os.path.join(dirpath, name)
                    if os.path.islink(path):
                        result[path] = "-> " + os.readlink(path)
                    elif os.path.isfile(path):
                        with open(path, "rb") as handle:
                            result[path] = handle.read()
                    else:
                        result[path] = "dir"
            return result

    return Env()


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v1", "1.4.2", "2024-01-02_3", "1.0.0+build.7", "a-B_c.d+e"])
def test_version_accepted(name):
    assert validate_version(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "../x", "a..b", ".hidden", "a b", "v1;rm", "x" * 201, None, 3, "v1\n", "1.0\n"]
)
def test_version_refused(name):
    with pytest.raises(ValidationError):
        validate_version(name)


def test_relative_paths():
    assert validate_relative_path("./log//") == "log"
    assert validate_relative_path("config/app.yml") == "config/app.yml"
    for bad in ("/etc", "..", "a/../b", "", ".", "  "):
        with pytest.raises(ValidationError):
            validate_relative_path(bad)
    assert validate_shared_paths(["log", "./log", "tmp/cache"]) == ["log", "tmp/cache"]
    with pytest.raises(ValidationError, match="nested"):
        validate_shared_paths(["tmp", "tmp/cache"])


def test_checksum_and_mode_parsing():
    digest = "A" * 64
    assert parse_checksum("sha256:" + digest) == "sha256:" + "a" * 64
    assert parse_checksum(None) is None
    for bad in ("md5:abc", "sha256:xyz", "a" * 64, "sha256:" + "a" * 63):
        with pytest.raises(ValidationError):
            parse_checksum(bad)
    assert parse_mode("0755") == 0o755 and parse_mode("750") == 0o750 and parse_mode(0o700) == 0o700
    assert parse_mode(None) is None
    for bad in ("u+rwx", "99", True, 0o17777):
        with pytest.raises(ValidationError):
            parse_mode(bad)


def test_redact_url():
    assert redact_url("https://user:pw@host:8443/a/b.tgz?token=x#f") == "https://***@host:8443/a/b.tgz?***"
    assert redact_url("http://host/a.tgz") == "http://host/a.tgz"


def test_natural_key():
    names = ["v10", "v9", "v1", "1.10.0", "1.9.0", "1.9.0-rc1", "b", "a"]
    assert sorted(names, key=natural_key) == ["1.9.0", "1.9.0-rc1", "1.10.0", "a", "b", "v1", "v9", "v10"]


def test_errors_are_rollout_errors():
    for cls in (ReleaseError, ChecksumMismatchError, StateFileError, LayoutError, FetchError):
        assert issubclass(cls, RolloutError)


def test_bad_arguments(env):
    with pytest.raises(ValidationError, match="absolute"):
        env.run(path="relative/app", version="v1", state="present")
    with pytest.raises(ValidationError, match="checksum"):
        env.run(version="v1", src="https://files.test/v1.tar.gz", state="present")
    with pytest.raises(ValidationError, match="absolute path on the target"):
        env.run(version="v1", src="v1.tar.gz", state="present")
    with pytest.raises(ValidationError, match="keep"):
        env.run(version="v1", state="present", keep=-1)
    with pytest.raises(ValidationError, match="owner"):
        env.run(version="v1", state="present", owner="no-such-user-zdt")
    assert not os.path.exists(env.root)


# --- pruning choices -------------------------------------------------------------------------------


def test_choose_prune_orders_by_rank_then_name_and_protects():
    ranks = {"a": 5, "b": 1, "c": 3, "d": -1, "e": -1, "f": 9}
    names = list(ranks)
    assert choose_prune(names, set(), 0, ranks.get) == []
    assert choose_prune(names, set(), 6, ranks.get) == []
    # oldest: unknown (-1) d, e by name, then b (1), c (3)...
    assert choose_prune(names, set(), 3, ranks.get) == ["d", "e", "b"]
    assert choose_prune(names, {"d", "b"}, 3, ranks.get) == ["e", "c", "a"]
    # protected names survive even when keep is smaller than their count
    assert choose_prune(names, {"a", "f"}, 1, ranks.get) == ["d", "e", "b", "c"]


# --- state file ------------------------------------------------------------------------------------


def test_state_file_missing_and_round_trip(tmp_path):
    path = str(tmp_path / "state.json")
    assert ReleaseState.load(path) is None
    state = ReleaseState()
    state.record_install("v1", sha(b"1"), "t")
    state.record_activation("v1", None, "t")
    _release_state.write_json_atomic(path, state.to_dict(), str(tmp_path))
    again = ReleaseState.load(path)
    assert again.current == "v1" and again.releases["v1"]["checksum"] == sha(b"1") and again.seq == 2
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "corrupt"),
        (b'{"format": 1, "current": "../../etc"}', "corrupt"),
        (b'{"format": 1, "releases": {"../x": {}}}', "corrupt"),
        (b'{"format": 1, "history": [{"release": "v1"}]}', "corrupt"),
        (b'{"format": 99}', "newer version"),
        (b'{"current": "v1"}', "unknown format"),
    ],
)
def test_state_file_corrupt(tmp_path, content, match):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=match) as info:
        ReleaseState.load(str(path))
    assert "remove it to re-adopt" in str(info.value) or "newer" in str(info.value)


def test_corrupt_state_file_fails_and_changes_nothing(env):
    env.activate("v1")
    with open(os.path.join(env.root, ".rollout-state.json"), "w") as handle:
        handle.write("{oops")
    before = env.snapshot()
    with pytest.raises(StateFileError, match="not valid JSON"):
        env.activate("v2")
    assert env.snapshot() == before
    # removing the file re-adopts the layout from the symlink
    os.unlink(os.path.join(env.root, ".rollout-state.json"))
    result = env.activate("v2")
    assert result["previous"] == "v1" and env.read_current() == "v2"


# --- lifecycle -------------------------------------------------------------------------------------


def test_activate_rollback_twice(env):
    r1 = env.activate("v1")
    assert r1["changed"] and r1["current"] == "v1" and r1["previous"] is None
    assert env.current() == "releases/v1" and env.read_current() == "v1"
    r2 = env.activate("v2")
    assert (r2["current"], r2["previous"], r2["releases"]) == ("v2", "v1", ["v1", "v2"])
    r3 = env.run(state="rollback")
    assert (r3["changed"], r3["current"], r3["previous"]) == (True, "v1", "v2")
    assert env.read_current() == "v1"
    r4 = env.run(state="rollback")
    assert (r4["current"], r4["previous"]) == ("v2", "v1")
    assert env.read_current() == "v2"
    state = env.state()
    assert state["current"] == "v2" and state["previous"] == "v1"
    assert [h["release"] for h in state["history"]] == ["v1", "v2", "v1", "v2"]
    assert r4["release_path"] == os.path.join(env.root, "releases", "v2")
    assert os.listdir(os.path.join(env.root, ".rollout-tmp")) == []


def test_idempotent_and_no_download_when_complete(env):
    env.archive("v1")
    url = "http://files.test/v1.tar.gz"
    checksum = sha(env.archives["v1"])
    first = env.run(version="v1", src=url, checksum=checksum, state="active")
    assert first["changed"] and env.fetched == [url]
    before = env.snapshot()
    second = env.run(version="v1", src=url, checksum=checksum, state="active")
    assert not second["changed"] and env.fetched == [url]
    assert "nothing to do" in second["msg"]
    assert env.snapshot() == before
    with pytest.raises(ReleaseError, match="immutable"):
        env.run(version="v1", src=url, checksum=sha(b"other"), state="active")


def test_check_mode_changes_nothing(env):
    env.activate("v1")
    before = env.snapshot()
    src = env.archive("v2")
    result = env.run(version="v2", src=src, state="active", check_mode=True, diff=True)
    assert result["changed"] and result["current"] == "v2" and result["previous"] == "v1"
    assert result["msg"].startswith("check mode")
    assert result["diff"]["before"].startswith("current: releases/v1")
    assert result["diff"]["after"].startswith("current: releases/v2")
    assert env.snapshot() == before
    # check mode also inspects a local archive: a bad checksum fails without writing
    with pytest.raises(ChecksumMismatchError):
        env.run(version="v2", src=src, checksum=sha(b"x"), state="active", check_mode=True)
    # and a fresh path is not created
    result = env.run(path=env.root + "-new", version="v1", src=src, state="active", check_mode=True)
    assert result["changed"] and not os.path.exists(env.root + "-new")


def test_checksum_mismatch_leaves_everything(env):
    env.activate("v1")
    before = env.snapshot()
    src = env.archive("v2")
    with pytest.raises(ChecksumMismatchError, match="current is unchanged"):
        env.run(version="v2", src=src, checksum=sha(b"nope"), state="active")
    env.urls["http://files.test/v3.tgz"] = env.archives["v2"]
    with pytest.raises(ChecksumMismatchError):
        env.run(version="v3", src="http://files.test/v3.tgz", checksum=sha(b"nope"), state="active")
    assert env.snapshot() == before


def test_fetch_failure(env):
    env.activate("v1")
    before = env.snapshot()
    with pytest.raises(FetchError, match=r"downloading http://files.test/missing.tgz\?\*\*\* failed: HTTP Error 404"):
        env.run(version="v2", src="http://files.test/missing.tgz?token=s3cret", allow_unverified=True, state="active")
    assert env.snapshot() == before


def test_unverified_url_allowed_explicitly(env):
    env.archive("v5", fmt="zip")
    result = env.run(version="v5", src="http://files.test/v5.zip", allow_unverified=True, state="active")
    assert result["current"] == "v5" and env.read_current() == "v5"
    assert env.state()["releases"]["v5"]["checksum"] == sha(env.archives["v5"])


def test_unsafe_archive_writes_nothing(env):
    env.activate("v1")
    before = env.snapshot()
    bad = env.archive("bad", files={"ok": b"1", "../../escape": b"x"})
    with pytest.raises(UnsafeArchiveError):
        env.run(version="bad", src=bad, state="active")
    bad_link = env.archive("bad2", files={"ok": b"1"}, links=[("etc", "../../../../etc")])
    with pytest.raises(UnsafeArchiveError, match="outside the release"):
        env.run(version="bad2", src=bad_link, state="active")
    assert env.snapshot() == before
    assert not os.path.exists(os.path.join(os.path.dirname(env.root), "escape"))


def test_present_does_not_switch_and_absent(env):
    env.activate("v1")
    result = env.run(version="v2", src=env.archive("v2"), state="present")
    assert result["changed"] and result["current"] == "v1" and env.read_current() == "v1"
    assert env.releases() == ["v1", "v2"]
    with pytest.raises(ReleaseError, match="current release"):
        env.run(version="v1", state="absent")
    gone = env.run(version="v2", state="absent")
    assert gone["changed"] and env.releases() == ["v1"]
    again = env.run(version="v2", state="absent")
    assert not again["changed"]


def test_absent_previous_forgets_it(env):
    env.activate("v1")
    env.activate("v2")
    result = env.run(version="v1", state="absent")
    assert result["previous"] is None
    with pytest.raises(ReleaseError, match="no previous release"):
        env.run(state="rollback")


def test_missing_src_for_new_release(env):
    with pytest.raises(ValidationError, match="src is required"):
        env.run(version="v1", state="active")


def test_rollback_to_named_and_missing(env):
    env.activate("v1")
    env.activate("v2")
    env.activate("v3")
    result = env.run(version="v1", state="rollback")
    assert (result["current"], result["previous"]) == ("v1", "v3")
    assert not env.run(version="v1", state="rollback")["changed"]
    with pytest.raises(ReleaseError, match="does not exist"):
        env.run(version="v7", state="rollback")


# --- keep ------------------------------------------------------------------------------------------


def test_keep_prunes_oldest_by_recorded_order_not_name_or_mtime(env):
    # activation order v3, v1, v2, v10, v9: by name v1 would be the oldest, by history v3 is
    for version in ("v3", "v1", "v2", "v10"):
        env.activate(version, keep=0)
    # make mtimes lie: the oldest release gets the newest mtime
    os.utime(os.path.join(env.root, "releases", "v3"), (2e9, 2e9))
    result = env.activate("v9", keep=3)
    assert result["pruned"] == ["v3", "v1"]
    assert env.releases() == ["v10", "v2", "v9"]
    assert "v3" not in env.state()["releases"]


def test_keep_never_prunes_current_or_previous(env):
    for version in ("v1", "v2", "v3"):
        env.activate(version, keep=0)
    env.run(version="v1", state="rollback", keep=1)  # rollback never prunes
    assert env.releases() == ["v1", "v2", "v3"]
    # current v1, previous v3; installing v4 without activating it keeps v4 too
    result = env.run(version="v4", src=env.archive("v4"), state="present", keep=1)
    assert result["pruned"] == ["v2"]
    assert env.releases() == ["v1", "v3", "v4"]


# --- adoption, incomplete releases, interrupted runs ------------------------------------------------


def make_foreign_layout(env, versions, current):
    for version in versions:
        os.makedirs(os.path.join(env.root, "releases", version))
        with open(os.path.join(env.root, "releases", version, "VERSION"), "w") as handle:
            handle.write(version + "\n")
    os.symlink("releases/" + current, os.path.join(env.root, "current"))


def test_adopt_layout_without_state_file(env):
    make_foreign_layout(env, ["v0", "v1"], "v1")
    with pytest.raises(ReleaseError, match="adopted.*Pass version"):
        env.run(state="rollback")
    assert not os.path.exists(os.path.join(env.root, ".rollout-state.json"))
    # activating the current one changes nothing, even with src given
    assert not env.run(version="v1", src=env.archive("v1"), state="active")["changed"]
    result = env.run(version="v0", state="rollback")
    assert (result["changed"], result["current"], result["previous"]) == (True, "v0", "v1")
    assert env.read_current() == "v0"
    assert env.run(state="rollback")["current"] == "v1"


def test_absolute_current_link_is_understood(env):
    make_foreign_layout(env, ["v1"], "v1")
    os.unlink(os.path.join(env.root, "current"))
    os.symlink(os.path.join(env.root, "releases", "v1"), os.path.join(env.root, "current"))
    result = env.activate("v2")
    assert result["previous"] == "v1" and env.current() == "releases/v2"


def test_manual_switch_makes_state_current_the_previous(env):
    env.activate("v1")
    env.activate("v2")
    env.run(version="v3", src=env.archive("v3"), state="present")
    os.unlink(os.path.join(env.root, "current"))
    os.symlink("releases/v3", os.path.join(env.root, "current"))  # an operator switched by hand
    result = env.run(state="rollback")
    assert (result["current"], result["previous"]) == ("v2", "v3")


def test_current_must_be_a_link_into_releases(env):
    os.makedirs(os.path.join(env.root, "current"))
    with pytest.raises(LayoutError, match="not a symbolic link"):
        env.activate("v1")
    os.rmdir(os.path.join(env.root, "current"))
    os.symlink("/etc", os.path.join(env.root, "current"))
    with pytest.raises(LayoutError, match="not a release"):
        env.activate("v1")


def test_incomplete_release_is_redone(env):
    env.activate("v1")
    half = os.path.join(env.root, "releases", "v2")
    os.makedirs(half)
    with open(os.path.join(half, "partial"), "w") as handle:
        handle.write("half written")
    with pytest.raises(ReleaseError, match="incomplete"):
        env.run(version="v2", state="rollback")
    with pytest.raises(ValidationError, match="incomplete"):
        env.run(version="v2", state="active")
    result = env.activate("v2")
    assert "redid incomplete release v2" in result["msg"]
    assert sorted(os.listdir(half)) == ["VERSION"]
    assert env.read_current() == "v2"


def test_interrupted_unpack_leaves_no_release_and_is_cleaned(env, monkeypatch):
    env.activate("v1")

    def explode(self, dest):
        with open(os.path.join(dest, "half"), "w") as handle:
            handle.write("x")
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(_archive.OpenArchive, "extract", explode)
    with pytest.raises(KeyboardInterrupt):
        env.activate("v2")
    monkeypatch.undo()
    assert env.releases() == ["v1"] and env.read_current() == "v1"
    # a crash could also leave staging folders behind: the next run removes them
    stale = os.path.join(env.root, ".rollout-tmp", "release.stale")
    os.makedirs(os.path.join(stale, "deep"))
    env.activate("v2")
    assert os.listdir(os.path.join(env.root, ".rollout-tmp")) == []
    assert env.read_current() == "v2"


# --- shared paths, owner, mode ----------------------------------------------------------------------


def test_shared_paths(env):
    shared_conf = os.path.join(env.root, "shared", "config", "app.conf")
    os.makedirs(os.path.dirname(shared_conf))
    with open(shared_conf, "w") as handle:
        handle.write("from shared\n")
    files = {"VERSION": b"v1\n", "config/app.conf": b"from release\n", "log/old.log": b"old\n"}
    src = env.archive("v1", files=files)
    env.run(version="v1", src=src, state="active", shared_paths=["log", "config/app.conf"])
    release = os.path.join(env.root, "releases", "v1")
    assert os.readlink(os.path.join(release, "log")) == "../../shared/log"
    assert os.readlink(os.path.join(release, "config", "app.conf")) == "../../../shared/config/app.conf"
    assert env.read_current("config/app.conf") == "from shared"
    assert os.path.isdir(os.path.join(env.root, "shared", "log"))
    assert os.listdir(os.path.join(env.root, "shared", "log")) == []


def test_shared_path_through_archive_link_refused(env):
    src = env.archive("v1", files={"real/x": b"1"}, links=[("cfg", "real")])
    with pytest.raises(ReleaseError, match="not a directory"):
        env.run(version="v1", src=src, state="active", shared_paths=["cfg/app.conf"])
    assert env.releases() == []


def test_owner_group_mode(env):
    uid, gid = os.getuid(), os.getgid()
    env.run(version="v1", src=env.archive("v1"), state="active", owner=str(uid), group=str(gid), mode="0750")
    release = os.path.join(env.root, "releases", "v1")
    st = os.stat(release)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o750, uid, gid)


def test_failed_switch_keeps_the_unpacked_release_recorded(env, monkeypatch):
    env.activate("v1")

    def broken_switch(self, version):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_activate.ReleaseManager, "_switch", broken_switch)
    with pytest.raises(ReleaseError, match="state=active on .* failed: .*No space left"):
        env.activate("v2")
    monkeypatch.undo()
    assert env.read_current() == "v1"
    assert "v2" in env.state()["releases"]  # complete and recorded: not unpacked again
    result = env.run(version="v2", state="active")
    assert result["changed"] and "unpacked" not in result["msg"] and env.read_current() == "v2"


def test_rollback_on_an_empty_path(env):
    with pytest.raises(ReleaseError, match="there are no releases"):
        env.run(state="rollback")


# --- rolled-back marks and describe_releases -------------------------------------------------------


def test_rollback_marks_the_release_it_left_until_it_runs_again(env):
    env.activate("v1")
    env.activate("v2", checksum=None)
    assert _release_state.describe_releases(env.root)["rolled_back"] == []
    env.run(state="rollback")
    info = _release_state.describe_releases(env.root)
    assert info["rolled_back"] == ["v2"] and info["current"] == "v1" and info["previous"] == "v2"
    marked = {r["name"]: r["rolled_back_at"] for r in info["releases"]}
    assert marked["v1"] is None and marked["v2"] == env.state()["releases"]["v2"]["rolled_back_at"]
    # the mark survives other activations of other releases ...
    env.activate("v3")
    assert _release_state.describe_releases(env.root)["rolled_back"] == ["v2"]
    # ... and goes once the release is active again
    env.activate("v2")
    info = _release_state.describe_releases(env.root)
    assert info["rolled_back"] == [] and info["current"] == "v2"
    assert "rolled_back_at" not in env.state()["releases"]["v2"]


def test_rollback_in_check_mode_marks_nothing(env):
    env.activate("v1")
    env.activate("v2")
    before = env.snapshot()
    assert env.run(state="rollback", check_mode=True)["changed"]
    assert env.snapshot() == before
    assert _release_state.describe_releases(env.root)["rolled_back"] == []


def test_describe_releases_reports_records_in_install_order_and_changes_nothing(env):
    data_v1 = tar_bytes({"VERSION": b"v1\n"})
    src = os.path.join(os.path.dirname(env.root), "v1.tar.gz")
    with open(src, "wb") as handle:
        handle.write(data_v1)
    env.run(version="v1", src=src, checksum=sha(data_v1), state="active")
    env.activate("v10")
    env.activate("v2")
    before = env.snapshot()
    info = _release_state.describe_releases(env.root)
    assert env.snapshot() == before
    assert info["exists"] is True
    assert [r["name"] for r in info["releases"]] == ["v1", "v10", "v2"]  # install order, not name order
    first = info["releases"][0]
    assert first["complete"] and not first["adopted"] and first["checksum"] == env.state()["releases"]["v1"]["checksum"]
    assert first["installed_at"] and first["rolled_back_at"] is None
    assert [h["release"] for h in info["history"]] == ["v1", "v10", "v2"]
    assert (info["current"], info["previous"]) == ("v2", "v10")


def test_describe_releases_of_a_missing_path_and_an_adopted_layout(env, tmp_path):
    missing = _release_state.describe_releases(str(tmp_path / "nothing-here"))
    assert missing == {
        "exists": False,
        "current": None,
        "previous": None,
        "releases": [],
        "rolled_back": [],
        "history": [],
    }
    os.makedirs(os.path.join(env.root, "releases", "r1"))
    os.symlink("releases/r1", os.path.join(env.root, "current"))
    info = _release_state.describe_releases(env.root)
    assert info["current"] == "r1" and info["previous"] is None and info["history"] == []
    assert info["releases"] == [
        {
            "name": "r1",
            "complete": True,
            "checksum": None,
            "installed_at": None,
            "adopted": True,
            "rolled_back_at": None,
        }
    ]
    assert not os.path.exists(os.path.join(env.root, ".rollout-state.json"))  # reading adopts nothing


def test_describe_releases_refuses_a_relative_path_and_a_corrupt_state_file(env):
    with pytest.raises(ValidationError, match="absolute"):
        _release_state.describe_releases("relative/path")
    env.activate("v1")
    with open(os.path.join(env.root, ".rollout-state.json"), "w") as handle:
        json.dump({"format": 1, "releases": {"v1": {"rolled_back_at": 5}}}, handle)
    with pytest.raises(StateFileError, match="rolled_back_at"):
        _release_state.describe_releases(env.root)


# --- free space --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ("bytes", 0)),
        ("", ("bytes", 0)),
        ("0", ("bytes", 0)),
        (0, ("bytes", 0)),
        (1048576, ("bytes", 1048576)),
        ("512M", ("bytes", 512 * 1024**2)),
        ("2g", ("bytes", 2 * 1024**3)),
        ("1.5K", ("bytes", 1536)),
        ("3GiB", ("bytes", 3 * 1024**3)),
        ("4MB", ("bytes", 4 * 1024**2)),
        (" 7 ", ("bytes", 7)),
        ("5%", ("percent", 5.0)),
        ("0.5%", ("percent", 0.5)),
    ],
)
def test_parse_free_space(value, expected):
    assert _values.parse_free_space(value) == expected


@pytest.mark.parametrize("value", ["lots", "5X", "-1", -1, True, "100%", "-3%", "%", "nan", "inf", "G"])
def test_parse_free_space_refuses(value):
    with pytest.raises(ValidationError, match="min_free_space"):
        _values.parse_free_space(value)


class FakeStatvfs:
    def __init__(self, free_bytes, total_bytes):
        self.f_frsize = 4096
        self.f_bavail = free_bytes // 4096
        self.f_blocks = total_bytes // 4096


def test_a_release_that_does_not_fit_is_refused_before_anything_is_written(env, monkeypatch):
    env.activate("v1")
    big = {"VERSION": b"v2\n", "data.bin": b"x" * 200000}
    src = env.archive("v2", files=big)
    before = env.snapshot()
    real_statvfs = os.statvfs
    calls = []

    def statvfs(path):
        calls.append(path)
        return FakeStatvfs(free_bytes=40 * 4096, total_bytes=1000 * 4096) if path == env.root else real_statvfs(path)

    monkeypatch.setattr(_unpack.os, "statvfs", statvfs)
    with pytest.raises(ReleaseError) as info:
        env.run(version="v2", src=src, state="active")
    assert "not enough disk space to unpack v2 in %s" % env.root in info.value.msg
    assert "its files need 208.0 KiB" in info.value.msg and "160.0 KiB free" in info.value.msg
    assert info.value.details["needed"] == 212992
    assert env.snapshot() == before and env.read_current() == "v1" and calls == [env.root]
    # It fits, but not with 50% of the filesystem kept free ...
    monkeypatch.setattr(_unpack.os, "statvfs", lambda path: FakeStatvfs(free_bytes=400 * 4096, total_bytes=1000 * 4096))
    with pytest.raises(ReleaseError, match=r"keep 2\.0 MiB free \(min_free_space 50%\)"):
        env.run(version="v2", src=src, state="active", min_free_space="50%")
    assert env.snapshot() == before
    # ... and with 10% it goes through.
    result = env.run(version="v2", src=src, state="active", min_free_space="10%")
    assert result["changed"] and env.read_current() == "v2"


def test_data_size_counts_regular_files_of_tar_and_zip(env):
    files = {"VERSION": b"v3\n", "a/b.txt": b"y" * 1000}
    for fmt in ("tar.gz", "zip"):
        path = env.archive("v3", files=files, fmt=fmt)
        with open(path, "rb") as handle:
            from ansible_collections.zerodowntime.rollout.plugins.module_utils._archive.reader import OpenArchive

            with OpenArchive(handle, "tar" if fmt == "tar.gz" else "zip") as archive:
                assert archive.data_size() == 20480


# --- modes, links and removal from descriptors ------------------------------------------------------


def test_modes_are_explicit_whatever_the_umask(env):
    old = os.umask(0o277)
    try:
        env.activate("v1", shared_paths=["log"])
    finally:
        os.umask(old)

    def mode(*names):
        return stat.S_IMODE(os.lstat(os.path.join(env.root, *names)).st_mode)

    assert (mode(), mode("releases"), mode("shared"), mode("shared", "log")) == (0o755, 0o755, 0o755, 0o755)
    assert (mode(".rollout-tmp"), mode(".rollout.lock"), mode(".rollout-state.json")) == (0o700, 0o600, 0o644)


def test_reading_refuses_a_linked_releases_directory_or_state_file(env, tmp_path):
    env.activate("v1")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "v9").mkdir(parents=True)
    releases = os.path.join(env.root, "releases")
    os.rename(releases, releases + ".real")
    os.symlink(str(elsewhere), releases)
    with pytest.raises(LayoutError, match="releases is a symbolic link"):
        _release_state.describe_releases(env.root)
    os.unlink(releases)
    os.rename(releases + ".real", releases)
    state = os.path.join(env.root, ".rollout-state.json")
    os.rename(state, str(tmp_path / "state.json"))
    os.symlink(str(tmp_path / "state.json"), state)
    with pytest.raises(LayoutError, match=r"\.rollout-state\.json is a symbolic link"):
        _release_state.describe_releases(env.root)


def test_remove_at_unlinks_links_and_never_enters_them(tmp_path):
    target = tmp_path / "target"
    (target / "sub").mkdir(parents=True)
    (target / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    os.symlink(str(target), str(tree / "a" / "link"))
    os.symlink(str(target), str(tmp_path / "top-link"))
    os.chmod(str(tree / "a" / "b"), 0o500)  # removable anyway: it is ours
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        _dirfd.remove_at(fd, "top-link")  # a link as the top: the link goes, not its target
        _dirfd.remove_at(fd, "tree")
    finally:
        os.close(fd)
    assert sorted(os.listdir(str(tmp_path))) == ["target"]
    assert sorted(os.listdir(str(target))) == ["keep", "sub"]


def test_remove_at_handles_deep_trees(tmp_path):
    depth = sys.getrecursionlimit() + 100  # one descriptor per level is open at the deepest point
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < depth + 100:
        pytest.skip("the open-files limit is below %d" % (depth + 100))
    top = tmp_path / "deep"
    current = str(top)
    os.mkdir(current)
    fd = os.open(current, os.O_RDONLY)
    try:
        for _level in range(depth):  # each level made relative to the previous one: the path is too long otherwise
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    parent = os.open(str(tmp_path), os.O_RDONLY)
    try:
        _dirfd.remove_at(parent, "deep")
    finally:
        os.close(parent)
    assert os.listdir(str(tmp_path)) == []
