# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""prepare_app on a real release layout: read the host, then unpack only when the host will be rolled."""

import hashlib
import os

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._prepare import prepare_app
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release_state import describe_releases
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.release_archive import Probe, archive


def sha(path):
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture
def host(tmp_path):
    """v1 active; returns (root, path of the v2 archive)."""
    root = str(tmp_path / "app")
    manage_release(root, state="active", version="v1", src=archive(tmp_path, "v1"))
    return root, archive(tmp_path, "v2")


def releases_on_disk(root):
    return sorted(os.listdir(os.path.join(root, "releases")))


def test_unpacks_the_target_without_touching_current(host):
    root, src = host
    probe = Probe()
    out = prepare_app(root, "v2", {"src": src, "checksum": sha(src)}, quick_probe=probe)
    assert out["changed"] is True and out["prepared"] is True and out["unpacked"] is True
    assert out["current"] == "v1" and not out["on_target"]
    assert os.readlink(os.path.join(root, "current")) == "releases/v1"
    with open(os.path.join(root, "releases", "v2", "VERSION")) as handle:
        assert handle.read() == "v2\n"
    assert probe.calls == 0  # not on the target: no readiness probe
    again = prepare_app(root, "v2", {"src": src, "checksum": sha(src)}, quick_probe=Probe())
    assert again["changed"] is False and again["prepared"] is True


def test_on_target_reads_and_probes_but_unpacks_nothing(host, tmp_path):
    root, _src = host
    probe = Probe()
    missing = str(tmp_path / "not-there.tar.gz")  # never opened: nothing to unpack
    out = prepare_app(root, "v1", {"src": missing}, quick_probe=probe)
    assert out["on_target"] and out["ready"] is True and probe.calls == 1
    assert out["changed"] is False and "nothing to unpack" in out["unpack"]
    assert releases_on_disk(root) == ["v1"]


def test_a_rolled_back_release_is_left_alone_unless_retried(host, tmp_path):
    root, src = host
    manage_release(root, state="active", version="v2", src=src)
    manage_release(root, state="rollback")
    assert describe_releases(root)["rolled_back"] == ["v2"]
    missing = str(tmp_path / "not-there.tar.gz")  # never opened: the host is refused, nothing is unpacked
    out = prepare_app(root, "v2", {"src": missing}, quick_probe=Probe())
    assert out["changed"] is False and "rolled back" in out["unpack"] and out["rolled_back"] == ["v2"]
    retried = prepare_app(root, "v2", {"src": src, "checksum": sha(src)}, quick_probe=Probe(), retry_rolled_back=True)
    assert retried["changed"] is False and retried["prepared"] is True and releases_on_disk(root) == ["v1", "v2"]


def test_check_mode_verifies_and_writes_nothing(host):
    root, src = host
    out = prepare_app(root, "v2", {"src": src, "checksum": sha(src)}, quick_probe=Probe(), check_mode=True)
    assert out["changed"] is True and out["prepared"] is True and out["unpacked"] is False
    assert releases_on_disk(root) == ["v1"]


def test_a_checksum_mismatch_fails_and_leaves_nothing(host):
    root, src = host
    wrong = "sha256:" + "0" * 64
    with pytest.raises(RolloutError, match="checksum mismatch .* Nothing was unpacked"):
        prepare_app(root, "v2", {"src": src, "checksum": wrong}, quick_probe=Probe())
    assert releases_on_disk(root) == ["v1"]
    assert os.readlink(os.path.join(root, "current")) == "releases/v1"
