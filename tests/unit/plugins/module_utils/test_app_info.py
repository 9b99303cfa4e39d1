# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""check_artifact and read_app on a real release layout, with a fake HEAD and a fake probe."""

import hashlib
import os
import signal

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._app_info import (
    ArtifactError,
    check_artifact,
    read_app,
)
from ansible_collections.zerodowntime.rollout.plugins.module_utils._errors import RolloutError, ValidationError
from ansible_collections.zerodowntime.rollout.plugins.module_utils._release import manage_release
from ansible_collections.zerodowntime.rollout.tests.unit.fixtures.release_archive import Probe, archive

NOW = 1700000000.0
WHEN = "2023-11-14T22:13:20Z"


def sha(path):
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


class Head:
    """A fake HEAD request: answers ``status`` or raises ``error``; records the timeouts asked for."""

    def __init__(self, status=200, error=None):
        self.status, self.error, self.calls = status, error, []

    def __call__(self, timeout):
        self.calls.append(timeout)
        if self.error is not None:
            raise self.error
        return self.status, b""


@pytest.fixture
def layout(tmp_path):
    """v1 active, v2 unpacked; returns (root, path of the v2 archive)."""
    root = str(tmp_path / "app")
    srcs = {v: archive(tmp_path, v) for v in ("v1", "v2")}
    for version, src in srcs.items():
        manage_release(root, state="present", version=version, src=src, now=lambda: NOW)
    manage_release(root, state="active", version="v1", now=lambda: NOW)
    return root, srcs["v2"]


# --- check_artifact: local files ---------------------------------------------------------------------


def test_local_artifact_with_matching_checksum(tmp_path):
    src = archive(tmp_path, "v1")
    result = check_artifact(src, sha(src))
    assert result == {"source": src, "exists": True, "checksum": sha(src), "url": False}


def test_local_artifact_without_checksum_is_not_hashed(tmp_path):
    src = archive(tmp_path, "v1")
    assert check_artifact(src, None)["checksum"] is None


def test_checksum_mismatch_names_both_checksums(tmp_path):
    src = archive(tmp_path, "v1")
    expected = "sha256:" + "ab" * 32
    with pytest.raises(ArtifactError) as info:
        check_artifact(src, "sha256:" + "AB" * 32)
    assert expected in info.value.msg and "has sha256 %s," % sha(src).split(":", 1)[1] in info.value.msg
    assert "Nothing was drained or changed" in info.value.msg


def test_missing_artifact(tmp_path):
    missing = str(tmp_path / "nope.tar.gz")
    with pytest.raises(ArtifactError, match="does not exist on this host"):
        check_artifact(missing, None)


def test_directory_is_not_an_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="is not a regular file"):
        check_artifact(str(tmp_path), None)


def _blocked(signum, frame):
    raise TimeoutError("check_artifact blocked on a FIFO")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = str(tmp_path / "v2.tar.gz")
    os.mkfifo(fifo, 0o600)
    previous = signal.signal(signal.SIGALRM, _blocked)
    signal.setitimer(signal.ITIMER_REAL, 2.0)  # fail, not hang, if the open blocks
    try:
        with pytest.raises(ArtifactError, match="is not a regular file"):
            check_artifact(fifo, "sha256:" + "0" * 64)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_unreadable_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="Cannot read the artifact .*Not a directory"):
        check_artifact(archive(tmp_path, "v1") + "/inside", None)


@pytest.mark.parametrize("artifact, checksum", [("relative.tar.gz", None), ("/x.tar.gz", "md5:abc"), (None, None)])
def test_invalid_arguments(artifact, checksum):
    with pytest.raises(ValidationError):
        check_artifact(artifact, checksum)


# --- check_artifact: URLs ----------------------------------------------------------------------------

URL = "https://user:secret@files.example.test/app/v2.tar.gz?token=abc"
SHOWN = "https://***@files.example.test/app/v2.tar.gz?***"


def test_url_answering_200():
    head = Head(200)
    result = check_artifact(URL, None, head=head)
    assert result == {"source": SHOWN, "exists": True, "checksum": None, "url": True}
    assert head.calls == [10.0]


def test_url_answering_404():
    with pytest.raises(ArtifactError) as info:
        check_artifact(URL, None, head=Head(404))
    assert "answers 404, not 200" in info.value.msg and SHOWN in info.value.msg
    assert "secret" not in info.value.msg and "token" not in info.value.msg


@pytest.mark.parametrize("error", [OSError("timed out"), ValueError("bad reply")])
def test_url_that_does_not_answer(error):
    with pytest.raises(ArtifactError) as info:
        check_artifact(URL, None, head=Head(error=error))
    assert "does not answer: %s" % error in info.value.msg and "secret" not in info.value.msg


# --- read_app ----------------------------------------------------------------------------------------


def test_not_on_target_does_not_probe(layout):
    root, _src = layout
    probe = Probe()
    result = read_app(root, "v2", quick_probe=probe)
    assert probe.calls == 0
    assert result["on_target"] is False and result["ready"] is None and result["unpacked"] is True
    assert (result["current"], result["changed"], result["artifact"]) == ("v1", False, None)
    assert result["msg"] == "%s runs v1; v2 is unpacked." % root


def test_on_target_probes_once(layout):
    root, _src = layout
    probe = Probe()
    result = read_app(root, "v1", quick_probe=probe)
    assert probe.calls == 1 and result["on_target"] is True and result["ready"] is True
    assert result["msg"] == "%s runs v1, ready." % root


def test_on_target_probe_failure_is_reported(layout):
    root, _src = layout
    result = read_app(root, "v1", quick_probe=Probe(RolloutError("HTTP 503")))
    assert result["ready"] is False and result["probe_error"] == "HTTP 503"
    assert "not ready (HTTP 503)" in result["msg"]


def test_on_target_without_probe(layout):
    root, _src = layout
    result = read_app(root, "v1")
    assert result["ready"] is None and "not probed" in result["msg"]


def test_version_not_unpacked(layout):
    root, _src = layout
    result = read_app(root, "v3", quick_probe=Probe())
    assert result["unpacked"] is False and "v3 is not unpacked yet" in result["msg"]


def test_no_layout_yet(tmp_path):
    result = read_app(str(tmp_path / "none"), "v1", quick_probe=Probe())
    assert result["exists"] is False and result["current"] is None and result["unpacked"] is False
    assert not os.path.exists(str(tmp_path / "none"))


def test_artifact_is_checked_with_the_releases(layout):
    root, src = layout
    result = read_app(root, "v2", artifact=src, checksum=sha(src))
    assert result["artifact"]["checksum"] == sha(src)
    with pytest.raises(ArtifactError):
        read_app(root, "v2", artifact=src, checksum="sha256:" + "1" * 64)
    with pytest.raises(ArtifactError):
        read_app(root, "v2", artifact=URL, head=Head(500))


def test_rolled_back_release_is_reported(layout):
    root, _src = layout
    manage_release(root, state="active", version="v2", now=lambda: NOW)
    manage_release(root, state="rollback", version="v1", now=lambda: NOW)
    result = read_app(root, "v2")
    assert result["rolled_back"] == ["v2"] and result["rolled_back_at"] == WHEN
    assert read_app(root, "v1")["rolled_back_at"] is None


def test_read_app_changes_nothing(layout):
    root, src = layout
    before = sorted(os.walk(root))
    read_app(root, "v1", artifact=src, checksum=sha(src), quick_probe=Probe())
    assert sorted(os.walk(root)) == before and os.readlink(os.path.join(root, "current")) == "releases/v1"


@pytest.mark.parametrize("version", ["", "../v1", "v 1", None])
def test_invalid_version(layout, version):
    with pytest.raises(ValidationError):
        read_app(layout[0], version)
